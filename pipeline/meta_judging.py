"""The meta-judge step (Meta-Rewarding LMs): extra judgments, battles in both orders, verdicts, Elo ratings.

Per prompt, the response whose judgment scores vary most is meta-judged; when it has fewer than
``meta_judge.num_judgments`` judgments, :func:`extra_judgments` draws more with the judge. Its judgments are
compared in every ordered pair (:func:`battle_verdicts`); a verdict that no reading of its declaration parses
is forced (A vs B by next-token probability, a tie within ``tie_margin``), optionally calibrated
(``verdicts.calibration_offset``) against the model's constant preference for one letter. The rules (selection,
pairs, how a verdict is read, the ratings) are in :mod:`pipeline.meta_judge_rules`, which imports no engine;
:func:`meta_judge` is the whole step.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pipeline import elo, forcing, judging, templates, verdicts
from pipeline.config import JudgeConfig, MetaJudgeConfig
from pipeline.engines.base import SamplingSettings
from pipeline.generation import Generation, token_stats
from pipeline.meta_judge_rules import (  # noqa: F401  (the meta-judge's rules, under the names steps and tests use)
    DECLARATIONS,
    TEMPLATE,
    VARIANTS,
    VERDICT_VALUE,
    Battle,
    chain_for,
    meta_judge_conversation,
    ordered_pairs,
    parse_verdict_flexible,
    parse_verdict_strict,
    rate,
    select_for_meta_judging,
    select_responses,
)
from pipeline.records import Judgment, MetaJudgment, Rating, Response, stable_id

log = logging.getLogger("pipeline")


def extra_judgments(gen: Generation, responses: Mapping[str, Response], selected: Sequence[str],
                    by_response: Mapping[str, list[Judgment]], num_judgments: int, jcfg: JudgeConfig,
                    made_by: dict[str, Any]) -> list[Judgment]:
    """Judgments drawn with the judge for selected responses that have fewer than ``num_judgments``."""
    missing = {rid: num_judgments - len(by_response[rid]) for rid in selected}
    need = [rid for rid in selected if missing[rid] > 0]
    if not need:
        return []
    settings = judging.judge_settings(jcfg, max(missing.values()), jcfg.seed + 1)
    todo = [responses[rid] for rid in need]
    convs = [judging.judge_conversation(r.instruction, r.response, jcfg.template) for r in todo]
    outs = gen.generate(convs, settings, name="extra", desc="extra judgments")
    outs = [row[:missing[rid]] for rid, row in zip(need, outs)]  # one draw of n for all; each keeps what it lacks
    found = judging.score_judgments(gen.engine, convs, outs, jcfg)
    provenance = {**made_by, "template_sha": templates.template_hash(jcfg.template or judging.TEMPLATE), "scoring": jcfg.scoring,
                  "sampling": settings.to_dict(), "extra": True}
    return judging.judgment_rows(todo, outs, found, [len(by_response[rid]) for rid in need], provenance)


def battle_verdicts(gen: Generation, responses: Mapping[str, Response], selected: Sequence[str],
                    by_response: Mapping[str, list[Judgment]], cfg: MetaJudgeConfig
                    ) -> tuple[list[Battle], list[str], list[verdicts.PairVerdict], float, SamplingSettings, Any]:
    """Every ordered pair of each selected response's first ``num_judgments`` judgments, meta-judged."""
    battles, convs = [], []
    for rid in selected:
        js, r = by_response[rid][:cfg.num_judgments], responses[rid]
        for m, n in ordered_pairs(len(js)):
            battles.append(Battle(rid, m, n))
            convs.append(meta_judge_conversation(r.instruction, r.response, js[m].text, js[n].text, cfg.template))
    settings = SamplingSettings(n=1, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                seed=cfg.seed,
                                force_choice=chain_for(cfg.template).force_choice if cfg.on_unparsed == "force" else None)
    outs = gen.generate(convs, settings, name="battles", desc="meta_judge")
    texts = [row[0].text for row in outs]
    chain = replace(chain_for(cfg.template), on_unparsed=cfg.on_unparsed)
    found, offset = forcing.pairwise_verdicts(chain, gen.engine, convs, texts, cfg.tie_margin, cfg.calibrate_forced,
                                              known=[row[0].choice_logprobs for row in outs])
    return battles, texts, found, offset, settings, outs


@dataclass
class MetaJudgeResult:
    extra: list[Judgment]
    meta: list[MetaJudgment]
    ratings: list[Rating]
    metrics: dict[str, Any]


def meta_judge(gen: Generation, responses: Sequence[Response], judgments: Sequence[Judgment], cfg: MetaJudgeConfig,
               jcfg: JudgeConfig, made_by: dict[str, Any]) -> MetaJudgeResult:
    """The meta-judge step: selection, extra judgments, battles in both orders, Elo ratings, metrics."""
    rmap = {r.response_id: r for r in responses}
    selected, by_response = select_responses(rmap, judgments)
    # A judgment without a score (judge.on_unparsed: drop) applied no rubric that a verdict could weigh: it never
    # enters a battle, and extra judgments fill the selected responses up to num_judgments scored ones.
    scored = {rid: [j for j in js if j.score is not None] for rid, js in by_response.items()}
    unscored = sum(len(by_response[rid]) - len(scored[rid]) for rid in selected)
    extra = extra_judgments(gen, rmap, selected, scored, cfg.num_judgments, jcfg, made_by)
    unscored += sum(j.score is None for j in extra)
    by_response = {rid: [*js, *(j for j in extra if j.response_id == rid and j.score is not None)]
                   for rid, js in scored.items()}
    battles, texts, found, offset, settings, outs = battle_verdicts(gen, rmap, selected, by_response, cfg)
    results = [VERDICT_VALUE[v.letter] for v in found]
    meta_sha = templates.template_hash(cfg.template or TEMPLATE)
    rows = []
    for b, text, v, result in zip(battles, texts, found, results):
        first, second = by_response[b.response_id][b.first], by_response[b.response_id][b.second]
        rows.append(MetaJudgment(
            meta_id=stable_id("mj", first.judgment_id, second.judgment_id, text), prompt_id=first.prompt_id,
            response_id=b.response_id, first_id=first.judgment_id, second_id=second.judgment_id, text=text,
            verdict=result, method=v.method, forced_margin=v.margin,  # type: ignore[arg-type]
            provenance={**made_by, "template_sha": meta_sha, "sampling": settings.to_dict(),
                        "first_index": b.first, "second_index": b.second}))
    ratings, spreads = rate(selected, by_response, battles, results, cfg.num_judgments, cfg.elo_l2)
    w1, w2 = elo.position_weights(results)
    bias = elo.position_bias(results)
    if bias is not None and bias > cfg.max_position_bias:
        log.warning("meta_judge: the first judgment won %.0f%% of decided battles (above meta_judge.max_position_bias "
                    "%.0f%%); the position weights correct for it, but the meta-judge is weak", 100 * bias,
                    100 * cfg.max_position_bias)
    methods = Counter(v.method for v in found)
    battled = {b.response_id for b in battles}
    metrics = {"responses_meta_judged": len(battled),
               "responses_with_fewer_than_two_scored_judgments": len(selected) - len(battled),
               "comparisons": len(rows), "extra_judgments": len(extra),
               "unscored_judgments_left_out": unscored,
               "strict": methods["strict"], "flexible": methods["flexible"], "forced": methods["forced"],
               "ties": methods["tie"], "no_win": methods["no_win"], "calibrated": cfg.calibrate_forced, "calibration_offset": round(offset, 4),
               "parse_rate": (methods["strict"] + methods["flexible"]) / max(1, len(found)),
               "position_bias": bias, "omega_1": w1, "omega_2": w2,
               "elo_spread_mean": statistics.fmean(spreads) if spreads else 0.0,
               "extra_judge": judging.judge_metrics(extra, judging.declaration_for(jcfg.template).scale)
               if extra else None, **token_stats(outs)}
    return MetaJudgeResult(extra, rows, ratings, metrics)

