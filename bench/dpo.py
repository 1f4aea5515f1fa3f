"""Benchmark: the dpo stage with TRL's live reference vs reference log-probs reused from generation.

    python -m bench.dpo --iteration M1 --pairs 32

Both sides train M_prev on the same pairs (the iteration's response and judgment pairs, repeated in order
until --pairs are reached) with the same params.yaml `dpo` section and seed, one after the other in this
process:
- live: TRL computes the reference log-probs with a second copy of M_prev in every training step
  (`precompute_ref_log_probs: false`, `reuse_generation_logprobs: false`);
- reused: reference log-probs from the generating stages (`pipeline.reference`), recomputed only where
  TRL's tokenization differs from what was generated; the reference model never runs for the others;
- reused_grouped: reused, with length-grouped batches (`dpo.group_by_length: true`).
Writes bench/results/dpo-<machine>.json: wall time, pairs/s, the ratio, the per-step losses of live and
reused (they must agree: the reference values are the same up to float error; grouped batches train in
another order, so their losses differ), and the share of padding tokens in one epoch's batches in random
and in length-grouped order (TRL 1.16's DPOTrainer has no padding-free mode).
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
    from pipeline import dpo, paths, records
    from pipeline.records import PreferencePair

    d = paths.data_dir(key)
    rows = dpo.mix_pairs(*(list(records.iter_jsonl(d / f"{name}.jsonl", PreferencePair))
                           for name in ("response_pairs", "judgment_pairs")), seed)
    if not rows:
        raise SystemExit(f"bench.dpo: no pairs in {d}; run `dvc repro pairs@{key}` first")
    return [rows[i % len(rows)] for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iteration", default="M1")
    p.add_argument("--pairs", type=int, default=32)
    p.add_argument("--sides", default="live,reused,reused_grouped")
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
        "reused_grouped": dataclasses.replace(params.dpo, precompute_ref_log_probs=True,
                                              reuse_generation_logprobs=True, group_by_length=True),
    }
    wanted = args.sides.split(",")
    results = {}
    for name, cfg in sides.items():
        if name not in wanted:
            continue
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
    diffs = [abs(a - b) for a, b in zip(results.get("live", {}).get("losses", []),
                                        results.get("reused", {}).get("losses", []))]
    speedup = {f"{name}_over_live": round(results["live"]["seconds"] / results[name]["seconds"], 3)
               for name in ("reused", "reused_grouped") if name in results and "live" in results}
    write_report("dpo", {
        "workload": {"iteration": args.iteration, "model": str(prev), "pairs": len(rows),
                     "distinct_pairs": len({json.dumps(r["chosen"]) + json.dumps(r["rejected"]) for r in rows}),
                     "epochs": params.dpo.epochs, "batch_size": params.dpo.batch_size,
                     "max_length": params.dpo.max_length},
        "results": results, "speedup": speedup, "max_abs_loss_difference_live_reused": max(diffs) if diffs else None,
        "padding_fraction": padding(rows, prev, params.dpo.batch_size, params.dpo.seed)})


def padding(rows: list[dict], model_dir: Path, batch_size: int, seed: int) -> dict:
    """Share of padding tokens in one epoch of batches: a seeded random order vs the length-grouped order."""
    import torch
    from transformers import AutoTokenizer

    from pipeline import dpo, reference

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tokens = [reference.trl_tokens(tok, **reference.text_pair(r, tok)) for r in rows]
    lengths = [(len(t.prompt_ids) + len(t.chosen_ids), len(t.prompt_ids) + len(t.rejected_ids)) for t in tokens]
    examples = [dataclasses.asdict(t) for t in tokens]
    random_order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed)).tolist()
    grouped = list(dpo.length_grouped_sampler(examples, batch_size, torch.Generator().manual_seed(seed)))
    return {"random": round(dpo.padding_fraction(lengths, random_order, batch_size), 4),
            "grouped": round(dpo.padding_fraction(lengths, grouped, batch_size), 4)}


if __name__ == "__main__":
    main()
