"""Profile: where the hf engine's time goes on one sample shard and one judge shard.

    python -m bench.profile_hf --model models/M0 --dtype float32
    python -m bench.profile_hf --model models/M0 --dtypes float32,bfloat16 --tag avx512bf16

Two workloads, as the stages send them: *sample* (16 seed instructions x n 4, 128 new tokens) and *judge* (16
seed instructions with their reference answers in the judge template, n 3, 96 new tokens); every sequence runs
to max_new_tokens (end of sequence ignored) so the work is fixed. For each, one plain run gives the wall time,
split into prefill (the same batches with one new token) and decode, and the share of padded prompt tokens; one run
under torch.profiler splits the operator time into matrix products, attention, the KV cache (cat / copy),
sampling (sort, softmax, multinomial, cumsum), the recorded logits (stack, log_softmax, gather) and the rest; the
wall time the operators do not cover is Python and framework overhead. Writes
bench/results/profile_hf-<tag>-<machine>.json with the tokens/s of each run and the bound of bench.common.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

from bench.common import generation_bound, never_stop, write_report

BUCKETS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "mkldnn", "onednn"),
    "attention": ("scaled_dot_product", "flash_attention", "aten::_softmax_backward"),
    "kv_cache": ("aten::cat", "aten::index_copy", "aten::copy_", "aten::repeat_interleave", "aten::index_select"),
    "sampling": ("aten::sort", "aten::softmax", "aten::_softmax", "aten::multinomial", "aten::cumsum",
                 "aten::topk", "aten::scatter", "aten::masked_fill", "aten::div", "aten::where"),
    "recorded_logits": ("aten::stack", "aten::log_softmax", "aten::_log_softmax", "aten::gather"),
}


def bucket(name: str) -> str:
    for key, needles in BUCKETS.items():
        if any(n in name for n in needles):
            return key
    return "other_ops"


def workloads() -> dict[str, tuple[list, int, int]]:
    from pipeline import judging, records

    seeds = records.read_jsonl("data/seed/instructions.jsonl", records.SeedInstruction)[:16]
    sample = [[{"role": "user", "content": s.instruction}] for s in seeds]
    judge = [judging.judge_conversation(s.instruction, s.reference) for s in seeds]
    return {"sample": (sample, 4, 128), "judge": (judge, 3, 96)}


def timed(engine: Any, convs: list, n: int, max_new: int, logprobs: bool) -> dict[str, float]:
    """One plain run: wall seconds, tokens, tokens/s."""
    from pipeline.engines.base import SamplingSettings

    settings = SamplingSettings(n=n, temperature=0.7, top_p=0.9, max_new_tokens=max_new, seed=0, logprobs=logprobs)
    start = time.perf_counter()
    out = engine.generate(convs, settings, desc="profile")
    wall = time.perf_counter() - start
    tokens = sum(c.num_tokens for row in out for c in row)
    return {"seconds": wall, "tokens": tokens, "tokens_per_second": tokens / wall}


def prefill_seconds(engine: Any, convs: list, n: int) -> float:
    """The prompts' forward passes alone, batched as the engine batches them (max_new_tokens 1)."""
    from pipeline.engines.base import SamplingSettings

    start = time.perf_counter()
    engine.generate(convs, SamplingSettings(n=n, temperature=0.7, top_p=0.9, max_new_tokens=1, seed=0))
    return time.perf_counter() - start


def padding_share(engine: Any, convs: list, n: int) -> float:
    prompts = sorted((len(engine.encode(engine.format_chat(c))) for c in convs), reverse=True)
    per_batch = max(1, engine.batch_size // n)
    real = padded = 0
    for i in range(0, len(prompts), per_batch):
        batch = prompts[i:i + per_batch]
        real += sum(batch)
        padded += max(batch) * len(batch)
    return 1 - real / padded


def profiled(engine: Any, convs: list, n: int, max_new: int, logprobs: bool) -> dict[str, float]:
    from torch.profiler import ProfilerActivity, profile

    from pipeline.engines.base import SamplingSettings

    settings = SamplingSettings(n=n, temperature=0.7, top_p=0.9, max_new_tokens=max_new, seed=0, logprobs=logprobs)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        engine.generate(convs, settings, desc="profile (traced)")
    wall = time.perf_counter() - start
    by: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        by[bucket(event.key)] += event.self_cpu_time_total / 1e6
    ops = sum(by.values())
    return {"traced_seconds": wall, "op_seconds": ops,
            "share": {k: v / wall for k, v in sorted(by.items(), key=lambda kv: -kv[1])},
            "python_and_framework_share": max(0.0, 1 - ops / wall)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/M0")
    p.add_argument("--dtypes", default="float32")
    p.add_argument("--batch-size", type=int, default=16, help="engine.batch_size (the demo's)")
    p.add_argument("--no-trace", action="store_true", help="skip the torch.profiler runs")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    from pipeline.engines.hf import HFEngine

    report: dict[str, Any] = {"batch_size": args.batch_size, "runs": {}}
    for dtype in [d for d in args.dtypes.split(",") if d]:
        engine = HFEngine(args.model, batch_size=args.batch_size, dtype=dtype)
        never_stop(engine)
        from pipeline.engines.base import SamplingSettings

        engine.generate(workloads()["sample"][0][:2], SamplingSettings(n=1, max_new_tokens=4))  # warm-up
        for name, (convs, n, max_new) in workloads().items():
            run = timed(engine, convs, n, max_new, logprobs=True)
            run["prefill_seconds"] = prefill_seconds(engine, convs, n)
            run["decode_seconds"] = run["seconds"] - run["prefill_seconds"]
            run["padding_share"] = padding_share(engine, convs, n)
            run["bound"] = generation_bound(engine.model, dtype, min(args.batch_size, len(convs) * n))
            run["share_of_bound"] = run["tokens_per_second"] / run["bound"]["tokens_per_second"]
            if not args.no_trace:
                run["profile"] = profiled(engine, convs, n, max_new, logprobs=True)
            report["runs"][f"{name}-{dtype}"] = run
            print(name, dtype, {k: v for k, v in run.items() if k not in ("bound", "profile")}, flush=True)
        del engine
    write_report(f"profile_hf-{args.tag}" if args.tag else "profile_hf", report)


if __name__ == "__main__":
    main()
