"""Meta-judge battles to judgment ratings (Meta-Rewarding LMs).

Verdicts ``r[(m, n)]`` compare judgment m (shown first) with judgment n (shown second): 1 when the first
wins, -1 when the second wins, 0 for a tie or no verdict. Every ordered pair m != n is compared, so each
unordered pair is seen in both orders.

- :func:`position_weights`: over the whole stage, ω1 = wins_as_second / (wins_as_first + wins_as_second)
  and ω2 = wins_as_first / (wins_as_first + wins_as_second). A meta-judge that favours the first position
  has its first-position wins down-weighted.
- :func:`battle_matrix`: B[m, n] = ω1·1[r_mn = 1] + ω2·1[r_nm = −1], the weighted wins of m over n.
- :func:`bradley_terry`: ε = argmax Σ B[m, n]·log σ(ε_m − ε_n) − (l2/2)·‖ε‖², by Newton's method. The
  penalty makes the maximum unique and finite; at the optimum Σ ε = 0.
- :func:`elo_ratings`: ε on the Elo scale, 1000 + 400·ε/ln 10 (a 400-point gap is 10:1 odds).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

Verdicts = Mapping[tuple[int, int], int]


def position_weights(verdicts: Iterable[int]) -> tuple[float, float]:
    """(ω1, ω2) from all verdicts of the stage; (0.5, 0.5) when nobody ever won."""
    verdicts = list(verdicts)
    first = sum(1 for r in verdicts if r == 1)
    second = sum(1 for r in verdicts if r == -1)
    if first + second == 0:
        return 0.5, 0.5
    return second / (first + second), first / (first + second)


def position_bias(verdicts: Iterable[int]) -> float | None:
    """Share of decided verdicts won by the judgment shown first (0.5 is unbiased)."""
    verdicts = list(verdicts)
    decided = [r for r in verdicts if r != 0]
    return sum(1 for r in decided if r == 1) / len(decided) if decided else None


def battle_matrix(verdicts: Verdicts, size: int, w1: float, w2: float) -> np.ndarray:
    """B[m, n]: position-weighted wins of judgment m over judgment n."""
    b = np.zeros((size, size))
    for m in range(size):
        for n in range(size):
            if m == n:
                continue
            b[m, n] = w1 * (verdicts.get((m, n), 0) == 1) + w2 * (verdicts.get((n, m), 0) == -1)
    return b


def bradley_terry(b: np.ndarray, l2: float = 0.01, iters: int = 100, tol: float = 1e-10) -> np.ndarray:
    """Maximum-likelihood strengths ε for win matrix ``b`` (with an L2 penalty ``l2``)."""
    k = b.shape[0]
    eps = np.zeros(k)
    games = b + b.T
    for _ in range(iters):
        diff = eps[:, None] - eps[None, :]
        p = 1.0 / (1.0 + np.exp(-diff))  # p[m, n] = σ(ε_m − ε_n)
        grad = (b * (1 - p)).sum(1) - (b.T * (1 - p.T)).sum(1) - l2 * eps
        w = games * p * (1 - p)
        hess = w - np.diag(w.sum(1)) - l2 * np.eye(k)
        if l2 == 0:  # the likelihood is shift-invariant: pin the mean to zero
            hess = hess - np.ones((k, k)) / k
        step = np.linalg.solve(hess, grad)
        eps = eps - step
        if l2 == 0:
            eps -= eps.mean()
        if np.abs(step).max() < tol:
            break
    return eps


def to_elo(eps: np.ndarray, base: float = 1000.0) -> np.ndarray:
    return base + 400.0 * eps / math.log(10)


def elo_ratings(verdicts: Verdicts, size: int, w1: float, w2: float, l2: float = 0.01) -> np.ndarray:
    """Elo ratings of ``size`` judgments of one response from their meta-judge verdicts."""
    return to_elo(bradley_terry(battle_matrix(verdicts, size, w1, w2), l2))
