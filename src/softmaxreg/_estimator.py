"""The scikit-learn estimator: validate, encode labels, build the objective, solve, store."""

from __future__ import annotations

import sys
import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._basis import apply_basis, fit_basis, make_basis
from ._external import (
    fit_external,
    is_dask_collection,
    is_source,
    predict_external,
    solve_for,
    warn_not_converged,
)
from ._inference import InferenceResults, estimator_inference
from ._objective import Objective
from ._path import NONSMOOTH, coef_to_estimator, solve_nonsmooth
from ._predict import linear_softmax, logits_overflow
from ._proximal import PENALTIES, check_l1_ratio, split_penalty
from ._separation import check_fit as check_separation
from ._softmax import log_softmax
from ._solvers import SOLVERS
from ._solvers.proximal import PROX_SOLVERS
from ._sources import ArraySource
from ._stochastic import STOCHASTIC_SOLVERS
from ._targets import (
    compact_codes,
    is_target_matrix,
    target_class_weights,
    unit_weights,
    validate_offset,
    validate_targets,
)

__all__ = ["SoftmaxRegression"]

_FLOATS = [np.float64, np.float32]


class _PartialFitUnavailable(AttributeError, ValueError):
    """``partial_fit`` does not exist for this configuration: an ``AttributeError`` so that
    ``hasattr`` is False (scikit-learn's convention), a ``ValueError`` because a parameter
    value is the cause."""


def _partial_fit_available(est) -> bool:
    if ("adam" if est.solver == "auto" else est.solver) not in STOCHASTIC_SOLVERS:
        raise _PartialFitUnavailable(
            f"partial_fit needs a stochastic solver ('sgd', 'adam' or 'auto'), got "
            f"solver={est.solver!r}. Use fit() for the exact solvers."
        )
    if isinstance(est.class_weight, str):
        raise _PartialFitUnavailable(
            "class_weight='balanced' needs all the data; with partial_fit pass a dict of "
            "class weights (or sample_weight)."
        )
    if est.penalty in NONSMOOTH or est.basis is not None:
        raise _PartialFitUnavailable(
            "partial_fit supports the smooth penalties ('l2', None) without a basis; "
            f"got penalty={est.penalty!r}, basis={est.basis!r}. Use fit() for these."
        )
    return True


def _validate_data(est, *args, **kwargs):
    """scikit-learn's ``validate_data``, with its terse messages for text, complex and ragged
    input completed by what to do (the original message is kept)."""
    try:
        return validate_data(est, *args, **kwargs)
    except ValueError as exc:
        text = " ".join(str(exc).split())
        if "could not convert string to float" in text:
            hint = (
                f"X must hold numbers only ({text}): encode text columns first (e.g. sklearn's "
                "OneHotEncoder; `softmaxreg fit` does it for CSV files) or drop them."
            )
        elif text.startswith("Complex data not supported"):
            hint = "Complex data not supported: pass X.real, or the real and imaginary parts "
            hint += "as separate features."
        elif "inhomogeneous" in text:
            hint = f"X is ragged: its rows have different lengths ({text[:120]}...)."
        else:
            raise
        raise ValueError(hint) from exc


def _check_magnitude(X) -> None:
    """A clear error for features so large that their products overflow the dtype (the
    Hessian holds products of two features): no solver can then give a correct fit."""
    values = X.data if sp.issparse(X) else X
    top = max(-float(np.min(values, initial=0.0)), float(np.max(values, initial=0.0)))
    limit = float(np.sqrt(np.finfo(X.dtype).max))
    if top > limit:
        raise ValueError(
            f"Feature values up to {top:.3g} in magnitude are too large for {X.dtype.name} "
            f"arithmetic (products of features overflow beyond {limit:.3g}). Rescale or "
            "standardise the features (e.g. sklearn's StandardScaler)"
            + (", or pass float64 data." if X.dtype == np.float32 else ".")
        )


def _check_missing_labels(values) -> None:
    """A clear error for ``None``/NaN among labels held as Python objects."""
    missing = [i for i, v in enumerate(values) if v is None or _is_na(v)]
    if missing:
        raise ValueError(
            f"y has {len(missing)} missing label(s) (None or NaN), first at row {missing[0]}; "
            "drop those rows or give them a label."
        )


def _not_number(value, kind) -> bool:
    """Whether ``value`` is not a number of ``kind`` (``bool`` is not a number here)."""
    return not isinstance(value, kind) or isinstance(value, (bool, np.bool_))


def refuse_missing_labels(y) -> None:
    """A clear error for missing labels in a list, an object array or a pandas column (whose
    extension arrays hold ``pandas.NA`` as objects), before scikit-learn's validation."""
    if isinstance(y, list) or getattr(y, "dtype", None) is not None:
        labels = np.asarray(y)
        if labels.dtype == object:
            _check_missing_labels(labels.ravel().tolist())


def _is_na(v) -> bool:
    """NaN, or a missing-value marker such as ``pandas.NA`` (whose truth value is undefined)."""
    if isinstance(v, float):
        return v != v
    return type(v).__name__ in ("NAType", "NaTType")


def _mixed_labels(y):
    """``(classes, codes)`` for an object array of labels mixing strings and numbers, else
    ``None``; missing labels (``None``, NaN) in an object array are a clear error.

    Mixed classes are ordered numbers first, then strings, and keep their Python types.
    """
    if getattr(getattr(y, "dtype", None), "kind", None) != "O" or y.ndim != 1:
        return None
    values = [v.item() if isinstance(v, np.generic) else v for v in y.tolist()]
    _check_missing_labels(values)
    if all(isinstance(v, str) for v in values) or not any(isinstance(v, str) for v in values):
        return None
    if not all(isinstance(v, (str, int, float)) for v in values):
        return None  # scikit-learn's check names the unsupported type
    unique = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    classes = np.empty(len(unique), dtype=object)
    classes[:] = unique
    index = {v: k for k, v in enumerate(unique)}
    return classes, np.array([index[v] for v in values], dtype=np.intp)


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    r"""Multinomial logistic (softmax) regression, fitted exactly.

    Minimises the penalised, weighted cross-entropy of ``softmax(W x + b)`` (see the
    Conventions of ``softmaxreg._objective``): with ``penalty="l2"`` the same optimum as
    scikit-learn's ``LogisticRegression(C=C)``, including its binary form for two classes.

    Parameters
    ----------
    C : float, default=1.0
        Inverse penalty strength, exactly as in scikit-learn: the objective is
        ``sum_n s_n CE_n + ||W||^2 / (2 C)`` (intercepts unpenalised).
    penalty : {"l2", None, "l1", "elasticnet", "group"}, default="l2"
        ``None`` fits the unpenalised maximum-likelihood model. ``"l1"``, ``"elasticnet"``
        (with ``l1_ratio``) and ``"group"`` (a feature in or out for all classes) are fitted
        by the proximal solver; scikit-learn's ``saga`` objective, see ``softmaxreg._proximal``.
    fit_intercept : bool, default=True
        Fit one intercept per class.
    solver : {"auto", "lbfgs", "newton-cg", "newton", "subsampled-newton"}, default="auto"
        ``"auto"`` takes subsampled Newton on tall in-memory data (curvature from a random
        subsample, gradient and certificate on all rows: docs/derivation.md section 10),
        L-BFGS on wide well-conditioned dense data and on well-conditioned streamed or Dask
        data, else exact Newton for few parameters and trust-region Newton-CG otherwise.
    tol : float, default=1e-6
        Convergence certificate: the max-norm of the gradient with respect to the
        coefficients of standardised features (each feature divided by its root mean square)
        falls below ``tol``; independent of the units of the features and the sample size.
        Tighter than scikit-learn's default: the second-order solvers make the last digits
        cheap (one or two more Newton steps), so the default fit is the optimum. L-BFGS on a
        penalised problem also runs until its curvature model predicts a remaining decrease
        of at most ``tol / 10`` of the loss (the gradient test alone can stop early in
        relative terms when the penalty is weak and the features many).
    max_iter : int, default=100
        Maximum solver iterations; reaching it warns with ``ConvergenceWarning``.
    class_weight : dict, "balanced" or None, default=None
        Class weights, multiplied into the sample weights.
    warm_start : bool, default=False
        Start from the previous solution when the classes and features are unchanged.
    verbose : int, default=0
        If positive, print one line per iteration (loss, gradient norm) to stderr.
    basis : str, scikit-learn transformer or None, default=None
        Fixed basis functions ``phi``: ``"poly:D"``, ``"rbf:N"``, ``"fourier:N"``,
        ``"spline:N"`` or any transformer (``softmaxreg._basis``); fitted as ``basis_``.
    l1_ratio : float in [0, 1] or None, default=None
        Mixing parameter of ``"elasticnet"`` (and of ``"group"``, default 1): the penalty is
        ``(l1_ratio / C) * h(W) + ((1 - l1_ratio) / (2 C)) ||W||^2``.
    penalty_factor : array-like of shape (n_basis_features,) or None, default=None
        Non-negative multipliers of the penalty per feature seen by the model (glmnet's
        ``penalty.factor``); ``0`` leaves a feature unpenalised.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in their original type.
    coef_ : ndarray of shape (n_classes, n_features) or (1, n_features)
        Feature weights; one row (for ``classes_[1]``) when there are two classes. With three
        or more classes, rows sum to zero.
    intercept_ : ndarray of shape (n_classes,) or (1,)
        Intercepts, summing to zero over classes with three or more classes.
    n_iter_ : ndarray of shape (1,)
        Solver iterations.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when ``X`` has string column names.
    result_ : SolverResult
        The solver's record: certificate, evaluations and per-iteration history.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> model = SoftmaxRegression(C=1.0).fit(X, y)
    >>> model.result_.converged
    True
    >>> float(model.score(X, y)) > 0.95
    True
    """

    def __init__(
        self,
        C=1.0,
        *,
        penalty="l2",
        fit_intercept=True,
        solver="auto",
        tol=1e-6,
        max_iter=100,
        class_weight=None,
        warm_start=False,
        verbose=0,
        basis=None,
        l1_ratio=None,
        penalty_factor=None,
    ):
        self.C = C
        self.penalty = penalty
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.verbose = verbose
        self.basis = basis
        self.l1_ratio = l1_ratio
        self.penalty_factor = penalty_factor

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- fitting -------------------------------------------------------------------------
    def _check_params(self):
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {list(PENALTIES)}, got {self.penalty!r}.")
        if _not_number(self.C, Real) or not self.C > 0 or not np.isfinite(self.C):
            raise ValueError(f"C must be a positive finite number, got {self.C!r}.")
        if _not_number(self.tol, Real) or not self.tol >= 0:
            raise ValueError(f"tol must be a non-negative number, got {self.tol!r}.")
        if _not_number(self.max_iter, Integral) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}.")
        if not isinstance(self.fit_intercept, (bool, np.bool_)):
            raise ValueError(f"fit_intercept must be True or False, got {self.fit_intercept!r}.")
        known = {**SOLVERS, **PROX_SOLVERS, **STOCHASTIC_SOLVERS}
        if self.solver != "auto" and self.solver not in known:
            raise ValueError(f"solver must be one of {['auto', *known]}, got {self.solver!r}.")
        smooth = self.penalty not in NONSMOOTH
        fitting = ["auto", *SOLVERS, *STOCHASTIC_SOLVERS] if smooth else ["auto", *PROX_SOLVERS]
        if self.solver not in fitting and smooth:
            raise ValueError(
                f"solver={self.solver!r} is a proximal solver, for the penalties "
                f"{list(NONSMOOTH)}; with penalty={self.penalty!r} choose one of {fitting}."
            )
        if self.solver not in fitting:
            raise ValueError(
                f"penalty={self.penalty!r} needs a proximal solver: choose one of {fitting}, "
                f"not {self.solver!r}."
            )
        if self.penalty in ("elasticnet", "group") or self.l1_ratio is not None:
            check_l1_ratio(self.penalty, self.l1_ratio)
        if self.l1_ratio is not None and self.penalty not in ("elasticnet", "group"):
            warnings.warn(
                f"l1_ratio is only used with penalty='elasticnet' or 'group'; with "
                f"penalty={self.penalty!r} it is ignored.",
                UserWarning,
                stacklevel=3,
            )
        if self.penalty_factor is not None and self.penalty is None:
            warnings.warn(
                "penalty_factor scales the penalty; with penalty=None it is ignored.",
                UserWarning,
                stacklevel=3,
            )
        if self.basis is not None:
            make_basis(self.basis)  # an unknown name or a non-transformer is an error now

    def _encode_labels(self, y):
        mixed = _mixed_labels(y)
        if mixed is None:
            check_classification_targets(y)
            classes, codes = np.unique(y, return_inverse=True)
        else:
            classes, codes = mixed
        if classes.size < 2:
            raise ValueError(
                "SoftmaxRegression needs samples of at least 2 classes in y; "
                f"got only one class: {np.asarray(classes[:1]).tolist()[0]!r}."
            )
        return classes, compact_codes(codes, classes.size)

    def _weights(self, X, codes, sample_weight):
        if sample_weight is None:
            sw = unit_weights(X.shape[0], X.dtype)
        else:
            sw = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            # scikit-learn's weighted "balanced" rule (>= 1.6): total / (K * class total), so
            # that a weight of k equals k repeated rows here too.
            totals = np.bincount(codes, weights=sw, minlength=self.classes_.size)
            cw = np.where(totals > 0, totals.sum(), 0.0) / (
                self.classes_.size * np.where(totals > 0, totals, 1.0)
            )
            sw = sw * cw[codes].astype(X.dtype)
        elif self.class_weight is not None:
            cw = compute_class_weight(
                self.class_weight, classes=self.classes_, y=self.classes_[codes]
            )
            if np.any(cw < 0) or not np.all(np.isfinite(cw)):  # as for target matrices
                raise ValueError("class_weight values must be finite and non-negative.")
            sw = sw * cw[codes].astype(X.dtype)
        if not np.any(sw > 0):
            raise ValueError("All sample weights are zero: there is nothing to fit.")
        return sw

    def _make_objective(self, X, codes, sw, offset=None) -> Objective:
        n_classes = self.classes_.size
        l2 = split_penalty(self.penalty, self.C, self.l1_ratio, self.penalty_factor, X.shape[1])[0]
        # Binary fits are scikit-learn's binary logistic model; unpenalised multiclass fits
        # fix a reference class so that the Hessian is non-singular (see the Conventions).
        reference = n_classes == 2 or self.penalty is None
        source = ArraySource(X, codes, sw, n_classes, offset=offset)
        return Objective(source, l2=l2, fit_intercept=self.fit_intercept, reference=reference)

    def _initial_coef(self, objective) -> np.ndarray:
        coef0 = np.zeros(objective.n_coef)
        if self.warm_start and hasattr(self, "coef_"):
            previous = self._coef_matrix(objective)
            if previous is not None:
                coef0 = previous.ravel()
        return coef0

    def _coef_matrix(self, objective):
        """The stored fit in the objective's (R, p) form, if its shape matches."""
        M = np.hstack([self.coef_, self.intercept_[:, None]]) if self.fit_intercept else self.coef_
        if objective.reference and M.shape[0] == objective.n_classes:
            M = M[1:] - M[:1]
        return M if M.shape == objective.coef_shape else None

    def _progress(self):
        if not self.verbose:
            return None

        def callback(coef, row):
            print(
                f"iter {row['iter']:4d}  loss {row['loss']:.10g}  |grad| {row['grad_norm']:.3e}",
                file=sys.stderr,
            )

        return callback

    def fit(
        self,
        X,
        y=None,
        sample_weight=None,
        *,
        classes=None,
        offset=None,
        checkpoint=None,
        checkpoint_every=1,
        resume=True,
    ):
        """Fit the model.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data; float32 is fitted in float32, other types in float64. Also a
            streamed data source (:class:`ParquetSource`, :class:`CSVSource`: call
            ``fit(source)``, the source names its target and weight columns) or a Dask
            array/DataFrame (fitted on the active ``distributed`` client; ``softmaxreg.dask``).
        y : array-like of shape (n_samples,) or (n_samples, n_classes)
            Class labels of any type (strings, integers, booleans), or a matrix of
            non-negative targets with ``n_classes >= 2`` columns: rows summing to one are
            class probabilities, other rows are counts (a count row equals its trials as
            one-hot rows; its total acts as a weight). A column vector of shape
            (n_samples, 1) is raveled to labels with a ``DataConversionWarning``.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; a weight of ``k`` equals repeating the row ``k`` times.
            With a target matrix, row ``n`` counts ``sample_weight[n] * sum_k y[n, k]``.
        classes : array-like of shape (n_classes,), optional
            Labels of the target matrix's columns, in column order, which must be sorted
            (``classes_`` is always sorted, so the columns of ``y``, ``offset`` and
            ``predict_proba`` all follow it); default ``0..n_classes-1``. Only with a
            target matrix.
        offset : array-like of shape (n_samples, n_classes), optional
            Fixed terms added to the logits, never penalised. For two classes also shape
            (n_samples,): an offset of the binary logit ``log(p_1 / p_0)``, the shape of
            ``decision_function``. Pass it to the prediction methods too.
        checkpoint : str or Path, optional
            Write the solver state to this file (atomically) every ``checkpoint_every``
            iterations; with ``resume=True`` an existing checkpoint of the same problem is
            resumed, ending at the same coefficients as an uninterrupted fit. Needs a solver
            with resumable state: ``"lbfgs"``, ``"newton-cg"``, ``"newton"``, ``"sgd"``,
            ``"adam"`` or ``"auto"`` (its usual choice, with ``"subsampled-newton"`` replaced
            by exact or trust-region Newton, the same optimum).
        checkpoint_every : int, default=1
        resume : bool, default=True
            Continue from an existing checkpoint; ``False`` starts afresh and overwrites it.

        Returns
        -------
        self : SoftmaxRegression
        """
        self.__dict__.pop("_partial_state", None)  # fit starts afresh (partial_fit)
        if is_source(X) or is_dask_collection(X):
            if self.penalty in NONSMOOTH or self.basis is not None:
                raise NotImplementedError(
                    "basis= and the penalties 'l1', 'elasticnet', 'group' need in-memory data."
                )
            if classes is not None or offset is not None:
                raise NotImplementedError(
                    "classes= and offset= (target matrices and offsets) need in-memory data; "
                    "streamed and Dask fits take class labels from the target column."
                )
            return fit_external(
                self,
                X,
                y,
                sample_weight,
                checkpoint=checkpoint,
                checkpoint_every=checkpoint_every,
                resume=resume,
            )
        self._check_params()
        if is_target_matrix(y):
            X = _validate_data(self, X, accept_sparse=["csr", "csc", "coo"], dtype=_FLOATS)
            self.classes_, codes = validate_targets(y, X.shape[0], classes, X.dtype)
            sw = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
            codes = target_class_weights(self.class_weight, self.classes_, codes, sw)
        else:
            if classes is not None:
                raise ValueError(
                    "classes= names the columns of a target matrix y; "
                    "with 1-D labels the classes are np.unique(y)."
                )
            refuse_missing_labels(y)
            X, y = _validate_data(self, X, y, accept_sparse=["csr", "csc", "coo"], dtype=_FLOATS)
            self.classes_, codes = self._encode_labels(y)
            sw = self._weights(X, codes, sample_weight)
        offset = validate_offset(offset, X.shape[0], self.classes_.size, X.dtype)
        X = fit_basis(self, X)
        _check_magnitude(X)
        objective = self._make_objective(X, codes, sw, offset)
        if self.penalty in NONSMOOTH:  # the proximal solver (softmaxreg._path, issue 8)
            result = solve_nonsmooth(self, objective, self._initial_coef(objective))
        else:
            result = solve_for(
                self,
                objective,
                self._initial_coef(objective),
                checkpoint=checkpoint,
                checkpoint_every=checkpoint_every,
                resume=resume,
            )
        warn_not_converged(result, stacklevel=3)
        self._store(objective, result, X.dtype)
        check_separation(self, objective)  # unpenalised fits: SeparationWarning (issue 4)
        return self

    def inference(
        self,
        X,
        y,
        sample_weight=None,
        *,
        cov_type="nonrobust",
        groups=None,
        reference_class=None,
        offset=None,
    ) -> InferenceResults:
        """Standard errors, tests and intervals of an unpenalised fit (statsmodels ``MNLogit``).

        The fitted coefficients are polished by Newton steps to the maximum-likelihood
        estimate on ``X, y`` (the estimator is not changed) and reported in reference-class
        form. See ``softmaxreg._inference`` and docs/inference.md.

        Parameters
        ----------
        X, y, sample_weight, offset
            As in :meth:`fit`. Weights are frequency weights (``k`` = ``k`` repeated rows).
        cov_type : {"nonrobust", "HC0", "HC1", "cluster"}, default="nonrobust"
        groups : array-like of shape (n_samples,), optional
            Cluster labels, for ``cov_type="cluster"``.
        reference_class : label, optional
            The class whose logits are zero; default ``classes_[0]``.

        Returns
        -------
        InferenceResults
        """
        return estimator_inference(
            self,
            X,
            y,
            sample_weight,
            cov_type=cov_type,
            groups=groups,
            reference_class=reference_class,
            offset=offset,
        )

    def _partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of minibatch training on ``(X, y)``, continuing previous calls.

        scikit-learn's semantics: ``classes`` (all labels) is required on the first call
        unless the model was fitted with :meth:`fit` (it then continues from that fit);
        later calls keep the classes, features and optimiser state (``solver="sgd"`` or
        ``"adam"``; ``"auto"`` means Adam), and reject labels outside ``classes_``. Only
        defined for those solvers (see :attr:`partial_fit`). See ``softmaxreg._partial``.

        Returns
        -------
        self : SoftmaxRegression
        """
        from ._partial import partial_fit

        return partial_fit(self, X, y, classes=classes, sample_weight=sample_weight)

    @property
    def partial_fit(self):
        """``partial_fit(X, y, classes=None, sample_weight=None)``, for the stochastic solvers.

        Absent (``hasattr`` is False, as scikit-learn's ``available_if`` makes it for
        ``MLPClassifier``) for the exact solvers and ``class_weight="balanced"``; accessing it
        then raises an error (both ``AttributeError`` and ``ValueError``) that says why.
        """
        _partial_fit_available(self)
        return self._partial_fit

    def _store(self, objective, result, dtype):
        M = coef_to_estimator(objective, result.coef, self.penalty in NONSMOOTH).astype(dtype)
        d = objective.n_features
        self.coef_ = M[:, :d]
        self.intercept_ = M[:, d] if self.fit_intercept else np.zeros(M.shape[0], dtype=dtype)
        self.n_iter_ = np.array([result.n_iter])
        self.result_ = result

    # -- prediction ----------------------------------------------------------------------
    def _validate_X(self, X):
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, accept_sparse=["csr", "csc", "coo"], dtype=_FLOATS)
        return apply_basis(self, X)

    def _logits(self, X, offset=None) -> np.ndarray:
        X = self._validate_X(X)
        with np.errstate(over="ignore", invalid="ignore"):
            A = np.asarray(X @ self.coef_.T) if sp.issparse(X) else X @ self.coef_.T
            A = A + self.intercept_
        if not np.all(np.isfinite(A)):  # else softmax would return NaN
            raise logits_overflow(A.dtype)
        if self.classes_.size == 2:
            A = np.hstack([np.zeros_like(A), A])
        offset = validate_offset(offset, X.shape[0], self.classes_.size, A.dtype)
        return A if offset is None else A + offset

    def decision_function(self, X, offset=None) -> np.ndarray:
        """Logits ``W x + b + offset``: shape (n_samples, n_classes), or (n_samples,) for two
        classes (the logit difference of ``classes_[1]`` over ``classes_[0]``).

        ``offset`` (optional) has the shape described in :meth:`fit`.
        """
        if is_dask_collection(X):  # Dask in, Dask out (softmaxreg.dask)
            return predict_external(self, "decision_function", X, offset)
        A = self._logits(X, offset)
        return A[:, 1] - A[:, 0] if self.classes_.size == 2 else A

    def predict_proba(self, X, offset=None) -> np.ndarray:
        """Class probabilities ``softmax(W x + b + offset)``, shape (n_samples, n_classes)."""
        if is_dask_collection(X):
            return predict_external(self, "predict_proba", X, offset)
        X = self._validate_X(X)  # logits and softmax by row blocks, in place (_softmax.py)
        K = self.classes_.size
        offset = validate_offset(offset, X.shape[0], K, np.result_type(X.dtype, self.coef_.dtype))
        return linear_softmax(X, self.coef_, self.intercept_, offset, binary=K == 2)

    def predict_log_proba(self, X, offset=None) -> np.ndarray:
        """Log-probabilities, exact where the probabilities underflow; ``offset`` as in fit."""
        if is_dask_collection(X):
            return predict_external(self, "predict_log_proba", X, offset)
        return log_softmax(self._logits(X, offset), axis=1)

    def predict(self, X, offset=None) -> np.ndarray:
        """The most probable class label for each sample; ``offset`` as in :meth:`fit`."""
        if is_dask_collection(X):
            return predict_external(self, "predict", X, offset)
        A = self._logits(X, offset)  # first: raises NotFittedError before classes_ is read
        return self.classes_[np.argmax(A, axis=1)]
