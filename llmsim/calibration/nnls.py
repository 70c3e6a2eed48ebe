"""Weighted non-negative least squares for a handful of unknowns, in plain Python.

The fits here have three or four coefficients, so the exact solution is found by trying every
support (every subset of coefficients allowed to be non-zero): the least-squares solution on
each support, kept when all its values are non-negative, the best of those wins. That is the
NNLS optimum (it is the unconstrained optimum on its own support) with no iteration to tune.
Columns are scaled to unit norm first, so that token counts in the millions and step counts in
the hundreds do not spoil the normal equations. No numpy: the systems are at most 4 x 4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import combinations

MAX_UNKNOWNS = 8
"""Every support is tried (2^k systems): fine for a few unknowns, not for many."""


def nnls(
    rows: Sequence[Sequence[float]],
    targets: Sequence[float],
    weights: Sequence[float] | None = None,
) -> list[float]:
    """The non-negative ``x`` minimising ``sum(w_i * (rows[i] . x - targets[i])^2)``."""
    if not rows:
        raise ValueError("no rows to fit")
    k = len(rows[0])
    if not 1 <= k <= MAX_UNKNOWNS:
        raise ValueError(f"between 1 and {MAX_UNKNOWNS} unknowns, got {k}")
    w = list(weights) if weights is not None else [1.0] * len(rows)
    scale = [
        math.sqrt(sum(wi * row[j] ** 2 for row, wi in zip(rows, w, strict=True))) for j in range(k)
    ]
    scale = [s if s > 0 else 1.0 for s in scale]
    gram = [[0.0] * k for _ in range(k)]
    moment = [0.0] * k
    constant = 0.0
    for row, y, wi in zip(rows, targets, w, strict=True):
        scaled = [row[j] / scale[j] for j in range(k)]
        for a in range(k):
            moment[a] += wi * scaled[a] * y
            for b in range(a, k):
                gram[a][b] += wi * scaled[a] * scaled[b]
        constant += wi * y * y
    for a in range(k):
        for b in range(a):
            gram[a][b] = gram[b][a]
    best = [0.0] * k
    best_cost = constant
    for size in range(1, k + 1):
        for support in combinations(range(k), size):
            sub_gram = [[gram[a][b] for b in support] for a in support]
            solution = _solve(sub_gram, [moment[a] for a in support])
            if solution is None or any(value < 0 for value in solution):
                continue
            x = [0.0] * k
            for index, value in zip(support, solution, strict=True):
                x[index] = value
            cost = _cost(gram, moment, constant, x)
            if cost < best_cost - 1e-15 * max(1.0, abs(best_cost)):
                best, best_cost = x, cost
    return [value / scale[j] for j, value in enumerate(best)]


def _cost(gram: list[list[float]], moment: list[float], constant: float, x: list[float]) -> float:
    k = len(x)
    quadratic = sum(x[a] * gram[a][b] * x[b] for a in range(k) for b in range(k))
    return quadratic - 2.0 * sum(x[a] * moment[a] for a in range(k)) + constant


def _solve(matrix: list[list[float]], vector: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when the system is (nearly) singular."""
    n = len(vector)
    a = [[*row, value] for row, value in zip(matrix, vector, strict=True)]
    largest = max((abs(v) for row in matrix for v in row), default=0.0)
    if largest == 0:
        return None
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) <= 1e-12 * largest:
            return None
        a[col], a[pivot] = a[pivot], a[col]
        for r in range(col + 1, n):
            factor = a[r][col] / a[col][col]
            if factor:
                for c in range(col, n + 1):
                    a[r][c] -= factor * a[col][c]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (a[r][n] - sum(a[r][c] * x[c] for c in range(r + 1, n))) / a[r][r]
    return x
