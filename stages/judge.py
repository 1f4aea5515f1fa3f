"""M_prev as LLM-as-a-judge: K judgments per response on the additive 5-point rubric.

    python -m stages.judge --iteration M1

Reads: data/<key>/responses.jsonl (only responses whose thought/response split parsed; the judge sees the
final response, never the thoughts), models/<prev>.
Writes: data/<key>/judgments.jsonl, metrics/<key>/judge.json.
"""

from __future__ import annotations

from pipeline import judging
from pipeline.records import Response
from stages import _common, _generate


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "judge")
    cfg = it.params.judge
    responses = it.read("responses.jsonl", Response)
    gen = _generate.generation(it, cfg.__dict__, templates=(cfg.template or judging.TEMPLATE,))
    rows, metrics = judging.judge_responses(gen, responses, cfg, it.made_by())
    it.write({"judgments.jsonl": rows}, metrics)
    gen.finish()
    _common.log.info("judge %s: %d judgments (strict %d, flexible %d, forced %d)", it.key, len(rows),
                     metrics["strict"], metrics["flexible"], metrics["forced"])


if __name__ == "__main__":
    _common.run(main)
