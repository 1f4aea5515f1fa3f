"""LLM-as-a-meta-judge: which of two judgments applies the rubric more accurately (Meta-Rewarding LMs).

Per prompt, :func:`select_for_meta_judging` takes the response whose judgment scores vary most. Its
judgments are compared in every ordered pair (both orders, :func:`ordered_pairs`). The verdict parsers run
strict (last line ``Winner: Judgment A|B``), then flexible, then :func:`forced_verdicts` appends
``Winner: Judgment `` and compares the next-token probabilities of A and B (a tie within ``tie_margin``),
optionally calibrated (:func:`calibration_offset`) against the model's constant preference for one letter.
The ratings that follow are in :mod:`pipeline.elo`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import permutations

from pipeline import templates
from pipeline.engines.base import Conversation, Engine
from pipeline.judging import score_variance

TEMPLATE = "meta_judge.j2"
VERDICT_PREFIX = "Winner: Judgment "

_STRICT = re.compile(r"^\s*Winner:\s*Judgment\s+([AB])\s*\.?\s*$")
_FLEX = re.compile(r"winner\W{0,3}\s*(?:is\s*)?(?:judgment\s*)?[\"'\u201c\u201d*]*\s*([AB])\b", re.IGNORECASE)
_FLEX_BETTER = re.compile(r"judgment\s+([AB])\s+(?:is|was)\s+(?:more accurate|better|the winner)", re.IGNORECASE)


def meta_judge_conversation(instruction: str, response: str, judgment_a: str, judgment_b: str) -> list[dict[str, str]]:
    text = templates.render(TEMPLATE, instruction=instruction, response=response, judgment_a=judgment_a,
                            judgment_b=judgment_b)
    return [{"role": "user", "content": text}]


def select_for_meta_judging(scores_by_response: Mapping[str, Sequence[float | None]],
                            order: Sequence[str]) -> str:
    """The response with the highest variance of judgment scores; ties go to the earliest in ``order``."""
    return max(order, key=lambda rid: (score_variance(scores_by_response[rid]), -order.index(rid)))


def ordered_pairs(size: int) -> list[tuple[int, int]]:
    """Every ordered pair (m, n), m != n: each pair of judgments is compared in both orders."""
    return list(permutations(range(size), 2))


def _letter_to_verdict(letter: str) -> int:
    return 1 if letter.upper() == "A" else -1


def parse_verdict_strict(text: str) -> int | None:
    lines = text.rstrip().splitlines()
    m = _STRICT.match(lines[-1]) if lines else None
    return _letter_to_verdict(m.group(1)) if m else None


def parse_verdict_flexible(text: str) -> int | None:
    matches = list(_FLEX.finditer(text)) or list(_FLEX_BETTER.finditer(text))
    return _letter_to_verdict(matches[-1].group(1)) if matches else None


@dataclass(frozen=True)
class MetaVerdict:
    verdict: int  # 1 first (A) wins, -1 second (B) wins, 0 tie
    method: str  # strict | flexible | forced | tie
    margin: float | None = None  # forced only: log p(A) - log p(B) after the verdict prefix


def forced_verdict(logprob_a: float, logprob_b: float, tie_margin: float) -> MetaVerdict:
    if abs(logprob_a - logprob_b) <= tie_margin:
        return MetaVerdict(0, "tie", logprob_a - logprob_b)
    return MetaVerdict(1 if logprob_a > logprob_b else -1, "forced", logprob_a - logprob_b)


def calibration_offset(margins: Sequence[float]) -> float:
    """The stage-wide median of forced A-vs-B margins (log p(A) - log p(B)).

    Contextual calibration (Zhao et al., 2021) of a forced verdict: a weak model that prefers the letter A
    whatever the content gives margins that are all positive, so every forced verdict says "first wins",
    the position weights make every battle worth zero and all Elo ratings come out equal. Subtracting the
    median margin keeps what the margins still say (which comparisons lean more towards A than the others)
    and removes the constant preference for a letter: half the forced verdicts go each way.
    """
    if not margins:
        return 0.0
    ordered = sorted(margins)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def forced_verdicts(margins: Sequence[float], tie_margin: float, calibrate: bool) -> tuple[float, list[MetaVerdict]]:
    """Verdicts from forced margins: a tie within ``tie_margin`` of the offset (0, or the calibration offset)."""
    offset = calibration_offset(margins) if calibrate else 0.0
    return offset, [forced_verdict(m - offset, 0.0, tie_margin) for m in margins]


FORCE_CHOICE = ("\n" + VERDICT_PREFIX, ("A", "B"))  # SamplingSettings.force_choice for the meta-judge


def meta_verdicts(engine: Engine, conversations: Sequence[Conversation], texts: Sequence[str],
                  tie_margin: float, calibrate: bool = False,
                  forced: Sequence[list[float] | None] | None = None) -> tuple[list[MetaVerdict], float]:
    """Parse (strict, then flexible) or force each verdict; return the verdicts and the calibration offset.

    ``forced`` holds log p(A), log p(B) after the verdict prefix where the engine already read them from
    the generation's KV cache (``Completion.choice_logprobs``); the others are scored from text.
    """
    out: list[MetaVerdict | None] = []
    for t in texts:
        strict = parse_verdict_strict(t)
        flex = None if strict is not None else parse_verdict_flexible(t)
        out.append(MetaVerdict(strict, "strict") if strict is not None
                   else MetaVerdict(flex, "flexible") if flex is not None else None)
    need = [i for i, v in enumerate(out) if v is None]
    offset = 0.0
    if need:
        known = {i: forced[i] for i in need if forced is not None and forced[i] is not None}
        rest = [i for i in need if i not in known]
        contexts = [f"{engine.format_chat(conversations[i])}{texts[i].rstrip()}\n{VERDICT_PREFIX}" for i in rest]
        known.update(zip(rest, engine.choice_logprobs(contexts, ["A", "B"]) if rest else []))
        margins = [known[i][0] - known[i][1] for i in need]
        offset, forced = forced_verdicts(margins, tie_margin, calibrate)
        for i, v in zip(need, forced):
            out[i] = v
    return [v for v in out if v is not None], offset
