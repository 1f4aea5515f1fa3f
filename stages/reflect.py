"""Reflect, Retry, Reward: M_prev reflects on its wrong answers and retries with each reflection.

    python -m stages.reflect --iteration M1

Reads: data/<key>/prompts.jsonl, responses.jsonl, verifications.jsonl, models/<prev>.
Writes: data/<key>/reflections.jsonl (each reflection, its retry and whether the retry was right),
metrics/<key>/reflect.json (first-try and second-try accuracy). With reflect.enabled: false, or no wrong answer,
it writes no rows and loads no model.
"""

from __future__ import annotations

from pipeline import reflection
from pipeline.records import Prompt, Response, Verification
from stages import _common, _generate


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "reflect")
    if it.skipped_for_grpo(["reflections.jsonl"]):
        return
    cfg = it.params.reflect
    verifications = it.read("verifications.jsonl", Verification, allow_empty=True)
    if not cfg.enabled or all(v.correct for v in verifications):
        it.write({"reflections.jsonl": []}, {"enabled": cfg.enabled, "failed_attempts": 0, "reflections": 0})
        return
    it.require_model()
    prompts = it.read("prompts.jsonl", Prompt)
    responses = it.read("responses.jsonl", Response)
    if _generate.replicated(it):
        return
    gen = _generate.generation(it, cfg.__dict__, it.params.verify.__dict__,
                               templates=(cfg.template or reflection.TEMPLATE,
                                          cfg.retry_template or reflection.RETRY_TEMPLATE))
    rows, metrics = reflection.reflect_and_retry(gen, prompts, responses, verifications, cfg, it.params.verify,
                                                 it.made_by())
    it.write({"reflections.jsonl": rows}, {"enabled": True, **metrics})
    gen.finish()
    _common.log.info("reflect %s: %d reflections on %d wrong answers; retries right %.0f%%; accuracy first try %.3f, "
                     "second try %.3f", it.key, len(rows), metrics["failed_attempts"],
                     100 * (metrics["retry_success_rate"] or 0), metrics["first_try_accuracy"] or 0,
                     metrics["second_try_accuracy"] or 0)


if __name__ == "__main__":
    _common.run(main)
