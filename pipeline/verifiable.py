"""Verifiable rewards: answers checked against known ones, and the statistics and pairs built on them.

Where a prompt has a known answer, the reward is a check, not a judgment (Iterative RPO, Pang et al., 2024;
Reflect, Retry, Reward). This module holds the rules:

- answer extraction, a declared chain like the judge's (:data:`ANSWER_CHAIN`), each reading counted apart:
  ``final_last_line`` reads a last line ``Final answer: X`` (IRPO App. B.1's format; the only *strict*
  reading), then, read *flexibly*, ``final_line`` the model's own last ``Final answer:`` line wherever it
  stands, ``boxed`` the last ``\\boxed{X}``, ``last_number`` the last number; what none reads has no answer;
- verifiers by name (:data:`VERIFIERS`): ``numeric`` (equal within a tolerance), ``exact``, ``math``
  (symbolic, with the ``math-verify`` package), ``regex``; ``countdown`` and ``python_tests`` live beside the
  task families and the sandbox that run them;
- task checks (:func:`task_problem`): what makes a task's known answer or tests unusable, said when the task
  is read, before any model loads;
- evaluation: pass@k with the unbiased estimator (Chen et al., 2021), maj@k voting on the verifier's
  normalised answers (:func:`vote_key`) with ties counted, each with a standard error over prompts, both
  named by the k they actually used;
- preference pairs: IRPO's correct vs incorrect, cycled up to a number per prompt (:func:`irpo_pairs`), and
  Reflect-Retry-Reward's reflections whose retry succeeded vs those whose retry failed (:func:`rrr_pairs`);
- the self-judge against the truth: how well judge scores separate correct from incorrect answers (pairwise
  accuracy within a prompt, AUC), with bootstrap standard errors over prompts (:func:`judge_vs_truth`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline import verdicts

# ------------------------------------------------------------------------------------------ answers
_FINAL = verdicts.strict_line("Final answer", r".+?", period=False)  # the asked format, as a judge's verdict
_FINAL_ANY_LINE = re.compile(r"^[ \t*_#]*Final answer[ \t]*:[ \t*_]*(.+?)[ \t*_]*$", re.IGNORECASE | re.MULTILINE)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_NUMBER = re.compile(r"(?<![\w.])(-?\d[\d,]*(?:\.\d+)?)(?![\w])")


def _clean(found: tuple[str, int] | None) -> tuple[str, int] | None:
    if found is None:
        return None
    value = found[0].strip().rstrip(".").strip()
    return (value, found[1]) if value else None


def parse_final_answer(text: str) -> tuple[str, int] | None:
    """The asked format: the last non-blank line is ``Final answer: X``."""
    return _clean(verdicts.on_last_line(_FINAL, text))


def parse_final_answer_line(text: str) -> tuple[str, int] | None:
    """The model's own last ``Final answer: X`` line wherever it stands (text after it, e.g. a chat template's
    echo or a second guess, does not override what the model declared final)."""
    for m in reversed(list(_FINAL_ANY_LINE.finditer(text))):
        found = _clean((m.group(1), m.start(1)))
        if found is not None:
            return found
    return None


def parse_boxed(text: str) -> tuple[str, int] | None:
    return verdicts.last_match(text, _BOXED)


def parse_last_number(text: str) -> tuple[str, int] | None:
    return verdicts.last_match(text, _NUMBER)


# The readings in the order they are tried; only the first is the asked format (method "strict").
ANSWER_CHAIN = verdicts.Chain("answer", (("final_last_line", parse_final_answer),
                                         ("final_line", parse_final_answer_line), ("boxed", parse_boxed),
                                         ("last_number", parse_last_number)),
                              prefix="Final answer: ", options=(), on_unparsed="drop")
STRICT_READINGS = ("final_last_line", "code_block")  # code: the last fenced block (pipeline.rewards.extract_code)
READINGS = ("final_last_line", "final_line", "boxed", "last_number", "code_block", "whole_text", "none")


@dataclass(frozen=True)
class Extracted:
    answer: str | None
    method: str  # strict | flexible | none: what the reward levels and the format rate see
    reading: str = "none"  # which reading found it (READINGS), counted in the verify metrics


def extracted(answer: str | None, reading: str) -> Extracted:
    method = "none" if answer is None else "strict" if reading in STRICT_READINGS else "flexible"
    return Extracted(answer, method, reading if answer is not None else "none")


def extract_answer(text: str) -> Extracted:
    parsed = ANSWER_CHAIN.parse(text)
    return extracted(parsed.value, parsed.method) if parsed is not None else extracted(None, "none")


# ------------------------------------------------------------------------------------------ verifiers
def to_number(text: str) -> float | None:
    """A number written the usual ways: ``1,234``, ``$5``, ``12.5%``, ``-3.``, ``7 apples``; None otherwise."""
    m = re.search(r"-?\d[\d,]*(?:\.\d+)?", text.replace(" ", ""))
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", ""))
    except ValueError:
        return None


def numeric(predicted: str, gold: str, tolerance: float = 1e-6) -> bool:
    a, b = to_number(predicted), to_number(gold)
    return a is not None and b is not None and abs(a - b) <= tolerance * max(1.0, abs(b))


def exact(predicted: str, gold: str) -> bool:
    return " ".join(predicted.split()) == " ".join(gold.split())


def regex(predicted: str, pattern: str) -> bool:
    return re.fullmatch(pattern, predicted.strip()) is not None


def _math_verify() -> tuple[Callable[..., list[object]], Callable[..., bool]]:
    try:
        from math_verify import parse, verify
    except ImportError as e:  # pragma: no cover - an install problem, said plainly
        raise RuntimeError("the math verifier needs the package math-verify (pip install math-verify)") from e
    return parse, verify


def parse_math(text: str) -> list[object] | None:
    """``text`` as math-verify's parse, or None when it holds no mathematical object.

    A bare answer is read as inline LaTeX first (``$x^2$``): math-verify's plain reading finds no expression in
    ``x^2`` and takes only the ``2`` of ``2(x+1)``. What is neither (``x^^2``) is None.
    """
    parse, _ = _math_verify()
    tries = [text] if "$" in text or "\\(" in text or "\\[" in text else [f"${text}$", text]
    for attempt in tries:
        found = parse(attempt)
        if any(not isinstance(item, str) for item in found):
            return found
    return None


def symbolic(predicted: str, gold: str) -> bool:
    """Mathematically equal (``1/2`` = ``0.5`` = ``\\frac{1}{2}``, ``2x+2`` = ``2(x+1)``), by ``math-verify``."""
    _, verify = _math_verify()
    g, p = parse_math(gold), parse_math(predicted)
    return g is not None and p is not None and bool(verify(g, p))


VERIFIERS: dict[str, Callable[[str, str], bool]] = {"numeric": numeric, "exact": exact, "math": symbolic,
                                                    "regex": regex}
# The verifiers a task may name: the answer checks above, plus those that need the task's inputs (countdown:
# the numbers and target, pipeline.tasks.check_countdown; python_tests: the tests, run in pipeline.sandbox;
# constraints: an open instruction's checkable constraints, IFEval's types, pipeline.constraints).
VERIFIER_NAMES: tuple[str, ...] = (*VERIFIERS, "countdown", "python_tests", "constraints")


def constraints_problem(inputs: Mapping[str, object]) -> tuple[str, str] | None:
    """Why a constraints task's ``instruction_id_list`` and ``kwargs`` could never be checked as meant (an
    unknown id, kwargs of the wrong type, lists of different lengths, constraints no response can satisfy)."""
    from pipeline.constraints import spec

    ids, kwargs = inputs.get("instruction_id_list"), inputs.get("kwargs")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        return "instruction_id_list", f"must be a non-empty list of instruction ids, got {json.dumps(ids, default=str)[:60]}"
    if kwargs is None:
        kwargs = [{} for _ in ids]
    if not isinstance(kwargs, list) or not all(isinstance(k, dict) for k in kwargs):
        return "kwargs", f"must be a list of objects, one per instruction, got {json.dumps(kwargs, default=str)[:60]}"
    if len(kwargs) != len(ids):
        return "kwargs", f"has {len(kwargs)} entries for {len(ids)} instructions — one per instruction"
    cleaned = [spec.clean_kwargs(k) for k in kwargs]
    for i, (instruction_id, k) in enumerate(zip(ids, cleaned)):
        problem = spec.kwargs_problem(instruction_id, k)
        if problem:
            return "instruction_id_list" if instruction_id not in spec.INSTRUCTION_IDS else "kwargs", (
                f"instruction {i + 1} ({instruction_id}): {problem}")
    problem = spec.conflict(ids, cleaned)
    if problem:
        return "instruction_id_list", f"cannot all be satisfied: {problem}"
    return None


def _compile_problem(source: str) -> str | None:
    """Why ``source`` is not Python (``line 2: invalid syntax``), or None."""
    try:
        compile(source, "<task>", "exec")
    except SyntaxError as e:
        return f"line {e.lineno}: {e.msg}"
    except ValueError as e:  # a null byte
        return str(e)
    return None


def task_problem(verifier: str, answer: str | None, tests: Sequence[str] | None,
                 inputs: Mapping[str, object]) -> tuple[str, str] | None:
    """Why a task could never be checked as meant, as (its field at fault, the reason); None when it can be.

    Each of these would otherwise pass silently and score every answer wrong, or crash the verify step: an
    unknown verifier, a missing known answer, a numeric answer without a number (``four``), a math answer that
    is no mathematical expression (``x^^2``), a regex that does not compile, code tests (or their setup) that
    do not compile, countdown numbers that are no list of integers. Read-time checks call this, so a bad task
    stops its stage before any model loads.
    """
    if verifier not in VERIFIER_NAMES:
        return "verifier", f'names an unknown verifier "{verifier}" — known: ' + ", ".join(VERIFIER_NAMES)
    if verifier == "constraints":
        return constraints_problem(inputs)
    text = answer or ""
    if verifier in VERIFIERS and not text.strip():
        return "answer", f"is empty — the {verifier} verifier compares each answer with it"
    if verifier == "numeric" and to_number(text) is None:
        return "answer", (f'is not a number ({json.dumps(text)[:60]}) — the numeric verifier compares numbers; '
                          'for text, use verifier "exact"')
    if verifier == "regex":
        try:
            re.compile(text)
        except re.error as e:
            return "answer", f"is not a valid regular expression ({e}) — the regex verifier matches answers against it"
    if verifier == "math" and parse_math(text) is None:
        return "answer", (f"is not a mathematical expression math-verify can read ({json.dumps(text)[:60]}) — "
                          "no answer could ever equal it")
    if verifier == "python_tests":
        if not tests:
            return "tests", "is empty — the python_tests verifier needs at least one test"
        for i, test in enumerate(tests):
            problem = _compile_problem(test)
            if problem:
                return "tests", f"has a test that does not compile — test {i + 1}, {problem}"
        setup = inputs.get("setup")
        if isinstance(setup, str) and setup.strip():
            problem = _compile_problem(setup)
            if problem:
                return "setup", f"does not compile — {problem}"
    if verifier == "countdown":
        numbers, target = inputs.get("numbers"), inputs.get("target")
        if (not isinstance(numbers, list) or not numbers
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers)):
            return "numbers", f"must be a non-empty list of integers, got {json.dumps(numbers, default=str)[:40]}"
        if not isinstance(target, int) or isinstance(target, bool):
            return "target", f"must be an integer, got {json.dumps(target, default=str)[:40]}"
    return None


_PLAIN_NUMBER = re.compile(r"[-+]?\$?\d[\d,]*(?:\.\d+)?%?")


def vote_key(answer: str, verifier: str | None = None) -> str:
    """The answer as its verifier sees it, so that equal answers vote together in maj@k: ``8``, ``8.0`` and
    ``8.00`` are one vote for ``numeric`` (and ``$1,234`` is ``1234``); ``math`` answers vote by their parsed
    expression; ``exact`` by their words. Without a verifier, an answer that is a plain number is read as one.
    """
    text = " ".join(answer.split()).rstrip(".")
    if verifier == "numeric" or (verifier is None and _PLAIN_NUMBER.fullmatch(text.replace(" ", ""))):
        value = to_number(text)
        if value is not None:
            return str(int(value)) if value.is_integer() else repr(value)
    if verifier == "math":
        found = parse_math(text)
        if found is not None:
            return str(next(item for item in found if not isinstance(item, str)))
    return text


# ------------------------------------------------------------------------------------------ evaluation
def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one prompt with ``c`` correct among ``n`` samples: 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_at_k(answers: Sequence[Hashable | None], correct: Sequence[bool], k: int) -> float:
    """maj@k of one prompt from its first ``k`` samples: the most frequent answer is the vote.

    ``answers`` are what votes: :func:`sample_metrics` passes each answer as its verifier normalises it
    (:func:`vote_key`), so ``8`` and ``8.0`` are one vote. A sample without an answer does not vote. Ties count
    fractionally: with t answers tied for the most votes, the prompt scores 1/t if the right one is among them
    (so a tie is neither a win nor a loss).
    """
    votes = Counter(a for a in answers[:k] if a is not None)
    if not votes:
        return 0.0
    top = max(votes.values())
    tied = [a for a, v in votes.items() if v == top]
    right = {a for a, ok in zip(answers[:k], correct[:k]) if ok and a is not None}
    return sum(a in right for a in tied) / len(tied)


@dataclass(frozen=True)
class Estimate:
    mean: float
    se: float  # standard error over prompts (sample sd / sqrt(prompts))
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "se": self.se, "n": self.n}


def estimate(values: Sequence[float]) -> Estimate:
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return Estimate(float("nan"), float("nan"), 0)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return Estimate(float(v.mean()), se, len(v))


# ------------------------------------------------------------------------------------------ pairs
def irpo_pairs(winners: Sequence[str], losers: Sequence[str], per_prompt: int) -> list[tuple[str, str]]:
    """IRPO's pairs for one prompt (Pang et al., 2024, §2): correct (winner) and incorrect (loser) samples are
    walked in parallel, for ``per_prompt`` pairs; none when either side is empty.

    The walk goes diagonal by diagonal — (w0, l0), (w1, l1), ..., then (w0, l1), (w1, l2), ... — so it starts as
    the paper's parallel walk but, where the paper's cycling would repeat a pair, takes the next unused
    combination instead; at most every distinct combination.
    """
    walk = [(winners[i], losers[(i + shift) % len(losers)]) for shift in range(len(losers))
            for i in range(len(winners))]
    return walk[:per_prompt]


def rrr_pairs(reflections: Sequence[tuple[str, bool]], per_attempt: int) -> list[tuple[str, str]]:
    """Reflect, Retry, Reward as preference pairs for one failed first attempt: reflections whose retry
    succeeded (chosen) against those whose retry failed (rejected), cycled like :func:`irpo_pairs`."""
    good = [r for r, ok in reflections if ok]
    bad = [r for r, ok in reflections if not ok]
    return irpo_pairs(good, bad, per_attempt)


# ------------------------------------------------------------------------------------------ judge vs truth
def _pairwise_accuracy(by_prompt: Mapping[str, Sequence[tuple[float, bool]]], keys: Sequence[str]
                       ) -> tuple[float, int]:
    right = total = 0.0
    for key in keys:
        rows = by_prompt[key]
        for s_good, ok_good in rows:
            if not ok_good:
                continue
            for s_bad, ok_bad in rows:
                if ok_bad:
                    continue
                right += 1.0 if s_good > s_bad else 0.5 if s_good == s_bad else 0.0
                total += 1
    return (right / total if total else float("nan")), int(total)


def _auc(rows: Sequence[tuple[float, bool]]) -> float:
    pos = np.array([s for s, ok in rows if ok], dtype=float)
    neg = np.array([s for s, ok in rows if not ok], dtype=float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def judge_vs_truth(scored: Sequence[tuple[str, float, bool]], bootstrap: int = 1000, seed: int = 0
                   ) -> dict[str, float | int]:
    """How well a judge's scores separate correct from incorrect answers, from ``(prompt_id, score, correct)``.

    ``pairwise_accuracy``: over every (correct, incorrect) pair of answers to the same prompt, the share where
    the correct one scores higher (a tie counts half). ``auc``: the same over all answers pooled. Standard
    errors: a bootstrap over prompts (the answers to one prompt are not independent), seeded.
    """
    by_prompt: dict[str, list[tuple[float, bool]]] = {}
    for pid, score, ok in scored:
        by_prompt.setdefault(pid, []).append((score, ok))
    keys = sorted(by_prompt)
    acc, pairs = _pairwise_accuracy(by_prompt, keys)
    auc = _auc([r for k in keys for r in by_prompt[k]])
    rng = np.random.default_rng(seed)
    accs, aucs = [], []
    for _ in range(bootstrap if keys else 0):
        sample = [keys[i] for i in rng.integers(0, len(keys), size=len(keys))]
        a, _ = _pairwise_accuracy(by_prompt, sample)
        accs.append(a)
        aucs.append(_auc([r for k in sample for r in by_prompt[k]]))
    return {"pairwise_accuracy": acc, "pairwise_accuracy_se": float(np.nanstd(accs, ddof=1)) if accs else float("nan"),
            "pairs": pairs, "auc": auc, "auc_se": float(np.nanstd(aucs, ddof=1)) if aucs else float("nan"),
            "answers": len(scored), "correct": sum(ok for _, _, ok in scored), "prompts": len(keys)}


# ------------------------------------------------------------------------------------------ held-out summary
def sample_metrics(samples: Sequence[Mapping[str, object]], k: int) -> dict[str, object]:
    """Held-out figures of one model from its samples (``task_id``, ``sample_index``, ``extracted``,
    ``method``, ``correct``, ``num_tokens``; ``verifier`` where known), each a mean over tasks with its standard
    error.

    ``pass@1`` counts an answer read flexibly (so a format change alone cannot raise it); ``pass@1_strict``
    only answers in the asked format; ``pass@<k>`` is the unbiased estimator over the n samples of a task and
    ``maj@<k>`` the majority vote of the first k (on normalised answers, :func:`vote_key`; ties count 1/t).
    Their k is the one used: the asked ``k``, or fewer when some task has fewer samples (``pass@2`` then,
    never ``pass@4`` computed from 2); ``k`` and ``k_asked`` say which. ``format_rate`` is the share of
    samples whose last line is the asked ``Final answer:`` line; ``mean_tokens`` the generated length.
    """
    by_task: dict[str, list[Mapping[str, object]]] = {}
    for s in samples:
        by_task.setdefault(str(s["task_id"]), []).append(s)
    used = min([k, *(len(rows) for rows in by_task.values())])
    per: dict[str, list[float]] = {"pass@1": [], "pass@1_strict": [], f"pass@{used}": [], f"maj@{used}": [],
                                   "format_rate": [], "mean_tokens": []}
    for rows in by_task.values():
        rows = sorted(rows, key=lambda s: int(s["sample_index"]))  # type: ignore[call-overload]
        n, ok = len(rows), [bool(s["correct"]) for s in rows]
        # A vote is the normalised answer and whether it was right: answers a verifier-blind reading merges
        # ("8" and "8.0" under an exact verifier) never pool a right one with a wrong one.
        votes = [None if s["extracted"] is None else (vote_key(str(s["extracted"]), s.get("verifier")), o)  # type: ignore[arg-type]
                 for s, o in zip(rows, ok)]
        per["pass@1"].append(sum(ok) / n)
        per["pass@1_strict"].append(sum(o and s["method"] == "strict" for o, s in zip(ok, rows)) / n)
        if used > 1:
            per[f"pass@{used}"].append(pass_at_k(n, sum(ok), used))
        per[f"maj@{used}"].append(majority_at_k(votes, ok, used))
        per["format_rate"].append(sum(s["method"] == "strict" for s in rows) / n)
        per["mean_tokens"].append(sum(int(s["num_tokens"]) for s in rows) / n)  # type: ignore[call-overload]
    out: dict[str, object] = {"tasks": len(by_task), "samples": len(samples), "k": used, "k_asked": k}
    for name, values in per.items():
        e = estimate(values)
        out[name], out[f"{name}_se"] = e.mean, e.se
    return out
