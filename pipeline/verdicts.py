"""One chain for every verdict a model writes: strict parser, flexible parser, then forced (or dropped).

The judge (a score), the meta-judge (judgment A or B) and the evaluator (response A, B or a tie) all end their
text with a verdict in a fixed format. Each role's :class:`Chain` is built from the declaration that comes with
its template (``pipeline.declarations``, e.g. ``prompts/judge.verdict.yaml``), the way lm-evaluation-harness
declares a ``filter_list``: its parsers in order (each a name and a function from text to the value and where it
starts), the prefix that introduces the verdict, and the options a forced verdict chooses among.

:func:`strict_line` is the one builder of a strict parser's pattern (the whole last line is ``Label: value``);
every judge's declaration and the verifier's ``Final answer:`` reading use it, through :func:`on_last_line`.

:meth:`Chain.parse` tries the parsers in order. What none of them reads is *forced*: the chain's prefix is
appended to the model's own text (:meth:`Chain.forced_context`, the one place that context is built) and the
option with the highest next-token probability is taken (``pipeline.forcing`` asks the engine). Forcing is this
project's extension for small models; a chain can instead drop what does not parse.

The A-vs-B decision that the meta-judge and the evaluator share (log p(A) - log p(B), a tie within a margin,
optional calibration) is :func:`forced_pair_verdicts`; ``pipeline.forcing.pairwise_verdicts`` applies it to an
engine's log-probs. This module imports no engine: the verify, pairs and inspection code reads verdicts with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

Parser = Callable[[str], tuple[str, int] | None]  # text -> (the option as written, its character offset)


def literal(text: str) -> str:
    """``text`` as a regular expression that matches it literally (spaces left as they are, for readability)."""
    return re.escape(text).replace("\\ ", " ")


def strict_line(label: str, value: str, *, before: str = "", brackets: str | None = None, after: str = "",
                period: bool = True, case_sensitive: bool = False) -> re.Pattern[str]:
    r"""The pattern of a strict verdict: the whole line is ``label: value``, group 1 the value.

    ``value`` (and ``before``, ``after``) are regular expressions: what may stand before the value (``Judgment``
    in ``Winner: Judgment A``), and after it (``/5``). Markdown emphasis and a heading mark are allowed around
    the line, ``brackets`` (two characters, e.g. ``"<>"``) around the value, and with ``period`` a trailing
    period.

    >>> bool(strict_line("Score", "[0-5]", brackets="<>").match("**Score: <4>**."))
    True
    >>> print(strict_line("Final answer", ".+?", period=False).pattern)
    ^[\s*_#]*Final answer\s*:[\s*_]*(.+?)[\s*_]*$
    """
    opening = re.escape(brackets[0]) + r"?\s*" if brackets else ""
    closing = r"\s*" + re.escape(brackets[1]) + "?" if brackets else ""
    pattern = (r"^[\s*_#]*" + literal(label) + r"\s*:[\s*_]*" + opening + before + "(" + value + ")" + closing
               + after + r"[\s*_]*" + (r"\.?\s*" if period else "") + "$")
    return re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)


def on_last_line(pattern: re.Pattern[str], text: str) -> tuple[str, int] | None:
    """A strict parser's rule: ``pattern`` matches the whole last non-blank line; (group 1, its offset)."""
    lines = text.rstrip().splitlines()
    m = pattern.match(lines[-1]) if lines else None
    return (m.group(1), len(text.rstrip()) - len(lines[-1]) + m.start(1)) if m else None


def last_match(text: str, *patterns: re.Pattern[str]) -> tuple[str, int] | None:
    """A flexible parser's rule: the last match of the first pattern that matches anywhere; (group 1, offset)."""
    for pattern in patterns:
        matches = list(pattern.finditer(text))
        if matches:
            return matches[-1].group(1), matches[-1].start(1)
    return None


@dataclass(frozen=True)
class Parsed:
    value: str  # one of the chain's options (or another value a parser allows, e.g. "tie")
    method: str  # the name of the parser that read it
    start: int  # character offset of the value in the text


@dataclass(frozen=True)
class Chain:
    name: str
    parsers: tuple[tuple[str, Parser], ...]  # (name, parser) in the order they are tried
    prefix: str  # what introduces the verdict, e.g. "Score: "
    options: tuple[str, ...]  # what a forced verdict chooses among, each one token after the prefix
    # force: the options' next-token probabilities decide (ours); otherwise the verdict is not used, under this
    # name: "drop" (a judge's score left out of the mean) or "no_win" (a meta-verdict that counts for neither)
    on_unparsed: Literal["force", "drop", "no_win"] = "force"

    def parse(self, text: str) -> Parsed | None:
        for name, parser in self.parsers:
            found = parser(text)
            if found is not None:
                return Parsed(found[0], name, found[1])
        return None

    def forced_context(self, prompt: str, text: str) -> str:
        """The raw text whose next token is a forced verdict: the model's own text, a newline, the prefix."""
        return f"{prompt}{text.rstrip()}\n{self.prefix}"

    def value_context(self, prompt: str, text: str, parsed: Parsed | None) -> str:
        """The raw text whose next token is the verdict: where it was written, or the forced context."""
        return prompt + text[:parsed.start] if parsed is not None else self.forced_context(prompt, text)

    @property
    def force_choice(self) -> tuple[str, tuple[str, ...]]:
        """``SamplingSettings.force_choice``: the engine reads the forced options right after generating."""
        return "\n" + self.prefix, self.options


# ------------------------------------------------------------------------------------------ pairwise (A or B)
@dataclass(frozen=True)
class PairVerdict:
    letter: Literal["A", "B", "tie"]
    method: str  # a parser's name, "forced", "tie" (a forced verdict within the margin) or "unparsed"
    margin: float | None = None  # forced: log p(A) - log p(B) minus the calibration offset (0 when off)


def calibration_offset(margins: Sequence[float]) -> float:
    """The median of forced A-vs-B margins (log p(A) - log p(B)) over a stage.

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


def forced_pair_verdict(margin: float, tie_margin: float) -> PairVerdict:
    """A forced verdict from log p(A) - log p(B): a tie when within ``tie_margin``."""
    if abs(margin) <= tie_margin:
        return PairVerdict("tie", "tie", margin)
    return PairVerdict("A" if margin > 0 else "B", "forced", margin)


def forced_pair_verdicts(margins: Sequence[float], tie_margin: float, calibrate: bool
                         ) -> tuple[float, list[PairVerdict]]:
    """Verdicts from forced margins less the offset (0, or the calibration offset when ``calibrate``)."""
    offset = calibration_offset(margins) if calibrate else 0.0
    return offset, [forced_pair_verdict(m - offset, tie_margin) for m in margins]
