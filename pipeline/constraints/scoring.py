"""IFEval's strict and loose verdicts over one response, and its four accuracies over many, with standard errors.

Strict: the response is non-empty and the instruction's rule holds (:mod:`.checkers`). Loose (IFEval §3, an
upper bound that forgives formatting noise): the rule holds for any non-empty one of eight variants of the
response: as it is, with every ``*`` removed, without its first line, without its last line, without both, and
each of those three with every ``*`` removed (:data:`LOOSE_VARIANTS`). So a reply opening "Sure, here it is:"
can pass "start with the prompt" loosely, and ``**bold**`` can pass "no more than N capital words".

Accuracies (:func:`accuracy`): prompt-level (every instruction of a prompt followed) and instruction-level (the
share of all instructions followed, the figure IFEval's tables pool over instructions), each strict and loose,
and per instruction type. Prompt-level SEs are over prompts. Instruction-level SEs treat each prompt as a
cluster: the instructions of one prompt share one response, so they are not independent, and a plain SE over
instructions would be too small; we use the linearized SE of a ratio of sums (the cluster-robust SE), which
equals the plain SE over prompts when every prompt has one instruction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.constraints import checkers, spec

# IFEval's eight loose variants, in its order: name -> how the response is changed.
LOOSE_VARIANTS: tuple[str, ...] = ("as written", "without *", "without the first line", "without the last line",
                                   "without the first and last lines", "without * or the first line",
                                   "without * or the last line", "without *, the first and last lines")


@dataclass(frozen=True)
class Outcome:
    """One instruction on one response: followed strictly, followed loosely, and why (with what was measured)."""

    instruction_id: str
    strict: bool
    loose: bool
    detail: str


def loose_variants(response: str) -> list[str]:
    """The eight texts IFEval's loose rule tries (:data:`LOOSE_VARIANTS`); the line cuts are stripped."""
    lines = response.split("\n")
    first, last, both = ("\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(),
                         "\n".join(lines[1:-1]).strip())
    return [response, response.replace("*", ""), first, last, both,
            first.replace("*", ""), last.replace("*", ""), both.replace("*", "")]


def check_response(response: str, instruction_ids: Sequence[str],
                   kwargs: Sequence[Mapping[str, Any] | None]) -> list[Outcome]:
    """Each instruction on ``response``, strict and loose. kwargs may carry nulls (dropped); an unusable one
    raises ValueError naming the instruction (task files are checked on reading, so this means a bug)."""
    if len(instruction_ids) != len(kwargs):
        raise ValueError(f"{len(kwargs)} kwargs objects for {len(instruction_ids)} instructions")
    variants: list[str] | None = None
    outcomes = []
    for n, (instruction_id, kw) in enumerate(zip(instruction_ids, kwargs), start=1):
        try:
            cleaned = checkers.checked_kwargs(instruction_id, kw)
        except ValueError as e:
            raise ValueError(f"instruction {n} ({e})") from None
        strict = checkers.judge(instruction_id, cleaned, response)
        if strict.ok:
            outcomes.append(Outcome(instruction_id, True, True, strict.why))
            continue
        variants = variants or loose_variants(response)
        held = next((k for k, v in enumerate(variants[1:], start=1)
                     if checkers.judge(instruction_id, cleaned, v).ok), None)
        detail = strict.why if held is None else f"{strict.why}; loose: holds {LOOSE_VARIANTS[held]}"
        outcomes.append(Outcome(instruction_id, False, held is not None, detail))
    return outcomes


# --------------------------------------------------------------------------------------------- accuracies
def _over_prompts(values: Sequence[float]) -> dict[str, Any]:
    """Mean and SE (sample SD / sqrt n) of one value per prompt; SE is NaN below two prompts."""
    n = len(values)
    if n == 0:
        return {"mean": math.nan, "se": math.nan, "n": 0}
    mean = sum(values) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n) if n > 1 else math.nan
    return {"mean": mean, "se": se, "n": n}


def _clustered(followed: Sequence[int], counts: Sequence[int]) -> dict[str, Any]:
    """Share of instructions followed, sum(followed) / sum(counts), with the cluster-robust SE over the prompts
    (one cluster each): sqrt(sum((y_i - r m_i)^2) / (c (c - 1))) / mean(m), c the number of prompts; NaN below
    two. ``n`` is the number of instructions."""
    clusters, total = len(counts), sum(counts)
    if total == 0:
        return {"mean": math.nan, "se": math.nan, "n": 0}
    rate = sum(followed) / total
    if clusters < 2:
        return {"mean": rate, "se": math.nan, "n": total}
    spread = sum((y - rate * m) ** 2 for y, m in zip(followed, counts))
    return {"mean": rate, "se": math.sqrt(spread / (clusters * (clusters - 1))) / (total / clusters), "n": total}


def accuracy(per_prompt: Sequence[Sequence[Outcome]]) -> dict[str, Any]:
    """IFEval's four accuracies over prompts (each a list of its instructions' outcomes), and each instruction
    type's strict and loose share (clustered by prompt, as above), types in IFEval's order:
    ``{"prompt_strict": {"mean", "se", "n"}, "prompt_loose", "instruction_strict", "instruction_loose",
    "by_type": {id: {"strict": {...}, "loose": {...}}}}``. A prompt with no instruction is an error."""
    for k, outcomes in enumerate(per_prompt, start=1):
        if not outcomes:
            raise ValueError(f"prompt {k} has no instruction to score")
    out: dict[str, Any] = {}
    for level in ("strict", "loose"):
        out[f"prompt_{level}"] = _over_prompts([float(all(getattr(o, level) for o in p)) for p in per_prompt])
        out[f"instruction_{level}"] = _clustered([sum(getattr(o, level) for o in p) for p in per_prompt],
                                                 [len(p) for p in per_prompt])
    present = {o.instruction_id for p in per_prompt for o in p}
    order = [i for i in spec.INSTRUCTION_IDS if i in present] + sorted(present - set(spec.INSTRUCTION_IDS))
    by_type: dict[str, Any] = {}
    for instruction_id in order:
        mine = [[o for o in p if o.instruction_id == instruction_id] for p in per_prompt]
        mine = [p for p in mine if p]
        by_type[instruction_id] = {level: _clustered([sum(getattr(o, level) for o in p) for p in mine],
                                                     [len(p) for p in mine]) for level in ("strict", "loose")}
    out["by_type"] = by_type
    return out
