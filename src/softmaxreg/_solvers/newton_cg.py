"""Trust-region Newton-CG on Hessian-vector products (TRON: Lin, Weng & Keerthi 2008; LIBLINEAR).

Resumable: after every accepted step the state that the rest of the run depends on (iterate,
trust radius, the initial gradient norm of the forcing term, the number of outer iterations
taken, whether the region collapsed, the history and counts) is handed to an optional
``checkpoint`` callable (:func:`state_of`) and accepted back as ``resume``. The loss, gradient,
Hessian-vector product and preconditioner are functions of the iterate alone, so a resumed run
recomputes them (one pass and a half) and then repeats the arithmetic of the uninterrupted run:
bitwise the same coefficients when the oracle is deterministic.
"""

from __future__ import annotations

import numpy as np

from ._base import Stopping

__all__ = ["minimize", "state_of"]

ETA0, ETA1, ETA2 = 1e-4, 0.25, 0.75
SIGMA1, SIGMA2, SIGMA3 = 0.25, 0.5, 4.0
#: The largest relative residual of the CG solves (the forcing term shrinks it as |g| falls).
CG_RTOL = 0.5


def _to_boundary(s, d, delta, M):
    """``tau >= 0`` with ``||s + tau d||_M = delta`` (``M`` the diagonal of the norm)."""
    sd, dd, ss = s @ (M * d), d @ (M * d), s @ (M * s)
    rad = np.sqrt(max(sd * sd + dd * (delta * delta - ss), 0.0))
    return (rad - sd) / dd if sd >= 0 else (delta * delta - ss) / (sd + rad)


def steihaug_cg(hessp, g, delta, rtol=0.1, max_cg=None, M=None, enough=None):
    """Approximately minimise ``g.s + s.H s / 2`` within ``||s||_M <= delta``.

    Preconditioned conjugate gradients (Steihaug 1983) with the diagonal preconditioner
    ``M`` (identity when ``None``): the trust region is measured in the norm
    ``||s||_M = sqrt(s.M s)`` (LIBLINEAR >= 2.20; Hsia, Chiang & Lin 2018). Returns
    ``(s, r)`` with the residual ``r = -g - H s``; stops at ``||r||_{M^-1} <= rtol
    ||g||_{M^-1}``, when ``enough(r)`` holds (the linear model predicts a gradient that
    passes the convergence test: solving further would only polish a step that already
    ends the run), on the trust-region boundary, or on a direction of non-positive curvature.
    """
    M = np.ones_like(g) if M is None else M
    max_cg = max_cg or g.size
    s = np.zeros_like(g)
    r = -g
    z = r / M
    d = z.copy()
    zr = z @ r
    cg_tol = rtol * np.sqrt(zr)
    for _ in range(max_cg):
        if np.sqrt(max(zr, 0.0)) <= cg_tol:
            break
        Hd = hessp(d)
        dHd = d @ Hd
        alpha = zr / dHd if dHd > 0 else np.inf
        s_new = s + alpha * d if dHd > 0 else None
        if not dHd > 0 or s_new @ (M * s_new) >= delta * delta:
            tau = _to_boundary(s, d, delta, M)
            return s + tau * d, r - tau * Hd
        s = s_new
        r -= alpha * Hd
        if enough is not None and enough(r):
            break
        z = r / M
        zr_new = z @ r
        d = z + (zr_new / zr) * d
        zr = zr_new
    return s, r


def _radius(delta, snorm, actred, prered, f, fnew, gs):
    """LIBLINEAR's trust-region radius update."""
    denom = fnew - f - gs
    alpha = SIGMA3 if denom <= 0 else max(SIGMA1, -0.5 * (gs / denom))
    if actred < ETA0 * prered:
        return min(alpha * snorm, SIGMA2 * delta)
    if actred < ETA1 * prered:
        return max(SIGMA1 * delta, min(alpha * snorm, SIGMA2 * delta))
    if actred < ETA2 * prered:
        return max(SIGMA1 * delta, min(alpha * snorm, SIGMA3 * delta))
    return max(delta, min(alpha * snorm, SIGMA3 * delta))


def _evaluate(oracle, w):
    """Value, gradient and Hessian-vector products for the CG steps: the oracle's fastest
    (``loss_grad_approx_hessp``: float32 products where they pay, the value and gradient
    exact), else ``loss_grad_hessp``."""
    return getattr(oracle, "loss_grad_approx_hessp", oracle.loss_grad_hessp)(w)


def tied_groups(null_space) -> list[np.ndarray]:
    """The coefficients of each null-space direction, as index arrays (the preconditioner's
    ties; one small array per direction instead of a coefficient-sized column)."""
    return [np.flatnonzero(null_space[:, j]) for j in range(null_space.shape[1])]


def _preconditioner(oracle, w, tied):
    """The Hessian diagonal at ``w``, equal over each index group of ``tied`` (the
    coefficients of one null-space direction), floored."""
    D = np.array(oracle.hessian_diagonal(w), dtype=np.float64)
    for idx in tied:
        D[idx] = D[idx].mean()
    top = float(np.max(D, initial=0.0))
    return np.maximum(D, 1e-10 * top if top > 0 else 1.0)


def state_of(w, delta, g0, tries, collapsed, stop) -> dict:
    """The resumable state after an accepted step: the iterate ``w`` (an array), JSON-able
    scalars else (``delta`` after its rescaling to the new preconditioner)."""
    return {
        "solver": "newton-cg",
        "w": w,
        "delta": float(delta),
        "g0": float(g0),
        "tries": int(tries),
        "collapsed": bool(collapsed),
        **stop.state(),
    }


def _start(oracle, coef0, tol, callback, precondition, resume):
    """``(w, f, g, hessp, M, stop, tied, delta, g0, tries)`` at the start or at a resumed
    state; ``tied``: the index groups of the null-space directions (not the dense basis, one
    coefficient vector per direction)."""
    w = np.array(coef0 if resume is None else resume["w"], dtype=np.float64)
    f, g, hessp = _evaluate(oracle, w)
    if resume is None:
        stop = Stopping(oracle, tol, g, oracle.dtype, callback)
    else:
        stop = Stopping.resumed(oracle, tol, g, callback, resume)
    tied = tied_groups(oracle.null_space())
    # After an accepted step the uninterrupted run recomputes M at the new iterate too
    # (unless the gradient passes the test, when the resumed run stops at once anyway).
    M = _preconditioner(oracle, w, tied) if precondition else np.ones_like(g)
    if resume is None:
        g0 = np.sqrt(g @ (g / M))
        return w, f, g, hessp, M, stop, tied, g0, g0, 0
    delta, g0 = float(resume["delta"]), float(resume["g0"])
    return w, f, g, hessp, M, stop, tied, delta, g0, resume["tries"]


def minimize(
    oracle, coef0, *, tol, max_iter, callback=None, precondition=True, resume=None, checkpoint=None
):
    """Minimise with trust-region Newton-CG; each CG step costs one Hessian-vector product.

    With ``precondition`` the CG steps use the Hessian diagonal (recomputed at each accepted
    iterate, half a pass). The CG solves stop at the relative residual
    ``min(CG_RTOL, sqrt(|g|/|g0|))`` (in the preconditioned norm), loose far from the
    optimum and tightening for a superlinear finish. ``max_iter`` bounds the outer
    iterations, rejected steps included.

    Parameters
    ----------
    resume : dict, optional
        A state from :func:`state_of` (e.g. read back from a checkpoint); ``coef0`` is then
        ignored and the run continues where that state left off, counting its iterations.
    checkpoint : callable, optional
        Called as ``checkpoint(state)`` after every accepted step.
    """
    precondition = precondition and hasattr(oracle, "hessian_diagonal")
    w, f, g, hessp, M, stop, tied, delta, g0, tries = _start(
        oracle, coef0, tol, callback, precondition, resume
    )
    collapse = "trust region collapsed: the loss is at its precision limit"
    if resume is not None and resume["collapsed"]:  # the checkpointed run ended there
        return stop.result("newton-cg", w, f, g, collapse)

    def enough(r):  # r = -(predicted gradient after the step); half the test's threshold
        return stop.norm(r) <= 0.5 * stop.gtol

    message = f"reached max_iter={max_iter}"
    first = resume is None  # any step, accepted or not, clears it
    for _ in range(max(max_iter - tries, 0)):
        if stop.done(g):
            message = "gradient norm below gtol"
            break
        tries += 1
        gnorm = np.sqrt(g @ (g / M))
        rtol = min(CG_RTOL, np.sqrt(gnorm / g0)) if g0 > 0 else CG_RTOL
        s, r = steihaug_cg(hessp, g, delta, rtol=rtol, M=M, enough=enough)
        gs = g @ s
        prered = -0.5 * (gs - s @ r)
        del r  # each vector is as large as the coefficients: none is kept past its use
        fnew, gnew, hessp_new = _evaluate(oracle, w + s)
        actred = f - fnew
        snorm = np.sqrt(s @ (M * s))
        if first:
            delta, first = min(delta, snorm), False
        if 0 < prered <= 10 * np.finfo(float).eps * abs(f):
            # The model decrease is at the rounding level of f, so actred/prered is noise:
            # judge the Newton step by the gradient it reaches instead of by the loss
            # (else the region collapses with |g| far above gtol; tests/test_solvers.py).
            accept = np.linalg.norm(gnew) < np.linalg.norm(g)
            delta = delta if accept else SIGMA1 * min(delta, snorm)
        else:
            delta = _radius(delta, snorm, actred, prered, f, fnew, gs)
            accept = actred > ETA0 * prered
        stopped = False
        if accept:
            w, f, g, hessp = w + s, fnew, gnew, hessp_new
            if precondition and not stop.done(g):  # no use for it after the last step
                M_new = _preconditioner(oracle, w, tied)
                delta *= np.sqrt(np.median(M_new / M))
                M = M_new
            stopped = stop.record(w, f, g, snorm)
        del hessp_new, gnew, s  # a rejected point's probabilities are not kept either
        collapsed = prered <= 0 or delta <= 1e-15 * max(1.0, np.sqrt(w @ (M * w)))
        if accept and checkpoint is not None:
            checkpoint(state_of(w, delta, g0, tries, collapsed, stop))
        if stopped:
            message = "stopped by callback"
            break
        if collapsed:
            message = collapse
            break
    else:
        if stop.done(g):
            message = "gradient norm below gtol"
    return stop.result("newton-cg", w, f, g, message)
