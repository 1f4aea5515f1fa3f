"""DPO: M_prev -> M_key on the iteration's response pairs (and judgment pairs when pairs.judge_pairs).

    python -m stages.dpo --iteration M1

Reads: models/<prev> (and models/M0 when dpo.reference: base), data/<key>/response_pairs.jsonl,
data/<key>/judgment_pairs.jsonl. Writes: models/<key>/, metrics/<key>/dpo.json (loss, reward margins and
accuracies per step). Checkpoints every dpo.save_steps under .work/ and resumes from the last one.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import time
from pathlib import Path

from pipeline import dpo, models, paths, records
from pipeline.shards import digest
from stages import _common


def check_disk(model_dir: Path, factor: float = 5.0) -> None:
    """Fail before training when the disk cannot hold the checkpoints (weights + optimizer) and the model."""
    weights = sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))
    free = shutil.disk_usage(".").free
    if free < factor * weights:
        raise _common.StageError(f"dpo: {free / 2**30:.1f} GiB free on disk, but saving checkpoints and the model "
                                 f"needs about {factor * weights / 2**30:.1f} GiB ({factor:g} x the weights) — free "
                                 "some space (e.g. `dvc gc`, old .work/ folders) and run again")


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    it = _common.Iteration(args)
    cfg = it.params.dpo
    rp_path, jp_path = it.data / "response_pairs.jsonl", it.data / "judgment_pairs.jsonl"
    load = lambda p: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]  # noqa: E731
    response_pairs = load(rp_path)
    judgment_pairs = load(jp_path) if it.params.pairs.judge_pairs else []
    rows = dpo.mix_pairs(response_pairs, judgment_pairs, cfg.seed)
    if not rows:
        raise _common.StageError(f"dpo {it.key}: no pairs to train on — see metrics/{it.key}/pairs.json")
    reference = None if cfg.reference == "previous" else paths.model_dir("M0")
    check_disk(it.prev_dir)
    work = paths.WORK / f"dpo-{it.key}-{digest(it.model_ref(), dataclasses.asdict(cfg), rows)}"
    start = time.time()
    model, tok, summary = dpo.train_dpo(it.prev_dir, reference, rows, cfg, work,
                                        reference_sha=it.model_ref()["model_sha256"])
    card = models.save_model(model, tok, paths.model_dir(it.key), {
        "name": it.key, "parent": it.prev, "parent_sha256": it.prev_card.get("weights_sha256"),
        "reference": cfg.reference,
        "data_sha256": {"response_pairs": models.sha256_file(rp_path),
                        "judgment_pairs": models.sha256_file(jp_path) if judgment_pairs else None},
        "training": {"pairs": len(rows), "response_pairs": len(response_pairs),
                     "judgment_pairs": len(judgment_pairs), **dataclasses.asdict(cfg)}})
    steps = [h for h in summary["log"] if "loss" in h]

    def mean(key: str) -> float | None:
        vals = [h[key] for h in steps if key in h]
        return statistics.fmean(vals) if vals else None

    records.write_json(it.metrics / "dpo.json", {
        "pairs": len(rows), "response_pairs": len(response_pairs), "judgment_pairs": len(judgment_pairs),
        "steps": summary["steps"], "first_loss": summary["first_loss"], "last_loss": summary["last_loss"],
        "mean_reward_margin": mean("rewards/margins"), "mean_reward_accuracy": mean("rewards/accuracies"),
        "seconds": round(time.time() - start, 1), "pairs_per_second": round(len(rows) * cfg.epochs / (time.time() - start), 3),
        "weights_sha256": card["weights_sha256"],
        **{k: summary[k] for k in ("reference_logprobs", "sides_reused", "sides_recomputed", "recomputed_because",
                                   "reference_seconds") if k in summary},
        "log": summary["log"]})
    for stale in paths.WORK.glob(f"dpo-{it.key}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    _common.log.info("dpo %s: %d pairs, loss %s -> %s", it.key, len(rows), summary["first_loss"], summary["last_loss"])


if __name__ == "__main__":
    _common.run(main)
