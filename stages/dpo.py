"""Training: M_prev -> M_key, by DPO on the iteration's pairs, or by GRPO on its tasks with grpo.enabled.

    python -m stages.dpo --iteration M1

DPO reads: models/<prev> (and models/M0 when dpo.reference: base), data/<key>/response_pairs.jsonl,
judgment_pairs.jsonl (when pairs.judge_pairs), reflection_pairs.jsonl, judge_training_pairs.jsonl; it writes
models/<key>/ and metrics/<key>/dpo.json (loss, reward margins and accuracies per step).
GRPO (grpo.enabled) reads models/<prev> and data/<key>/prompts.jsonl (tasks with known answers) and writes
models/<key>/, data/<key>/rollouts.jsonl (every completion rewarded, with its step) and metrics/<key>/grpo.json
(reward, spread, KL and length per step). The method not run writes its metrics as {"enabled": false} and, for
DPO, no rollouts. Both checkpoint under .work/ (dpo.save_steps / grpo.save_steps) and resume from the last one.
With dpo.launch (processes > 1) DPO runs itself again under torchrun or accelerate launch; process 0 writes.
"""

from __future__ import annotations

from pipeline import dpo, grpo, launch, models, paths, records
from pipeline.errors import StageError
from pipeline.records import PreferencePair, Prompt
from stages import _common


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    it = _common.Iteration(args, "dpo")
    it.require_model()
    if it.params.grpo.enabled:
        train_with_grpo(it)
        return
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
        with records.together():
            it.write({"rollouts.jsonl": []}, {"enabled": False}, name="grpo")
            it.write({}, metrics)
        _common.log.info("dpo %s: %d pairs, loss %s -> %s", it.key, metrics["pairs"], metrics["first_loss"],
                         metrics["last_loss"])


def train_with_grpo(it: _common.Iteration) -> None:
    """grpo.enabled: TRL's GRPOTrainer on the iteration's tasks, rewarded by the verifiers (pipeline/grpo.py)."""
    if launch.wanted(it.params.dpo.launch):  # each process would keep only its own share of the rollouts
        raise StageError("grpo.enabled with dpo.launch: the GRPO step runs as one process for now (its rollout "
                         "rows are kept by process 0 alone) — set dpo.launch: null")
    prompts = it.read("prompts.jsonl", Prompt)
    card = {"name": it.key, "parent": it.prev, "parent_sha256": models.read_card(it.prev_dir).get("weights_sha256"),
            "data_sha256": {"prompts": models.sha256_file(it.data / "prompts.jsonl")}}
    metrics, rows = grpo.grpo_iteration(it.prev_dir, prompts, it.params.grpo, it.params.verify,
                                        paths.model_dir(it.key), card, paths.WORK)
    with records.together():
        it.write({"rollouts.jsonl": rows}, {"enabled": True, **metrics}, name="grpo")
        it.write({}, {"enabled": False, "method": "grpo", "pairs": 0})
    _common.log.info("grpo %s: %d tasks, %d steps, reward %s -> %s", it.key, metrics["tasks"], metrics["steps"],
                     metrics["first_reward_mean"], metrics["last_reward_mean"])


if __name__ == "__main__":
    _common.run(main)
