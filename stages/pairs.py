"""Preference pairs: responses by judge score (length-controlled), judgments by meta-judge Elo.

    python -m stages.pairs --iteration M1

Reads: data/<key>/responses.jsonl, verifications.jsonl, judgments.jsonl, extra_judgments.jsonl, ratings.jsonl.
Responses to prompts with a known answer are paired by their verified reward (IRPO), the rest by judge score.
Writes: data/<key>/response_pairs.jsonl, data/<key>/judgment_pairs.jsonl (TRL conversational preference
format plus provenance; `datasets.load_dataset("json", data_files=...)` loads them), metrics/<key>/pairs.json.
"""

from __future__ import annotations

from pipeline import pairs
from pipeline.records import Judgment, Rating, Response, Verification
from stages import _common


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "pairs")
    cfg = it.params.pairs
    responses = it.read("responses.jsonl", Response)
    judgments = it.read("judgments.jsonl", Judgment, allow_empty=True)  # empty when a verifier rewards every response
    extra = it.read("extra_judgments.jsonl", Judgment, allow_empty=True) if cfg.judge_pairs else []
    ratings = it.read("ratings.jsonl", Rating, allow_empty=True) if cfg.judge_pairs else None
    verifications = it.read("verifications.jsonl", Verification, allow_empty=True)
    rp, jp, metrics = pairs.build_pairs(responses, judgments, extra, ratings, cfg, it.key, it.params.judge.template,
                                     verifications)
    it.write({"response_pairs.jsonl": rp, "judgment_pairs.jsonl": jp}, metrics)
    _common.log.info("pairs %s: %d response pairs, %d judgment pairs", it.key, len(rp), len(jp))


if __name__ == "__main__":
    _common.run(main)
