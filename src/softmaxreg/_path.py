"""Penalised problems (smooth objective + optional non-smooth term) and regularisation paths.

:func:`build_problem` turns a penalty specification into the smooth
:class:`~softmaxreg._objective.Objective` (cross-entropy plus ridge part) and the non-smooth
:class:`~softmaxreg._proximal.NonSmoothPenalty` (or ``None``); :func:`solve_problem` sends smooth
problems to the registry ``SOLVERS`` and composite ones to the proximal solver.
:func:`regularization_path` fits a grid of ``C`` from the strongest penalty to the weakest, each fit
starting from the previous solution (warm start), on one data source.
"""

from __future__ import annotations

import numpy as np

from ._objective import Objective
from ._proximal import NonSmoothPenalty, split_penalty
from ._solvers import SolverResult, solve
from ._solvers.proximal import PROX_NEWTON_MAX_COEF, PROX_SOLVERS, solve_penalised
from ._sources import ArraySource

__all__ = [
    "NONSMOOTH",
    "build_problem",
    "coef_to_estimator",
    "regularization_path",
    "solve_nonsmooth",
    "solve_problem",
    "solve_working_set",
]

#: Penalties whose fit needs the proximal solver.
NONSMOOTH = ("l1", "elasticnet", "group")


def build_problem(source, *, penalty, C, l1_ratio=None, penalty_factor=None, fit_intercept=True):
    """The objective and non-smooth term of a penalised fit (scikit-learn's ``C``).

    Parameters
    ----------
    source : ArraySource or another source
    penalty : {"l2", None, "l1", "elasticnet", "group"}
    C : float
    l1_ratio : float or None
    penalty_factor : array-like of shape (n_features,) or None
    fit_intercept : bool

    Returns
    -------
    objective : Objective
        Reference-class form for two classes and for unpenalised fits, symmetric otherwise.
    nonsmooth : NonSmoothPenalty or None
    """
    l2, l1, kind = split_penalty(penalty, C, l1_ratio, penalty_factor, source.n_features)
    reference = source.n_classes == 2 or penalty is None
    objective = Objective(source, l2=l2, fit_intercept=fit_intercept, reference=reference)
    if kind is None:
        return objective, None
    return objective, NonSmoothPenalty(kind, l1, objective.coef_shape, objective.scale)


def solve_problem(objective, nonsmooth, coef0, *, solver="auto", tol, max_iter, callback=None):
    """Solve ``objective`` (+ ``nonsmooth``) from ``coef0``; returns a ``SolverResult``."""
    if nonsmooth is None:
        if solver in PROX_SOLVERS:
            solver = "auto"
        return solve(solver, objective, coef0, tol=tol, max_iter=max_iter, callback=callback)
    wide = objective.n_coef > PROX_NEWTON_MAX_COEF  # too many for one full Hessian
    if solver == "auto" and wide and isinstance(objective.source, ArraySource):
        return solve_working_set(
            objective, nonsmooth, coef0, tol=tol, max_iter=max_iter, callback=callback
        )
    return solve_penalised(
        solver, objective, coef0, nonsmooth, tol=tol, max_iter=max_iter, callback=callback
    )


def _restrict(objective, nonsmooth, features):
    """The problem on the feature columns ``features`` only (the others held at zero)."""
    src = objective.source
    sub_source = ArraySource(
        src.X[:, features],
        src.targets,
        src.weights,
        src.n_classes,
        offset=src.offset,
        block_rows=src.block_rows,
    )
    sub = Objective(
        sub_source,
        l2=objective.penalty[features],
        fit_intercept=objective.fit_intercept,
        reference=objective.reference,
    )
    strength = nonsmooth.strength[features] * objective.scale
    return sub, NonSmoothPenalty(nonsmooth.kind, strength, sub.coef_shape, sub.scale)


def _columns(objective, features):
    """Coefficient columns (features, then the intercept) of a working set."""
    d = objective.n_features
    return np.r_[features, [d] if objective.fit_intercept else []].astype(np.intp)


def solve_working_set(objective, nonsmooth, coef0, *, tol, max_iter, callback=None):
    """Working sets for sparse penalties (glmnet's active sets; Massias et al., celer 2018).

    Solve the problem on a few features (those already non-zero plus the worst violators of
    the optimality conditions), check the full residual, and double the set with the next
    violators until the *full* problem's certificate holds. Inner fits use proximal Newton
    on the (small) restricted problem; the result's certificate is the full residual.
    """
    d, (R, p) = objective.n_features, objective.coef_shape
    x = np.array(coef0, dtype=np.float64)
    f, g = objective.loss_grad(x)
    floor = 100 * np.finfo(np.float32).eps if objective.dtype == np.float32 else 0.0
    gtol, scale = max(tol, floor), objective.gradient_scale().reshape(R, p)
    free = nonsmooth.strength[:d] == 0
    active = free | np.any(x.reshape(R, p)[:, :d] != 0, axis=0)
    history, counts, message = [], np.zeros(4, dtype=int), ""
    for _ in range(64):
        scaled = np.abs(nonsmooth.residual(x, g).reshape(R, p) / scale)
        violation = np.max(scaled[:, :d], axis=0)
        # the intercepts are in every set: their residual counts too (if all the features
        # stay at zero, the fit is the intercept-only model, not the starting point)
        if float(np.max(scaled, initial=0.0)) <= gtol:
            message = "optimality residual below gtol (working sets)"
            break
        outside = np.flatnonzero(~active & (violation > gtol))
        grow = max(int(active.sum()), 10)
        active[outside[np.argsort(-violation[outside])][:grow]] = True
        features = np.flatnonzero(active)
        cols = _columns(objective, features)
        sub, sub_ns = _restrict(objective, nonsmooth, features)
        sub_tol = 0.5 * gtol  # same units: the columns' scales do not depend on the set
        res = solve_penalised(
            "auto",
            sub,
            x.reshape(R, p)[:, cols].ravel(),
            sub_ns,
            tol=sub_tol,
            max_iter=max_iter - int(counts[0]),  # the iterations left: max_iter in all
            callback=callback,
        )
        X = np.zeros((R, p))
        X[:, cols] = res.coef.reshape(R, cols.size)
        x = X.ravel()
        f, g = objective.loss_grad(x)
        history += res.history
        counts += [res.n_iter, res.n_fun + 1, res.n_grad + 1, res.n_hessp]
        active = free | np.any(X[:, :d] != 0, axis=0) | np.isin(np.arange(d), features)
        if int(counts[0]) >= max_iter:
            message = f"reached max_iter={max_iter}"
            break
    else:
        message = "working sets did not settle"
    r = nonsmooth.residual(x, g)
    rnorm = float(np.max(np.abs(r / scale.ravel()), initial=0.0))
    return SolverResult(
        coef=x,
        converged=rnorm <= gtol,  # the full problem's certificate, intercepts included
        message=message,
        loss=f + nonsmooth.value(x),
        grad_norm=rnorm,
        gtol=gtol,
        n_iter=int(counts[0]),
        n_fun=int(counts[1]),
        n_grad=int(counts[2]),
        n_hessp=int(counts[3]),
        history=history,
        solver="working-set",
    )


def coef_to_estimator(objective, coef, nonsmooth=False) -> np.ndarray:
    """The estimator's ``[coef_ | intercept_]`` matrix from a solution vector.

    Two classes: one row (class 1 minus class 0). More: rows centred over classes; with a
    non-smooth penalty only the intercepts are centred (centring the weights would undo the
    sparsity; the symmetric form already fixes them).
    """
    M = objective.full(coef)
    if objective.n_classes == 2:
        return M[1:] - M[:1]
    if nonsmooth:
        M = M.copy()
        d = objective.n_features
        M[:, d:] -= M[:, d:].mean(axis=0)
        return M
    return M - M.mean(axis=0)


def regularization_path(
    X,
    codes,
    Cs,
    *,
    n_classes=None,
    sample_weight=None,
    penalty="l2",
    l1_ratio=None,
    penalty_factor=None,
    fit_intercept=True,
    solver="auto",
    tol=1e-4,
    max_iter=100,
):
    """Fit every ``C`` in ``Cs``, strongest penalty first, each from the previous solution.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Features (after any basis map), float32 or float64.
    codes : ndarray of shape (n_samples,) of int
        Class codes ``0..n_classes-1``.
    Cs : array-like of shape (n_Cs,)
    n_classes : int, optional
        Default ``codes.max() + 1``.
    sample_weight : ndarray of shape (n_samples,), optional
    penalty, l1_ratio, penalty_factor, fit_intercept, solver, tol, max_iter
        As for :class:`~softmaxreg.SoftmaxRegression`.

    Returns
    -------
    coefs : ndarray of shape (n_Cs, R, n_features + fit_intercept)
        Estimator-form coefficients (intercept last) in the order of ``Cs``; ``R = 1`` for two
        classes, else ``n_classes``.
    results : list of SolverResult
        One per ``C``, in the order of ``Cs``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); codes = np.array([0, 0, 1, 1])
    >>> coefs, _ = regularization_path(X, codes, [0.1, 1.0])
    >>> coefs.shape, bool(coefs[1, 0, 0] > coefs[0, 0, 0] > 0)
    ((2, 1, 2), True)
    """
    Cs = np.asarray(Cs, dtype=np.float64)
    n_classes = int(codes.max()) + 1 if n_classes is None else int(n_classes)
    sw = np.ones(X.shape[0], dtype=X.dtype) if sample_weight is None else sample_weight
    source = ArraySource(X, np.asarray(codes, dtype=np.intp), sw, n_classes)
    coefs, results = [None] * Cs.size, [None] * Cs.size
    coef = None
    for i in np.argsort(Cs, kind="stable"):
        objective, nonsmooth = build_problem(
            source,
            penalty=penalty,
            C=float(Cs[i]),
            l1_ratio=l1_ratio,
            penalty_factor=penalty_factor,
            fit_intercept=fit_intercept,
        )
        coef0 = np.zeros(objective.n_coef) if coef is None else coef
        result = solve_problem(
            objective, nonsmooth, coef0, solver=solver, tol=tol, max_iter=max_iter
        )
        coef = result.coef
        coefs[i] = coef_to_estimator(objective, coef, nonsmooth is not None)
        results[i] = result
    return np.stack(coefs), results


def solve_nonsmooth(est, objective, coef0):
    """Fit a ``SoftmaxRegression`` with a non-smooth penalty on ``objective`` (its smooth part)."""
    _, l1, kind = split_penalty(
        est.penalty, est.C, est.l1_ratio, est.penalty_factor, objective.n_features
    )
    nonsmooth = (
        None if kind is None else NonSmoothPenalty(kind, l1, objective.coef_shape, objective.scale)
    )
    return solve_problem(
        objective,
        nonsmooth,
        coef0,
        solver=est.solver,
        tol=est.tol,
        max_iter=est.max_iter,
        callback=est._progress(),
    )
