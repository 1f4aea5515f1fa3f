"""M_prev as LLM-as-a-meta-judge: compare judgments pairwise (both orders) and rate them (Elo).

    python -m stages.meta_judge --iteration M1

Per prompt, the response whose judgment scores vary most is meta-judged; when it has fewer than
meta_judge.num_judgments judgments, extra ones are drawn with the judge template.
Reads: data/<key>/responses.jsonl, data/<key>/judgments.jsonl, models/<prev>.
Writes: data/<key>/extra_judgments.jsonl, data/<key>/meta_judgments.jsonl, data/<key>/ratings.jsonl,
metrics/<key>/meta_judge.json.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict

from pipeline import elo, judging, meta_judging, records, templates
from pipeline.engines.base import SamplingSettings
from pipeline.records import Judgment, MetaJudgment, Rating, Response
from pipeline.shards import ShardCache
from stages import _common
from stages.judge import judge_metrics


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    it = _common.Iteration(args)
    cfg, jcfg = it.params.meta_judge, it.params.judge
    responses = {r.response_id: r for r in records.read_jsonl(it.data / "responses.jsonl", Response)}
    judgments = records.read_jsonl(it.data / "judgments.jsonl", Judgment)
    start = time.time()
    by_response: dict[str, list[Judgment]] = defaultdict(list)
    for j in judgments:
        by_response[j.response_id].append(j)
    by_prompt: dict[str, list[str]] = defaultdict(list)
    for rid in by_response:
        by_prompt[responses[rid].prompt_id].append(rid)
    selected = [meta_judging.select_for_meta_judging(
        {rid: [j.score for j in by_response[rid]] for rid in rids}, rids) for rids in by_prompt.values()]

    engine = it.engine()
    judge_sha = templates.template_hash(judging.TEMPLATE)
    meta_sha = templates.template_hash(meta_judging.TEMPLATE)
    cache = ShardCache("meta_judge", it.key, [it.model_ref(), cfg.__dict__, jcfg.__dict__, judge_sha, meta_sha])

    # Extra judgments where a selected response has fewer than num_judgments.
    missing = {rid: cfg.num_judgments - len(by_response[rid]) for rid in selected}
    need = [rid for rid in selected if missing[rid] > 0]
    extra: list[Judgment] = []
    if need:
        n_extra = max(missing.values())
        settings = SamplingSettings(n=n_extra, temperature=jcfg.temperature, top_p=jcfg.top_p,
                                    max_new_tokens=jcfg.max_new_tokens, seed=jcfg.seed + 1, logprobs=True)
        convs = [judging.judge_conversation(responses[rid].instruction, responses[rid].response) for rid in need]
        outs = cache.generate(engine, convs, settings, it.params.shard_size("meta_judge"), name="extra",
                              desc="extra judgments")
        outs = [row[:missing[rid]] for rid, row in zip(need, outs)]
        flat_convs = [conv for conv, row in zip(convs, outs) for _ in row]
        verdicts = iter(judging.judge_verdicts(engine, flat_convs, [c.text for row in outs for c in row],
                                               jcfg.scoring))
        for rid, row in zip(need, outs):
            for i, c in enumerate(row, start=len(by_response[rid])):
                v = next(verdicts)
                j = Judgment(judgment_id=records.stable_id("j", rid, i, c.text), response_id=rid,
                             prompt_id=responses[rid].prompt_id, judge_index=i, text=c.text, score=v.score,
                             method=v.method, digit_probs=v.probs, num_tokens=c.num_tokens,
                             **_common.generated_fields(c),
                             provenance={**it.model_ref(), "iteration": it.key, "template_sha": judge_sha,
                                         "scoring": jcfg.scoring, "sampling": settings.to_dict(), "extra": True})
                extra.append(j)
                by_response[rid].append(j)

    # Every ordered pair of the selected responses' judgments.
    battles = []  # (response id, m, n)
    convs = []
    for rid in selected:
        js = by_response[rid][:cfg.num_judgments]
        r = responses[rid]
        for m, n in meta_judging.ordered_pairs(len(js)):
            battles.append((rid, m, n))
            convs.append(meta_judging.meta_judge_conversation(r.instruction, r.response, js[m].text, js[n].text))
    settings = SamplingSettings(n=1, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, seed=cfg.seed,
                                force_choice=meta_judging.FORCE_CHOICE)
    outs = cache.generate(engine, convs, settings, it.params.shard_size("meta_judge"), name="battles", desc="meta_judge")
    texts = [row[0].text for row in outs]
    verdicts, offset = meta_judging.meta_verdicts(engine, convs, texts, cfg.tie_margin, cfg.calibrate_forced,
                                                  forced=[row[0].choice_logprobs for row in outs])
    meta_rows = []
    for (rid, m, n), text, v in zip(battles, texts, verdicts):
        js = by_response[rid]
        meta_rows.append(MetaJudgment(
            meta_id=records.stable_id("mj", js[m].judgment_id, js[n].judgment_id, text), prompt_id=js[m].prompt_id,
            response_id=rid, first_id=js[m].judgment_id, second_id=js[n].judgment_id, text=text,
            verdict=v.verdict, method=v.method, forced_margin=v.margin,
            provenance={**it.model_ref(), "iteration": it.key, "template_sha": meta_sha,
                        "sampling": settings.to_dict(), "first_index": m, "second_index": n}))

    w1, w2 = elo.position_weights(v.verdict for v in verdicts)
    bias = elo.position_bias(v.verdict for v in verdicts)
    ratings = []
    spreads = []
    for rid in selected:
        js = by_response[rid][:cfg.num_judgments]
        table = {(b[1], b[2]): v.verdict for b, v in zip(battles, verdicts) if b[0] == rid}
        matrix = elo.battle_matrix(table, len(js), w1, w2)
        scores = elo.to_elo(elo.bradley_terry(matrix, cfg.elo_l2))
        spreads.append(float(scores.max() - scores.min()))
        for i, j in enumerate(js):
            ratings.append(Rating(judgment_id=j.judgment_id, response_id=rid, prompt_id=j.prompt_id,
                                  elo=round(float(scores[i]), 4), wins=float(matrix[i].sum()),
                                  losses=float(matrix[:, i].sum())))
    if bias is not None and bias > cfg.max_position_bias:
        _common.log.warning("meta_judge %s: the first judgment won %.0f%% of decided battles (above "
                            "meta_judge.max_position_bias %.0f%%); the position weights correct for it, but the "
                            "meta-judge is weak", it.key, 100 * bias, 100 * cfg.max_position_bias)
    records.write_jsonl(it.data / "extra_judgments.jsonl", extra)
    records.write_jsonl(it.data / "meta_judgments.jsonl", meta_rows)
    records.write_jsonl(it.data / "ratings.jsonl", ratings)
    methods = Counter(v.method for v in verdicts)
    metrics = {"responses_meta_judged": len(selected), "comparisons": len(meta_rows), "extra_judgments": len(extra),
               "strict": methods["strict"], "flexible": methods["flexible"], "forced": methods["forced"],
               "ties": methods["tie"], "calibrated": cfg.calibrate_forced,
               "calibration_offset": round(offset, 4), "parse_rate": (methods["strict"] + methods["flexible"]) / max(1, len(verdicts)),
               "position_bias": bias, "omega_1": w1, "omega_2": w2,
               "elo_spread_mean": statistics.fmean(spreads) if spreads else 0.0,
               "extra_judge": judge_metrics(extra) if extra else None,
               "seconds": round(time.time() - start, 1), **_common.token_stats(outs)}
    records.write_json(it.metrics / "meta_judge.json", metrics)
    cache.finish()
    _common.log.info("meta_judge %s: %d comparisons over %d responses, position bias %s", it.key, len(meta_rows),
                     len(selected), None if bias is None else f"{bias:.2f}")


if __name__ == "__main__":
    _common.run(main)
