"""M_prev as LLM-as-a-judge: K judgments per response on the additive 5-point rubric.

    python -m stages.judge --iteration M1

Reads: data/<key>/responses.jsonl (only responses whose thought/response split parsed; the judge sees the
final response, never the thoughts), data/<key>/verifications.jsonl (responses a verifier rewards are judged
only for judge.verifiable_prompts prompts, to measure the judge against the truth), models/<prev>.
Writes: data/<key>/judgments.jsonl, metrics/<key>/judge.json. With nothing to judge no model loads.
"""

from __future__ import annotations

from pipeline import judging
from pipeline.records import Response, Verification
from stages import _common, _generate


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "judge")
    if it.skipped_for_grpo(["judgments.jsonl"]):
        return
    cfg = it.params.judge
    responses = it.read("responses.jsonl", Response)
    verifications = it.read("verifications.jsonl", Verification, allow_empty=True)
    rewarded, probe = judging.split_verified(responses, verifications, cfg.verifiable_prompts)
    if not rewarded and not probe:
        it.write({"judgments.jsonl": []}, {"judgments": 0, "responses": 0, "verified_responses": len(verifications)})
        _common.log.info("judge %s: every response is rewarded by a verifier; nothing to judge", it.key)
        return
    it.require_model()
    if _generate.replicated(it):
        return
    gen = _generate.generation(it, cfg.__dict__, templates=(cfg.template or judging.TEMPLATE,))
    rows, metrics = judging.judge_responses(gen, [*rewarded, *probe], cfg, it.made_by())
    truth = judging.against_truth(rows, verifications)
    it.write({"judgments.jsonl": rows}, {**metrics, "verified_responses": len(verifications),
                                         "judged_for_truth": len(probe), "judge_vs_truth": truth})
    gen.finish()
    if truth:
        _common.log.info("judge %s vs the truth on %d answers: pairwise accuracy %.3f ± %.3f, AUC %.3f ± %.3f", it.key,
                         truth["answers"], truth["pairwise_accuracy"], truth["pairwise_accuracy_se"], truth["auc"],
                         truth["auc_se"])
    _common.log.info("judge %s: %d judgments (strict %d, flexible %d, forced %d)", it.key, len(rows),
                     metrics["strict"], metrics["flexible"], metrics["forced"])


if __name__ == "__main__":
    _common.run(main)
