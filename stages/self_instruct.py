"""Self-instruct: M_prev writes new instructions from few-shot seed examples.

    python -m stages.self_instruct --iteration M1

Reads: data/seed/instructions.jsonl, data/eval/prompts.jsonl (to keep held-out prompts out), the generator
model (self_instruct.generator: previous = models/<prev>, base = models/M0, or a path).
Writes: data/<key>/prompts.jsonl, metrics/<key>/self_instruct.json.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from pipeline import paths, records, self_instruct, templates
from pipeline.engines.base import SamplingSettings
from pipeline.records import EvalPrompt, Prompt, SeedInstruction
from pipeline.shards import ShardCache
from stages import _common


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    it = _common.Iteration(args)
    cfg = it.params.self_instruct
    seed = records.read_jsonl(paths.SEED_INSTRUCTIONS, SeedInstruction)
    held_out = records.read_jsonl(paths.EVAL_PROMPTS, EvalPrompt) if paths.EVAL_PROMPTS.exists() else []
    generator = {"previous": it.prev_dir, "base": paths.model_dir("M0")}.get(cfg.generator, Path(cfg.generator))
    start = time.time()
    engine = it.engine(generator)
    settings = SamplingSettings(n=1, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, stop=(self_instruct.CLOSE, self_instruct.OPEN), seed=cfg.seed)
    filt = self_instruct.InstructionFilter(
        seed=[s.instruction for s in seed], held_out=[p.instruction for p in held_out], min_words=cfg.min_words,
        max_words=cfg.max_words, rouge_threshold=cfg.rouge_threshold)
    rng = random.Random(cfg.seed)
    cache = ShardCache("self_instruct", it.key, [it.model_ref(generator), cfg.__dict__,
                                                 templates.template_hash(self_instruct.TEMPLATE)])
    prompts: list[Prompt] = []
    completions = []
    requests = 0
    while len(prompts) < cfg.num_prompts and requests < cfg.max_requests:
        size = min(cfg.shard_size, cfg.max_requests - requests)
        convs = [[{"role": "user", "content": self_instruct.build_request([s.instruction for s in seed],
                                                                          cfg.num_examples, rng)},
                  {"role": "assistant", "content": self_instruct.OPEN}] for _ in range(size)]
        outs = cache.generate(engine, convs, settings, shard_size=size, name=f"round{requests // cfg.shard_size:04d}",
                              desc="self_instruct")
        completions.extend(outs)
        for i, (row,) in enumerate(outs):
            task = self_instruct.parse_task(row.text, row.stop_string)
            if filt.offer(task) and len(prompts) < cfg.num_prompts:
                assert task is not None
                prompts.append(Prompt(
                    prompt_id=records.stable_id("p", it.key, task), instruction=task, source="self_instruct",
                    provenance={**it.model_ref(generator), "iteration": it.key, "request": requests + i,
                                "template_sha": templates.template_hash(self_instruct.TEMPLATE),
                                "sampling": settings.to_dict()}))
        requests += size
    if not prompts:
        raise _common.StageError(
            f"self_instruct: 0 of {requests} requests gave an acceptable instruction ({dict(filt.counts)}) — "
            "raise self_instruct.max_requests or check the generator model")
    records.write_jsonl(it.data / "prompts.jsonl", prompts)
    metrics = {"requests": requests, "accepted": len(prompts), "acceptance_rate": len(prompts) / requests,
               "rejected": {r: filt.counts.get(r, 0) for r in self_instruct.REJECT_REASONS},
               "mean_words": sum(len(p.instruction.split()) for p in prompts) / len(prompts),
               "seconds": round(time.time() - start, 1), **_common.token_stats(completions)}
    records.write_json(it.metrics / "self_instruct.json", metrics)
    cache.finish()
    _common.log.info("self_instruct %s: %d accepted of %d requests", it.key, len(prompts), requests)


if __name__ == "__main__":
    _common.run(main)
