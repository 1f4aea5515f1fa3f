"""M_prev judges known-preference pairs, so that the judge can learn from the truth (Self-Taught Evaluator,
EvalPlanner): the data of the judge-training pairs.

    python -m stages.judge_training --iteration M1

With judge_training.enabled: from the iteration's verified responses, known pairs (a right against a wrong
answer; a response meeting every constraint against one breaking some; with source self_taught, the first answer
to an instruction against the answer to a similar but different instruction the model wrote for it), then
judge_training.judgments judgments of each
(pairwise: both orders; pointwise: each side), each marked correct when it prefers the known-better side.
Reads: data/<key>/responses.jsonl, data/<key>/verifications.jsonl, models/<prev>.
Writes: data/<key>/known_pairs.jsonl, data/<key>/known_judgments.jsonl, metrics/<key>/judge_training.json (the
judge's accuracy on these pairs, per source, with its standard error). Off, or with no known pair, no model loads.
"""

from __future__ import annotations

from pipeline import judging, known_judging, pairwise_rules, self_taught
from pipeline.records import Response, Verification
from stages import _common, _generate


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "judge_training")
    cfg, p = it.params.judge_training, it.params
    if it.skipped_for_grpo(["known_pairs.jsonl", "known_judgments.jsonl"]):
        return
    if not cfg.enabled:  # empty outputs, no model loaded
        it.write({"known_pairs.jsonl": [], "known_judgments.jsonl": []}, {"enabled": False})
        return
    responses = it.read("responses.jsonl", Response)
    verifications = it.read("verifications.jsonl", Verification, allow_empty=True)
    pairs, counts = known_judging.train_known_pairs(responses, verifications, cfg, it.key)
    instructions = known_judging.self_taught_instructions(responses, cfg) if "self_taught" in cfg.sources else []
    if not pairs and not instructions:
        it.write({"known_pairs.jsonl": [], "known_judgments.jsonl": []}, {"enabled": True, **counts, "judgments": 0})
        _common.log.info("judge_training %s: no known pair (of %d prompts with verified responses)", it.key,
                         counts["prompts"])
        return
    it.require_model()
    if _generate.replicated(it):
        return
    template = (cfg.template or pairwise_rules.TEMPLATE) if cfg.mode == "pairwise" else (
        p.judge.template or judging.TEMPLATE)
    gen = _generate.generation(it, cfg.__dict__, p.judge.__dict__, p.sample.__dict__, [x.prompt_id for x in pairs],
                               [x.prompt_id for x in instructions],
                               templates=(template, pairwise_rules.SIMILAR_TEMPLATE))
    if instructions:
        taught, counts["self_taught"] = self_taught.self_taught_pairs(
            gen, instructions, split="train", similar_settings=known_judging.similar_settings(cfg),
            answer_settings=known_judging.answer_settings(p.sample, cfg.seed), made_by=it.made_by(),
            thoughts=p.sample.thoughts, template=p.sample.template)
        pairs = [*pairs, *taught]
    rows, metrics = known_judging.judge_known_pairs(gen, pairs, cfg, p.judge, it.made_by())
    it.write({"known_pairs.jsonl": pairs, "known_judgments.jsonl": rows}, {"enabled": True, **counts, **metrics})
    gen.finish()
    if rows:
        acc = metrics["accuracy"]["overall"]
        _common.log.info("judge_training %s: %d known pairs, %d judgments (%s), accuracy %s ± %s", it.key, len(pairs),
                         len(rows), cfg.mode, acc["accuracy"], acc["accuracy_se"])


if __name__ == "__main__":
    _common.run(main)
