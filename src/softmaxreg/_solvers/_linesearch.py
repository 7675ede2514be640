"""A strong-Wolfe line search on the fused loss-and-gradient oracle.

Nocedal & Wright, *Numerical Optimization*, Algorithms 3.5 and 3.6.
"""

from __future__ import annotations

import numpy as np

__all__ = ["wolfe_line_search"]


def _interpolate(t_lo, f_lo, d_lo, t_hi, f_hi, d_hi) -> float:
    """Minimiser of the cubic through both ends, kept inside the middle 80% of the bracket."""
    lo, hi = min(t_lo, t_hi), max(t_lo, t_hi)
    margin = 0.1 * (hi - lo)
    t = 0.5 * (t_lo + t_hi)
    if np.isfinite(f_hi) and np.isfinite(d_hi):
        d1 = d_lo + d_hi - 3 * (f_lo - f_hi) / (t_lo - t_hi)
        disc = d1 * d1 - d_lo * d_hi
        if disc >= 0:
            d2 = np.sign(t_hi - t_lo) * np.sqrt(disc)
            denom = d_hi - d_lo + 2 * d2
            if denom != 0:
                t = t_hi - (t_hi - t_lo) * (d_hi + d2 - d1) / denom
    return float(np.clip(t, lo + margin, hi - margin)) if np.isfinite(t) else 0.5 * (lo + hi)


def wolfe_line_search(oracle, x, f0, g0, d, step=1.0, c1=1e-4, c2=0.9, max_evals=25):
    """Find ``t`` with sufficient decrease and the strong curvature condition along ``d``.

    Returns ``(t, f, g)`` at the accepted point, or ``None`` if no point with sufficient
    decrease was found (at the precision limit, or ``d`` is not a descent direction).
    Non-finite trial losses (overflowing logits) shrink the step. Near the optimum, where
    loss differences reach rounding level, sufficient decrease is tested up to
    ``10 eps |f0|`` (the approximate Wolfe conditions of Hager & Zhang, 2005).
    """
    dphi0 = float(g0 @ d)
    if not dphi0 < 0:
        return None
    slack = 10 * np.finfo(float).eps * abs(f0)
    best = None
    lo = (0.0, f0, dphi0, g0)
    hi = None
    t = step
    for _ in range(max_evals):
        f, g = oracle.loss_grad(x + t * d)
        dphi = float(g @ d) if np.isfinite(f) else np.nan
        armijo = np.isfinite(f) and f <= f0 + c1 * t * dphi0 + slack
        if armijo and (best is None or f < best[1]):
            best = (t, f, g)
        if not armijo or f > lo[1] + slack:
            hi = (t, f, dphi, g)
        elif abs(dphi) <= -c2 * dphi0:
            return t, f, g
        else:
            if dphi * (t - lo[0]) >= 0:
                hi = lo
            lo = (t, f, dphi, g)
        if hi is None:
            t = 2.0 * t  # still descending steeply: extrapolate
        else:
            t = _interpolate(lo[0], lo[1], lo[2], hi[0], hi[1], hi[2])
            if abs(hi[0] - lo[0]) <= 1e-12 * max(1.0, abs(lo[0])):
                break
    return best
