"""The held-out known pairs every iteration's judge is measured on: M0's sampled answers to held-out tasks and
constraint instructions, verified, a right one against a wrong one. Run once; the pool never changes after.

    python -m stages.known_pool

Reads: models/M0, params data.heldout_tasks (known_pool.answer_tasks), data.constraint_tasks
(known_pool.constraint_prompts), data.eval_prompts (known_pool.open_prompts: Self-Taught Evaluator pairs, M0's answer
to a held-out prompt against its answer to a similar but different instruction it wrote), known_pool, verify.
Writes: data/M0/known_pool_responses.jsonl (every sampled answer, with its verification in
known_pool_verifications.jsonl), data/M0/known_pool.jsonl (the known pairs, split heldout),
metrics/M0/known_pool.json. Off (known_pool.enabled: false), the pool is empty and no model loads.
"""

from __future__ import annotations

from pipeline import known_pool, pairwise_rules
from pipeline.records import EvalPrompt
from stages import _common, _data, _generate

OUTPUTS = ("known_pool_responses.jsonl", "known_pool_verifications.jsonl", "known_pool.jsonl")


def main() -> None:
    args = _common.parser(__doc__, iteration=False).parse_args()
    args.iteration = "M0"  # the pool is M0's: its files live beside M0's evaluation
    it = _common.Iteration(args, "known_pool", base_models=True)
    cfg, p = it.params.known_pool, it.params
    if not cfg.enabled:
        it.write({name: [] for name in OUTPUTS}, {"enabled": False})
        return
    tasks = [*(_data.read_tasks(p.data.heldout_tasks)[:cfg.answer_tasks] if cfg.answer_tasks != 0 else []),
             *(_data.read_constraint_tasks(p.data.constraint_tasks)[:cfg.constraint_prompts]
               if cfg.constraint_prompts != 0 else [])]
    open_prompts = _data.read(p.data.eval_prompts, EvalPrompt)[:cfg.open_prompts] if cfg.open_prompts != 0 else []
    if not tasks and not open_prompts:
        raise _common.StageError("known_pool: nothing to sample (known_pool.answer_tasks, constraint_prompts and "
                                 "open_prompts are all 0, or their files are empty)")
    it.require_model()
    if _generate.replicated(it):
        return
    gen = _generate.generation(it, cfg.__dict__, [t.task_id for t in tasks], [e.id for e in open_prompts],
                               templates=(pairwise_rules.SIMILAR_TEMPLATE,))
    pool = known_pool.build_pool(gen, tasks, open_prompts, cfg, p.sample, p.verify, it.made_by())
    it.write(dict(zip(OUTPUTS, (pool.responses, pool.verifications, pool.pairs))), pool.metrics)
    gen.finish()
    _common.log.info("known_pool: %d known pairs from %d held-out tasks (%s)", len(pool.pairs), len(tasks),
                     ", ".join(f"{k} {v}" for k, v in pool.metrics["pairs"].items()))


if __name__ == "__main__":
    _common.run(main)
