"""Self-instruct: a generator model writes new instructions from few-shot seed examples.

    python -m stages.self_instruct --iteration M1

Reads: params data.seed_instructions, data.eval_prompts (kept out), the generator model
(self_instruct.generator: previous = models/<prev>, base = models/M0, a pipeline model's name, or a path);
with self_instruct.tasks, data.train_tasks (and data.heldout_tasks, data.constraint_tasks, kept out). With num_prompts: 0 no model loads.
Writes: data/<key>/prompts.jsonl (generated instructions, then tasks), data/<key>/instruction_candidates.jsonl
(every output the filter saw: accepted, or the reason it was rejected, and the instruction it came closest to),
metrics/<key>/self_instruct.json (counts by reason, near-misses). When nothing is accepted, the candidates are
left in .work/ and the error names the path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import records, self_instruct
from pipeline.errors import StageError
from pipeline.records import EvalPrompt, Prompt, SeedInstruction
from stages import _common, _data, _generate


def main() -> None:
    it = _common.Iteration(_common.parser(__doc__).parse_args(), "self_instruct")
    cfg = it.params.self_instruct
    prompts: list[Prompt] = []
    candidates: list[self_instruct.InstructionCandidate] = []
    metrics: dict[str, Any] = {"requests": 0, "accepted": 0}
    data = it.params.data  # the inputs are read before any model loads: a bad file must not cost a generation
    train = _data.read_tasks(data.train_tasks) if cfg.tasks else []
    held_out = [*_data.read_tasks(data.heldout_tasks), *_data.read_constraint_tasks(data.constraint_tasks)
                ] if cfg.tasks else []
    if cfg.num_prompts:
        seed, exclude = read_examples(it)
        generator = None if cfg.generator == "openai" else it.model(cfg.generator, "self_instruct.generator")
        if generator is not None and _generate.replicated(it):
            return
        prompts, candidates, metrics = generate(it, seed, exclude, generator)
    if cfg.tasks:
        rows, task_metrics = self_instruct.task_prompts(train, cfg.tasks, cfg.seed, held_out, {"iteration": it.key})
        prompts += rows
        metrics.update(task_metrics)
    it.write({"prompts.jsonl": prompts, self_instruct.CANDIDATES: candidates}, metrics)
    _common.log.info("self_instruct %s: %d instructions accepted of %d requests, %d tasks", it.key,
                     metrics["accepted"], metrics["requests"], metrics.get("tasks", 0))


def read_examples(it: _common.Iteration) -> tuple[list[str], list[str]]:
    """The seed instructions (the few-shot examples) and the held-out prompts no new instruction may repeat."""
    seed = _data.read(it.params.data.seed_instructions, SeedInstruction)
    self_instruct.check_seed_count(len(seed), it.params.self_instruct.num_examples,
                                   it.params.data.seed_instructions.path)
    held_out = _data.read(it.params.data.eval_prompts, EvalPrompt)
    return [s.instruction for s in seed], [p.instruction for p in held_out]


def generate(it: _common.Iteration, seed: list[str], exclude: list[str], generator: Path | None
             ) -> tuple[list[Prompt], list[self_instruct.InstructionCandidate], dict[str, Any]]:
    """New instructions from ``generator`` (a model folder; None: the OpenAI-compatible server params name)."""
    cfg = it.params.self_instruct
    template = (cfg.template or self_instruct.TEMPLATE,)
    if generator is None:  # a fixed prompt generator behind an OpenAI-compatible server
        gen = _generate.openai_generation(it, cfg.openai_url or "", cfg.openai_model or "", cfg.api_key_env,
                                          cfg.__dict__, template, max_concurrency=cfg.openai_max_concurrency)
        made_by = {"model": f"openai:{cfg.openai_model}", "model_sha256": "", "iteration": it.key}
    else:
        gen = _generate.generation(it, cfg.__dict__, templates=template, model_dir=generator)
        made_by = it.made_by(generator)
    try:
        out = self_instruct.generate_instructions(gen, seed, exclude, cfg, made_by,
                                                  max_model_len=it.params.engine.max_model_len)
    except self_instruct.NothingAccepted as e:  # readable beside the shards: a failed stage writes no outputs
        if gen.cache is None:
            raise
        where = gen.cache.dir / self_instruct.CANDIDATES
        records.write_jsonl(where, e.candidates)
        raise StageError(f"{e}; every output and why it was rejected: {where}") from None
    gen.finish()
    return out.prompts, out.candidates, out.metrics


if __name__ == "__main__":
    _common.run(main)
