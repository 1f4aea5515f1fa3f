"""M_prev as LLM-as-a-judge: K judgments per response on the additive 5-point rubric.

    python -m stages.judge --iteration M1

Reads: data/<key>/responses.jsonl (only responses whose thought/response split parsed; the judge sees the
final response, never the thoughts), models/<prev>.
Writes: data/<key>/judgments.jsonl, metrics/<key>/judge.json.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict

from pipeline import judging, records, templates
from pipeline.engines.base import SamplingSettings
from pipeline.records import Judgment, Response
from pipeline.shards import ShardCache
from stages import _common


def judge_metrics(judgments: list[Judgment]) -> dict:
    """Parse counts, score histogram and spread; shared with the meta-judge stage's extra judgments."""
    methods = Counter(j.method for j in judgments)
    by_response: dict[str, list[float | None]] = defaultdict(list)
    for j in judgments:
        by_response[j.response_id].append(j.score)
    response_scores = [s for s in (judging.response_score(v) for v in by_response.values()) if s is not None]
    return {
        "judgments": len(judgments),
        "strict": methods["strict"], "flexible": methods["flexible"], "forced": methods["forced"],
        "parse_rate": (methods["strict"] + methods["flexible"]) / max(1, len(judgments)),
        "strict_rate": methods["strict"] / max(1, len(judgments)),
        "score_histogram": _common.histogram([round(j.score) for j in judgments if j.score is not None], range(6)),
        "mean_score": statistics.fmean(response_scores) if response_scores else None,
        "score_std": statistics.pstdev(response_scores) if len(response_scores) > 1 else 0.0,
        "mean_judgment_chars": statistics.fmean(len(j.text) for j in judgments) if judgments else 0.0,
    }


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    it = _common.Iteration(args)
    cfg = it.params.judge
    responses = [r for r in records.read_jsonl(it.data / "responses.jsonl", Response) if r.parse_ok]
    if not responses:
        raise _common.StageError(f"judge {it.key}: no response has a parsed final response — see "
                                 f"metrics/{it.key}/sample.json; try sample.thoughts: none or more sample.max_new_tokens")
    # Requests that share a prefix (rubric + instruction) run together: vLLM's prefix cache then holds it
    # while it is reused; the K samples of one request share its prefill in both engines.
    first_seen = {pid: i for i, pid in reversed(list(enumerate(r.prompt_id for r in responses)))}
    responses.sort(key=lambda r: first_seen[r.prompt_id])
    start = time.time()
    settings = SamplingSettings(n=cfg.k, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, logprobs=True)
    convs = [judging.judge_conversation(r.instruction, r.response) for r in responses]
    template_sha = templates.template_hash(judging.TEMPLATE)
    cache = ShardCache("judge", it.key, [it.model_ref(), cfg.__dict__, template_sha])
    engine = it.engine()
    outs = cache.generate(engine, convs, settings, it.params.shard_size("judge"), desc="judge")
    flat_convs = [conv for conv, row in zip(convs, outs) for _ in row]
    flat = [c for row in outs for c in row]
    verdicts = judging.judge_verdicts(engine, flat_convs, [c.text for c in flat], cfg.scoring)
    rows = []
    pos = 0
    for r, row in zip(responses, outs):
        for i, c in enumerate(row):
            v = verdicts[pos]
            pos += 1
            rows.append(Judgment(
                judgment_id=records.stable_id("j", r.response_id, i, c.text), response_id=r.response_id,
                prompt_id=r.prompt_id, judge_index=i, text=c.text, score=v.score, method=v.method,
                digit_probs=v.probs, num_tokens=c.num_tokens, **_common.generated_fields(c),
                provenance={**it.model_ref(), "iteration": it.key, "template_sha": template_sha,
                            "scoring": cfg.scoring, "sampling": settings.to_dict()}))
    metrics = {**judge_metrics(rows), "responses": len(responses), "scoring": cfg.scoring,
               "seconds": round(time.time() - start, 1), **_common.token_stats(outs)}
    if metrics["parse_rate"] == 0:
        _common.log.warning("judge %s: none of %d judgments wrote a parseable score; every score is forced from "
                            "next-token probabilities — fine-tune the judge (sft, EFT data) or use a larger model",
                            it.key, len(rows))
    if metrics["parse_rate"] < cfg.min_parse_rate:
        raise _common.StageError(
            f"judge {it.key}: only {metrics['parse_rate']:.0%} of {len(rows)} judgments gave a parseable score "
            f"(judge.min_parse_rate {cfg.min_parse_rate:.0%}) — fine-tune the judge (sft) or lower the threshold")
    records.write_jsonl(it.data / "judgments.jsonl", rows)
    records.write_json(it.metrics / "judge.json", metrics)
    cache.finish()
    _common.log.info("judge %s: %d judgments (strict %d, flexible %d, forced %d)", it.key, len(rows),
                     metrics["strict"], metrics["flexible"], metrics["forced"])


if __name__ == "__main__":
    _common.run(main)
