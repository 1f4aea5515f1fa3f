"""The rules of judging, apart from generation: the judge's prompt, how its score is read, a response's score.

A judgment's score comes from the chain its template's declaration builds (:func:`chain_for`; the default
template ``prompts/judge.j2`` is read by ``prompts/judge.verdict.yaml``):

1. ``strict``: the last line is ``Score: N`` with N one of the declared values (0-5).
2. ``flexible``: the declared readings, in order (the last ``Score`` mention, else the last ``N/5``).
3. ``forced``: ``Score: `` is appended to the judge's own text and the value with the highest next-token
   probability is taken (:func:`forced_score`); or the judgment is dropped.

With ``judge.scoring: expected`` the score is instead the probability-weighted mean of the values at the score
position (:func:`expected_score`). A response's score is the mean of its judgments (:func:`response_score`).
:func:`read_verdicts` turns parsed verdicts and option probabilities into scores. This module imports no
engine: the pairs, verify and inspection code use it; the judge step is ``pipeline.judging``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline import declarations, templates, verdicts

TEMPLATE = "judge.j2"
VARIANTS = ("judge.j2", "judge_compact.j2")  # shipped judge prompts: the papers' rules, and ours for small models
DECLARATION = "judge.verdict.yaml"  # the verdict of both (judge_compact.j2 has none of its own: the role's default)
ROLE = "judge"


def judge_conversation(instruction: str, response: str, template: str | None = None) -> list[dict[str, str]]:
    """The judge sees the user's instruction and the final response only, never the thoughts."""
    return [{"role": "user", "content": templates.render(template or TEMPLATE, instruction=instruction,
                                                         response=response)}]


def declaration_for(template: str | None = None) -> declarations.Declaration:
    return declarations.for_template(template or TEMPLATE, ROLE)


def chain_for(template: str | None = None) -> verdicts.Chain:
    """The verdict chain of a judge template (None: the default), from its declaration."""
    return declaration_for(template).chain(ROLE)


def parse_score_strict(text: str, template: str | None = None) -> tuple[str, int] | None:
    return chain_for(template).parsers[0][1](text)


def parse_score(text: str, template: str | None = None) -> verdicts.Parsed | None:
    return chain_for(template).parse(text)


def digit_distribution(logprobs: Sequence[float]) -> list[float]:
    """Log-probs of the forced options (the digits 0-5) renormalized to probabilities over those options."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


def expected_score(probs: Sequence[float], values: Sequence[int] | None = None) -> float:
    """Probability-weighted mean of the values (None: the digits 0, 1, 2, ...)."""
    values = range(len(probs)) if values is None else values
    return float(sum(v * p for v, p in zip(values, probs)))


def forced_score(probs: Sequence[float]) -> int:
    """The index of the option with the highest probability (the lowest index on an exact tie)."""
    return max(range(len(probs)), key=lambda d: (probs[d], -d))


@dataclass(frozen=True)
class Verdict:
    score: float | None
    method: str  # strict | flexible | forced | dropped
    probs: list[float] | None


def read_verdicts(parsed: Sequence[verdicts.Parsed | None], probs: dict[int, list[float]], scoring: str, drop: bool,
                  values: Sequence[int]) -> list[Verdict]:
    """Scores from parsed verdicts and, where asked for, the options' probabilities (by index).

    ``probs`` holds an entry for every unparsed verdict unless ``drop``, and for every verdict under
    ``scoring: expected``; ``values`` are the forced options as numbers.
    """
    out = []
    for i, p in enumerate(parsed):
        method = p.method if p is not None else "forced"
        if p is None and drop:
            out.append(Verdict(None, "dropped", None))
        elif scoring == "expected":
            out.append(Verdict(expected_score(probs[i], values), method, probs[i]))
        elif p is not None:
            out.append(Verdict(float(p.value), method, None))
        else:
            out.append(Verdict(float(values[forced_score(probs[i])]), method, probs[i]))
    return out


def response_score(scores: Sequence[float | None]) -> float | None:
    """A response's score: the mean of its judgments that have a score."""
    valid = [s for s in scores if s is not None]
    return statistics.fmean(valid) if valid else None


def score_variance(scores: Sequence[float | None]) -> float:
    """Population variance of a response's judgment scores (0 for fewer than two)."""
    valid = [s for s in scores if s is not None]
    return statistics.pvariance(valid) if len(valid) >= 2 else 0.0
