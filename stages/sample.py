"""Sample N responses per prompt with M_prev, the chain of thought split from the final response.

    python -m stages.sample --iteration M1

Reads: data/<key>/prompts.jsonl, models/<prev>. Writes: data/<key>/responses.jsonl, metrics/<key>/sample.json.
"""

from __future__ import annotations

from pipeline import sampling
from pipeline.records import Prompt
from stages import _common, _generate


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "sample")
    if it.skipped_for_grpo(["responses.jsonl"]):
        return
    it.require_model()
    cfg = it.params.sample
    prompts = it.read("prompts.jsonl", Prompt)
    if _generate.replicated(it):
        return
    gen = _generate.generation(it, cfg.__dict__, templates=tuple(t for t in [sampling.template_name(cfg.thoughts, cfg.template)] if t))
    rows, metrics = sampling.sample_responses(gen, prompts, cfg, it.made_by())
    it.write({"responses.jsonl": rows}, metrics)
    gen.finish()
    _common.log.info("sample %s: %d responses, %.0f%% with the response marker", it.key, len(rows),
                     100 * metrics["parse_rate"])


if __name__ == "__main__":
    _common.run(main)
