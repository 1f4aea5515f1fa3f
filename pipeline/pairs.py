"""Preference pairs: responses by judge score (with length control) and judgments by meta-judge Elo.

Response pairs (:func:`select_response_pair`), per prompt, over candidates with a score:
with ρ = ``pairs.length_rho``, chosen = the shortest response with score in [(1−ρ)·Smax + ρ·Smin, Smax],
rejected = the longest with score in [Smin, (1−ρ)·Smin + ρ·Smax]. ρ = 0 is plain best vs worst. No pair
when Smax = Smin. With ``unparsed_response: reject`` a response without the thought marker takes the score
:data:`UNPARSED_SCORE` (below any rubric score) so that it can only be rejected.

Verified pairs (:func:`select_verified_pairs`), per prompt with a known answer (IRPO, Pang et al., 2024, §2):
the responses at the highest reward level (``pipeline.rewards.reward_level``) are chosen against those below
it, lowest level first, walked without repeating a pair up to ``pairs.verified_per_prompt``; a prompt whose
responses all share one level (all right or all wrong) gives none and is counted.

Judgment pairs (:func:`select_judgment_pair`), per meta-judged response: chosen = the highest-Elo
judgment, rejected = the lowest, after dropping judgments longer than ``max_judgment_chars`` and judgments
without a score; no pair when the two ratings are equal.

A response cut by ``max_new_tokens`` (``finish_reason: length``) follows ``pairs.truncated_response``: ``drop``
leaves it out of every response and verified pair (an unfinished answer is neither the best nor, only for being
long, the worst); ``keep`` lets it take part like any other. Both are counted in the metrics.

Judge-training pairs (:func:`judge_training_pairs`), per known pair and order: a judgment that prefers the
known-better response chosen over one that does not (stage judge_training made and marked them).

:func:`build_pairs` is the whole step: both kinds of pairs as TRL conversational rows with provenance, and
their metrics.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import judge_training, verifiable
from pipeline.config import JudgeTrainingConfig, PairsConfig
from pipeline.errors import StageError
from pipeline.judge_rules import judge_conversation, response_score
from pipeline.records import (
    Judgment,
    KnownJudgment,
    PreferencePair,
    Rating,
    Reflection,
    Response,
    Verification,
    stable_id,
)

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


def _standardized(values: Sequence[float]) -> list[float]:
    mean = statistics.fmean(values)
    sd = statistics.pstdev(values)
    return [(v - mean) / sd if sd > 0 else 0.0 for v in values]


def select_response_pair_normalized(candidates: Sequence[Candidate], rho: float = 0.0
                                    ) -> tuple[Candidate, Candidate] | None:
    """TPO's length control (Wu et al., 2024, §2.2): s = z(score) - ρ·z(length) over one prompt's responses.

    The highest s is chosen (ties: the shorter, then the earlier), the lowest rejected (ties: the longer, then the
    earlier); no pair when every score is equal or the chosen does not score above the rejected.
    """
    if len(candidates) < 2 or len({c.score for c in candidates}) == 1:
        return None
    z_score = _standardized([c.score for c in candidates])
    z_len = _standardized([float(c.length) for c in candidates])
    s = [zs - rho * zl for zs, zl in zip(z_score, z_len)]
    idx = range(len(candidates))
    best = max(idx, key=lambda i: (s[i], -candidates[i].length, -i))
    worst = min(idx, key=lambda i: (s[i], -candidates[i].length, i))
    chosen, rejected = candidates[best], candidates[worst]
    return (chosen, rejected) if chosen.score > rejected.score else None


def select_verified_pairs(levels: Sequence[tuple[str, int]], per_prompt: int) -> list[tuple[str, str]]:
    """(chosen id, rejected id) pairs of one prompt from ``(response id, reward level)`` in sample order.

    Winners are the responses at the highest level; losers every response below it, lowest level first (a
    wrong answer is rejected before a right one in the wrong format), then in sample order. The walk is
    :func:`pipeline.verifiable.irpo_pairs`: (w0, l0), (w1, l1), ..., then the next unused combinations.
    """
    present = {level for _, level in levels}
    if len(present) < 2:
        return []
    top = max(present)
    winners = [rid for rid, level in levels if level == top]
    losers = [rid for rid, level in sorted(levels, key=lambda x: x[1]) if level < top]
    return verifiable.irpo_pairs(winners, losers, per_prompt)


@dataclass(frozen=True)
class RatedJudgment:
    id: str
    elo: float
    chars: int
    scored: bool = True  # False: the judge's verdict chain read no score (judge.on_unparsed: drop)


def select_judgment_pair(judgments: Sequence[RatedJudgment], max_chars: int = 1100
                         ) -> tuple[RatedJudgment, RatedJudgment] | None:
    """(chosen, rejected) judgments of one response, or None. A judgment without a score or longer than
    ``max_chars`` takes no side."""
    usable = [j for j in judgments if j.chars <= max_chars and j.scored]
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
    ``model_sha256``), computed in the same dtype (provenance ``dtype``, float32 where absent) and carry token
    ids and log-probs; the dpo stage then reuses them as reference log-probs (``pipeline.reference``, where
    that dtype is the trainer's) instead of running the reference model.
    """
    shas = {chosen.provenance.get("model_sha256"), rejected.provenance.get("model_sha256")}
    dtypes = {chosen.provenance.get("dtype", "float32"), rejected.provenance.get("dtype", "float32")}
    sides = {}
    for name, row in (("chosen", chosen), ("rejected", rejected)):
        if row.token_ids is None or row.logprob is None:
            return None
        sides[name] = {"token_ids": row.token_ids, "logprob": row.logprob, "stop_logprob": row.stop_logprob}
    if len(shas) != 1 or None in shas or len(dtypes) != 1:
        return None
    dtype = dtypes.pop()  # named where not float32, as the provenance names it
    return {"model_sha256": shas.pop(), **({"dtype": dtype} if dtype != "float32" else {}), **sides}



# ------------------------------------------------------------------------------------------------ the step
def usable(responses: Sequence[Response], cfg: PairsConfig) -> list[Response]:
    """The responses that may take a side in a response or verified pair: with ``truncated_response: drop``,
    not those cut by ``max_new_tokens``."""
    return [r for r in responses if cfg.truncated_response == "keep" or r.finish_reason != "length"]


def truncation_counts(responses: Sequence[Response], pairs: Sequence[PreferencePair], cfg: PairsConfig
                      ) -> dict[str, int]:
    """How many responses were cut by ``max_new_tokens``, how many of them were left out, and how many sides of
    the response pairs are cut ones (0 under ``drop``)."""
    cut = {r.response_id for r in responses if r.finish_reason == "length"}
    return {"truncated_responses": len(cut), "truncated_dropped": len(cut) if cfg.truncated_response == "drop" else 0,
            "truncated_chosen": sum(p.chosen_id in cut for p in pairs),
            "truncated_rejected": sum(p.rejected_id in cut for p in pairs)}


def response_pairs(responses: Sequence[Response], judgments: Sequence[Judgment], cfg: PairsConfig, key: str
                   ) -> tuple[list[PreferencePair], int, int, int]:
    """Per prompt, the response pair by score: (pairs, prompts whose scores left no pair, prompts whose chosen
    response was longer than ``max_chosen_chars``, prompts)."""
    scores: dict[str, list[float | None]] = defaultdict(list)
    for j in judgments:
        scores[j.response_id].append(j.score)
    by_prompt: dict[str, list[Response]] = defaultdict(list)
    for r in responses:
        by_prompt[r.prompt_id].append(r)
    select = select_response_pair_normalized if cfg.length_control == "normalized" else select_response_pair
    out, no_pair, too_long = [], 0, 0
    for prompt_id, rs in by_prompt.items():
        cands = []
        for r in usable(rs, cfg):
            s = response_score(scores.get(r.response_id, []))
            if r.parse_ok and s is not None:
                cands.append(Candidate(r.response_id, s, len(r.response)))
            elif not r.parse_ok and cfg.unparsed_response == "reject":
                cands.append(Candidate(r.response_id, UNPARSED_SCORE, len(r.output)))
        picked = select(cands, cfg.length_rho)
        if picked is None:
            no_pair += 1
            continue
        if cfg.max_chosen_chars is not None and picked[0].length > cfg.max_chosen_chars:
            too_long += 1
            continue
        chosen, rejected = picked
        rmap = {r.response_id: r for r in rs}
        c, rj = rmap[chosen.id], rmap[rejected.id]
        out.append(PreferencePair(
            pair_id=stable_id("rp", chosen.id, rejected.id), kind="response",
            prompt=[{"role": "user", "content": c.prompt_text}],
            chosen=[{"role": "assistant", "content": c.output}],
            rejected=[{"role": "assistant", "content": rj.output}],
            prompt_id=prompt_id, chosen_id=chosen.id, rejected_id=rejected.id, chosen_score=chosen.score,
            rejected_score=rejected.score, iteration=key,
            provenance={"length_rho": cfg.length_rho, **({"length_control": "normalized"} if
                                                         cfg.length_control == "normalized" else {}),
                        "unparsed_response": cfg.unparsed_response,
                        "chosen_chars": chosen.length, "rejected_chars": rejected.length},
            generated=generation_record(c, rj)))
    return out, no_pair, too_long, len(by_prompt)


def verified_pairs(responses: Sequence[Response], verifications: Sequence[Verification], cfg: PairsConfig,
                   key: str) -> tuple[list[PreferencePair], dict[str, int]]:
    """Per prompt with a known answer, the verified pairs: (pairs, counts of prompts by outcome)."""
    checked = {v.response_id: v for v in verifications}
    by_prompt: dict[str, list[Response]] = defaultdict(list)
    for r in responses:
        if r.response_id in checked:
            by_prompt[r.prompt_id].append(r)
    out: list[PreferencePair] = []
    counts = {"verified_prompts": len(by_prompt), "verified_all_correct": 0, "verified_all_wrong": 0,
              "verified_one_level": 0, "verified_too_few_untruncated": 0}
    for prompt_id, rs in by_prompt.items():
        rs = sorted(usable(rs, cfg), key=lambda r: r.sample_index)
        levels = [(r.response_id, checked[r.response_id].level) for r in rs]
        picked = select_verified_pairs(levels, cfg.verified_per_prompt)
        if not picked:
            correct = [checked[r.response_id].correct for r in rs]
            name = "verified_too_few_untruncated" if len(rs) < 2 else "verified_all_correct" if all(correct) else \
                "verified_all_wrong" if not any(correct) else "verified_one_level"
            counts[name] += 1
            continue
        rmap = {r.response_id: r for r in rs}
        for chosen_id, rejected_id in picked:
            c, rj = rmap[chosen_id], rmap[rejected_id]
            vc, vr = checked[chosen_id], checked[rejected_id]
            out.append(PreferencePair(
                pair_id=stable_id("vp", chosen_id, rejected_id), kind="response",
                prompt=[{"role": "user", "content": c.prompt_text}],
                chosen=[{"role": "assistant", "content": c.output}],
                rejected=[{"role": "assistant", "content": rj.output}],
                prompt_id=prompt_id, chosen_id=chosen_id, rejected_id=rejected_id, chosen_score=float(vc.level),
                rejected_score=float(vr.level), iteration=key,
                provenance={"reward": f"verifier:{vc.verifier}", "chosen_answer": vc.extracted,
                            "chosen_method": vc.method, "rejected_answer": vr.extracted, "rejected_method": vr.method,
                            "rejected_correct": vr.correct, "chosen_chars": len(c.output),
                            "rejected_chars": len(rj.output)},
                generated=generation_record(c, rj)))
    counts["verified_pairs"] = len(out)
    return out, counts


def reflection_pairs(reflections: Sequence[Reflection], per_attempt: int, key: str
                     ) -> tuple[list[PreferencePair], int]:
    """Reflect, Retry, Reward as pairs: per failed attempt, reflections whose retry was right (chosen) against
    those whose retry was wrong (``verifiable.rrr_pairs``); the prompt is the reflection request, the completion
    the reflection only. Returns (pairs, attempts whose retries all agreed)."""
    by_attempt: dict[str, list[Reflection]] = defaultdict(list)
    for rf in reflections:
        by_attempt[rf.response_id].append(rf)
    out, agreed = [], 0
    for rfs in by_attempt.values():
        rfs.sort(key=lambda r: r.reflection_index)
        rmap = {r.reflection_id: r for r in rfs}
        picked = verifiable.rrr_pairs([(r.reflection_id, r.retry_correct) for r in rfs], per_attempt)
        agreed += not picked
        for chosen_id, rejected_id in picked:
            c, rj = rmap[chosen_id], rmap[rejected_id]
            out.append(PreferencePair(
                pair_id=stable_id("fp", chosen_id, rejected_id), kind="reflection",
                prompt=[{"role": "user", "content": c.prompt_text}],
                chosen=[{"role": "assistant", "content": c.text}],
                rejected=[{"role": "assistant", "content": rj.text}],
                prompt_id=c.prompt_id, chosen_id=chosen_id, rejected_id=rejected_id, chosen_score=1.0,
                rejected_score=0.0, iteration=key,
                provenance={"reward": "retry verified", "attempt_id": c.response_id,
                            "chosen_retry_answer": c.retry_extracted, "rejected_retry_answer": rj.retry_extracted},
                generated=generation_record(c, rj)))
    return out, agreed


def judgment_pairs(responses: Sequence[Response], judgments: Sequence[Judgment], ratings: Sequence[Rating],
                   cfg: PairsConfig, key: str, judge_template: str | None = None) -> tuple[list[PreferencePair], int]:
    """Per meta-judged response, the judgment pair by Elo: (pairs, judgments too long to use).

    The pair's prompt is the judge prompt the judgments answered (``judge_template``).
    """
    jmap = {j.judgment_id: j for j in judgments}
    rmap = {r.response_id: r for r in responses}
    per_response: dict[str, list[Rating]] = defaultdict(list)
    for rt in ratings:
        per_response[rt.response_id].append(rt)
    out, too_long = [], 0
    for rid, rts in per_response.items():
        rated = [RatedJudgment(rt.judgment_id, rt.elo, len(jmap[rt.judgment_id].text),
                               jmap[rt.judgment_id].score is not None) for rt in rts]
        too_long += sum(j.chars > cfg.max_judgment_chars for j in rated)
        picked = select_judgment_pair(rated, cfg.max_judgment_chars)
        if picked is None:
            continue
        cj, rj = picked
        r = rmap[rid]
        out.append(PreferencePair(
            pair_id=stable_id("jp", cj.id, rj.id), kind="judgment",
            prompt=judge_conversation(r.instruction, r.response, judge_template),
            chosen=[{"role": "assistant", "content": jmap[cj.id].text}],
            rejected=[{"role": "assistant", "content": jmap[rj.id].text}],
            prompt_id=r.prompt_id, chosen_id=cj.id, rejected_id=rj.id, chosen_score=cj.elo,
            rejected_score=rj.elo, iteration=key,
            provenance={"response_id": rid, "max_judgment_chars": cfg.max_judgment_chars},
            generated=generation_record(jmap[cj.id], jmap[rj.id])))
    return out, too_long


def judge_training_pairs(judgments: Sequence[KnownJudgment], cfg: JudgeTrainingConfig, key: str
                         ) -> tuple[list[PreferencePair], dict[str, Any]]:
    """Judge-training pairs (EvalPlanner's DPO on evaluations; Self-Taught Evaluator): per known pair and order
    (pairwise) or side (pointwise), a correct judgment chosen over an incorrect one of the same prompt, both at
    most ``judge_training.max_chars`` long (:func:`pipeline.judge_training.select_training_pairs`).

    A chosen judgment must have written its verdict (read strictly or flexibly): a forced one is correct only by
    the engine's next-token probabilities, and its text does not teach the format. A forced incorrect judgment
    may be rejected. With ``judge_training.on_unparsed: drop`` an unread judgment takes no side at all."""
    by_id = {j.judgment_id: j for j in judgments}
    items = []
    forced_correct = dropped = 0
    for j in judgments:
        if j.method in ("dropped", "unparsed", "none") and cfg.on_unparsed == "drop":
            dropped += 1
            continue
        if j.correct and j.method not in ("strict", "flexible"):
            forced_correct += 1
            continue
        items.append(judge_training.JudgedItem(id=j.judgment_id, text=j.text, correct=j.correct,
                                               group=f"{j.known_id}:{j.shown}"))
    picked, counts = judge_training.select_training_pairs(items, max_chars=cfg.max_chars,
                                                          per_group=cfg.pairs_per_group, seed=cfg.seed)
    out = []
    for chosen, rejected in picked:
        c, r = by_id[chosen.id], by_id[rejected.id]
        out.append(PreferencePair(
            pair_id=stable_id("tp", c.judgment_id, r.judgment_id), kind="judge_training",
            prompt=[{"role": "user", "content": c.prompt_text}],
            chosen=[{"role": "assistant", "content": c.text}], rejected=[{"role": "assistant", "content": r.text}],
            prompt_id=c.prompt_id, chosen_id=c.judgment_id, rejected_id=r.judgment_id, chosen_score=1.0,
            rejected_score=0.0, iteration=key,
            provenance={"known_id": c.known_id, "source": c.source, "mode": c.mode, "shown": c.shown,
                        "chosen_method": c.method, "rejected_method": r.method,
                        "max_chars": cfg.max_chars},
            generated=generation_record(c, r)))
    by_source: dict[str, int] = defaultdict(int)
    for pair in out:
        by_source[pair.provenance["source"]] += 1
    return out, {**counts.as_dict(), "by_source": dict(sorted(by_source.items())),
                 "forced_correct_left_out": forced_correct, "unread_dropped": dropped}


def _mean_chars(pairs: Sequence[PreferencePair], side: str) -> float:
    return statistics.fmean(len(getattr(p, side)[0]["content"]) for p in pairs) if pairs else 0.0


def build_pairs(responses: Sequence[Response], judgments: Sequence[Judgment], extra: Sequence[Judgment],
                ratings: Sequence[Rating] | None, cfg: PairsConfig, key: str, judge_template: str | None = None,
                verifications: Sequence[Verification] = ()
                ) -> tuple[list[PreferencePair], list[PreferencePair], dict[str, Any]]:
    """The pairs step: response pairs, judgment pairs (when ``ratings`` is given) and their metrics.

    A response's score is the mean of the judge's ``judgments``; the meta-judge's ``extra`` judgments are rated
    like the others but do not change response scores. Responses with a ``verification`` are paired by their
    reward level instead (:func:`verified_pairs`), even when the judge also scored them.
    """
    checked = {v.response_id for v in verifications}
    vp, vcounts = verified_pairs(responses, verifications, cfg, key)
    if not cfg.verified:
        vp, vcounts["verified_pairs"] = [], 0
    judged = [r for r in responses if r.response_id not in checked]
    rp, no_pair, chosen_too_long, prompts = response_pairs(judged, judgments, cfg, key)
    if len(rp) + len(vp) < cfg.min_pairs:
        cut = sum(r.finish_reason == "length" for r in responses) if cfg.truncated_response == "drop" else 0
        raise StageError(
            f"pairs {key}: {len(rp) + len(vp)} response pairs, fewer than pairs.min_pairs={cfg.min_pairs}: "
            + (f"{no_pair} of {prompts} prompts had all scores equal" if prompts else "")
            + (f", {chosen_too_long} a chosen response over pairs.max_chosen_chars" if chosen_too_long else "")
            + (f"{'; ' if prompts else ''}of {vcounts['verified_prompts']} prompts with known answers, "
               f"{vcounts['verified_all_correct']} had every answer right and {vcounts['verified_all_wrong']} every "
               "answer wrong" if vcounts["verified_prompts"] else "")
            + (f"; {cut} of {len(responses)} responses were cut by sample.max_new_tokens and left out "
               "(pairs.truncated_response: drop; raise max_new_tokens)" if cut else "")
            + f" — see metrics/{key}/judge.json and verify.json; try more sample.n or judge.scoring: expected")
    rp = [*rp, *vp]
    cut = truncation_counts(responses, rp, cfg)
    jp, too_long = ([], 0) if ratings is None else judgment_pairs(responses, [*judgments, *extra], ratings, cfg, key,
                                                                   judge_template)
    metrics = {"prompts": prompts + vcounts["verified_prompts"], "response_pairs": len(rp), **vcounts,
               "dropped_equal_scores": no_pair,
               "dropped_chosen_too_long": chosen_too_long, **cut,
               "judgment_pairs": len(jp), "judgments_too_long": too_long, "length_rho": cfg.length_rho,
               "response_chosen_chars": _mean_chars(rp, "chosen"), "response_rejected_chars": _mean_chars(rp, "rejected"),
               "judgment_chosen_chars": _mean_chars(jp, "chosen"), "judgment_rejected_chars": _mean_chars(jp, "rejected"),
               "score_margin_mean": statistics.fmean(p.chosen_score - p.rejected_score for p in rp) if rp else None}
    return rp, jp, metrics
