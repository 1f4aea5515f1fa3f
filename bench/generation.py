"""Benchmark: the same generation workload through the hf engine and the vLLM engine, in one process.

    python -m bench.generation --model models/M0 --prompts 64 --n 4 --max-new-tokens 256

Writes bench/results/generation-<machine>.json: machine, versions, workload, tokens/s per engine, ratio.
Every sequence generates exactly --max-new-tokens (end-of-sequence is ignored) so both engines do the
same work. --random-weights builds the model from its config with random weights (same architecture and
cost; for machines the real weights cannot be carried to).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def machine_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0).replace(" ", "-")
    return f"cpu-{platform.machine()}-{__import__('os').cpu_count()}cores"


def workload(n_prompts: int) -> list[list[dict[str, str]]]:
    from pipeline import paths, records

    seeds = records.read_jsonl(paths.SEED_INSTRUCTIONS, records.SeedInstruction)
    return [[{"role": "user", "content": seeds[i % len(seeds)].instruction}] for i in range(n_prompts)]


def run_hf(model_dir: str, convs, n: int, max_new: int, batch_size: int, random_weights: bool) -> dict:
    import torch

    from pipeline.engines.base import SamplingSettings
    from pipeline.engines.hf import HFEngine

    model = tok = None
    if random_weights:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir), dtype=dtype)
    engine = HFEngine(model_dir, batch_size=batch_size, model=model, tokenizer=tok)
    engine._eos_ids = {-1}  # fixed-length: never stop early
    settings = SamplingSettings(n=n, temperature=0.7, top_p=0.9, max_new_tokens=max_new, seed=0)
    engine.generate(convs[:2], SamplingSettings(n=1, max_new_tokens=8))  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = engine.generate(convs, settings, desc="hf")
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = sum(c.num_tokens for row in out for c in row)
    return {"seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds, "batch_size": batch_size}


def run_vllm(model_dir: str, convs, n: int, max_new: int, random_weights: bool) -> dict:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    start_load = time.perf_counter()
    llm = LLM(model=model_dir, seed=0, enable_prefix_caching=True, max_model_len=2048,
              load_format="dummy" if random_weights else "auto", gpu_memory_utilization=0.5)
    load = time.perf_counter() - start_load
    tok = llm.get_tokenizer()
    texts = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in convs]
    prompts = [TokensPrompt(prompt_token_ids=list(tok(t, add_special_tokens=False)["input_ids"])) for t in texts]
    params = SamplingParams(n=n, temperature=0.7, top_p=0.9, max_tokens=max_new, ignore_eos=True)
    llm.generate(prompts[:2], SamplingParams(max_tokens=8))
    start = time.perf_counter()
    outs = llm.generate(prompts, params)
    seconds = time.perf_counter() - start
    tokens = sum(len(c.token_ids) for o in outs for c in o.outputs)
    return {"seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds, "startup_seconds": load}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/M0", help="model directory")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64, help="hf engine: sequences per batch")
    p.add_argument("--engines", default="hf,vllm")
    p.add_argument("--random-weights", action="store_true")
    p.add_argument("--out", default="bench/results")
    args = p.parse_args()
    import torch
    import transformers

    convs = workload(args.prompts)
    results: dict = {}
    if "hf" in args.engines:
        results["hf"] = run_hf(args.model, convs, args.n, args.max_new_tokens, args.batch_size, args.random_weights)
    if "vllm" in args.engines:
        try:
            results["vllm"] = run_vllm(args.model, convs, args.n, args.max_new_tokens, args.random_weights)
        except ImportError as e:
            results["vllm"] = {"error": f"vllm not installed: {e}"}
    ratio = None
    if "tokens_per_second" in results.get("vllm", {}) and "hf" in results:
        ratio = results["vllm"]["tokens_per_second"] / results["hf"]["tokens_per_second"]
    report = {"benchmark": "generation", "machine": machine_name(), "torch": torch.__version__,
              "transformers": transformers.__version__,
              "workload": {"prompts": args.prompts, "n": args.n, "max_new_tokens": args.max_new_tokens,
                           "random_weights": args.random_weights, "model": args.model},
              "results": results, "vllm_over_hf": ratio, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(args.out) / f"generation-{report['machine']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
