"""Statistics with their uncertainty: win rates (ties count half) with a standard error and a bootstrap interval,
a length-controlled win rate, and judge accuracy on labelled pairs.

:func:`win_rate_summary` gives wins/losses/ties, the win rate, its standard error, a seeded bootstrap 95%
interval and the length-adjusted win rate of :func:`length_adjusted_win_rate`.

Judge accuracy (:func:`judge_accuracy`): the model as judge scores both responses of a labelled pair; the
pair counts as right when the higher score is on the preferred side. A tie counts as wrong and is reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def bootstrap_interval(values: Sequence[float], samples: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Percentile bootstrap of the mean, resampling prompts; identical for a fixed seed."""
    v = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(samples, len(v)))].mean(axis=1)
    alpha = (1 - level) / 2
    return Interval(float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def _sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-x))


def length_adjusted_win_rate(outcomes: Sequence[int], model_lengths: Sequence[float],
                             baseline_lengths: Sequence[float], l2: float = 1e-2) -> float:
    """The win rate with the length difference regressed out: P(win) = σ(θ + φ · tanh(Δlen / sd(Δlen))), read at
    Δlen = 0, i.e. σ(θ).

    This is the model and length terms of AlpacaEval 2's length-controlled GLM (Dubois et al., 2024, §3) and
    nothing more: no instruction-difficulty term (AlpacaEval fits it once over many models on its own 805
    prompts), no regularisation towards the baseline, no cross-validation; one fit on this evaluation's prompts
    with a small L2 penalty, by Newton's method (finite even when length separates the outcomes perfectly).
    Hence its name: it is not AlpacaEval's LC win rate, whose package needs AlpacaEval's prompts and a hub
    download. Outcomes are +1 / 0 / -1; a tie enters as half a win and half a loss. Characters measure length.
    """
    y_out = np.asarray(outcomes, dtype=float)
    delta = np.asarray(model_lengths, dtype=float) - np.asarray(baseline_lengths, dtype=float)
    sd = delta.std()
    z = np.tanh(delta / sd) if sd > 0 else np.zeros_like(delta)
    x = np.stack([np.ones_like(z), z], axis=1)
    y = (y_out + 1) / 2  # win 1, tie 0.5, loss 0: the expected label
    theta = np.zeros(2)
    for _ in range(100):
        p = _sigmoid(x @ theta)
        grad = x.T @ (y - p) - l2 * theta
        hess = -(x.T * (p * (1 - p))) @ x - l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(_sigmoid(theta[0]))


def win_rate_summary(outcomes: Sequence[int], model_lengths: Sequence[float], baseline_lengths: Sequence[float],
                     bootstrap: int = 1000, seed: int = 0) -> dict[str, float | int]:
    n = len(outcomes)
    wins = sum(o > 0 for o in outcomes)
    losses = sum(o < 0 for o in outcomes)
    ties = n - wins - losses
    values = [(o + 1) / 2 for o in outcomes]  # 1, 0.5, 0
    rate = float(np.mean(values)) if n else float("nan")
    se = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    ci = bootstrap_interval(values, bootstrap, seed) if n else Interval(float("nan"), float("nan"))
    return {"n": n, "wins": wins, "losses": losses, "ties": ties, "win_rate": rate, "win_rate_se": se,
            "win_rate_ci95_low": ci.low, "win_rate_ci95_high": ci.high,
            "length_adjusted_win_rate": length_adjusted_win_rate(outcomes, model_lengths, baseline_lengths) if n else float("nan"),
            "model_mean_chars": float(np.mean(model_lengths)) if n else float("nan"),
            "baseline_mean_chars": float(np.mean(baseline_lengths)) if n else float("nan")}


def judge_accuracy(score_a: Sequence[float | None], score_b: Sequence[float | None], preferred: Sequence[str]
                   ) -> dict[str, float | int]:
    """Share of labelled pairs where the higher score is on the preferred side; ties (or no score) are wrong."""
    right = ties = 0
    for a, b, pref in zip(score_a, score_b, preferred):
        if a is None or b is None or a == b:
            ties += 1
        elif (a > b) == (pref == "A"):
            right += 1
    n = len(preferred)
    return {"pairs": n, "correct": right, "ties": ties, "accuracy": right / n if n else float("nan")}
