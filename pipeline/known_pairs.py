"""Known-preference pairs: two responses to one instruction where which is better is known, not judged.

They are the truth a judge is trained on (``split: train``, from the iteration's own samples) and measured on
(``split: heldout``, a fixed pool). Four sources, each a pure function of rows (no engine is imported here):

- :func:`from_verifications`: per prompt with a known answer, a right answer (``correct``) against a wrong one,
  both sampled from the model; for a constraint instruction (verifier ``constraints``), a response that meets
  every constraint (level 2) against one that breaks some (level < 2). Unlike the verified DPO pairs of
  :func:`pipeline.pairs.select_verified_pairs`, a right answer read only flexibly (level 1) is a better side
  here, never a worse one: the judge is asked which answer is right, not which one kept the format.
- :func:`from_self_taught`: the Self-Taught Evaluator's synthetic pair (Wang et al., 2024, arXiv 2408.02666,
  §3 "Response Pair Construction"): for x, the answer to x beats the answer to a similar but different
  instruction x' the model wrote.
- :func:`from_labelled`: the user's ``data.labelled_pairs``, for measurement only (``heldout``).

:func:`shared_prompts` / :func:`check_heldout_disjoint` keep a training pair off every held-out prompt;
:func:`problems` / :func:`check_rows` read a user's rows before any model loads; :func:`counts` is the metrics.
"""

from __future__ import annotations

import random
import typing
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pipeline.errors import RecordError, StageError
from pipeline.records import KnownPair, KnownSource, LabelledPair, Response, Verification, stable_id

Split = Literal["train", "heldout"]
SOURCES: tuple[str, ...] = typing.get_args(KnownSource)
SPLITS: tuple[str, ...] = typing.get_args(Split)
CONSTRAINTS = "constraints"  # the verifier of open instructions with checkable constraints (pipeline.rewards)
SKIP_REASONS = ("truncated", "no_final_response", "identical_text", "no_right", "no_wrong")
MAX_REASON_CHARS = 200
_SHORT_ANSWER = 40  # extracted answers up to this long are quoted in a verified pair's reason


def normalized(text: str) -> str:
    """``text`` with runs of whitespace made one space, trimmed and case-folded: what "the same" means when an
    instruction is compared with its variant or with another split's."""
    return " ".join(text.split()).casefold()


def known_id(source: str, prompt_id: str, better_id: str | None, worse_id: str | None, *content: Any) -> str:
    """The id of a known pair: its source, prompt and the rows of its two sides (plus ``content`` where the
    sides have no rows of their own)."""
    return stable_id("kp", source, prompt_id, better_id, worse_id, *content)


# ------------------------------------------------------------------------------------ from verifications
def _is_constraints(v: Verification) -> bool:
    return v.verifier == CONSTRAINTS


def _is_better(v: Verification) -> bool:
    """A response at the top of its verifier's reward: every constraint holds, or the answer is right."""
    return v.level == 2 if _is_constraints(v) else v.correct


def _failed_constraints(v: Verification) -> list[str]:
    return [str(c.get("instruction_id")) for c in v.constraints or [] if not c.get("strict")]


def _verified_reason(better: Verification, worse: Verification) -> str:
    """Why the better side is better, in a few words: the constraints the worse one breaks, or what was wrong
    with the worse answer (with both answers, when they are short enough to read at a glance)."""
    if _is_constraints(worse):
        failed = _failed_constraints(worse)
        reason = f"worse breaks {', '.join(failed)}" if failed else f"worse breaks a constraint: {worse.detail}"
    else:
        reason = worse.detail or "wrong answer"
        answers = (worse.extracted, better.extracted)
        if worse.verifier != "python_tests" and all(a is not None and len(a) <= _SHORT_ANSWER for a in answers):
            reason += f": {worse.extracted} against {better.extracted}"
    return reason[:MAX_REASON_CHARS]


def _verified_pair(b: Response, w: Response, vb: Verification, vw: Verification, split: Split, seed: int,
                   iteration: str | None) -> KnownPair:
    source = CONSTRAINTS if _is_constraints(vb) else "verified"
    cut = [side for side, r in (("better", b), ("worse", w)) if r.finish_reason == "length"]
    return KnownPair(
        known_id=known_id(source, b.prompt_id, b.response_id, w.response_id), prompt_id=b.prompt_id,
        instruction=b.instruction, better=b.response, worse=w.response, source=source,  # type: ignore[arg-type]
        split=split, better_id=b.response_id, worse_id=w.response_id, reason=_verified_reason(vb, vw),
        provenance={"iteration": iteration, "verifier": vb.verifier, "seed": seed,
                    "better_level": vb.level, "worse_level": vw.level,
                    "better_method": vb.method, "worse_method": vw.method,
                    "better_sample_index": b.sample_index, "worse_sample_index": w.sample_index,
                    **({"truncated": cut} if cut else {})})


def pick_sides(better: Sequence[Response], worse: Sequence[Response], per_prompt: int, rng: random.Random
               ) -> tuple[list[tuple[Response, Response]], int]:
    """One prompt's (better, worse) pairs and how many were skipped for identical texts.

    Each side is put in sample order and shuffled by ``rng`` (the better side first), then the two are walked
    in step: (b0, w0), (b1, w1), ... until ``per_prompt`` pairs or the shorter side runs out, so no response
    takes part in two pairs. A step whose two final texts are the same after stripping is skipped (both of its
    responses with it) and does not count against ``per_prompt``.
    """
    def order(rs: Sequence[Response]) -> list[Response]:
        return sorted(rs, key=lambda r: (r.sample_index, r.response_id))

    good, bad = order(better), order(worse)
    rng.shuffle(good)
    rng.shuffle(bad)
    picked: list[tuple[Response, Response]] = []
    identical = 0
    for b, w in zip(good, bad):
        if len(picked) >= per_prompt:
            break
        if b.response.strip() == w.response.strip():
            identical += 1
            continue
        picked.append((b, w))
    return picked, identical


def from_verifications(responses: Sequence[Response], verifications: Sequence[Verification], *, split: Split,
                       per_prompt: int, seed: int, iteration: str | None = None, keep_truncated: bool = False
                       ) -> tuple[list[KnownPair], dict[str, Any]]:
    """Known pairs from the verify step: per prompt, a better and a worse response the model wrote to it.

    Better is a right answer (``correct``), or for a constraint instruction a response meeting every constraint
    (level 2); worse is a wrong answer, or one breaking some constraint (level < 2). Each side is the final
    response (the thought apart), as the judge sees it. Responses without a verification are left out (the
    judge scores them); so are responses cut by ``max_new_tokens`` unless ``keep_truncated``, and responses
    with no final text. Per prompt up to ``per_prompt`` pairs, chosen by :func:`pick_sides` with a
    ``random.Random`` seeded by ``"{seed}:{prompt_id}"`` (the same pairs on every run and machine, whatever
    other prompts there are). Prompts come in the order of their first response.

    Returns (pairs, counts): ``prompts`` (prompts with a verified response), ``prompts_with_pairs``, ``pairs``
    per source (``verified``, ``constraints``) and ``skipped`` by reason: ``truncated`` and
    ``no_final_response`` count responses, ``identical_text`` pairs, ``no_right`` and ``no_wrong`` prompts
    (after the responses were left out; a prompt with neither counts as ``no_right``).
    """
    if per_prompt < 0:
        raise ValueError(f"per_prompt must be at least 0, got {per_prompt}")
    checked = {v.response_id: v for v in verifications}
    by_prompt: dict[str, list[Response]] = defaultdict(list)
    for r in responses:
        if r.response_id in checked:
            by_prompt[r.prompt_id].append(r)
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    out: list[KnownPair] = []
    with_pairs = 0
    for prompt_id, rs in by_prompt.items():
        kept = []
        for r in rs:
            if r.finish_reason == "length" and not keep_truncated:
                skipped["truncated"] += 1
            elif not r.response.strip():
                skipped["no_final_response"] += 1
            else:
                kept.append(r)
        better = [r for r in kept if _is_better(checked[r.response_id])]
        worse = [r for r in kept if not _is_better(checked[r.response_id])]
        if not better or not worse:
            skipped["no_right" if not better else "no_wrong"] += 1
            continue
        picked, identical = pick_sides(better, worse, per_prompt, random.Random(f"{seed}:{prompt_id}"))
        skipped["identical_text"] += identical
        with_pairs += bool(picked)
        out.extend(_verified_pair(b, w, checked[b.response_id], checked[w.response_id], split, seed, iteration)
                   for b, w in picked)
    made = Counter(p.source for p in out)
    return out, {"prompts": len(by_prompt), "prompts_with_pairs": with_pairs,
                 "pairs": {"verified": made["verified"], CONSTRAINTS: made[CONSTRAINTS]}, "skipped": skipped}


# ------------------------------------------------------------------------------------------- labelled
def from_labelled(pairs: Sequence[LabelledPair]) -> list[KnownPair]:
    """The user's labelled pairs as known pairs: held out (the judge is measured on them, never trained), the
    preferred side better. ``provenance`` keeps the row's id, which side was shown as A and its category."""
    out = []
    for p in pairs:
        better, worse = (p.response_a, p.response_b) if p.preferred == "A" else (p.response_b, p.response_a)
        out.append(KnownPair(
            known_id=known_id("labelled", p.id, None, None), prompt_id=p.id, instruction=p.instruction,
            better=better, worse=worse, source="labelled", split="heldout", reason=p.reason,
            provenance={"labelled_id": p.id, "preferred": p.preferred, "category": p.category}))
    return out


# ----------------------------------------------------------------------------------------- self-taught
def from_self_taught(prompt_id: str, instruction: str, answer_to_x: str, answer_to_x_prime: str, *,
                     similar_instruction: str, split: Split, better_id: str | None = None,
                     worse_id: str | None = None, provenance: Mapping[str, Any] | None = None) -> KnownPair | None:
    """The Self-Taught Evaluator's pair for instruction x: the answer to x (better) against the answer to x',
    the similar but different instruction the model wrote (worse: it answers another question).

    None when there is nothing to prefer: x' is x, the two answers are the same text, or x' or an answer is
    blank (all compared after :func:`normalized`: whitespace and case do not make a variant). ``reason``
    quotes x'; ``provenance`` is the caller's, plus x'.
    """
    texts = (similar_instruction, answer_to_x, answer_to_x_prime)
    if any(not t.strip() for t in texts) or normalized(similar_instruction) == normalized(instruction) or \
            normalized(answer_to_x) == normalized(answer_to_x_prime):
        return None
    return KnownPair(
        known_id=known_id("self_taught", prompt_id, better_id, worse_id, similar_instruction, answer_to_x,
                          answer_to_x_prime),
        prompt_id=prompt_id, instruction=instruction, better=answer_to_x, worse=answer_to_x_prime,
        source="self_taught", split=split, better_id=better_id, worse_id=worse_id,
        reason=f"worse answers another instruction: {similar_instruction}"[:MAX_REASON_CHARS],
        provenance={**(provenance or {}), "similar_instruction": similar_instruction})


# ------------------------------------------------------------------------------------- splits and checks
def shared_prompts(train: Iterable[KnownPair], heldout: Iterable[KnownPair]) -> list[str]:
    """The prompt ids of ``train`` pairs that share a prompt with a ``heldout`` pair (the same prompt id, or the
    same instruction after :func:`normalized`), sorted; empty when the splits are disjoint."""
    held = list(heldout)
    ids = {p.prompt_id for p in held}
    instructions = {normalized(p.instruction) for p in held}
    return sorted({p.prompt_id for p in train if p.prompt_id in ids or normalized(p.instruction) in instructions})


def check_heldout_disjoint(train: Iterable[KnownPair], heldout: Iterable[KnownPair]) -> None:
    """Stop (one-line :class:`StageError`) when a training pair shares a prompt with a held-out one: a judge
    trained on a prompt it is measured on would report its memory, not its judgment."""
    shared = shared_prompts(train, heldout)
    if shared:
        more = f" (+{len(shared) - 3} more)" if len(shared) > 3 else ""
        raise StageError(f"known pairs: {len(shared)} training prompts are also held out: "
                         f"{', '.join(shared[:3])}{more} — leave them out of the training pairs")


def counts(known_pairs: Iterable[KnownPair]) -> dict[str, Any]:
    """How many pairs, by source, by split and by source then split (every source and split named, 0 where none,
    so that the metrics of two runs line up)."""
    rows = list(known_pairs)
    both = Counter((p.source, p.split) for p in rows)
    return {"pairs": len(rows),
            "by_source": {s: sum(both[s, sp] for sp in SPLITS) for s in SOURCES},
            "by_split": {sp: sum(both[s, sp] for s in SOURCES) for sp in SPLITS},
            "by_source_split": {s: {sp: both[s, sp] for sp in SPLITS} for s in SOURCES}}


def problems(pairs: Sequence[KnownPair], name: str = "known pairs") -> list[str]:
    """One line per bad row of known pairs from a user's file (or any rows not read through
    :meth:`KnownPair.from_dict`): a repeated ``known_id``, the same text on both sides, a blank side or
    instruction, an unknown source or split, one row on both sides, a prompt in both splits. Rows count from 1."""
    out: list[str] = []
    first: dict[str, int] = {}
    for i, p in enumerate(pairs, start=1):
        where = f'{name}: row {i} (known_id "{p.known_id}"): '
        if p.known_id in first:
            out.append(f"{where}duplicate known_id (first in row {first[p.known_id]})")
        else:
            first[p.known_id] = i
        blank = [f for f in ("known_id", "prompt_id", "instruction", "better", "worse") if not getattr(p, f).strip()]
        if blank:
            out.append(f"{where}{', '.join(blank)} empty")
        elif p.better.strip() == p.worse.strip():
            out.append(f"{where}better and worse are the same text: nothing to prefer")
        if p.source not in SOURCES:
            out.append(f'{where}source "{p.source}" is not one of {", ".join(SOURCES)}')
        if p.split not in SPLITS:
            out.append(f'{where}split "{p.split}" is not one of {", ".join(SPLITS)}')
        if p.better_id is not None and p.better_id == p.worse_id:
            out.append(f'{where}better_id and worse_id are both "{p.better_id}"')
    for prompt_id in shared_prompts([p for p in pairs if p.split == "train"], [p for p in pairs if p.split == "heldout"]):
        out.append(f'{name}: prompt "{prompt_id}" has train pairs and shares its prompt with heldout pairs')
    return out


def check_rows(pairs: Sequence[KnownPair], name: str = "known pairs") -> None:
    """Stop before any model loads when :func:`problems` finds one: its first line, and how many more."""
    found = problems(pairs, name)
    if found:
        more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
        raise RecordError(f"{found[0]}{more}")
