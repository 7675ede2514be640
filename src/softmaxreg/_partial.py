"""``SoftmaxRegression.partial_fit``: incremental minibatch training with scikit-learn semantics.

Each call makes one epoch of the stochastic solver (``solver="sgd"`` or ``"adam"``;
``"auto"`` means Adam) over the rows it is given, continuing from the optimiser state of the
previous call. The first call fixes ``classes_`` (``classes=`` is required then, as in
scikit-learn) and the features; later calls must agree with them, and labels outside
``classes_`` are rejected.

The penalty of the objective seen so far: after batches with weight totals ``S_1..S_t``, the
gradient steps estimate that of ``(1/S)[sum CE + ||W||^2 / (2C)]`` with ``S = S_1 + ... + S_t``,
so once all the data has been seen the target is the objective of ``fit`` on all of it.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import validate_data

from ._solvers._base import SolverResult
from ._sources import ArraySource
from ._stochastic import BATCH_SIZE, OPTIMIZERS, minibatches, run_epoch

__all__ = ["partial_fit"]

_FLOATS = [np.float64, np.float32]


def _solver_name(est) -> str:
    name = "adam" if est.solver == "auto" else est.solver
    if name not in OPTIMIZERS:
        raise ValueError(
            f"partial_fit needs a stochastic solver ('sgd', 'adam' or 'auto'), got "
            f"solver={est.solver!r}. Use fit() for the exact solvers."
        )
    return name


def _check_classes(est, classes, first: bool) -> None:
    if first:
        if classes is None:
            raise ValueError(
                "classes must be passed on the first call to partial_fit (all the labels "
                "that may appear in any batch)."
            )
        labels = np.unique(np.asarray(classes))
        if labels.size < 2:
            raise ValueError(f"classes must hold at least 2 labels, got {labels.tolist()}.")
        est.classes_ = labels
    elif classes is not None and not np.array_equal(np.unique(classes), est.classes_):
        raise ValueError(
            f"classes={np.unique(classes).tolist()} differs from the classes of the first "
            f"partial_fit call, {est.classes_.tolist()}."
        )


def _codes(est, y) -> np.ndarray:
    y = np.asarray(y)
    known = np.isin(y, est.classes_)
    if not known.all():
        unseen = np.unique(y[~known])[:5].tolist()
        raise ValueError(
            f"y has labels {unseen} that are not in classes_ {est.classes_.tolist()} given "
            "on the first partial_fit call."
        )
    return np.searchsorted(est.classes_, y).astype(np.intp)


def partial_fit(est, X, y, classes=None, sample_weight=None):
    """One epoch of SGD/Adam on ``(X, y)``, continuing the previous calls' state."""
    from ._external import objective_for

    est._check_params()
    name = _solver_name(est)
    first = not hasattr(est, "_partial_state")
    if isinstance(est.class_weight, str):
        raise ValueError(
            "class_weight='balanced' needs all the data; with partial_fit pass a dict of "
            "class weights (or sample_weight)."
        )
    # After fit(), a first partial_fit without classes continues from that fit (scikit-learn's
    # SGDClassifier): its classes, features and coefficients.
    resume = first and classes is None and hasattr(est, "classes_")
    if not resume:
        _check_classes(est, classes, first)
    X, y = validate_data(
        est, X, y, reset=first and not resume, accept_sparse=["csr"], dtype=_FLOATS
    )
    codes = _codes(est, y)
    sw = est._weights(X, codes, sample_weight)
    source = ArraySource(X, codes, sw, est.classes_.size)
    seen = (0.0 if first else est._partial_state["weight_seen"]) + source.weight_sum
    objective = objective_for(est, source)
    if first:
        steps = -(-X.shape[0] // BATCH_SIZE[name])
        previous = est._coef_matrix(objective) if resume else None
        coef0 = np.zeros(objective.n_coef) if previous is None else previous.ravel()
        state = OPTIMIZERS[name][0](coef0, decay_steps=max(steps, 100))
        est.basis_ = None
    else:
        state = est._partial_state["optimizer"]
    rng = np.random.default_rng([0, int(state["t"])])
    state = run_epoch(
        OPTIMIZERS[name][1], state, objective, minibatches(source, BATCH_SIZE[name], rng), seen
    )
    est._partial_state = {"optimizer": state, "weight_seen": seen}
    n_iter = (0 if first else int(est.n_iter_[0])) + 1
    result = SolverResult(
        coef=state["coef"],
        converged=False,
        message="partial_fit: one epoch per call",
        loss=np.nan,
        grad_norm=np.nan,
        gtol=np.nan,
        n_iter=n_iter,
        n_fun=0,
        n_grad=int(state["t"]),
        n_hessp=0,
        solver=name,
    )
    est._store(objective, result, X.dtype)
    return est
