"""Verify: responses to prompts with a known answer are rewarded by a checker, not by the judge.

    python -m stages.verify --iteration M1

Reads: data/<key>/prompts.jsonl (a task carries answer, verifier, tests), data/<key>/responses.jsonl.
Writes: data/<key>/verifications.jsonl (per response: the answer read, strict/flexible/none, correct, reward
level), metrics/<key>/verify.json. Needs no model; with no task among the prompts it writes no rows.
"""

from __future__ import annotations

from pipeline import rewards
from pipeline.records import Prompt, Response
from stages import _common


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "verify")
    if it.skipped_for_grpo(["verifications.jsonl"]):
        return
    prompts = it.read("prompts.jsonl", Prompt)
    responses = it.read("responses.jsonl", Response)
    rows, metrics = rewards.verify_responses(prompts, responses, it.params.verify, {"iteration": it.key})
    it.write({"verifications.jsonl": rows}, metrics)
    if rows:
        _common.log.info("verify %s: %d of %d correct (%d in the asked format), %d responses left to the judge",
                         it.key, metrics["correct"], len(rows), metrics["strict"], metrics["judged"])


if __name__ == "__main__":
    _common.run(main)
