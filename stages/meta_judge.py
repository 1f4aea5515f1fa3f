"""M_prev as LLM-as-a-meta-judge: compare judgments pairwise (both orders) and rate them (Elo).

    python -m stages.meta_judge --iteration M1

Per prompt, the response whose judgment scores vary most is meta-judged; when it has fewer than
meta_judge.num_judgments judgments, extra ones are drawn with the judge template.
Reads: data/<key>/responses.jsonl, data/<key>/judgments.jsonl, models/<prev>.
Writes: data/<key>/extra_judgments.jsonl, data/<key>/meta_judgments.jsonl, data/<key>/ratings.jsonl,
metrics/<key>/meta_judge.json.
"""

from __future__ import annotations

from pipeline import judging, meta_judging
from pipeline.records import Judgment, Response
from stages import _common, _generate


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "meta_judge")
    cfg, jcfg = it.params.meta_judge, it.params.judge
    outputs = ("extra_judgments.jsonl", "meta_judgments.jsonl", "ratings.jsonl")
    if it.skipped_for_grpo(outputs):
        return
    if not cfg.enabled:  # Self-Rewarding and TPO do not meta-judge: empty outputs, no model loaded
        it.write({name: [] for name in outputs}, {"enabled": False})
        return
    it.require_model()
    responses = it.read("responses.jsonl", Response)
    judgments = it.read("judgments.jsonl", Judgment)
    if _generate.replicated(it):
        return
    gen = _generate.generation(it, cfg.__dict__, jcfg.__dict__, templates=(jcfg.template or judging.TEMPLATE,
                                                                          cfg.template or meta_judging.TEMPLATE))
    out = meta_judging.meta_judge(gen, responses, judgments, cfg, jcfg, it.made_by())
    it.write(dict(zip(outputs, (out.extra, out.meta, out.ratings))), out.metrics)
    gen.finish()
    _common.log.info("meta_judge %s: %d comparisons over %d responses, position bias %s", it.key, len(out.meta),
                     out.metrics["responses_meta_judged"], out.metrics["position_bias"])


if __name__ == "__main__":
    _common.run(main)
