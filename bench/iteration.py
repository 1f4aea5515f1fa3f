"""Benchmark: wall time and tokens per stage of one iteration, so the slowest stage is visible.

    python -m bench.iteration --iteration M2          # run the iteration's loop stages now, timing each
    python -m bench.iteration --iteration M2 --from-metrics   # what `dvc repro` recorded, nothing run

With no flag, each loop stage (self_instruct, sample, judge, meta_judge, pairs, dpo) runs as its own process
(`python -m stages.<stage> --iteration KEY`, as DVC runs it), and the wall time includes start-up and model
loading. Outputs are rewritten in place (with the hf engine and fixed seeds they come out the same; check
with `dvc status`). --from-metrics reads the seconds and token counts the stages wrote to
metrics/<key>/<stage>.json during the last `dvc repro` (stage time without process start-up).
Writes bench/results/iteration-<key>-<machine>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench.common import write_report

LOOP = ("self_instruct", "sample", "judge", "meta_judge", "pairs", "dpo")


def stage_figures(key: str, stage: str) -> dict:
    from pipeline import paths

    m = json.loads((paths.metrics_dir(key) / f"{stage}.json").read_text())
    return {k: m.get(k) for k in ("seconds", "prompt_tokens", "generated_tokens", "sequences") if m.get(k) is not None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iteration", default="M2")
    p.add_argument("--from-metrics", action="store_true")
    args = p.parse_args()
    stages = {}
    for stage in LOOP:
        wall = None
        if not args.from_metrics:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", f"stages.{stage}", "--iteration", args.iteration], check=True)
            wall = round(time.perf_counter() - start, 1)
        stages[stage] = {**stage_figures(args.iteration, stage), **({"wall_seconds": wall} if wall else {})}
    key = "wall_seconds" if not args.from_metrics else "seconds"
    total = sum(s.get(key) or 0 for s in stages.values())
    slowest = max(stages, key=lambda s: stages[s].get(key) or 0)
    write_report(f"iteration-{args.iteration}", {
        "workload": {"iteration": args.iteration, "params": "params.yaml (the demo)",
                     "source": "metrics written by dvc repro" if args.from_metrics else "stages run now"},
        "stages": stages, "total_seconds": round(total, 1), "slowest_stage": slowest,
        "slowest_share": round((stages[slowest].get(key) or 0) / total, 3) if total else None,
        "target_seconds": 900, "within_target": total <= 900})


if __name__ == "__main__":
    main()
