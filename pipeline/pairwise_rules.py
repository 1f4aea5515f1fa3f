"""The rules of the pairwise judge, apart from generation (Self-Taught Evaluator; EvalPlanner): its prompts, how
its verdict is read, the ratings it gives one prompt's responses, and the similar instruction that makes a known
worse response.

The pairwise judge sees an instruction and two responses, A and B, and names the better one
(``prompts/pairwise_judge.j2``; the thinking variant ``pairwise_judge_plan.j2`` first writes an evaluation plan
from the instruction alone and carries it out on both responses, as EvalPlanner does). Both end in the same
line, read by the chain of ``prompts/pairwise_judge.verdict.yaml`` (:func:`chain_for`): ``strict`` (the last line
``Winner: A|B``), ``flexible``, then forced (A vs B by next-token probability). There is no tie: the
Self-Taught Evaluator asks for a strict choice (the declaration says why). A letter is worth
:func:`verdict_value`: +1 when the response shown first wins, -1 when the second does.

Over one prompt's responses, every ordered pair is judged (:func:`ordered_pairs`: both orders, as TPO's pairwise
judge is run) and :func:`ratings` turns the verdicts into Elo ratings with :mod:`pipeline.elo`, the meta-judge's
battle matrix and Bradley-Terry fit.

The Self-Taught Evaluator's known pair (§3.3, response pair construction): from instruction x the model writes
x', on the same topic but asking for something else (``prompts/similar_instruction.j2``); its answer to x' is then
a worse answer to x than its answer to x. :func:`parse_similar_instruction` reads x' strictly.

This module imports no engine; the steps that generate are elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import permutations

from pipeline import declarations, elo, templates
from pipeline.verdicts import Chain, on_last_line, strict_line

TEMPLATE = "pairwise_judge.j2"
VARIANTS = ("pairwise_judge.j2", "pairwise_judge_plan.j2")  # a short judgment; EvalPlanner's plan, then execution
# the verdict of both: the plan variant has no declaration of its own and is read by the role's default
DECLARATION = "pairwise_judge.verdict.yaml"
ROLE = "pairwise_judge"
SIMILAR_TEMPLATE = "similar_instruction.j2"
VERDICT_VALUE = {"A": 1, "B": -1, "tie": 0}  # 1: the response shown first (as A) wins

# Bradley-Terry's position weights (ω1, ω2) for :func:`ratings`: the values pipeline.elo.position_weights gives a
# judge without position bias, so a win counts as much here as in an unbiased meta-judge's ratings.
NEUTRAL_WEIGHTS = (0.5, 0.5)

# The similar instruction's line: the reply's last non-blank line, built by the one strict-line builder.
SIMILAR_LABEL = "New instruction"
_SIMILAR_LINE = strict_line(SIMILAR_LABEL, ".+?", period=False)
_QUOTED = re.compile(r'^(["\u201c\'])(.*)(["\u201d\'])$', re.DOTALL)
_QUOTE_PAIRS = {('"', '"'), ("\u201c", "\u201d"), ("'", "'")}


def pairwise_conversation(instruction: str, response_a: str, response_b: str, template: str | None = None
                          ) -> list[dict[str, str]]:
    """The judge's one user turn: the instruction, ``response_a`` shown first (as A), ``response_b`` second."""
    return [{"role": "user", "content": templates.render(template or TEMPLATE, instruction=instruction,
                                                         response_a=response_a, response_b=response_b)}]


def chain_for(template: str | None = None) -> Chain:
    """The verdict chain of a pairwise-judge template (None: the default), from its declaration."""
    return declarations.for_template(template or TEMPLATE, ROLE).chain(ROLE)


def verdict_value(letter: str | None) -> int:
    """+1 when the response shown first won, -1 when the second did, 0 for a tie or no verdict.

    >>> verdict_value("A"), verdict_value("B"), verdict_value(None)
    (1, -1, 0)
    """
    if letter is None:
        return 0
    if letter not in VERDICT_VALUE:
        raise ValueError(f"{letter!r} is not a pairwise verdict: A, B or tie")
    return VERDICT_VALUE[letter]


def ordered_pairs(response_ids: Sequence[str]) -> list[tuple[str, str]]:
    """Every ordered pair (first, second) of distinct responses of one prompt: each pair in both orders.

    >>> ordered_pairs(["r1", "r2", "r3"])
    [('r1', 'r2'), ('r1', 'r3'), ('r2', 'r1'), ('r2', 'r3'), ('r3', 'r1'), ('r3', 'r2')]
    """
    _check_distinct(response_ids)
    return list(permutations(response_ids, 2))


def ratings(response_ids: Sequence[str], verdicts: Mapping[tuple[str, str], int], l2: float = 0.01,
            weights: tuple[float, float] = NEUTRAL_WEIGHTS) -> dict[str, float]:
    """Elo ratings of one prompt's responses from the pairwise judge's verdicts.

    ``verdicts[(first, second)]`` is :func:`verdict_value` of the judgment that showed ``first`` as A and
    ``second`` as B; a pair left out counts as no verdict. The battle matrix, the Bradley-Terry fit (with the
    penalty ``l2``) and the Elo scale are pipeline.elo's, the meta-judge's own rules.

    Position weights: by default none apply (both are 0.5, the weights of a judge without position bias). Each pair
    is judged in both orders, so a judge that always names the first response gives every response the same wins
    and the ratings come out equal without any correction, and a prompt's dozen verdicts are too few to measure a
    bias from. A caller that wants the Meta-Rewarding correction passes ``weights``, computed over a whole stage
    with ``elo.position_weights``, as the meta-judge does.
    """
    _check_distinct(response_ids)
    index = {rid: i for i, rid in enumerate(response_ids)}
    table: dict[tuple[int, int], int] = {}
    for (first, second), value in verdicts.items():
        unknown = [rid for rid in (first, second) if rid not in index]
        if unknown:
            raise ValueError(f"verdict ({first!r}, {second!r}): {unknown[0]!r} is not one of this prompt's responses")
        if first == second:
            raise ValueError(f"verdict ({first!r}, {second!r}): a response is never judged against itself")
        if value not in (-1, 0, 1):
            raise ValueError(f"verdict ({first!r}, {second!r}): {value!r} — must be 1, -1 or 0 (verdict_value)")
        table[(index[first], index[second])] = value
    if not response_ids:
        return {}
    scores = elo.elo_ratings(table, len(response_ids), *weights, l2=l2)
    return {rid: float(scores[i]) for rid, i in index.items()}


def similar_instruction_conversation(instruction: str, template: str | None = None) -> list[dict[str, str]]:
    """The one user turn that asks for an instruction similar to ``instruction`` but different (x -> x')."""
    return [{"role": "user", "content": templates.render(template or SIMILAR_TEMPLATE, instruction=instruction)}]


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def parse_similar_instruction(text: str, instruction: str) -> str | None:
    """x' from a reply to ``prompts/similar_instruction.j2``, strictly; None when it cannot be used.

    The reply's last non-blank line must be ``New instruction: <x'>`` (markdown emphasis around it allowed, as on
    a verdict line); x' is the rest of that line, without one pair of quotes around it. None when that line is
    missing (not last, or not starting with the label), when x' is empty, or when it is the same instruction as
    ``instruction`` (the same words, ignoring case, spacing and punctuation): a copy makes no known pair.

    >>> parse_similar_instruction("New instruction: Name a composite number.", "Name a prime.")
    'Name a composite number.'
    >>> parse_similar_instruction("New instruction: name a  PRIME!", "Name a prime.") is None
    True
    """
    found = on_last_line(_SIMILAR_LINE, text)
    if found is None:
        return None
    new = found[0].strip()
    quoted = _QUOTED.match(new)
    if quoted and (quoted.group(1), quoted.group(3)) in _QUOTE_PAIRS:
        new = quoted.group(2).strip()
    words = _words(new)
    if not words or words == _words(instruction):
        return None
    return new


def _check_distinct(response_ids: Sequence[str]) -> None:
    seen: set[str] = set()
    for rid in response_ids:
        if rid in seen:
            raise ValueError(f"response {rid!r} is given twice: a prompt's responses are distinct")
        seen.add(rid)
