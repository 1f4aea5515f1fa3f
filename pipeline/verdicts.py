"""One declared chain for every verdict a model writes: strict parser, flexible parser, then forced (or dropped).

The judge (a score 0-5), the meta-judge (judgment A or B) and the evaluator (response A, B or a tie) all end
their text with a verdict in a fixed format. Each declares a :class:`Chain`, the way lm-evaluation-harness
declares a ``filter_list``: its parsers in order (each a name and a function from text to the value and where
it starts), the prefix that introduces the verdict, and the options a forced verdict chooses among.

:func:`parse` tries the parsers in order. What none of them reads is *forced*: the chain's prefix is appended
to the model's own text (:meth:`Chain.forced_context`, the one place that context is built) and the option
with the highest next-token probability is taken (:func:`option_logprobs` asks the engine). Forcing is this
project's extension for small models; a chain can instead drop what does not parse.

The pairwise verdict that the meta-judge and the evaluator share (log p(A) - log p(B), a tie within a margin,
optional calibration) is :func:`pairwise_verdicts`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pipeline.engines.base import Conversation, Engine, NoLogprobsError

Parser = Callable[[str], tuple[str, int] | None]  # text -> (the option as written, its character offset)


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


def option_logprobs(chain: Chain, engine: Engine, conversations: Sequence[Conversation], texts: Sequence[str],
                    parsed: Sequence[Parsed | None], which: Sequence[int],
                    known: Sequence[list[float] | None] | None = None) -> dict[int, list[float]]:
    """For each index in ``which``, the log-prob of every option at its :meth:`Chain.value_context`.

    ``known`` holds log-probs the engine already read from its generation cache (``Completion.choice_logprobs``,
    forced contexts only); only the rest are scored.
    """
    out = {i: list(known[i]) for i in which if known is not None and known[i] is not None}
    rest = [i for i in which if i not in out]
    if rest:
        contexts = [chain.value_context(engine.format_chat(conversations[i]), texts[i], parsed[i]) for i in rest]
        out.update(zip(rest, engine.choice_logprobs(contexts, chain.options)))
    return out


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


def pairwise_verdicts(chain: Chain, engine: Engine, conversations: Sequence[Conversation], texts: Sequence[str],
                      tie_margin: float, calibrate: bool = False,
                      known: Sequence[list[float] | None] | None = None) -> tuple[list[PairVerdict], float]:
    """Parse each A-vs-B verdict, or force it from log p(A) - log p(B); return the verdicts and the offset.

    ``known``: log p(A), log p(B) the engine read from its generation cache, where it could. An engine with no
    log-probs (an OpenAI-compatible server) leaves unparsed verdicts as ``tie`` / ``unparsed``; a chain that does
    not force leaves them as ``tie`` / its ``on_unparsed`` (``no_win``).
    """
    parsed = [chain.parse(t) for t in texts]
    out: list[PairVerdict | None] = [None if p is None else PairVerdict(p.value, p.method)  # type: ignore[arg-type]
                                     for p in parsed]
    need = [i for i, p in enumerate(parsed) if p is None]
    offset = 0.0
    if need and chain.on_unparsed == "force":
        try:
            logprobs = option_logprobs(chain, engine, conversations, texts, parsed, need, known)
        except NoLogprobsError:
            logprobs = None
        if logprobs is not None:
            offset, forced = forced_pair_verdicts([logprobs[i][0] - logprobs[i][1] for i in need], tie_margin,
                                                  calibrate)
            for i, v in zip(need, forced):
                out[i] = v
    fallback = "unparsed" if chain.on_unparsed == "force" else chain.on_unparsed  # "unparsed": no log-probs
    return [v if v is not None else PairVerdict("tie", fallback) for v in out], offset
