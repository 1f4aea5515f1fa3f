"""Forced verdicts: what a model would write after a verdict's prefix, read from an engine's next-token log-probs.

Where no parser of a :class:`pipeline.verdicts.Chain` reads a verdict, the chain's prefix is appended to the
model's own text and the engine scores each option there (:func:`option_logprobs`). :func:`pairwise_verdicts`
turns those of an A-vs-B verdict into :class:`pipeline.verdicts.PairVerdict` rows (a tie within a margin,
optionally calibrated). This is the engine-facing half of the verdict chain, imported by the generating steps
only; the rules themselves (``pipeline.verdicts``) import no engine.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.engines.base import Conversation, Engine, NoLogprobsError
from pipeline.verdicts import Chain, PairVerdict, Parsed, forced_pair_verdicts


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
