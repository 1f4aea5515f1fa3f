"""Self-instruct: a generator model writes new instructions from few-shot seed examples.

    python -m stages.self_instruct --iteration M1

Reads: data/seed/instructions.jsonl, data/eval/prompts.jsonl (to keep held-out prompts out), the generator
model (self_instruct.generator: previous = models/<prev>, base = models/M0, a pipeline model's name, or a path).
Writes: data/<key>/prompts.jsonl, metrics/<key>/self_instruct.json.
"""

from __future__ import annotations

from pipeline import paths, records, self_instruct
from pipeline.records import EvalPrompt, SeedInstruction
from stages import _common, _generate


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "self_instruct")
    cfg = it.params.self_instruct
    seed = records.read_jsonl(paths.SEED_INSTRUCTIONS, SeedInstruction)
    held_out = records.read_jsonl(paths.EVAL_PROMPTS, EvalPrompt) if paths.EVAL_PROMPTS.exists() else []
    template = (cfg.template or self_instruct.TEMPLATE,)
    if cfg.generator == "openai":  # a fixed prompt generator behind an OpenAI-compatible server
        gen = _generate.openai_generation(it, cfg.openai_url or "", cfg.openai_model or "", cfg.api_key_env,
                                          cfg.__dict__, template)
        made_by = {"model": f"openai:{cfg.openai_model}", "model_sha256": "", "iteration": it.key}
    else:
        generator = it.model(cfg.generator)
        _common.require_model(generator, cfg.generator)
        gen = _generate.generation(it, cfg.__dict__, templates=template, model_dir=generator)
        made_by = it.made_by(generator)
    prompts, metrics = self_instruct.generate_instructions(gen, [s.instruction for s in seed],
                                                           [p.instruction for p in held_out], cfg, made_by)
    it.write({"prompts.jsonl": prompts}, metrics)
    gen.finish()
    _common.log.info("self_instruct %s: %d accepted of %d requests", it.key, len(prompts), metrics["requests"])


if __name__ == "__main__":
    _common.run(main)
