"""The judge learns from the truth: which judgments of a known pair are correct, the judge-training pairs made
from them, and the judge's accuracy on known pairs. Pure rules; this module imports no engine.

A known pair (``pipeline.records.KnownPair``) is two responses to one instruction where the better one is known.
The model judges it in two modes:

- pairwise: it sees both responses, in both orders (the better shown as A, then as B), and names a winner:
  ``"A"``, ``"B"``, ``"tie"``, or None when no verdict could be read;
- pointwise: the 5-point judge (``pipeline.judge_rules``) scores each side on its own, K judgments per side;
  a score is a float, or None when none could be read.

Correctness (:func:`pairwise_correct`, :func:`pointwise_correct`):

- a pairwise judgment is correct iff its verdict names the side the better response was shown as; a tie or
  no verdict is not correct;
- a pointwise judgment of one side is correct iff its score ranks that side the right way against the mean
  score the judge gave the other side over that side's readable judgments: for the better side, its score is
  strictly above that mean; for the worse side, strictly below. An unreadable score, or an other side with no
  readable score at all, is not correct; a score equal to the mean is not correct.

Judge-training pairs (:func:`select_training_pairs`, EvalPlanner, Saha et al. 2025, arXiv 2501.18099: DPO on
correct against incorrect evaluations of the same input): within one group (the judgments of one known pair in
one order, pairwise, or of one side, pointwise), a correct judgment is chosen against an incorrect one; both at
most ``max_chars`` characters long, as Meta-Rewarding's judgment pairs are (``pairs.max_judgment_chars``).

Accuracy (:func:`accuracy`): a known pair is the unit, its score the mean over its decisions (its two orders,
pairwise), with a standard error clustered by prompt (:func:`clustered_mean`), per source and overall, on the
pairs whose sides share their format (:func:`format_signature`) and on those where the better side is the
longer or the shorter one.
"""

from __future__ import annotations

import math
import random
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

Mode = Literal["pairwise", "pointwise"]
MODES: tuple[Mode, ...] = ("pairwise", "pointwise")
PAIRWISE_VERDICTS = ("A", "B", "tie")


# ------------------------------------------------------------------------------------------ correctness
def pairwise_correct(better_shown_as: Literal["A", "B"], verdict: str | None) -> bool:
    """Whether a pairwise verdict names the known-better side: ``verdict == better_shown_as``.

    ``better_shown_as`` is the letter the better response was shown under. A ``"tie"`` or no verdict (None) is
    not correct. Any other value is a caller's bug and raises ValueError (a verdict chain yields A, B or tie).
    """
    if better_shown_as not in ("A", "B"):
        raise ValueError(f"better_shown_as must be 'A' or 'B', not {better_shown_as!r}")
    if verdict is not None and verdict not in PAIRWISE_VERDICTS:
        raise ValueError(f"a pairwise verdict is 'A', 'B', 'tie' or None, not {verdict!r}")
    return verdict == better_shown_as


def pointwise_correct(side: Literal["better", "worse"], score: float | None,
                      other_side_scores: Sequence[float | None]) -> bool:
    """Whether a pointwise score of one side of a known pair ranks that side the right way.

    With m = the mean of the other side's readable scores (None and NaN are unreadable): for ``side="better"``
    correct iff ``score > m``; for ``side="worse"`` correct iff ``score < m``. A score equal to m is not correct
    (it does not separate the sides); an unreadable ``score``, or an other side with no readable score, is not
    correct.
    """
    if side not in ("better", "worse"):
        raise ValueError(f"side must be 'better' or 'worse', not {side!r}")
    others = [s for s in other_side_scores if s is not None and not math.isnan(s)]
    if score is None or math.isnan(score) or not others:
        return False
    mean = statistics.fmean(others)
    return score > mean if side == "better" else score < mean


# ------------------------------------------------------------------------------------------ training pairs
@dataclass(frozen=True)
class JudgedItem:
    """One judgment of a known pair, as the pair selection sees it (independent of engine rows).

    ``group`` names what the judgment judged: the known pair and the order (pairwise) or the side (pointwise),
    e.g. ``"kp-1f3a:better=A"``; only judgments of one group are paired. ``chars`` is what the length cap counts:
    the characters of ``text`` unless given."""

    id: str
    text: str
    correct: bool
    group: str
    chars: int = -1  # -1: len(text)

    def __post_init__(self) -> None:
        if self.chars < -1:
            raise ValueError(f"judgment {self.id!r}: chars must be >= 0, not {self.chars}")
        if self.chars == -1:
            object.__setattr__(self, "chars", len(self.text))


@dataclass(frozen=True)
class SelectionCounts:
    """What :func:`select_training_pairs` found: ``groups``; ``groups_with_both`` (a correct and an incorrect
    judgment, before the length cap); ``groups_all_correct`` and ``groups_all_incorrect`` (nothing to learn
    from: the judge was consistent); ``judgments_too_long`` (over ``max_chars``, left out);
    ``groups_lost_to_length`` (had both kinds, but not once the long ones were left out); ``pairs``."""

    groups: int = 0
    groups_with_both: int = 0
    groups_all_correct: int = 0
    groups_all_incorrect: int = 0
    judgments_too_long: int = 0
    groups_lost_to_length: int = 0
    pairs: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def select_training_pairs(items: Iterable[JudgedItem], *, max_chars: int | None, per_group: int, seed: int
                          ) -> tuple[list[tuple[JudgedItem, JudgedItem]], SelectionCounts]:
    """Judge-training pairs (chosen, rejected): a correct judgment against an incorrect one of the same group.

    Per group (in sorted order of ``group``): judgments longer than ``max_chars`` take no side (None: no cap);
    the correct and the incorrect ones, each sorted by id, are shuffled by a generator seeded with
    ``(seed, group)`` and zipped: pair i is (i-th correct, i-th incorrect), for
    min(#correct, #incorrect, ``per_group``) pairs. So no judgment is used twice, the pairs do not depend on
    the order ``items`` come in, and adding a group changes no other group's pairs. Each id must be unique.
    """
    if per_group < 1:
        raise ValueError(f"per_group must be at least 1, not {per_group}")
    if max_chars is not None and max_chars < 1:
        raise ValueError(f"max_chars must be at least 1 (or None: no cap), not {max_chars}")
    groups: dict[str, list[JudgedItem]] = defaultdict(list)
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"judgment {item.id!r} given twice: each judgment takes part once")
        seen.add(item.id)
        groups[item.group].append(item)
    pairs: list[tuple[JudgedItem, JudgedItem]] = []
    counts: defaultdict[str, int] = defaultdict(int)
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda j: j.id)
        has_good, has_bad = any(j.correct for j in members), any(not j.correct for j in members)
        counts["groups_with_both"] += has_good and has_bad
        counts["groups_all_correct"] += not has_bad
        counts["groups_all_incorrect"] += not has_good
        fit = [j for j in members if max_chars is None or j.chars <= max_chars]
        counts["judgments_too_long"] += len(members) - len(fit)
        good = [j for j in fit if j.correct]
        bad = [j for j in fit if not j.correct]
        # A string seed is hashed with SHA-512 by `random`, so this is the same in every process.
        rng = random.Random(f"{seed}\x00{key}")
        rng.shuffle(good)
        rng.shuffle(bad)
        k = min(len(good), len(bad), per_group)
        counts["groups_lost_to_length"] += has_good and has_bad and k == 0
        pairs.extend(zip(good[:k], bad[:k]))
    return pairs, SelectionCounts(groups=len(groups), pairs=len(pairs), **counts)


# ------------------------------------------------------------------------------------------ accuracy
@dataclass(frozen=True)
class Decision:
    """One decision of the judge on a known pair: one order (pairwise) or one side (pointwise).

    ``correct`` follows :func:`pairwise_correct` / :func:`pointwise_correct`; ``tie`` is a tie verdict
    (pairwise) or a score equal to the other side's mean (pointwise); ``readable`` is False when no verdict or
    score was read (then neither correct nor a tie). ``better_shown_first``: pairwise only, whether the better
    response was shown as A. ``better_chars`` / ``worse_chars`` and ``format_matched``
    (:func:`format_matched` of the two sides) describe the known pair, the same on each of its decisions."""

    known_id: str
    prompt_id: str
    source: str
    mode: Mode
    correct: bool
    tie: bool
    better_chars: int
    worse_chars: int
    format_matched: bool
    better_shown_first: bool | None = None
    readable: bool = True

    def __post_init__(self) -> None:
        where = f"decision on {self.known_id!r} ({self.mode})"
        if self.mode not in MODES:
            raise ValueError(f"{where}: mode must be one of {MODES}")
        if (self.mode == "pairwise") != (self.better_shown_first is not None):
            raise ValueError(f"{where}: better_shown_first is given for pairwise decisions and only for them")
        if self.correct and self.tie:
            raise ValueError(f"{where}: a tie is not correct")
        if not self.readable and (self.correct or self.tie):
            raise ValueError(f"{where}: an unreadable decision is neither correct nor a tie")


def clustered_mean(values: Sequence[float], clusters: Sequence[str]) -> tuple[float | None, float | None]:
    """The mean of ``values`` and its standard error clustered by ``clusters`` (the prompt of each value).

    With n values y_i, their mean ȳ, and per cluster g its n_g values and their mean ȳ_g, the cluster-robust
    (CR0, sandwich) variance of ȳ is

        Var(ȳ) = Σ_g (Σ_{i∈g} (y_i − ȳ))² / n² = Σ_g n_g² (ȳ_g − ȳ)² / n²,

    i.e. each cluster's mean is one observation weighted by its count. When every cluster holds one value this
    is Σ_i (y_i − ȳ)² / n², the population variance over n: p(1 − p)/n for 0/1 values with mean p. Values
    within one prompt are not independent, which the unclustered formula would pretend. (None, None) for no
    values; the SE is None with fewer than two clusters (one cluster leaves no spread between clusters to
    measure; the formula would give 0).
    """
    if len(values) != len(clusters):
        raise ValueError(f"{len(values)} values but {len(clusters)} clusters")
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    deviation: dict[str, float] = defaultdict(float)
    for y, g in zip(values, clusters):
        deviation[g] += y - mean
    if len(deviation) < 2:
        return mean, None
    return mean, math.sqrt(math.fsum(d * d for d in deviation.values())) / n


def _pair_values(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """One entry per known pair: its value (the mean of its decisions' correctness), whether every decision was
    right, and what describes the pair. A pairwise pair has as many decisions in each order (one, or K sampled
    judgments per order), so a judge that only ever names one position scores 0.5 on it."""
    by_pair: dict[str, list[Decision]] = defaultdict(list)
    for d in decisions:
        by_pair[d.known_id].append(d)
    out = []
    for known_id, ds in by_pair.items():
        first = ds[0]
        described = {(d.prompt_id, d.source, d.better_chars, d.worse_chars, d.format_matched) for d in ds}
        if len(described) > 1:
            raise ValueError(f"known pair {known_id!r} ({first.mode}): its decisions disagree on prompt, source, "
                             "lengths or format")
        shown_first = sum(bool(d.better_shown_first) for d in ds)
        if first.mode == "pairwise" and (shown_first == 0 or 2 * shown_first != len(ds)):
            raise ValueError(f"known pair {known_id!r}: a pairwise pair is judged as often in each order (better "
                             f"shown first and second), got {shown_first} and {len(ds) - shown_first} decisions")
        out.append({"value": sum(d.correct for d in ds) / len(ds), "all_right": all(d.correct for d in ds),
                    "prompt_id": first.prompt_id, "better_chars": first.better_chars,
                    "worse_chars": first.worse_chars, "format_matched": first.format_matched})
    return out


def _subset(pairs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    mean, se = clustered_mean([p["value"] for p in pairs], [p["prompt_id"] for p in pairs])
    return {"n": len(pairs), "prompts": len({p["prompt_id"] for p in pairs}), "accuracy": mean, "accuracy_se": se}


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _summary(decisions: Sequence[Decision], mode: Mode) -> dict[str, Any]:
    pairs = _pair_values(decisions)
    out = _subset(pairs)
    out["decisions"] = len(decisions)
    out["both_right"] = _rate(sum(p["all_right"] for p in pairs), len(pairs))
    out["tie_rate"] = _rate(sum(d.tie for d in decisions), len(decisions))
    out["unreadable_rate"] = _rate(sum(not d.readable for d in decisions), len(decisions))
    if mode == "pairwise":
        decided = [d for d in decisions if d.readable and not d.tie]
        # A decided verdict chose the side shown first when it was right and the better was first, or wrong
        # and the better was second.
        first = sum(d.correct == d.better_shown_first for d in decided)
        out["decided"] = len(decided)
        out["position_bias"] = _rate(first, len(decided))
    out["format_matched"] = _subset([p for p in pairs if p["format_matched"]])
    out["better_longer"] = _subset([p for p in pairs if p["better_chars"] > p["worse_chars"]])
    out["better_shorter"] = _subset([p for p in pairs if p["better_chars"] < p["worse_chars"]])
    return out


def accuracy(items: Iterable[Decision]) -> dict[str, dict[str, Any]]:
    """The judge's accuracy on known pairs, per mode: ``{mode: {"overall": summary, "by_source": {source:
    summary}}}`` for both modes, every source seen in ``items`` under each mode (a mode or source without
    decisions reports n 0).

    A known pair is the unit. Its value is the mean correctness of its decisions in that mode: pairwise, its two
    orders (exactly one decision with the better shown first and one with it shown second), so a pair right in
    one order only counts 0.5; pointwise, its sides. A summary holds:

    - ``n`` known pairs, ``prompts``, ``decisions``;
    - ``accuracy``: the mean of the pair values, and ``accuracy_se``: its standard error clustered by prompt
      (:func:`clustered_mean`);
    - ``both_right``: the share of pairs whose every decision is right (pairwise: both orders);
    - ``tie_rate`` and ``unreadable_rate``: shares of decisions;
    - pairwise only, ``position_bias``: of the ``decided`` verdicts (readable, not a tie), the share that chose
      the side shown first (0.5 is unbiased);
    - the same ``n``, ``prompts``, ``accuracy`` and ``accuracy_se`` on subsets of the pairs: ``format_matched``
      (both sides share their :func:`format_signature`, so format alone cannot pick the winner),
      ``better_longer`` (``better_chars > worse_chars``) and ``better_shorter`` (``better_chars <
      worse_chars``).

    Every rate of an empty set is None, never a made-up number.
    """
    decisions = list(items)
    sources = sorted({d.source for d in decisions})
    out: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        ds = [d for d in decisions if d.mode == mode]
        out[mode] = {"overall": _summary(ds, mode),
                     "by_source": {s: _summary([d for d in ds if d.source == s], mode) for s in sources}}
    return out


# ------------------------------------------------------------------------------------------ format
class Format(NamedTuple):
    """The coarse format of a response (:func:`format_signature`)."""

    final_answer: bool  # a line "Final answer: ..." (any case, markdown emphasis allowed around it)
    code_block: bool  # a fenced code block (``` or ~~~)
    listed: bool  # a bulleted ("-", "*", "+") or numbered ("1." or "1)") list item, outside code
    headings: bool  # a markdown heading ("# " to "###### "), outside code
    paragraphs: Literal["none", "one", "several"]  # blocks of text between blank lines, a code block one block


_FINAL_ANSWER = re.compile(r"^[ \t*_#>]*final answer[ \t*_]*:", re.IGNORECASE | re.MULTILINE)
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+]|\d{1,3}[.)])[ \t]+\S")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+\S")


def format_signature(text: str) -> Format:
    """The coarse format of ``text``, a tuple (:class:`Format`): whether it has a ``Final answer:`` line, a
    fenced code block, a list, markdown headings, and whether it is one paragraph or several.

    Lines inside a fenced block are code: a ``# comment`` there is no heading and ``- x`` no list item; an
    unclosed fence runs to the end. Paragraphs are the runs of non-blank lines, a whole code block counting as
    one line of its run. Meant to compare two answers to one instruction, not to describe markdown fully.
    """
    prose: list[str] = []  # the lines outside code, a code block replaced by one marker line
    fence: str | None = None
    code = False
    for line in text.splitlines():
        opened = _FENCE.match(line)
        if fence is None and opened:
            fence, code = opened.group(1)[0], True
            prose.append("\x00code")
        elif fence is not None:
            if opened and not line.strip().strip(fence):  # only the same fence character closes it
                fence = None
        else:
            prose.append(line)
    blocks = 0
    in_block = False
    for line in prose:
        if line.strip():
            blocks += not in_block
            in_block = True
        else:
            in_block = False
    return Format(final_answer=bool(_FINAL_ANSWER.search("\n".join(prose))), code_block=code,
                  listed=any(_LIST_ITEM.match(line) for line in prose),
                  headings=any(_HEADING.match(line) for line in prose),
                  paragraphs="none" if blocks == 0 else "one" if blocks == 1 else "several")


def format_matched(a: str, b: str) -> bool:
    """Whether two responses share their coarse format (:func:`format_signature`)."""
    return format_signature(a) == format_signature(b)
