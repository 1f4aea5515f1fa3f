"""Preference pairs: responses by judge score (with length control) and judgments by meta-judge Elo.

Response pairs (:func:`select_response_pair`), per prompt, over candidates with a score:
with ρ = ``pairs.length_rho``, chosen = the shortest response with score in [(1−ρ)·Smax + ρ·Smin, Smax],
rejected = the longest with score in [Smin, (1−ρ)·Smin + ρ·Smax]. ρ = 0 is plain best vs worst. No pair
when Smax = Smin. With ``unparsed_response: reject`` a response without the thought marker takes the score
:data:`UNPARSED_SCORE` (below any rubric score) so that it can only be rejected.

Judgment pairs (:func:`select_judgment_pair`), per meta-judged response: chosen = the highest-Elo
judgment, rejected = the lowest, after dropping judgments longer than ``max_judgment_chars``; no pair when
the two ratings are equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

UNPARSED_SCORE = -1.0


@dataclass(frozen=True)
class Candidate:
    id: str
    score: float
    length: int  # characters of what the judge saw (the final response)


def select_response_pair(candidates: Sequence[Candidate], rho: float = 0.0) -> tuple[Candidate, Candidate] | None:
    """(chosen, rejected) for one prompt, or None when every score is equal."""
    if len(candidates) < 2:
        return None
    s_max = max(c.score for c in candidates)
    s_min = min(c.score for c in candidates)
    if s_max == s_min:
        return None
    chosen_floor = (1 - rho) * s_max + rho * s_min
    rejected_ceiling = (1 - rho) * s_min + rho * s_max
    order = {c.id: i for i, c in enumerate(candidates)}
    # Ties: the chosen is the shortest, then the higher score, then the earlier; the rejected the longest,
    # then the lower score, then the earlier.
    chosen = min((c for c in candidates if c.score >= chosen_floor),
                 key=lambda c: (c.length, -c.score, order[c.id]))
    rejected = min((c for c in candidates if c.score <= rejected_ceiling and c.id != chosen.id),
                   key=lambda c: (-c.length, c.score, order[c.id]), default=None)
    if rejected is None or rejected.score >= chosen.score:
        return None
    return chosen, rejected


@dataclass(frozen=True)
class RatedJudgment:
    id: str
    elo: float
    chars: int


def select_judgment_pair(judgments: Sequence[RatedJudgment], max_chars: int = 1100
                         ) -> tuple[RatedJudgment, RatedJudgment] | None:
    """(chosen, rejected) judgments of one response, or None."""
    usable = [j for j in judgments if j.chars <= max_chars]
    if len(usable) < 2:
        return None
    chosen = max(usable, key=lambda j: (j.elo, -usable.index(j)))
    rejected = min(usable, key=lambda j: (j.elo, usable.index(j)))
    if chosen.elo == rejected.elo:
        return None
    return chosen, rejected


def generation_record(chosen: Any, rejected: Any) -> dict[str, Any] | None:
    """What the generating model wrote for both sides of a pair and its raw log-probs, or None.

    ``chosen`` and ``rejected`` are Response or Judgment rows. Both must come from the same model (its
    ``model_sha256``) and carry token ids and log-probs; the dpo stage then reuses them as reference
    log-probs (``pipeline.reference``) instead of running the reference model.
    """
    shas = {chosen.provenance.get("model_sha256"), rejected.provenance.get("model_sha256")}
    sides = {}
    for name, row in (("chosen", chosen), ("rejected", rejected)):
        if row.token_ids is None or row.logprob is None:
            return None
        sides[name] = {"token_ids": row.token_ids, "logprob": row.logprob, "stop_logprob": row.stop_logprob}
    if len(shas) != 1 or None in shas:
        return None
    return {"model_sha256": shas.pop(), **sides}

