"""LLM-as-a-meta-judge: which of two judgments applies the rubric more accurately (Meta-Rewarding LMs).

Per prompt, :func:`select_for_meta_judging` takes the response whose judgment scores vary most; when it has
fewer than ``meta_judge.num_judgments`` judgments, :func:`extra_judgments` draws more with the judge. Its
judgments are compared in every ordered pair (both orders, :func:`ordered_pairs`). Verdicts come from
:data:`CHAIN`: ``strict`` (last line ``Winner: Judgment A|B``), ``flexible``, then forced
(``Winner: Judgment `` + A vs B by next-token probability, a tie within ``tie_margin``), optionally calibrated
(``verdicts.calibration_offset``) against the model's constant preference for one letter. The ratings that
follow are in :mod:`pipeline.elo`; :func:`meta_judge` is the whole step.
"""

from __future__ import annotations

import logging
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import permutations
from typing import Any

from pipeline import elo, judging, templates, verdicts
from pipeline.config import JudgeConfig, MetaJudgeConfig
from pipeline.engines.base import SamplingSettings
from pipeline.generation import Generation, token_stats
from pipeline.judging import score_variance
from pipeline.records import Judgment, MetaJudgment, Rating, Response, stable_id

log = logging.getLogger("pipeline")

TEMPLATE = "meta_judge.j2"
VARIANTS = ("meta_judge.j2", "meta_judge_compact.j2")  # the paper's rules, and our shorter variant
VERDICT_PREFIX = "Winner: Judgment "
PAPER_VERDICT_PREFIX = "Winner: Judgement "  # the Meta-Rewarding paper's spelling
VERDICT_VALUE = {"A": 1, "B": -1, "tie": 0}  # 1: the first judgment (shown as A) wins

# Both spellings (Judgment, the paper's Judgement), brackets as in the paper's "[Judgement A | Judgement B]",
# markdown emphasis and a trailing period.
_STRICT = re.compile(r"^[\s*_#]*Winner\s*:[\s*_]*\[?\s*Judge?ment\s+([AB])\s*\]?[\s*_]*\.?\s*$")
_FLEX = re.compile(r"winner\W{0,3}\s*(?:is\s*)?(?:judge?ment\s*)?[\"'\u201c\u201d*\[]*\s*([AB])\b", re.IGNORECASE)
_FLEX_BETTER = re.compile(r"judge?ment\s+([AB])\s+(?:is|was)\s+(?:more accurate|better|the winner)", re.IGNORECASE)


def meta_judge_conversation(instruction: str, response: str, judgment_a: str, judgment_b: str,
                            template: str | None = None) -> list[dict[str, str]]:
    text = templates.render(template or TEMPLATE, instruction=instruction, response=response, judgment_a=judgment_a,
                            judgment_b=judgment_b)
    return [{"role": "user", "content": text}]


def parse_verdict_strict(text: str) -> tuple[str, int] | None:
    return verdicts.on_last_line(_STRICT, text)


def parse_verdict_flexible(text: str) -> tuple[str, int] | None:
    found = verdicts.last_match(text, _FLEX, _FLEX_BETTER)
    return (found[0].upper(), found[1]) if found else None


CHAIN = verdicts.Chain("meta_judge", (("strict", parse_verdict_strict), ("flexible", parse_verdict_flexible)),
                       prefix=VERDICT_PREFIX, options=("A", "B"))


def chain_for(template: str | None) -> verdicts.Chain:
    """The verdict chain for a meta-judge template: a forced verdict continues in the spelling the template asks
    for (``Winner: Judgement `` when it uses the paper's spelling, else ``Winner: Judgment ``)."""
    from pipeline.templates import environment, referenced

    env = environment()
    source = "".join(env.loader.get_source(env, n)[0] for n in referenced(template or TEMPLATE))  # type: ignore[union-attr]
    return replace(CHAIN, prefix=PAPER_VERDICT_PREFIX) if PAPER_VERDICT_PREFIX.strip() in source else CHAIN


def select_for_meta_judging(scores_by_response: Mapping[str, Sequence[float | None]],
                            order: Sequence[str]) -> str:
    """The response with the highest variance of judgment scores; ties go to the earliest in ``order``."""
    return max(order, key=lambda rid: (score_variance(scores_by_response[rid]), -order.index(rid)))


def ordered_pairs(size: int) -> list[tuple[int, int]]:
    """Every ordered pair (m, n), m != n: each pair of judgments is compared in both orders."""
    return list(permutations(range(size), 2))


# ------------------------------------------------------------------------------------------------ the step
def select_responses(responses: Mapping[str, Response], judgments: Sequence[Judgment]
                     ) -> tuple[list[str], dict[str, list[Judgment]]]:
    """One response per prompt (the highest score variance), and every response's judgments in order."""
    by_response: dict[str, list[Judgment]] = defaultdict(list)
    for j in judgments:
        by_response[j.response_id].append(j)
    by_prompt: dict[str, list[str]] = defaultdict(list)
    for rid in by_response:
        by_prompt[responses[rid].prompt_id].append(rid)
    selected = [select_for_meta_judging({rid: [j.score for j in by_response[rid]] for rid in rids}, rids)
                for rids in by_prompt.values()]
    return selected, by_response


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


@dataclass(frozen=True)
class Battle:
    response_id: str
    first: int  # index of the judgment shown as A
    second: int  # index of the judgment shown as B


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
    found, offset = verdicts.pairwise_verdicts(chain, gen.engine, convs, texts, cfg.tie_margin, cfg.calibrate_forced,
                                               known=[row[0].choice_logprobs for row in outs])
    return battles, texts, found, offset, settings, outs


def rate(selected: Sequence[str], by_response: Mapping[str, list[Judgment]], battles: Sequence[Battle],
         results: Sequence[int], num_judgments: int, l2: float) -> tuple[list[Rating], list[float]]:
    """Elo ratings of each selected response's judgments, with stage-wide position weights; and Elo spreads."""
    w1, w2 = elo.position_weights(results)
    ratings, spreads = [], []
    for rid in selected:
        js = by_response[rid][:num_judgments]
        table = {(b.first, b.second): v for b, v in zip(battles, results) if b.response_id == rid}
        matrix = elo.battle_matrix(table, len(js), w1, w2)
        scores = elo.to_elo(elo.bradley_terry(matrix, l2))
        spreads.append(float(scores.max() - scores.min()))
        for i, j in enumerate(js):
            ratings.append(Rating(judgment_id=j.judgment_id, response_id=rid, prompt_id=j.prompt_id,
                                  elo=round(float(scores[i]), 4), wins=float(matrix[i].sum()),
                                  losses=float(matrix[:, i].sum())))
    return ratings, spreads


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
    metrics = {"responses_meta_judged": len(selected), "comparisons": len(rows), "extra_judgments": len(extra),
               "unscored_judgments_left_out": unscored,
               "strict": methods["strict"], "flexible": methods["flexible"], "forced": methods["forced"],
               "ties": methods["tie"], "no_win": methods["no_win"], "calibrated": cfg.calibrate_forced, "calibration_offset": round(offset, 4),
               "parse_rate": (methods["strict"] + methods["flexible"]) / max(1, len(found)),
               "position_bias": bias, "omega_1": w1, "omega_2": w2,
               "elo_spread_mean": statistics.fmean(spreads) if spreads else 0.0,
               "extra_judge": judging.judge_metrics(extra) if extra else None, **token_stats(outs)}
    return MetaJudgeResult(extra, rows, ratings, metrics)

