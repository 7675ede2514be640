r"""Subsampled Newton for tall in-memory data (``n`` much larger than the coefficients).

Exact Newton pays for the full Hessian at every iteration (``n (Kp)^2`` flops, tens of
passes over the data when ``Kp`` is a few hundred) and Newton-CG for one pass per
Hessian-vector product. When ``n`` is much larger than the number of coefficients, a random
subsample of ``m`` rows carries the curvature to a relative accuracy of about
``sqrt(Kp / m)``, at ``m / n`` of the cost (Byrd, Chin, Neveitt & Nocedal 2011;
Roosta-Khorasani & Mahoney 2016; Bollapragada, Byrd & Nocedal 2018). This solver:

1. *warm start*: minimises the same objective on a fixed-seed subsample (penalty kept in the
   full-data scaling, ``Objective.subsample``) to the tolerance its sampling error allows;
2. *full-data iterations*: Newton steps from the subsample's curvature (few coefficients on
   dense data: a Cholesky factor of the subsample Hessian, kept while the gradient falls fast
   and refreshed when it does not; else preconditioned CG on subsample Hessian-vector
   products), corrected by a BFGS update with the last full-data step, on the **full**
   gradient, with Armijo backtracking on the **full** loss from the unit step;
3. *certificate*: it stops only when the **full-data** gradient passes the test of
   :class:`~._base.Stopping`, so the optimum is that of every other solver. When the subsample
   steps stall, or the subsample's problem has no solution (a feature or class absent from it,
   separation), it hands over to the full solver from its best point.

Deterministic: the subsample is drawn with a fixed seed. Sources without row access (streamed
files, Dask) and problems that are not tall go straight to the full solver.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg as la

from . import newton_cg
from ._base import CountingOracle, Stopping

__all__ = ["bfgs_operator", "minimize", "sample_size"]

#: The subsample holds ``max(n / FRACTION, ROWS_PER_COEF * n_coef)`` rows and is used only
#: when that is at most ``n / MIN_RATIO`` (else the full solver).
FRACTION = 16
ROWS_PER_COEF = 16
MIN_RATIO = 4
#: Seed of the subsample (fits are reproducible).
SEED = 0
#: Warm-start tolerance: ``WARM_TOL / sqrt(m)`` is about the sampling noise of the
#: subsample's gradient in the certificate's units; solving further would be wasted.
WARM_TOL = 0.3
WARM_MAX_ITER = 50
#: The subsample curvature is refreshed at the new point when an iteration reduces the
#: gradient's norm by less than the factor ``REFRESH`` or needs a step below 1. An iteration
#: reducing it by less than ``SLOW`` is *slow*; after ``MAX_SLOW`` of them the full solver takes
#: over (the subsample misrepresents the curvature: near-separable data, rare features).
REFRESH = 0.25
SLOW = 0.6
MAX_SLOW = 3
#: Relative residual of the CG solves on the subsample Hessian (many coefficients): the
#: subsample's curvature is itself only about this accurate.
CG_RTOL = 0.1
#: Full-data steps ``(s, y)`` whose BFGS updates correct the subsample curvature.
SECANT_PAIRS = 1
NAME = "subsampled-newton"


def sample_size(n_samples: int, n_coef: int) -> int | None:
    """Rows of the subsample, or ``None`` when the problem is not tall enough to gain."""
    m = max(n_samples // FRACTION, ROWS_PER_COEF * n_coef)
    return m if m * MIN_RATIO <= n_samples else None


def _full_name(oracle) -> str:
    from . import full_solver

    return full_solver(oracle)


def minimize(oracle, coef0, *, tol, max_iter, callback=None):
    """Minimise with a subsample warm start and subsample-curvature full-data iterations.

    Same signature and result as every solver (see ``softmaxreg._solvers``); ``max_iter``
    bounds the full-data iterations (the warm start has its own cap, ``WARM_MAX_ITER``).
    """
    from . import SOLVERS

    full = _full_name(oracle)
    m = sample_size(oracle.source.n_samples, oracle.n_coef)
    sub = None if m is None else oracle.subsample(m, SEED)
    if sub is None:
        return _named(SOLVERS[full](oracle, coef0, tol=tol, max_iter=max_iter, callback=callback))
    w = _warm_start(sub, coef0, max(tol, WARM_TOL / np.sqrt(m)))
    if w is None:  # the subsample's problem has no solution: no use for its curvature
        return _named(SOLVERS[full](oracle, coef0, tol=tol, max_iter=max_iter, callback=callback))
    Q = oracle.null_space()
    if full == "newton":
        curvature = _CholeskyCurvature(sub, Q)
    else:
        curvature = _CGCurvature(sub, newton_cg.tied_groups(Q), CG_RTOL)
    res, stalled = _phase(oracle, curvature, w, tol=tol, max_iter=max_iter, callback=callback)
    if not stalled or res.n_iter >= max_iter:
        return _named(res)
    rest = SOLVERS[full](
        oracle, res.coef, tol=tol, max_iter=max_iter - res.n_iter, callback=callback
    )
    t0 = res.history[-1]["time"] if res.history else 0.0
    rest.history = res.history + [
        dict(row, iter=row["iter"] + res.n_iter, time=row["time"] + t0) for row in rest.history
    ]
    rest.n_iter += res.n_iter
    rest.message += f" (after {res.n_iter} subsampled-Newton iterations stalled)"
    return _named(rest)


def _named(res):
    res.solver = NAME
    return res


def _warm_start(sub, coef0, tol):
    """The subsample's solution to ``tol``, or ``None`` if it has none (or no certificate).

    Found by this solver again: a subsample that is itself tall gets its warm start and
    curvature from a smaller one (``n / 256`` rows, ...), so its full Hessian is never built.
    """
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # a singular subsample Hessian is not the user's data
        try:
            res = minimize(CountingOracle(sub), coef0, tol=tol, max_iter=WARM_MAX_ITER)
        except (ValueError, np.linalg.LinAlgError):
            return None
    return res.coef if res.converged and np.all(np.isfinite(res.coef)) else None


def _factor(H, null_space):
    """Cholesky factor of ``H`` deflated along the null space (as in exact Newton), or None."""
    if not np.all(np.isfinite(H)):
        return None
    c = max(float(np.mean(np.diag(H))), 1e-300)
    Hd = H + c * (null_space @ null_space.T) if null_space.shape[1] else H
    try:
        return la.cho_factor(Hd, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None


class _CholeskyCurvature:
    """Newton directions from a Cholesky factor of the subsample Hessian, rebuilt lazily,
    with the inverse BFGS updates of the last ``SECANT_PAIRS`` full-data steps (the
    two-loop recursion of L-BFGS with the factor's solve as the initial inverse)."""

    def __init__(self, sub, null_space):
        self.sub, self.Q, self.cho, self.pairs = sub, null_space, None, []

    def direction(self, w, g):
        if self.cho is None:
            self.cho = _factor(self.sub.hessian(w)[2], self.Q)
            if self.cho is None:
                return None
        q, alphas = np.array(g, dtype=np.float64), []
        for s, y in reversed(self.pairs):
            a = (s @ q) / (y @ s)
            q -= a * y
            alphas.append(a)
        r = la.cho_solve(self.cho, q, check_finite=False)
        for (s, y), a in zip(self.pairs, reversed(alphas), strict=True):
            r += s * (a - (y @ r) / (y @ s))
        return -r

    def refresh(self):
        self.cho = None

    def learn(self, s, y):
        if SECANT_PAIRS and float(y @ s) > 0:
            self.pairs = (self.pairs + [(s, y)])[-SECANT_PAIRS:]


class _CGCurvature:
    """Newton directions by preconditioned CG on subsample Hessian-vector products,
    corrected by BFGS updates from the last ``SECANT_PAIRS`` full-data steps.

    Each full-data step ``s`` gives the exact full curvature along it,
    ``y = g(w + s) - g(w)``; the BFGS update of the subsample Hessian ``B`` with ``(s, y)``
    makes ``B s = y``, which removes the subsample's error along the slowest modes of the
    iteration (those the steps follow).
    """

    def __init__(self, sub, tied, rtol):
        self.sub, self.tied, self.rtol = sub, tied, rtol
        self.pairs = []

    def learn(self, s, y):
        if SECANT_PAIRS and float(y @ s) > 0:
            self.pairs = (self.pairs + [(s, y)])[-SECANT_PAIRS:]

    def direction(self, w, g):
        _, hessp = self.sub.grad_hessp(w)
        M = newton_cg._preconditioner(self.sub, w, self.tied)
        d, _ = newton_cg.steihaug_cg(bfgs_operator(hessp, self.pairs), g, np.inf, self.rtol, M=M)
        return d if np.all(np.isfinite(d)) else None

    def refresh(self):
        pass


def bfgs_operator(hessp, pairs):
    """``v -> B v`` for ``B`` the operator ``hessp`` after BFGS updates with the ``(s, y)``
    pairs in order: ``B+ = B - B s s^T B / s^T B s + y y^T / y^T s`` (so ``B+ s = y``)."""
    terms = []  # (B_j s_j, s_j.B_j s_j, y_j, y_j.s_j) with B_j the operator before pair j

    def op(v):
        r = hessp(v)
        for Bs, sBs, y, ys in terms:
            r += y * ((y @ v) / ys) - Bs * ((Bs @ v) / sBs)
        return r

    for s, y in pairs:
        Bs = op(s)
        sBs, ys = float(s @ Bs), float(y @ s)
        if sBs > 0 and ys > 0:
            terms.append((Bs, sBs, y, ys))
    return op


def _phase(oracle, curvature, w, *, tol, max_iter, callback):
    """Full-data damped Newton steps along the subsample's Newton directions.

    Returns ``(result, stalled)``. One full pass per iteration when the unit step is taken
    (its loss and gradient come together); the curvature is refreshed only when the
    gradient fell by less than ``REFRESH`` (a Cholesky factor is then rebuilt).
    """
    f, g = oracle.loss_grad(w)
    stop = Stopping(oracle, tol, g, oracle.dtype, callback)
    slow = 0
    for _ in range(max_iter):
        if stop.done(g):
            return stop.result(NAME, w, f, g, "gradient norm below gtol"), False
        d = curvature.direction(w, g)
        step = None if d is None else _armijo(oracle, w, f, g, d)
        if step is None:
            return stop.result(NAME, w, f, g, "no descent from the subsample step"), True
        t, fnew, gnew = step
        ratio = stop.norm(gnew) / max(stop.norm(g), 1e-300)
        curvature.learn(t * d, gnew - g)
        w, f, g = w + t * d, fnew, gnew
        if stop.record(w, f, g, t):
            return stop.result(NAME, w, f, g, "stopped by callback"), False
        slow += ratio > SLOW
        if slow >= MAX_SLOW and not stop.done(g):
            return stop.result(NAME, w, f, g, "stalled"), True
        if ratio > REFRESH or t < 1:
            curvature.refresh()
    converged = stop.done(g)
    message = "gradient norm below gtol" if converged else f"reached max_iter={max_iter}"
    return stop.result(NAME, w, f, g, message), False


def _armijo(oracle, w, f, g, d):
    """Backtracking from the unit step on the full loss: ``(t, f, g)`` or ``None``."""
    gd = float(g @ d)
    if not gd < 0:
        return None
    slack = 10 * np.finfo(float).eps * abs(f)  # approximate Armijo (Hager & Zhang)
    fnew, gnew = oracle.loss_grad(w + d)
    if fnew <= f + 1e-4 * gd + slack:
        return 1.0, fnew, gnew
    t = 0.5
    while t > 1e-10:
        fnew = oracle.loss(w + t * d)
        if fnew <= f + 1e-4 * t * gd + slack:
            fnew, gnew = oracle.loss_grad(w + t * d)
            return t, fnew, gnew
        t *= 0.5
    return None
