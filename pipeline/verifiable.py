"""Verifiable rewards: answers checked against known ones, and the statistics and pairs built on them.

Where a prompt has a known answer, the reward is a check, not a judgment (Iterative RPO, Pang et al., 2024;
Reflect, Retry, Reward). This module holds the rules:

- answer extraction, a declared chain like the judge's (:data:`ANSWER_CHAIN`): ``strict`` reads a last line
  ``Final answer: X`` (IRPO App. B.1's format); ``flexible`` the last ``\\boxed{X}``, else the last number; what
  neither reads has no answer (counted);
- verifiers by name (:data:`VERIFIERS`): ``numeric`` (equal within a tolerance), ``exact``, ``math``
  (symbolic, with the ``math-verify`` package), ``regex``; ``countdown`` and ``python_tests`` live beside the
  task families and the sandbox that run them;
- evaluation: pass@k with the unbiased estimator (Chen et al., 2021), maj@k with ties counted, each with a
  standard error over prompts;
- preference pairs: IRPO's correct vs incorrect, cycled up to a number per prompt (:func:`irpo_pairs`), and
  Reflect-Retry-Reward's reflections whose retry succeeded vs those whose retry failed (:func:`rrr_pairs`);
- the self-judge against the truth: how well judge scores separate correct from incorrect answers (pairwise
  accuracy within a prompt, AUC), with bootstrap standard errors over prompts (:func:`judge_vs_truth`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline import verdicts

# ------------------------------------------------------------------------------------------ answers
_FINAL = re.compile(r"^[\s*_#]*Final answer\s*:[\s*_]*(.+?)[\s*_]*$", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_NUMBER = re.compile(r"(?<![\w.])(-?\d[\d,]*(?:\.\d+)?)(?![\w])")


def parse_final_answer(text: str) -> tuple[str, int] | None:
    found = verdicts.on_last_line(_FINAL, text)
    if found is None:
        return None
    value = found[0].strip().rstrip(".").strip()
    return (value, found[1]) if value else None


def parse_boxed_or_last_number(text: str) -> tuple[str, int] | None:
    return verdicts.last_match(text, _BOXED, _NUMBER)


ANSWER_CHAIN = verdicts.Chain("answer", (("strict", parse_final_answer), ("flexible", parse_boxed_or_last_number)),
                              prefix="Final answer: ", options=(), on_unparsed="drop")


@dataclass(frozen=True)
class Extracted:
    answer: str | None
    method: str  # strict | flexible | none


def extract_answer(text: str) -> Extracted:
    parsed = ANSWER_CHAIN.parse(text)
    return Extracted(parsed.value, parsed.method) if parsed is not None else Extracted(None, "none")


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


def symbolic(predicted: str, gold: str) -> bool:
    """Mathematically equal (``1/2`` = ``0.5`` = ``\\frac{1}{2}``), by the ``math-verify`` package."""
    try:
        from math_verify import parse, verify
    except ImportError as e:  # pragma: no cover - an install problem, said plainly
        raise RuntimeError("the math verifier needs the package math-verify (pip install math-verify)") from e
    return bool(verify(parse(gold), parse(predicted)))


VERIFIERS: dict[str, Callable[[str, str], bool]] = {"numeric": numeric, "exact": exact, "math": symbolic,
                                                    "regex": regex}


# ------------------------------------------------------------------------------------------ evaluation
def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k of one prompt with ``c`` correct among ``n`` samples: 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_at_k(answers: Sequence[str | None], correct: Sequence[bool], k: int) -> float:
    """maj@k of one prompt from its first ``k`` samples: the most frequent extracted answer is the vote.

    A sample without an answer does not vote. Ties count fractionally: with t answers tied for the most votes,
    the prompt scores 1/t if the right one is among them (so a tie is neither a win nor a loss).
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
    ``method``, ``correct``, ``num_tokens``), each a mean over tasks with its standard error.

    ``pass@1`` counts an answer read flexibly (so a format change alone cannot raise it); ``pass@1_strict``
    only answers in the asked format; ``pass@k`` is the unbiased estimator over the n samples of a task;
    ``maj@k`` the majority vote of the first k (ties count 1/t); ``format_rate`` the share of samples whose
    last line is the asked ``Final answer:`` line; ``mean_tokens`` the generated length.
    """
    by_task: dict[str, list[Mapping[str, object]]] = {}
    for s in samples:
        by_task.setdefault(str(s["task_id"]), []).append(s)
    per: dict[str, list[float]] = {"pass@1": [], "pass@1_strict": [], f"pass@{k}": [], f"maj@{k}": [],
                                   "format_rate": [], "mean_tokens": []}
    for rows in by_task.values():
        rows = sorted(rows, key=lambda s: int(s["sample_index"]))  # type: ignore[call-overload]
        n, ok = len(rows), [bool(s["correct"]) for s in rows]
        per["pass@1"].append(sum(ok) / n)
        per["pass@1_strict"].append(sum(o and s["method"] == "strict" for o, s in zip(ok, rows)) / n)
        per[f"pass@{k}"].append(pass_at_k(n, sum(ok), min(k, n)))
        per[f"maj@{k}"].append(majority_at_k([s["extracted"] for s in rows], ok, k))  # type: ignore[misc]
        per["format_rate"].append(sum(s["method"] == "strict" for s in rows) / n)
        per["mean_tokens"].append(sum(int(s["num_tokens"]) for s in rows) / n)  # type: ignore[call-overload]
    out: dict[str, object] = {"tasks": len(by_task), "samples": len(samples)}
    for name, values in per.items():
        e = estimate(values)
        out[name], out[f"{name}_se"] = e.mean, e.se
    return out
