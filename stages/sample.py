"""Sample N responses per prompt with M_prev, the chain of thought split from the final response.

    python -m stages.sample --iteration M1

Reads: data/<key>/prompts.jsonl, models/<prev>. Writes: data/<key>/responses.jsonl, metrics/<key>/sample.json.
"""

from __future__ import annotations

import statistics
import time

from pipeline import records, sampling, templates
from pipeline.engines.base import SamplingSettings
from pipeline.records import Prompt, Response
from pipeline.shards import ShardCache
from stages import _common


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    it = _common.Iteration(args)
    cfg = it.params.sample
    prompts = records.read_jsonl(it.data / "prompts.jsonl", Prompt)
    start = time.time()
    settings = SamplingSettings(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, logprobs=True)
    texts = [sampling.response_prompt(p.instruction, cfg.thoughts) for p in prompts]
    convs = [[{"role": "user", "content": t}] for t in texts]
    template = sampling.template_name(cfg.thoughts)
    template_sha = templates.template_hash(template) if template else None
    cache = ShardCache("sample", it.key, [it.model_ref(), cfg.__dict__, template_sha])
    engine = it.engine()
    outs = cache.generate(engine, convs, settings, it.params.shard_size("sample"), desc="sample")
    rows = []
    for prompt, text, completions in zip(prompts, texts, outs):
        for i, c in enumerate(completions):
            split = sampling.split_thought(c.text, cfg.thoughts)
            rows.append(Response(
                response_id=records.stable_id("r", prompt.prompt_id, i, c.text), prompt_id=prompt.prompt_id,
                sample_index=i, instruction=prompt.instruction, prompt_text=text, output=c.text,
                thought=split.thought, response=split.response, parse_ok=split.parse_ok, num_tokens=c.num_tokens,
                finish_reason=c.finish_reason, **_common.generated_fields(c),
                provenance={**it.model_ref(), "iteration": it.key, "thoughts": cfg.thoughts, "template": template,
                            "template_sha": template_sha, "sampling": settings.to_dict()}))
    records.write_jsonl(it.data / "responses.jsonl", rows)
    ok = [r for r in rows if r.parse_ok]
    metrics = {"prompts": len(prompts), "responses": len(rows), "parse_ok": len(ok),
               "parse_rate": len(ok) / len(rows), "thoughts": cfg.thoughts,
               "mean_response_chars": statistics.fmean(len(r.response) for r in ok) if ok else 0.0,
               "mean_thought_chars": statistics.fmean(len(r.thought) for r in ok) if ok else 0.0,
               "seconds": round(time.time() - start, 1), **_common.token_stats(outs)}
    records.write_json(it.metrics / "sample.json", metrics)
    cache.finish()
    _common.log.info("sample %s: %d responses, %.0f%% with the response marker", it.key, len(rows),
                     100 * metrics["parse_rate"])


if __name__ == "__main__":
    _common.run(main)
