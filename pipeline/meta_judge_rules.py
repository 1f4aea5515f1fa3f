"""The rules of meta-judging, apart from generation (Meta-Rewarding LMs): which judgments are compared, how a
meta-verdict is read, and the ratings that follow.

Per prompt, :func:`select_for_meta_judging` takes the response whose judgment scores vary most; its judgments
are compared in every ordered pair (both orders, :func:`ordered_pairs`). A verdict is read by the chain its
template's declaration builds (:func:`chain_for`; ``prompts/meta_judge.verdict.yaml`` for the default
template): ``strict`` (the last line ``Winner: Judgement A|B``, either spelling), ``flexible``, then forced
(``Winner: Judgement `` + A vs B by next-token probability, in the spelling the template asks for). A verdict
is worth :data:`VERDICT_VALUE`; :func:`rate` turns a stage's verdicts into Elo ratings (:mod:`pipeline.elo`).
This module imports no engine; the meta-judge step is ``pipeline.meta_judging``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import permutations

from pipeline import declarations, elo, templates, verdicts
from pipeline.judge_rules import score_variance
from pipeline.records import Judgment, Rating, Response

TEMPLATE = "meta_judge.j2"
VARIANTS = ("meta_judge.j2", "meta_judge_compact.j2")  # the paper's rules, and our shorter variant
# their verdicts: the paper's spelling "Judgement", and "Judgment" (the compact variant's)
DECLARATIONS = ("meta_judge.verdict.yaml", "meta_judge_compact.verdict.yaml")
ROLE = "meta_judge"
VERDICT_VALUE = {"A": 1, "B": -1, "tie": 0}  # 1: the first judgment (shown as A) wins


def meta_judge_conversation(instruction: str, response: str, judgment_a: str, judgment_b: str,
                            template: str | None = None) -> list[dict[str, str]]:
    text = templates.render(template or TEMPLATE, instruction=instruction, response=response, judgment_a=judgment_a,
                            judgment_b=judgment_b)
    return [{"role": "user", "content": text}]


def chain_for(template: str | None = None) -> verdicts.Chain:
    """The verdict chain of a meta-judge template (None: the default), from its declaration: a forced verdict
    continues in the declared spelling (``Winner: Judgement `` for the paper's template)."""
    return declarations.for_template(template or TEMPLATE, ROLE).chain(ROLE)


def parse_verdict_strict(text: str, template: str | None = None) -> tuple[str, int] | None:
    return chain_for(template).parsers[0][1](text)


def parse_verdict_flexible(text: str, template: str | None = None) -> tuple[str, int] | None:
    return chain_for(template).parsers[1][1](text)


def select_for_meta_judging(scores_by_response: Mapping[str, Sequence[float | None]],
                            order: Sequence[str]) -> str:
    """The response with the highest variance of judgment scores; ties go to the earliest in ``order``."""
    return max(order, key=lambda rid: (score_variance(scores_by_response[rid]), -order.index(rid)))


def ordered_pairs(size: int) -> list[tuple[int, int]]:
    """Every ordered pair (m, n), m != n: each pair of judgments is compared in both orders."""
    return list(permutations(range(size), 2))


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


@dataclass(frozen=True)
class Battle:
    response_id: str
    first: int  # index of the judgment shown as A
    second: int  # index of the judgment shown as B


def rate(selected: Sequence[str], by_response: Mapping[str, list[Judgment]], battles: Sequence[Battle],
         results: Sequence[int], num_judgments: int, l2: float) -> tuple[list[Rating], list[float]]:
    """Elo ratings of each selected response's judgments, with stage-wide position weights; and Elo spreads.

    A response with fewer than two judgments had no battle: it gets no rating (nothing ranks its judgment)."""
    w1, w2 = elo.position_weights(results)
    ratings, spreads = [], []
    for rid in selected:
        js = by_response[rid][:num_judgments]
        if len(js) < 2:
            continue
        table = {(b.first, b.second): v for b, v in zip(battles, results) if b.response_id == rid}
        matrix = elo.battle_matrix(table, len(js), w1, w2)
        scores = elo.to_elo(elo.bradley_terry(matrix, l2))
        spreads.append(float(scores.max() - scores.min()))
        for i, j in enumerate(js):
            ratings.append(Rating(judgment_id=j.judgment_id, response_id=rid, prompt_id=j.prompt_id,
                                  elo=round(float(scores[i]), 4), wins=float(matrix[i].sum()),
                                  losses=float(matrix[:, i].sum())))
    return ratings, spreads
