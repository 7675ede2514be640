r"""FISTA for ``f + h``: a smooth objective plus a non-smooth penalty with a cheap prox.

Accelerated proximal gradient (Beck & Teboulle 2009) with

* backtracking on the local Lipschitz constant ``L`` (sufficient decrease
  :math:`f(x^+) \le f(y) + g^T(x^+ - y) + \tfrac L2\|x^+ - y\|^2`), and ``L`` shrunk a little
  after each accepted step so that the step can grow again;
* adaptive restart of the momentum when the composite objective ``F = f + h`` increases
  (O'Donoghue & Candès 2015), which restores linear convergence on strongly convex pieces.

Stopping certificate: the max-norm of the minimum-norm element of
:math:`\nabla f(x) + \partial h(x)` (:meth:`NonSmoothPenalty.residual`), zero exactly at the
minimiser, in the standardised units of :class:`Stopping` (``max |r / scale| <= tol``), as
for the smooth solvers.
It is checked, at the cost of one extra gradient, when the proximal-gradient step
:math:`L\,|y - x^+|_\infty` (free) drops below ``gtol``.

The solver sees only the oracle and the penalty object (``value``, ``prox``, ``residual``); it
lives outside the smooth ``SOLVERS`` registry because its signature needs the penalty.
"""

from __future__ import annotations

import numpy as np

from ._base import CountingOracle, SolverResult, Stopping

__all__ = ["PROX_SOLVERS", "minimize", "minimize_newton", "solve_penalised"]


def _prox_step(oracle, penalty, y, fy, gy, L):
    """Backtracking proximal-gradient step from ``y``; returns ``(x, f(x), L)``."""
    for _ in range(60):
        x = penalty.prox(y - gy / L, 1.0 / L)
        d = x - y
        fx = oracle.loss(x)
        bound = fy + gy @ d + 0.5 * L * (d @ d)
        if fx <= bound + 4 * np.finfo(float).eps * abs(fy):
            return x, fx, L
        L *= 2.0
    return x, fx, L


def minimize(oracle, coef0, *, penalty, tol, max_iter, callback=None) -> SolverResult:
    """Minimise ``oracle.loss + penalty.value`` with FISTA (see the module docstring).

    Parameters
    ----------
    oracle : Objective or CountingOracle
        The smooth part (``loss``, ``loss_grad``).
    coef0 : ndarray of shape (n_coef,)
    penalty : NonSmoothPenalty
        The non-smooth part.
    tol, max_iter, callback
        As for every solver (``softmaxreg._solvers``).

    Returns
    -------
    SolverResult
        ``loss`` is the composite objective ``f + h``; ``grad_norm`` the residual certificate.
    """
    x = penalty.prox(np.array(coef0, dtype=np.float64), 0.0)
    f, g = oracle.loss_grad(x)
    stop = Stopping(oracle, tol, g, oracle.dtype, callback)
    r = penalty.residual(x, g)
    F = f + penalty.value(x)
    L = max(float(np.max(np.abs(g), initial=0.0)), 1e-3)
    y, fy, gy, t, y_is_x = x, f, g, 1.0, True
    message = f"reached max_iter={max_iter}"
    for _ in range(max_iter):
        if stop.done(r):
            message = "optimality residual below gtol"
            break
        x_new, f_new, L = _prox_step(oracle, penalty, y, fy, gy, L)
        F_new = f_new + penalty.value(x_new)
        # Momentum overshot: restart from x with a plain proximal step (values within a few
        # ulps count as no increase, so that rounding does not stop the solver early).
        if F_new > F + 8 * np.finfo(float).eps * max(abs(F), 1.0):
            if y_is_x:
                message = "no further decrease: the objective is at its precision limit"
                break
            if g is None:
                f, g = oracle.loss_grad(x)
            t, y, fy, gy, y_is_x = 1.0, x, f, g, True
            continue
        step_res = stop.norm(L * (x_new - y))
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        beta = (t - 1.0) / t_new
        x_old, x, f, F, t, g = x, x_new, f_new, F_new, t_new, None
        if step_res <= stop.gtol:  # the cheap test passed: compute the real certificate
            f, g = oracle.loss_grad(x)
            r = penalty.residual(x, g)
        if stop.record(x, F, r if g is not None else [step_res], 1.0 / L):
            message = "stopped by callback"
            break
        y_is_x = beta == 0.0
        if y_is_x and g is not None:
            y, fy, gy = x, f, g
        else:
            y = x + beta * (x - x_old) if not y_is_x else x
            fy, gy = oracle.loss_grad(y)
            if y_is_x:
                g = gy
        L *= 0.9
    if g is None:
        f, g = oracle.loss_grad(x)
    r = penalty.residual(x, g)
    return stop.result("fista", x, f + penalty.value(x), r, message)


def _lipschitz(H, n_iter=30):
    """An upper estimate of the largest eigenvalue of the PSD matrix ``H`` (power iteration)."""
    v = np.random.default_rng(0).standard_normal(H.shape[0])
    lam = 0.0
    for _ in range(n_iter):
        w = H @ v
        lam = float(np.linalg.norm(w))
        if lam == 0.0:
            return 1e-12
        v = w / lam
    return 1.1 * lam + 1e-12


def _solve_model(H, g, x, penalty, rtol, scale=1.0, max_inner=2000):
    """Minimise the model ``g.(z-x) + (z-x).H(z-x)/2 + h(z)`` by FISTA with restarts.

    Stops when the model's residual (max-norm of ``r / scale``) is at most ``rtol``.
    """
    L = _lipschitz(H)
    z = x.copy()
    y, t = z, 1.0
    for it in range(max_inner):
        gy = g + H @ (y - x)
        z_new = penalty.prox(y - gy / L, 1.0 / L)
        if (y - z_new) @ (z_new - z) > 0:  # gradient restart (O'Donoghue & Candes)
            t = 1.0
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        y = z_new + ((t - 1.0) / t_new) * (z_new - z)
        z, t = z_new, t_new
        if it % 10 == 9 or it == max_inner - 1:
            r = penalty.residual(z, g + H @ (z - x))
            if float(np.max(np.abs(r / scale), initial=0.0)) <= rtol:
                break
    return z


def minimize_newton(oracle, coef0, *, penalty, tol, max_iter, callback=None) -> SolverResult:
    """Proximal Newton (Lee, Sun & Saunders 2014) with the exact Hessian, for few coefficients.

    Each iteration builds the full Hessian ``H`` (one pass over the data), minimises the local
    model ``g.d + d.H.d/2 + h(x + d)`` by FISTA on ``H`` alone (no data passes; inner
    tolerance a tenth of the current residual), then backtracks on ``F = f + h`` along ``d``
    (Armijo with the model decrease). Same certificate as :func:`minimize`.
    """
    x = penalty.prox(np.array(coef0, dtype=np.float64), 0.0)
    f, g, H = oracle.hessian(x)
    stop = Stopping(oracle, tol, g, oracle.dtype, callback)
    hx = penalty.value(x)
    message = f"reached max_iter={max_iter}"
    for _ in range(max_iter):
        rnorm = stop.norm(penalty.residual(x, g))
        if rnorm <= stop.gtol:
            message = "optimality residual below gtol"
            break
        z = _solve_model(H, g, x, penalty, max(0.1 * rnorm, 0.1 * stop.gtol), stop.scale)
        d = z - x
        decrease = g @ d + penalty.value(z) - hx
        if not decrease < 0:
            message = "no descent direction: the objective is at its precision limit"
            break
        step, F = 1.0, f + hx
        for _ls in range(40):
            x_try = x + step * d if step < 1.0 else z
            h_try = penalty.value(x_try)
            f_try = oracle.loss(x_try)
            if f_try + h_try <= F + 1e-4 * step * decrease:
                break
            step *= 0.5
        else:
            message = "line search found no decrease: the objective is at its precision limit"
            break
        x, hx = x_try, h_try
        f, g, H = oracle.hessian(x)
        if stop.record(x, f + hx, penalty.residual(x, g), step):
            message = "stopped by callback"
            break
    r = penalty.residual(x, g)
    return stop.result("prox-newton", x, f + hx, r, message)


PROX_SOLVERS = {"fista": minimize, "prox-newton": minimize_newton}

#: Up to this many coefficients ``"auto"`` takes proximal Newton with the full Hessian.
PROX_NEWTON_MAX_COEF = 2500


def solve_penalised(
    name, objective, coef0, penalty, *, tol, max_iter, callback=None
) -> SolverResult:
    """Run the proximal solver ``name`` on ``objective + penalty``.

    ``"auto"`` takes ``"prox-newton"`` up to :data:`PROX_NEWTON_MAX_COEF` coefficients and
    ``"fista"`` above (one Hessian costs about ``n_coef / 2`` gradient passes).
    """
    if name == "auto":
        name = "prox-newton" if objective.n_coef <= PROX_NEWTON_MAX_COEF else "fista"
    if name not in PROX_SOLVERS:
        raise ValueError(
            f"Non-smooth penalties need a proximal solver: solver must be one of "
            f"{['auto', *PROX_SOLVERS]}, got {name!r}."
        )
    return PROX_SOLVERS[name](
        CountingOracle(objective),
        coef0,
        penalty=penalty,
        tol=tol,
        max_iter=max_iter,
        callback=callback,
    )
