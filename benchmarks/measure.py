"""Measurements: one objective for every library, time to a suboptimality, passes, memory.

Time to a relative suboptimality ``eps`` is measured the same way for every library (none of
them needs a callback): fits with ``tol=0`` and a growing ``max_iter`` (a geometric sweep,
then bisection between the last ``max_iter`` that missed ``eps`` and the first that reached
it), so the time is that of the smallest ``max_iter`` that reaches ``eps``, re-timed
``repeats`` times (median).
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .adapters import Adapter, Fitted, quiet_fit

__all__ = ["Sweep", "objective", "pass_time", "peak_memory", "sweep", "time_fit"]

GRID = [
    1,
    2,
    3,
    4,
    6,
    8,
    12,
    16,
    24,
    32,
    48,
    64,
    96,
    128,
    192,
    256,
    384,
    512,
    768,
    1024,
    1536,
    2048,
    3072,
    4096,
    6144,
    8192,
    12288,
    16384,
]


def objective(X, codes: np.ndarray, C: float, fitted: Fitted, block: int = 65536) -> float:
    """scikit-learn's mean-form objective ``mean CE + ||W||^2 / (2 C n)`` in float64."""
    W, b = fitted.coef, fitted.intercept
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
        return np.inf
    n = X.shape[0]
    total = 0.0
    for start in range(0, n, block):
        Xb = X[start : start + block]
        Xb = Xb.astype(np.float64) if sp.issparse(Xb) else np.asarray(Xb, dtype=np.float64)
        A = np.asarray(Xb @ W.T) + b
        amax = A.max(axis=1)
        lse = np.log(np.exp(A - amax[:, None]).sum(axis=1)) + amax
        total += float(np.sum(lse - A[np.arange(A.shape[0]), codes[start : start + block]]))
    return total / n + float(np.sum(W * W)) / (2 * C * n)


def rel_subopt(f: float, fstar: float) -> float:
    return max(f - fstar, 0.0) / abs(fstar) if np.isfinite(f) else np.inf


def time_fit(adapter: Adapter, X, y, repeats: int = 1, **kw):
    """Median wall and CPU (all threads) times of ``repeats`` fits.

    Returns ``(wall_seconds, fitted, warnings, cpu_seconds)``.
    """
    walls, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fitted, warns = quiet_fit(adapter, X, y, **kw)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), fitted, warns, float(np.median(cpus))


@dataclass
class Sweep:
    """Points ``(max_iter, seconds, objective)`` of one solver, and the crossing times."""

    points: list = field(default_factory=list)
    reached: dict = field(default_factory=dict)  # eps -> (wall s, max_iter, n_iter, cpu s)
    exhausted: bool = False


def sweep(adapter, X, y, codes, C, fstar, eps_list=(1e-3, 1e-6), budget=60.0, repeats=3):
    """Time to each relative suboptimality in ``eps_list`` (see the module docstring)."""
    out = Sweep()
    cache: dict[int, tuple] = {}

    def run(k):
        if k not in cache:
            t, fitted, _, cpu = time_fit(adapter, X, y, C=C, tol=0.0, max_iter=k)
            cache[k] = (t, objective(X, codes, C, fitted), fitted.n_iter, cpu)
            out.points.append((k, t, cache[k][1]))
        return cache[k]

    spent, last_miss = 0.0, {eps: 0 for eps in eps_list}
    first_hit: dict[float, int] = {}
    for k in GRID:
        t, f, _, _ = run(k)
        spent += t
        for eps in eps_list:
            if eps in first_hit:
                continue
            if rel_subopt(f, fstar) <= eps:
                first_hit[eps] = k
            else:
                last_miss[eps] = k
        if len(first_hit) == len(eps_list) or t > budget or spent > 3 * budget:
            break
    out.exhausted = len(first_hit) < len(eps_list)
    for eps, hi in first_hit.items():
        lo = last_miss[eps]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if rel_subopt(run(mid)[1], fstar) <= eps:
                hi = mid
            else:
                lo = mid
        t, f, n_iter, cpu = run(hi)
        more = [time_fit(adapter, X, y, C=C, tol=0.0, max_iter=hi) for _ in range(repeats - 1)]
        t = float(np.median([t, *(m[0] for m in more)]))
        cpu = float(np.median([cpu, *(m[3] for m in more)]))
        out.reached[eps] = (t, hi, n_iter, cpu)
    out.points.sort()
    return out


def peak_memory(adapter, X, y, **kw) -> float:
    """Peak bytes allocated through Python/NumPy during one fit (tracemalloc), in MiB."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        quiet_fit(adapter, X, y, **kw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20


def pass_time(X, n_classes: int, repeats: int = 3) -> float:
    """Seconds of one pass: ``X @ W`` plus ``X.T @ G`` in the dtype of ``X``."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(X.shape[1], n_classes)).astype(X.dtype)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        G = np.asarray(X @ W)
        np.asarray(X.T @ G)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
