"""Where a response's reward comes from when its prompt has a known answer: a verifier, not the judge.

A prompt row with an ``answer`` (or ``tests``) is a task (``self_instruct.tasks``); :func:`verify_responses` is
the verify step: each response's answer is read by the declared strict -> flexible chain
(:data:`pipeline.verifiable.ANSWER_CHAIN`; for code, the last fenced block) and checked by the prompt's
verifier (:func:`check`); how each answer was read is counted. Code runs as its dataset's harness runs it
(:func:`code_program`): a task's ``inputs.prefix`` (HumanEval's prompt: imports, helpers, the signature), then
the answer, then ``inputs.setup`` (MBPP's test setup), then each test. Its reward is a level (:func:`reward_level`): with ``verify.format_levels`` a correct
answer in the asked format (2) ranks above a correct one read flexibly (1), above a wrong one (0); without it,
correct (1) vs not (0) as in IRPO. Pairs are built from levels in :func:`pipeline.pairs.verified_pairs`.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pipeline import sandbox, verifiable
from pipeline.config import VerifyConfig
from pipeline.errors import StageError
from pipeline.records import Prompt, Response, Verification

_CODE_BLOCK = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


@dataclass(frozen=True)
class Check:
    extracted: str | None
    method: str  # strict | flexible | none
    correct: bool
    detail: str = ""
    reading: str = "none"  # which reading found the answer (pipeline.verifiable.READINGS)
    constraints: list[dict[str, Any]] | None = None  # the constraints verifier: each constraint's outcome
    level: int | None = None  # the constraints verifier's own reward level (check_constraints)


def _compiles(text: str) -> bool:
    try:
        compile(text, "<response>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def extract_code(text: str, prefix: str = "") -> verifiable.Extracted:
    """The last fenced code block (strict), else the whole text when it parses as Python, alone or after the
    task's ``prefix`` (a function body that continues a HumanEval prompt) (flexible)."""
    blocks = _CODE_BLOCK.findall(text)
    if blocks:
        return verifiable.extracted(blocks[-1].strip("\n"), "code_block")
    if text.strip() and (_compiles(text) or (prefix and _compiles(code_program(prefix, text)))):
        return verifiable.extracted(text, "whole_text")
    return verifiable.extracted(None, "none")


def code_program(prefix: str, code: str) -> str:
    """What runs for a code answer: the task's ``prefix`` and the answer, as the dataset's harness joins them.

    HumanEval's harness runs prompt + completion: a completion that is the function's body continues the
    prompt's signature. An answer that is a whole program by itself (the function written out again) runs after
    the prompt instead, so the prompt's imports and helpers are defined and its own ``def`` replaces the
    prompt's; where the prompt alone does not compile (a signature without a body), its lines before that last
    ``def`` are kept.
    """
    if not prefix:
        return code
    if not _compiles(code):
        return prefix if not code else prefix + ("" if prefix.endswith("\n") else "\n") + code
    if _compiles(prefix):
        return prefix.rstrip("\n") + "\n\n\n" + code
    lines = prefix.splitlines(keepends=True)
    last_def = max((i for i, ln in enumerate(lines) if re.match(r"(async\s+)?def\s", ln)), default=len(lines))
    return "".join(lines[:last_def]) + "\n" + code


def is_task(prompt: Prompt) -> bool:
    return prompt.verifier is not None


def check(text: str, prompt: Prompt, cfg: VerifyConfig) -> Check:
    """Read the answer from ``text`` and check it with the prompt's verifier."""
    name = prompt.verifier or "numeric"
    if name == "constraints":
        return check_constraints(text, prompt)
    if name == "python_tests":
        prefix, setup = str(prompt.inputs.get("prefix") or ""), str(prompt.inputs.get("setup") or "")
        found = extract_code(text, prefix)
        if found.answer is None:
            return Check(None, "none", False, "no code block")
        limits = sandbox.SandboxLimits(wall_seconds=cfg.timeout_s, cpu_seconds=max(1, round(cfg.timeout_s)),
                                       memory_mb=cfg.memory_mb)
        run = sandbox.run_tests(code_program(prefix, found.answer), prompt.tests or [], limits, setup=setup)
        detail = "" if run.passed else (run.errors[0] if run.errors else run.reason)[:200]
        return Check(found.answer, found.method, run.passed, detail, found.reading)
    found = verifiable.extract_answer(text)
    if found.answer is None:
        return Check(None, "none", False, "no answer found")
    gold = prompt.answer or ""
    if name == "countdown":
        from pipeline.tasks import check_countdown

        ok = check_countdown(found.answer, prompt.inputs.get("numbers", []), int(prompt.inputs.get("target", 0)))
    else:
        verify = partial(verifiable.numeric, tolerance=cfg.tolerance) if name == "numeric" else verifiable.VERIFIERS[name]
        ok = verify(found.answer, gold)
    return Check(found.answer, found.method, ok, "" if ok else "wrong answer", found.reading)


def check_constraints(text: str, prompt: Prompt) -> Check:
    """An open instruction's checkable constraints (IFEval's types, :mod:`pipeline.constraints`), each checked by
    IFEval's strict rule and its loose one. The answer is the whole response; it is correct when every constraint
    holds strictly (IFEval's prompt-level strict accuracy), and its reward level says how many do: 2 all, 1 some,
    0 none (with one constraint: 2 or 0). ``detail`` names the first failed constraint and why."""
    from pipeline.constraints import scoring

    ids = list(prompt.inputs.get("instruction_id_list") or [])
    outcomes = scoring.check_response(text, ids, list(prompt.inputs.get("kwargs") or [{} for _ in ids]))
    held = sum(o.strict for o in outcomes)
    level = 2 if held == len(outcomes) else 1 if held else 0
    failed = [o for o in outcomes if not o.strict]
    detail = f"{failed[0].instruction_id}: {failed[0].detail}" if failed else ""
    if len(failed) > 1:
        detail += f" (+{len(failed) - 1} more)"
    return Check(None, "strict", not failed, detail[:200], "whole_text",
                 constraints=[dataclasses.asdict(o) for o in outcomes], level=level)


def checked_text(response: Response, prompt: Prompt) -> str:
    """What a verifier reads: the whole output (IRPO rewards the chain of thought with its answer), but for
    constraints the final response the user sees (the thought apart, where it was split off)."""
    if prompt.verifier == "constraints" and response.parse_ok:
        return response.response
    return response.output


def task_problems(prompts: Sequence[Prompt]) -> None:
    """Stop on the first task prompt that could never be checked as meant (:func:`verifiable.task_problem`):
    one line naming where the task came from (its file and line, when self_instruct drew it from a task file)."""
    for p in prompts:
        if not is_task(p):
            continue
        problem = verifiable.task_problem(p.verifier or "numeric", p.answer, p.tests, p.inputs)
        if problem is not None:
            origin = p.provenance.get("task_source")
            where = f"{origin}: " if origin else ""
            raise StageError(f'verify: {where}task prompt "{p.prompt_id}": field "{problem[0]}" {problem[1]}')


def reward_level(correct: bool, method: str, format_levels: bool) -> int:
    """The reward of a checked answer: 2 correct and strict, 1 correct read flexibly, 0 wrong (format_levels);
    else 1 correct, 0 wrong."""
    if not correct:
        return 0
    return 2 if format_levels and method == "strict" else 1


def verify_responses(prompts: Sequence[Prompt], responses: Sequence[Response], cfg: VerifyConfig,
                     made_by: Mapping[str, Any]) -> tuple[list[Verification], dict[str, Any]]:
    """The verify step: one :class:`Verification` per response to a task; rows and metrics.

    Responses to prompts without a known answer are left to the judge (counted as ``judged``). The check reads
    the whole output, chain of thought included: IRPO rewards the CoT and its answer together.
    """
    task_problems(prompts)
    tasks = {p.prompt_id: p for p in prompts if is_task(p)}
    rows: list[Verification] = []
    readings: Counter[str] = Counter()
    for r in responses:
        task = tasks.get(r.prompt_id)
        if task is None:
            continue
        c = check(checked_text(r, task), task, cfg)
        readings[c.reading] += 1
        rows.append(Verification(
            response_id=r.response_id, prompt_id=r.prompt_id, verifier=task.verifier or "numeric",
            extracted=c.extracted, method=c.method, correct=c.correct,  # type: ignore[arg-type]
            level=c.level if c.level is not None else reward_level(c.correct, c.method, cfg.format_levels),
            detail=c.detail, constraints=c.constraints,
            provenance={**made_by, "format_levels": cfg.format_levels}))
    return rows, verify_metrics(rows, len(responses), len(tasks), readings)


def verify_metrics(rows: Sequence[Verification], responses: int, tasks: int,
                   readings: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Accuracy, extraction counts (like the judge's parse counts), how each answer was read (``readings``:
    the asked last line, a ``Final answer:`` line elsewhere, ``\\boxed{}``, the last number; for code the last
    fenced block or the whole text) and how many prompts can give a pair."""
    methods = Counter(v.method for v in rows)
    by_prompt: dict[str, list[int]] = {}
    for v in rows:
        by_prompt.setdefault(v.prompt_id, []).append(v.level)
    n = len(rows)
    return {
        "tasks": tasks, "verified": n, "judged": responses - n,
        "correct": sum(v.correct for v in rows), "accuracy": sum(v.correct for v in rows) / n if n else None,
        "strict": methods["strict"], "flexible": methods["flexible"], "unextracted": methods["none"],
        "readings": {name: int((readings or {}).get(name, 0)) for name in verifiable.READINGS},
        "strict_rate": methods["strict"] / n if n else None,
        "correct_strict_rate": sum(v.correct and v.method == "strict" for v in rows) / n if n else None,
        "level_histogram": dict(sorted(Counter(str(v.level) for v in rows).items())),
        "verifiers": dict(sorted(Counter(v.verifier for v in rows).items())),
        "prompts_all_same_level": sum(len(set(levels)) == 1 for levels in by_prompt.values()),
        "prompts_all_correct": sum(all(v > 0 for v in levels) for levels in by_prompt.values()),
        "prompts_all_wrong": sum(all(v == 0 for v in levels) for levels in by_prompt.values()),
        "failures": dict(Counter(v.detail for v in rows if not v.correct).most_common(5)),
        "mean_level": statistics.fmean(v.level for v in rows) if rows else None,
        **({"constraints": constraint_counts(rows)} if any(v.constraints is not None for v in rows) else {}),
    }


def constraint_counts(rows: Sequence[Verification]) -> dict[str, Any]:
    """Of the responses to constraint instructions: how many met all, some or none of their constraints (the
    reward levels), and per instruction type how often it was checked and held (strict and loose)."""
    checked = [v for v in rows if v.constraints is not None]
    by_type: dict[str, dict[str, int]] = {}
    for v in checked:
        for o in v.constraints or []:
            t = by_type.setdefault(str(o["instruction_id"]), {"checked": 0, "strict": 0, "loose": 0})
            t["checked"] += 1
            t["strict"] += bool(o["strict"])
            t["loose"] += bool(o["loose"])
    return {"responses": len(checked), "all": sum(v.level == 2 for v in checked),
            "some": sum(v.level == 1 for v in checked), "none": sum(v.level == 0 for v in checked),
            "by_type": dict(sorted(by_type.items()))}
