"""Self-instruct: a generator model writes new instructions from few-shot seed examples.

    python -m stages.self_instruct --iteration M1

Reads: params data.seed_instructions, data.eval_prompts (kept out), the generator model
(self_instruct.generator: previous = models/<prev>, base = models/M0, a pipeline model's name, or a path);
with self_instruct.tasks, data.train_tasks (and data.heldout_tasks, kept out). With num_prompts: 0 no model loads.
Writes: data/<key>/prompts.jsonl (generated instructions, then tasks), metrics/<key>/self_instruct.json.
"""

from __future__ import annotations

from typing import Any

from pipeline import self_instruct
from pipeline.records import EvalPrompt, Prompt, SeedInstruction
from stages import _common, _data, _generate


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "self_instruct")
    cfg = it.params.self_instruct
    prompts: list[Prompt] = []
    metrics: dict[str, Any] = {"requests": 0, "accepted": 0}
    if cfg.num_prompts:
        prompts, metrics = generate(it)
    if cfg.tasks:
        data = it.params.data
        train, held_out = _data.read_tasks(data.train_tasks), _data.read_tasks(data.heldout_tasks)
        rows, task_metrics = self_instruct.task_prompts(train, cfg.tasks, cfg.seed, held_out, {"iteration": it.key})
        prompts += rows
        metrics.update(task_metrics)
    it.write({"prompts.jsonl": prompts}, metrics)
    _common.log.info("self_instruct %s: %d instructions accepted of %d requests, %d tasks", it.key,
                     metrics["accepted"], metrics["requests"], metrics.get("tasks", 0))


def generate(it: _common.Iteration) -> tuple[list[Prompt], dict[str, Any]]:
    cfg = it.params.self_instruct
    seed = _data.read(it.params.data.seed_instructions, SeedInstruction)
    held_out = _data.read(it.params.data.eval_prompts, EvalPrompt)
    template = (cfg.template or self_instruct.TEMPLATE,)
    if cfg.generator == "openai":  # a fixed prompt generator behind an OpenAI-compatible server
        gen = _generate.openai_generation(it, cfg.openai_url or "", cfg.openai_model or "", cfg.api_key_env,
                                          cfg.__dict__, template, max_concurrency=cfg.openai_max_concurrency)
        made_by = {"model": f"openai:{cfg.openai_model}", "model_sha256": "", "iteration": it.key}
    else:
        generator = it.model(cfg.generator)
        _common.require_model(generator, cfg.generator)
        gen = _generate.generation(it, cfg.__dict__, templates=template, model_dir=generator)
        made_by = it.made_by(generator)
    prompts, metrics = self_instruct.generate_instructions(gen, [s.instruction for s in seed],
                                                           [p.instruction for p in held_out], cfg, made_by)
    gen.finish()
    return prompts, metrics


if __name__ == "__main__":
    _common.run(main)
