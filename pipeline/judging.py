"""LLM-as-a-judge: the additive 5-point rubric, score parsing, forced verdicts and response scores.

A judgment never gets lost to parsing. The parsers run in order:

1. :func:`parse_score_strict`: the last line is ``Score: N`` with N in 0-5.
2. :func:`parse_score_flexible`: the last ``Score`` mention (``Score: "4"``, ``score of 3``, ``4/5``...).
3. :func:`force_scores`: append ``Score: `` to the judge's own text and take the digit 0-5 with the
   highest next-token probability.

With ``judge.scoring: expected`` the score is instead the probability-weighted mean of the digits at the
score position (:func:`expected_score`).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline import templates
from pipeline.engines.base import Conversation, Engine

TEMPLATE = "judge.j2"
DIGITS = tuple(str(d) for d in range(6))
SCORE_PREFIX = "Score: "

_STRICT = re.compile(r"^\s*Score:\s*([0-5])\s*$")
_QUOTES = "\"'\u201c\u201d\u2018\u2019*"
_FLEX_SCORE = re.compile(
    r"score\s*(?:is|of|=|:)?\s*[" + _QUOTES + r"]*\s*([0-5])(?![\d.])(?:\s*(?:/|out of)\s*5)?", re.IGNORECASE)
_FLEX_OVER_5 = re.compile(r"(?<![\d.])([0-5])\s*(?:/|out of)\s*5\b", re.IGNORECASE)


def judge_conversation(instruction: str, response: str) -> list[dict[str, str]]:
    """The judge sees the user's instruction and the final response only, never the thoughts."""
    return [{"role": "user", "content": templates.render(TEMPLATE, instruction=instruction, response=response)}]


@dataclass(frozen=True)
class ParsedScore:
    score: int
    method: str  # strict | flexible
    start: int  # character offset of the digit in the text


def parse_score_strict(text: str) -> ParsedScore | None:
    lines = text.rstrip().splitlines()
    if not lines:
        return None
    m = _STRICT.match(lines[-1])
    if not m:
        return None
    start = len(text.rstrip()) - len(lines[-1]) + m.start(1)
    return ParsedScore(int(m.group(1)), "strict", start)


def parse_score_flexible(text: str) -> ParsedScore | None:
    """The last ``Score`` mention (straight or curly quotes allowed), else the last ``N/5``."""
    matches = list(_FLEX_SCORE.finditer(text)) or list(_FLEX_OVER_5.finditer(text))
    if not matches:
        return None
    m = matches[-1]
    return ParsedScore(int(m.group(1)), "flexible", m.start(1))


def parse_score(text: str) -> ParsedScore | None:
    return parse_score_strict(text) or parse_score_flexible(text)


def forced_context(prompt_text: str, judgment: str) -> str:
    """The raw text after which the next token is the score: the judge's own text plus ``Score: ``."""
    return f"{prompt_text}{judgment.rstrip()}\n{SCORE_PREFIX}"


def digit_distribution(logprobs: Sequence[float]) -> list[float]:
    """Log-probs of the digits 0-5 renormalized to probabilities over those six."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


def expected_score(probs: Sequence[float]) -> float:
    """Probability-weighted mean of the digits 0-5."""
    return float(sum(d * p for d, p in enumerate(probs)))


def forced_score(probs: Sequence[float]) -> int:
    """The digit with the highest probability (the lowest digit on an exact tie)."""
    return max(range(len(probs)), key=lambda d: (probs[d], -d))


def score_contexts(engine: Engine, conversations: Sequence[Conversation], texts: Sequence[str],
                   parsed: Sequence[ParsedScore | None]) -> list[str]:
    """For each judgment, the context whose next token is its score digit."""
    out = []
    for conv, text, p in zip(conversations, texts, parsed):
        prompt = engine.format_chat(conv)
        out.append(prompt + text[:p.start] if p is not None else forced_context(prompt, text))
    return out


def digit_probs(engine: Engine, contexts: Sequence[str]) -> list[list[float]]:
    return [digit_distribution(lps) for lps in engine.choice_logprobs(contexts, DIGITS)]


@dataclass(frozen=True)
class Verdict:
    score: float
    method: str  # strict | flexible | forced
    probs: list[float] | None


def judge_verdicts(engine: Engine, conversations: Sequence[Conversation], texts: Sequence[str],
                   scoring: str = "parsed") -> list[Verdict]:
    """Scores for judge outputs: parsed where possible, forced where not; expected when asked."""
    parsed = [parse_score(t) for t in texts]
    need = [i for i, p in enumerate(parsed) if p is None or scoring == "expected"]
    probs: dict[int, list[float]] = {}
    if need:
        ctx = score_contexts(engine, [conversations[i] for i in need], [texts[i] for i in need],
                             [parsed[i] for i in need])
        probs = dict(zip(need, digit_probs(engine, ctx)))
    out = []
    for i, p in enumerate(parsed):
        method = p.method if p is not None else "forced"
        if scoring == "expected":
            out.append(Verdict(expected_score(probs[i]), method, probs[i]))
        elif p is not None:
            out.append(Verdict(float(p.score), method, None))
        else:
            out.append(Verdict(float(forced_score(probs[i])), method, probs[i]))
    return out


def response_score(scores: Sequence[float | None]) -> float | None:
    """A response's score: the mean of its judgments that have a score."""
    valid = [s for s in scores if s is not None]
    return statistics.fmean(valid) if valid else None


def score_variance(scores: Sequence[float | None]) -> float:
    """Population variance of a response's judgment scores (0 for fewer than two)."""
    valid = [s for s in scores if s is not None]
    return statistics.pvariance(valid) if len(valid) >= 2 else 0.0
