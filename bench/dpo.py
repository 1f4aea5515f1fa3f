"""Benchmark: the dpo stage with TRL's live reference vs reference log-probs reused from generation.

    python -m bench.dpo --iteration M1 --pairs 32

Both sides train M_prev on the same pairs (the iteration's response and judgment pairs, repeated in order
until --pairs are reached) with the same params.yaml `dpo` section and seed, one after the other in this
process:
- live: TRL computes the reference log-probs with a second copy of M_prev in every training step
  (`precompute_ref_log_probs: false`, `reuse_generation_logprobs: false`);
- reused: reference log-probs from the generating stages (`pipeline.reference`), recomputed only where
  TRL's tokenization differs from what was generated; the reference model never runs for the others.
Writes bench/results/dpo-<machine>.json: wall time, pairs/s, the ratio, and the per-step losses of both
sides (they must agree: the reference values are the same up to float error).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import write_report


def load_rows(key: str, n: int, seed: int) -> list[dict]:
    from pipeline import dpo, paths

    d = paths.data_dir(key)
    load = lambda p: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]  # noqa: E731
    rows = dpo.mix_pairs(load(d / "response_pairs.jsonl"), load(d / "judgment_pairs.jsonl"), seed)
    if not rows:
        raise SystemExit(f"bench.dpo: no pairs in {d}; run `dvc repro pairs@{key}` first")
    return [rows[i % len(rows)] for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iteration", default="M1")
    p.add_argument("--pairs", type=int, default=32)
    args = p.parse_args()
    from pipeline import dpo, models, paths
    from pipeline.config import load_params

    params = load_params().for_iteration(args.iteration)
    prev = paths.model_dir(params.prev_of(args.iteration))
    sha = str(models.read_card(prev).get("weights_sha256", ""))[:16]
    rows = load_rows(args.iteration, args.pairs, params.dpo.seed)
    sides = {
        "live": dataclasses.replace(params.dpo, precompute_ref_log_probs=False, reuse_generation_logprobs=False),
        "reused": dataclasses.replace(params.dpo, precompute_ref_log_probs=True, reuse_generation_logprobs=True),
    }
    results = {}
    for name, cfg in sides.items():
        work = Path(tempfile.mkdtemp(prefix=f"bench-dpo-{name}-"))
        start = time.perf_counter()
        _, _, summary = dpo.train_dpo(prev, None, rows, cfg, work, reference_sha=sha)
        seconds = time.perf_counter() - start
        shutil.rmtree(work, ignore_errors=True)
        losses = [h["loss"] for h in summary["log"] if "loss" in h]
        results[name] = {"seconds": round(seconds, 2), "pairs_per_second": round(len(rows) * cfg.epochs / seconds, 3),
                         "losses": losses, **{k: summary[k] for k in ("reference_logprobs", "sides_reused",
                                                                      "sides_recomputed", "recomputed_because",
                                                                      "reference_seconds") if k in summary}}
    diffs = [abs(a - b) for a, b in zip(results["live"]["losses"], results["reused"]["losses"])]
    write_report("dpo", {
        "workload": {"iteration": args.iteration, "model": str(prev), "pairs": len(rows),
                     "distinct_pairs": len({json.dumps(r["chosen"]) + json.dumps(r["rejected"]) for r in rows}),
                     "epochs": params.dpo.epochs, "batch_size": params.dpo.batch_size,
                     "max_length": params.dpo.max_length},
        "results": results, "speedup_reused_over_live": round(results["live"]["seconds"] / results["reused"]["seconds"], 3),
        "max_abs_loss_difference": max(diffs) if diffs else None})


if __name__ == "__main__":
    main()
