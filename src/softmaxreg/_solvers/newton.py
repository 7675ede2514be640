"""Exact Newton with a Cholesky solve of the full Hessian, for problems with few parameters.

Resumable: everything an iteration needs (loss, gradient, Hessian) is a function of the
iterate, so the state handed to an optional ``checkpoint`` callable after every step
(:func:`state_of`: iterate, history and counts) is enough; ``resume`` recomputes the Hessian
there (one pass) and the run repeats the arithmetic of the uninterrupted one: bitwise the same
coefficients when the oracle is deterministic.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from .._exceptions import SingularHessianWarning
from ._base import Stopping

__all__ = ["minimize", "state_of"]


def newton_direction(H, g, null_space):
    """Solve ``H d = -g`` by Cholesky; ``H`` is deflated along the objective's null space.

    Adding ``c Q Q^T`` (``Q`` the orthonormal null-space basis, ``c`` the mean Hessian
    diagonal) makes the Hessian definite without changing the step, as ``g`` is orthogonal
    to ``Q``. If the Hessian is still singular (collinear features, unpenalised), warn and take
    the pseudo-inverse step over the eigenvalues above ``sqrt(eps)`` of the largest.
    """
    if not np.all(np.isfinite(H)):
        raise ValueError(
            "The Hessian overflows: the feature values are too large for exact Newton. "
            "Rescale or standardise the features, or use solver='lbfgs'."
        )
    c = max(float(np.mean(np.diag(H))), 1e-300)
    Hd = H + c * (null_space @ null_space.T) if null_space.shape[1] else H
    try:
        d = -cho_solve(cho_factor(Hd, lower=True, check_finite=False), g, check_finite=False)
        if np.all(np.isfinite(d)):
            return d
    except np.linalg.LinAlgError:
        pass
    warnings.warn(
        "The Hessian is singular (collinear or constant features, or separated classes); "
        "the Newton step uses its pseudo-inverse. Add a penalty (penalty='l2') or remove "
        "redundant features for a unique solution.",
        SingularHessianWarning,
        stacklevel=4,
    )
    evals, evecs = np.linalg.eigh(Hd)
    keep = evals > np.sqrt(np.finfo(float).eps) * max(evals.max(), 1e-300)
    return -(evecs[:, keep] / evals[keep]) @ (evecs[:, keep].T @ g)


def _backtrack(oracle, w, d, f, gd, slack):
    """The first ``t = 1/2, 1/4, ...`` with Armijo decrease along ``d``; ``None`` if none."""
    t = 0.5
    while t > 1e-10:
        if oracle.loss(w + t * d) <= f + 1e-4 * t * gd + slack:
            return t
        t *= 0.5
    return None


def state_of(w, stop) -> dict:
    """The resumable state: the iterate ``w`` (an array), JSON-able scalars else."""
    return {
        "solver": "newton",
        "w": w,
        **stop.state(),
    }


def minimize(oracle, coef0, *, tol, max_iter, callback=None, resume=None, checkpoint=None):
    """Minimise with damped Newton steps (Armijo backtracking from the full step).

    Parameters
    ----------
    resume : dict, optional
        A state from :func:`state_of` (e.g. read back from a checkpoint); ``coef0`` is then
        ignored and the run continues where that state left off, counting its iterations.
    checkpoint : callable, optional
        Called as ``checkpoint(state)`` after every iteration.
    """
    w = np.array(coef0 if resume is None else resume["w"], dtype=np.float64)
    f, g, H = oracle.hessian(w)
    if resume is None:
        stop = Stopping(oracle, tol, g, oracle.dtype, callback)
    else:
        stop = Stopping.resumed(oracle, tol, g, callback, resume)
    Q = oracle.null_space()
    message = f"reached max_iter={max_iter}"
    for _ in range(max(max_iter - len(stop.history), 0)):
        if stop.done(g):
            message = "gradient norm below gtol"
            break
        d = newton_direction(H, g, Q)
        gd = g @ d
        # Near the optimum loss differences reach rounding level: allow 10 eps |f| (the
        # approximate Armijo test of Hager & Zhang, as in the Wolfe search), else the full
        # step is rejected by noise and tiny steps stall at a gradient far above gtol.
        slack = 10 * np.finfo(float).eps * abs(f)
        # The full step nearly always passes: take the Hessian there at once (its pass
        # gives the loss too), and backtrack on the loss alone only if it fails.
        t = 1.0
        fnew, gnew, Hnew = oracle.hessian(w + d)
        if not fnew <= f + 1e-4 * gd + slack:
            t = _backtrack(oracle, w, d, f, gd, slack)
            if t is None:
                message = "line search found no decrease: the loss is at its precision limit"
                break
            fnew, gnew, Hnew = oracle.hessian(w + t * d)
        w, f, g, H = w + t * d, fnew, gnew, Hnew
        stopped = stop.record(w, f, g, t)
        if checkpoint is not None:
            checkpoint(state_of(w, stop))
        if stopped:
            message = "stopped by callback"
            break
    else:
        if stop.done(g):
            message = "gradient norm below gtol"
    return stop.result("newton", w, f, g, message)
