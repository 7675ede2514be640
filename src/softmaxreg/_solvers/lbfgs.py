"""Limited-memory BFGS with a strong-Wolfe line search, in NumPy (one BLAS, resumable state)."""

from __future__ import annotations

from collections import deque

import numpy as np

from ._base import Stopping
from ._linesearch import wolfe_line_search

__all__ = ["minimize"]


def _two_loop(g, S, Y):
    """``H g`` for the L-BFGS inverse-Hessian estimate from the pairs ``(s_i, y_i)``."""
    q = g.copy()
    alphas = []
    for s, y in zip(reversed(S), reversed(Y), strict=True):
        a = (s @ q) / (y @ s)
        alphas.append(a)
        q -= a * y
    if S:
        q *= (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1])
    for (s, y), a in zip(zip(S, Y, strict=True), reversed(alphas), strict=True):
        q += (a - (y @ q) / (y @ s)) * s
    return q


def minimize(oracle, coef0, *, tol, max_iter, callback=None, memory=10):
    """Minimise with L-BFGS; stops on the gradient certificate of :class:`Stopping`."""
    x = np.array(coef0, dtype=np.float64)
    f, g = oracle.loss_grad(x)
    stop = Stopping(oracle, tol, g, oracle.dtype, callback)
    S, Y = deque(maxlen=memory), deque(maxlen=memory)
    message = f"reached max_iter={max_iter}"
    for _ in range(max_iter):
        if stop.done(g):
            message = "gradient norm below gtol"
            break
        d = -_two_loop(g, S, Y)
        step = 1.0 if S else min(1.0, 1.0 / max(np.abs(g).sum(), 1e-300))
        found = wolfe_line_search(oracle, x, f, g, d, step)
        if found is None and S:  # stale curvature pairs: restart from steepest descent
            S.clear()
            Y.clear()
            d = -g
            found = wolfe_line_search(oracle, x, f, g, d, min(1.0, 1.0 / np.abs(g).sum()))
        if found is None:
            message = "line search found no decrease: the loss is at its precision limit"
            break
        t, f_new, g_new = found
        s, y = t * d, g_new - g
        if s @ y > 1e-12 * (y @ y):
            S.append(s)
            Y.append(y)
        x, f, g = x + s, f_new, g_new
        if stop.record(x, f, g, t):
            message = "stopped by callback"
            break
    else:
        if stop.done(g):
            message = "gradient norm below gtol"
    return stop.result("lbfgs", x, f, g, message)
