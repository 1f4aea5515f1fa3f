"""Preference pairs: responses by judge score (length-controlled), judgments by meta-judge Elo.

    python -m stages.pairs --iteration M1

Reads: data/<key>/responses.jsonl, verifications.jsonl, judgments.jsonl, extra_judgments.jsonl, ratings.jsonl,
reflections.jsonl (Reflect, Retry, Reward: reflection pairs), known_judgments.jsonl (judge_training: judge-training
pairs).
Responses to prompts with a known answer are paired by their verified reward (IRPO), the rest by judge score.
Writes: data/<key>/response_pairs.jsonl, judgment_pairs.jsonl, reflection_pairs.jsonl, judge_training_pairs.jsonl (TRL conversational preference
format plus provenance; `datasets.load_dataset("json", data_files=...)` loads them), metrics/<key>/pairs.json.
"""

from __future__ import annotations

from pipeline import pairs
from pipeline.records import Judgment, KnownJudgment, Rating, Reflection, Response, Verification
from stages import _common


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "pairs")
    if it.skipped_for_grpo(["response_pairs.jsonl", "judgment_pairs.jsonl", "reflection_pairs.jsonl",
                            "judge_training_pairs.jsonl"]):
        return
    cfg = it.params.pairs
    responses = it.read("responses.jsonl", Response)
    judgments = it.read("judgments.jsonl", Judgment, allow_empty=True)  # empty when a verifier rewards every response
    extra = it.read("extra_judgments.jsonl", Judgment, allow_empty=True) if cfg.judge_pairs else []
    ratings = it.read("ratings.jsonl", Rating, allow_empty=True) if cfg.judge_pairs else None
    verifications = it.read("verifications.jsonl", Verification, allow_empty=True)
    reflections = it.read("reflections.jsonl", Reflection, allow_empty=True)
    rp, jp, metrics = pairs.build_pairs(responses, judgments, extra, ratings, cfg, it.key, it.params.judge.template,
                                     verifications)
    fp, agreed = pairs.reflection_pairs(reflections, it.params.reflect.per_attempt, it.key)
    metrics.update(reflection_pairs=len(fp), reflected_attempts_without_pair=agreed)
    known = (it.read("known_judgments.jsonl", KnownJudgment, allow_empty=True) if it.params.judge_training.enabled
             else [])
    tp, tcounts = pairs.judge_training_pairs(known, it.params.judge_training, it.key)
    metrics.update(judge_training_pairs=len(tp), judge_training=tcounts)
    it.write({"response_pairs.jsonl": rp, "judgment_pairs.jsonl": jp, "reflection_pairs.jsonl": fp,
              "judge_training_pairs.jsonl": tp}, metrics)
    _common.log.info("pairs %s: %d response pairs, %d judgment pairs, %d reflection pairs, %d judge-training pairs",
                     it.key, len(rp), len(jp), len(fp), len(tp))


if __name__ == "__main__":
    _common.run(main)
