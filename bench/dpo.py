"""Benchmark: the dpo stage with TRL's live reference vs reference log-probs reused from generation.

    python -m bench.dpo --iteration M1 --pairs 32
    python -m bench.dpo --seed-pairs 16 --model models/M0 --sides live --dtypes float32,bfloat16   # no iteration

Both sides train M_prev on the same pairs (the iteration's response and judgment pairs, repeated in order
until --pairs are reached) with the same params.yaml `dpo` section and seed, one after the other in this
process:
- live: TRL computes the reference log-probs with a second copy of M_prev in every training step
  (`precompute_ref_log_probs: false`, `reuse_generation_logprobs: false`);
- reused: reference log-probs from the generating stages (`pipeline.reference`), recomputed only where
  TRL's tokenization differs from what was generated; the reference model never runs for the others;
- reused_grouped: reused, with length-grouped batches (`dpo.group_by_length: true`).
With --dtypes float32,bfloat16 every side runs in each ``dpo.dtype`` (bfloat16: mixed precision, autocast over
float32 weights), and the report adds bfloat16's speed over float32's per side and the largest gap between their
per-step losses. --seed-pairs N trains on N pairs made from the seed instructions (instruction i, its reference
answer chosen, the next one's rejected: bench.dtype_gap.seed_pairs) from --model, with no iteration's data.
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
    p.add_argument("--dtypes", default="", help="dpo.dtype values to run each side in (default: params.yaml's)")
    p.add_argument("--seed-pairs", type=int, default=0, help="train on this many seed pairs instead of an iteration's")
    p.add_argument("--model", default="", help="with --seed-pairs: the model trained (default models/<prev>)")
    p.add_argument("--tag", default="", help="written to dpo-<tag>-<machine>.json")
    args = p.parse_args()
    from pipeline import dpo, models, paths
    from pipeline.config import load_params

    params = load_params().for_iteration(args.iteration)
    prev = Path(args.model) if args.model else paths.model_dir(params.prev_of(args.iteration))
    sha = str(models.read_card(prev).get("weights_sha256", ""))[:16]
    if args.seed_pairs:
        from bench.dtype_gap import seed_pairs

        rows = seed_pairs(args.seed_pairs)  # no generation log-probs: the reused sides recompute every reference
    else:
        rows = load_rows(args.iteration, args.pairs, params.dpo.seed)
    sides = {
        "live": dataclasses.replace(params.dpo, precompute_ref_log_probs=False, reuse_generation_logprobs=False),
        "reused": dataclasses.replace(params.dpo, precompute_ref_log_probs=True, reuse_generation_logprobs=True),
        "reused_grouped": dataclasses.replace(params.dpo, precompute_ref_log_probs=True,
                                              reuse_generation_logprobs=True, group_by_length=True),
    }
    wanted = args.sides.split(",")
    dtypes = [d for d in args.dtypes.split(",") if d] or [params.dpo.dtype]
    results = {}
    for dtype in dtypes:
        for name, cfg in sides.items():
            if name not in wanted:
                continue
            label = name if len(dtypes) == 1 else f"{name}-{dtype}"
            cfg = dataclasses.replace(cfg, dtype=dtype)
            work = Path(tempfile.mkdtemp(prefix=f"bench-dpo-{label}-"))
            start = time.perf_counter()
            _, _, summary = dpo.train_dpo(prev, None, rows, cfg, work, reference_sha=sha)
            seconds = time.perf_counter() - start
            shutil.rmtree(work, ignore_errors=True)
            losses = [h["loss"] for h in summary["log"] if "loss" in h]
            results[label] = {"seconds": round(seconds, 2),
                              "pairs_per_second": round(len(rows) * cfg.epochs / seconds, 3), "losses": losses,
                              **{k: summary[k] for k in ("precision", "reference_logprobs", "reference_reuse",
                                                         "sides_reused", "sides_recomputed", "recomputed_because",
                                                         "reference_seconds") if k in summary}}
    suffix = "" if len(dtypes) == 1 else f"-{dtypes[0]}"
    diffs = [abs(a - b) for a, b in zip(results.get(f"live{suffix}", {}).get("losses", []),
                                        results.get(f"reused{suffix}", {}).get("losses", []))]
    speedup = {f"{name}_over_live": round(results[f"live{suffix}"]["seconds"] / results[f"{name}{suffix}"]["seconds"], 3)
               for name in ("reused", "reused_grouped") if f"{name}{suffix}" in results and f"live{suffix}" in results}
    by_dtype = {}
    if {"float32", "bfloat16"} <= set(dtypes):
        for name in wanted:
            a, b = results.get(f"{name}-float32"), results.get(f"{name}-bfloat16")
            if a and b:
                by_dtype[name] = {"bfloat16_over_float32": round(a["seconds"] / b["seconds"], 3),
                                  "max_abs_loss_difference": max((abs(x - y) for x, y in
                                                                  zip(a["losses"], b["losses"])), default=None)}
    write_report(f"dpo-{args.tag}" if args.tag else "dpo", {
        "workload": {"iteration": None if args.seed_pairs else args.iteration, "model": str(prev),
                     "pairs": len(rows), "source": "seed pairs" if args.seed_pairs else "the iteration's pairs",
                     "distinct_pairs": len({json.dumps(r["chosen"]) + json.dumps(r["rejected"]) for r in rows}),
                     "epochs": params.dpo.epochs, "batch_size": params.dpo.batch_size,
                     "max_length": params.dpo.max_length, "dtypes": dtypes},
        "results": results, "speedup": speedup, "max_abs_loss_difference_live_reused": max(diffs) if diffs else None,
        "dtypes": by_dtype, "target_bfloat16_over_float32": 1.6 if by_dtype else None,
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
