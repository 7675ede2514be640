"""Fitting from data that is not an in-memory array: streamed sources and Dask collections.

:meth:`SoftmaxRegression.fit` hands over here when ``X`` is a data source (an object with
``map_reduce``, e.g. :class:`~softmaxreg.ParquetSource`) or a Dask collection (recognised by the
``__dask_graph__`` protocol, so dask is imported only when the input already is one). The
objective, solvers and stored attributes are exactly those of the in-memory fit.
"""

from __future__ import annotations

import json
import warnings

import numpy as np

from ._exceptions import ConvergenceWarning
from ._objective import Objective
from ._solvers import solve
from ._solvers._base import CountingOracle
from ._stochastic import STOCHASTIC_SOLVERS

__all__ = ["fit_external", "is_dask_collection", "is_source", "predict_external", "solve_for"]


def is_dask_collection(X) -> bool:
    """Whether ``X`` is a Dask collection (without importing dask)."""
    return hasattr(type(X), "__dask_graph__") and callable(getattr(X, "__dask_graph__", None))


def is_source(X) -> bool:
    """Whether ``X`` implements the data-source protocol of ``_sources.py``."""
    return callable(getattr(X, "map_reduce", None)) and hasattr(X, "n_classes")


def class_weight_vector(class_weight, classes, totals) -> np.ndarray:
    """Per-class weights from the per-class sample-weight totals, as the in-memory fit.

    ``"balanced"`` is scikit-learn's weighted rule: ``total / (K * class total)``.
    """
    if class_weight is None:
        return np.ones(classes.size)
    if isinstance(class_weight, str) and class_weight == "balanced":
        totals = np.asarray(totals, dtype=np.float64)
        return np.where(totals > 0, totals.sum(), 0.0) / (
            classes.size * np.where(totals > 0, totals, 1.0)
        )
    if isinstance(class_weight, dict):
        unknown = [k for k in class_weight if k not in set(classes.tolist())]
        if unknown:
            raise ValueError(f"class_weight has labels {unknown} that are not in the classes.")
        return np.array([float(class_weight.get(c, 1.0)) for c in classes.tolist()])
    raise ValueError(f"class_weight must be a dict, 'balanced' or None, got {class_weight!r}.")


def objective_for(est, source) -> Objective:
    """The estimator's objective over any source (same rules as the in-memory fit)."""
    from ._proximal import split_penalty

    l2, _, kind = split_penalty(
        est.penalty,
        est.C,
        getattr(est, "l1_ratio", None),
        getattr(est, "penalty_factor", None),
        source.n_features,
    )
    if kind is not None:
        raise ValueError(
            f"penalty={est.penalty!r} is not available on streamed or Dask data; use 'l2' or "
            "None (or load the data in memory)."
        )
    reference = source.n_classes == 2 or est.penalty is None
    return Objective(source, l2=l2, fit_intercept=est.fit_intercept, reference=reference)


def _fingerprint(est, objective, classes) -> dict:
    try:
        labels = json.loads(json.dumps(np.asarray(classes).tolist()))
    except TypeError:
        labels = [repr(c) for c in classes.tolist()]
    src = objective.source
    return {
        "n_samples": int(src.n_samples),
        "n_features": int(src.n_features),
        "classes": labels,
        "weight_sum": float(src.weight_sum),
        "dtype": str(np.dtype(src.dtype)),
        "C": float(est.C),
        "penalty": est.penalty,
        "fit_intercept": bool(est.fit_intercept),
        "coef_shape": list(objective.coef_shape),
    }


def solve_for(est, objective, coef0, *, checkpoint=None, checkpoint_every=1, resume=True):
    """Run the estimator's solver on ``objective``, with checkpoints if asked."""
    kw = dict(tol=est.tol, max_iter=est.max_iter, callback=est._progress())
    if checkpoint is not None:
        from ._checkpoint import solve_checkpointed

        return solve_checkpointed(
            est.solver,
            objective,
            coef0,
            path=checkpoint,
            every=checkpoint_every,
            resume=resume,
            problem=_fingerprint(est, objective, est.classes_),
            **kw,
        )
    if est.solver in STOCHASTIC_SOLVERS:
        return STOCHASTIC_SOLVERS[est.solver](CountingOracle(objective), coef0, **kw)
    return solve(est.solver, objective, coef0, **kw)


def warn_not_converged(result, stacklevel=4) -> None:
    """The estimator's ``ConvergenceWarning`` for a result without a certificate."""
    if not result.converged:
        warnings.warn(
            f"SoftmaxRegression did not converge ({result.message}; gradient norm "
            f"{result.grad_norm:.3g} > {result.gtol:.3g} after {result.n_iter} iterations). "
            "Increase max_iter, standardise the features, add a penalty (smaller C), "
            "or try another solver.",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )


def fit_source(est, source, *, checkpoint=None, checkpoint_every=1, resume=True):
    """Fit ``est`` on a data source (its own classes, weights and feature names)."""
    est._check_params()
    classes = np.asarray(source.classes)
    if classes.size < 2:
        raise ValueError(
            "SoftmaxRegression needs samples of at least 2 classes; the source has only "
            f"{classes.tolist()}."
        )
    if getattr(est, "basis", None) is not None:
        raise ValueError("basis= is not available on streamed or Dask data yet.")
    est.basis_ = None
    if hasattr(source, "set_class_weight"):
        totals = getattr(source, "class_weight_sums", None)
        source.set_class_weight(class_weight_vector(est.class_weight, classes, totals))
    elif est.class_weight is not None:
        raise ValueError(f"{type(source).__name__} does not support class_weight.")
    est.classes_ = classes
    est.n_features_in_ = int(source.n_features)
    names = getattr(source, "feature_names", None)
    if names is not None and all(isinstance(n, str) for n in names):
        est.feature_names_in_ = np.asarray(names, dtype=object)
    elif hasattr(est, "feature_names_in_"):
        del est.feature_names_in_
    objective = objective_for(est, source)
    result = solve_for(
        est,
        objective,
        est._initial_coef(objective),
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
        resume=resume,
    )
    warn_not_converged(result)
    est._store(objective, result, np.dtype(source.dtype))
    return est


def fit_external(est, X, y=None, sample_weight=None, **options):
    """Dispatch :meth:`SoftmaxRegression.fit` for a source or a Dask collection."""
    if is_dask_collection(X):
        from .dask import fit_dask

        return fit_dask(est, X, y, sample_weight, **options)
    if y is not None or sample_weight is not None:
        raise ValueError(
            f"{type(X).__name__} carries its own target and weights: call fit(source) "
            "without y and sample_weight (name the columns when creating the source)."
        )
    return fit_source(est, X, **options)


def predict_external(est, method: str, X, offset=None):
    """A prediction method on a Dask collection: a lazy Dask result (``softmaxreg.dask``)."""
    if offset is not None:
        raise ValueError("offset= is not available with Dask input.")
    from .dask import predict

    return predict(est, method, X)
