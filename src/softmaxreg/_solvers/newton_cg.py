"""Trust-region Newton-CG on Hessian-vector products (TRON: Lin, Weng & Keerthi 2008; LIBLINEAR)."""

from __future__ import annotations

import numpy as np

from ._base import Stopping

__all__ = ["minimize"]

ETA0, ETA1, ETA2 = 1e-4, 0.25, 0.75
SIGMA1, SIGMA2, SIGMA3 = 0.25, 0.5, 4.0


def _to_boundary(s, d, delta):
    """``tau >= 0`` with ``||s + tau d|| = delta``."""
    sd, dd, ss = s @ d, d @ d, s @ s
    rad = np.sqrt(max(sd * sd + dd * (delta * delta - ss), 0.0))
    return (rad - sd) / dd if sd >= 0 else (delta * delta - ss) / (sd + rad)


def steihaug_cg(hessp, g, delta, rtol=0.1, max_cg=None):
    """Approximately minimise ``g.s + s.H s / 2`` within ``||s|| <= delta``.

    Returns ``(s, r)`` with the residual ``r = -g - H s``; stops at ``||r|| <= rtol ||g||``,
    on the trust-region boundary, or on a direction of non-positive curvature.
    """
    max_cg = max_cg or g.size
    s = np.zeros_like(g)
    r = -g
    d = r.copy()
    rr = r @ r
    cg_tol = rtol * np.sqrt(rr)
    for _ in range(max_cg):
        if np.sqrt(rr) <= cg_tol:
            break
        Hd = hessp(d)
        dHd = d @ Hd
        if dHd <= 0 or np.linalg.norm(s + (rr / dHd) * d) >= delta:
            tau = _to_boundary(s, d, delta)
            return s + tau * d, r - tau * Hd
        alpha = rr / dHd
        s += alpha * d
        r -= alpha * Hd
        rr_new = r @ r
        d = r + (rr_new / rr) * d
        rr = rr_new
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


def minimize(oracle, coef0, *, tol, max_iter, callback=None):
    """Minimise with trust-region Newton-CG; each CG step costs one Hessian-vector product."""
    w = np.array(coef0, dtype=np.float64)
    f, g, hessp = oracle.loss_grad_hessp(w)
    stop = Stopping(oracle, tol, g, oracle.dtype, callback)
    delta = np.linalg.norm(g)
    message = f"reached max_iter={max_iter}"
    first = True
    for _ in range(max_iter):
        if stop.done(g):
            message = "gradient norm below gtol"
            break
        s, r = steihaug_cg(hessp, g, delta)
        gs = g @ s
        prered = -0.5 * (gs - s @ r)
        fnew, gnew, hessp_new = oracle.loss_grad_hessp(w + s)
        actred = f - fnew
        snorm = np.linalg.norm(s)
        if first:
            delta, first = min(delta, snorm), False
        if 0 < prered <= 10 * np.finfo(float).eps * abs(f):
            # The model decrease is at the rounding level of f, so actred/prered is noise:
            # judge the Newton step by the gradient it reaches instead of by the loss.
            accept = np.linalg.norm(gnew) < np.linalg.norm(g)
            delta = delta if accept else SIGMA1 * min(delta, snorm)
        else:
            delta = _radius(delta, snorm, actred, prered, f, fnew, gs)
            accept = actred > ETA0 * prered
        if accept:
            w, f, g, hessp = w + s, fnew, gnew, hessp_new
            if stop.record(w, f, g, snorm):
                message = "stopped by callback"
                break
        if prered <= 0 or delta <= 1e-15 * max(1.0, np.linalg.norm(w)):
            message = "trust region collapsed: the loss is at its precision limit"
            break
    else:
        if stop.done(g):
            message = "gradient norm below gtol"
    return stop.result("newton-cg", w, f, g, message)
