"""DPO: M_prev -> M_key on the iteration's response pairs (and judgment pairs when pairs.judge_pairs).

    python -m stages.dpo --iteration M1

Reads: models/<prev> (and models/M0 when dpo.reference: base), data/<key>/response_pairs.jsonl,
data/<key>/judgment_pairs.jsonl, reflection_pairs.jsonl, judge_training_pairs.jsonl. Writes: models/<key>/, metrics/<key>/dpo.json (loss, reward margins and
accuracies per step). Checkpoints every dpo.save_steps under .work/ and resumes from the last one.
With dpo.launch (processes > 1) it runs itself again under torchrun or accelerate launch; process 0 writes.
"""

from __future__ import annotations

from pipeline import dpo, launch, models, paths
from pipeline.records import PreferencePair
from stages import _common


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    it = _common.Iteration(args, "dpo")
    it.require_model()
    cfg = it.params.dpo
    if _common.relaunched(cfg.launch, "dpo", f"dpo {it.key}"):  # dpo.launch: process 0 of those wrote
        return
    response_pairs = it.read("response_pairs.jsonl", PreferencePair, allow_empty=True)
    judgment_pairs = it.read("judgment_pairs.jsonl", PreferencePair, allow_empty=True) if it.params.pairs.judge_pairs else []
    reflection_pairs = it.read("reflection_pairs.jsonl", PreferencePair, allow_empty=True)
    judge_training_pairs = (it.read("judge_training_pairs.jsonl", PreferencePair, allow_empty=True)
                            if it.params.judge_training.enabled else [])
    reference = None if cfg.reference == "previous" else it.model("base", "dpo.reference")
    hashes = {name: models.sha256_file(it.data / f"{name}.jsonl") if rows else None
              for name, rows in (("response_pairs", response_pairs), ("judgment_pairs", judgment_pairs),
                                 ("reflection_pairs", reflection_pairs),
                                 ("judge_training_pairs", judge_training_pairs))}
    card = {"name": it.key, "parent": it.prev, "parent_sha256": models.read_card(it.prev_dir).get("weights_sha256"),
            "data_sha256": hashes}
    metrics = dpo.dpo_iteration(it.prev_dir, reference, response_pairs, judgment_pairs, cfg, paths.model_dir(it.key),
                                card, paths.WORK, reflection_pairs, judge_training_pairs)
    if launch.is_main():
        it.write({}, metrics)
        _common.log.info("dpo %s: %d pairs, loss %s -> %s", it.key, metrics["pairs"], metrics["first_loss"],
                         metrics["last_loss"])


if __name__ == "__main__":
    _common.run(main)
