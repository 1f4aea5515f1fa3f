"""The rules of the evaluator's pairwise comparison, apart from generation: its prompt, how its verdict is read,
and how the two orders of a prompt combine.

The evaluator sees each (model, baseline) answer pair twice, once in each order (``prompts/compare.j2``). Its
verdict is read by the chain its template's declaration builds (:func:`chain_for`;
``prompts/compare.verdict.yaml``): ``strict`` (last line ``Winner: A|B|tie``), ``flexible``, then forced (A vs
B by next-token probability, a tie within ``evaluate.tie_margin``). Per order the verdict is +1 (the model's
answer wins), -1 (the baseline's) or 0 (:func:`model_verdict`); :func:`combine_orders` adds the two. This module
imports no engine: the inspection code reads evaluation rows with it; the step is ``pipeline.evaluation``.
"""

from __future__ import annotations

from pipeline import declarations, templates, verdicts

TEMPLATE = "compare.j2"
DECLARATION = "compare.verdict.yaml"
ROLE = "compare"


def compare_conversation(instruction: str, response_a: str, response_b: str, template: str | None = None
                         ) -> list[dict[str, str]]:
    return [{"role": "user", "content": templates.render(template or TEMPLATE, instruction=instruction,
                                                         response_a=response_a, response_b=response_b)}]


def chain_for(template: str | None = None) -> verdicts.Chain:
    """The verdict chain of an evaluator template (None: the default), from its declaration."""
    return declarations.for_template(template or TEMPLATE, ROLE).chain(ROLE)


def parse_compare(text: str, template: str | None = None) -> tuple[str, str] | None:
    """('A' | 'B' | 'tie', 'strict' | 'flexible'), or None."""
    p = chain_for(template).parse(text)
    return (p.value, p.method) if p is not None else None


def model_verdict(letter: str, model_is_a: bool) -> int:
    """+1 when the model's answer won this order, -1 when the baseline's did, 0 for a tie."""
    if letter == "tie":
        return 0
    return 1 if (letter == "A") == model_is_a else -1


def combine_orders(first: int, second: int) -> int:
    """The outcome of a prompt from its two orders: the sign of their sum (disagreement is a tie)."""
    total = first + second
    return (total > 0) - (total < 0)
