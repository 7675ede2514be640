"""``SoftmaxRegressionCV``: ``C`` (and ``l1_ratio``) chosen by cross-validation over paths.

Each training fold is fitted along the whole grid of ``C`` with warm starts
(:func:`~softmaxreg._path.regularization_path`), scored on its held-out fold, and the best mean
score picks ``C_``; the model is then refitted on all the data.

Folds that miss a class
    A training fold without samples of some class is fitted on the classes it has (the maximum
    likelihood probability of an unseen class is zero). When scoring, the held-out
    probabilities are laid out in the columns of *all* classes, the unseen ones at zero, so the
    scorer sees the right columns (log-loss then charges held-out samples of an unseen class
    ``-log(eps)``, as scikit-learn's ``log_loss`` clips). scikit-learn's ``LogisticRegressionCV``
    instead scores such folds with misaligned or missing columns.
"""

from __future__ import annotations

import os
import warnings
from numbers import Integral

import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import get_scorer
from sklearn.model_selection import check_cv
from sklearn.utils.validation import validate_data

from ._basis import make_basis
from ._cv_newton import blas_one_thread, fits_kronecker, newton_ridge, ridge_path
from ._cv_stack import FoldStack
from ._estimator import SoftmaxRegression, _check_magnitude, refuse_missing_labels
from ._exceptions import ConvergenceWarning
from ._external import warn_not_converged
from ._path import build_problem, regularization_path
from ._proximal import split_penalty
from ._softmax import log_softmax, softmax
from ._solvers import solve
from ._sources import ArraySource

__all__ = ["SoftmaxRegressionCV"]

_FLOATS = [np.float64, np.float32]

#: ``path_tol`` from which the fold fits of float64 data run their passes in float32 (their
#: certificate floor is ``100 eps(float32)`` = 1.2e-5; see ``Stopping``), on data large
#: enough (``n_samples * n_coef`` of all folds) for the products to dominate a pass.
SINGLE_PRECISION_TOL = 1e-4
SINGLE_PRECISION_WORK = 1e6


class _FoldModel(ClassifierMixin, BaseEstimator):
    """A fitted fold model with probability columns for all classes (for scorers)."""

    def __init__(self, classes, present, coef, basis):
        self.classes_ = classes
        self.present = present
        self.coef = coef
        self.basis = basis

    def _present_logits(self, X):
        """Logits of the classes present in the fold, (n, n_present); ``None`` for one class."""
        Z = X if self.basis is None else self.basis.transform(X)
        if self.present.size == 1:
            return None
        d = Z.shape[1]
        A = np.asarray(Z @ self.coef[:, :d].T) + (self.coef[:, d] if self.coef.shape[1] > d else 0)
        if self.present.size == 2:
            A = np.hstack([np.zeros_like(A), A])
        return A

    def predict_proba(self, X):
        P = np.zeros((X.shape[0], self.classes_.size))
        A = self._present_logits(X)
        P[:, self.present] = 1.0 if A is None else softmax(A, axis=1)
        return P

    def predict_log_proba(self, X):
        L = np.full((X.shape[0], self.classes_.size), -np.inf)
        A = self._present_logits(X)
        L[:, self.present] = 0.0 if A is None else log_softmax(A, axis=1)
        return L

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def fold_membership(n: int, folds) -> np.ndarray:
    """The (n, n_folds) boolean matrix whose column ``f`` marks fold ``f``'s training rows."""
    train = np.zeros((n, len(folds)), dtype=bool)
    for f, (rows, _) in enumerate(folds):
        train[rows, f] = True
    return train


class SoftmaxRegressionCV(SoftmaxRegression):
    """Softmax regression with ``C`` (and ``l1_ratio``) chosen by cross-validation.

    The parameters and fitted attributes of scikit-learn's ``LogisticRegressionCV`` (with
    ``use_legacy_attributes=False``), over any penalty of :class:`SoftmaxRegression`.

    Parameters
    ----------
    Cs : int or array-like of float, default=10
        Grid of ``C``; an integer ``n`` means ``np.logspace(-4, 4, n)``.
    cv : int, cross-validation generator or iterable, default=None
        ``None`` is 5-fold, an integer ``k`` is ``StratifiedKFold(k)`` (``check_cv``).
    penalty : {"l2", "l1", "elasticnet", "group"}, default="l2"
    scoring : str, callable or None, default=None
        ``None`` is the log-loss (``"neg_log_loss"``); else any scikit-learn scorer.
    l1_ratios : array-like of float or None, default=None
        Grid of ``l1_ratio`` (for ``"elasticnet"``/``"group"``); ``None`` uses ``l1_ratio``.
    refit : bool, default=True
        Refit on all the data with the best ``C``/``l1_ratio``. ``False`` averages the
        fold solutions at each fold's best grid point (every training fold must hold every
        class).
    n_jobs : int or None, default=None
        Threads. Dense ridge paths (``solver="auto"``) share each pass over the rows
        between them: ``None`` uses both cores of a pass once it holds enough work
        (``softmaxreg._cv_stack.THREAD_WORK``), ``1`` one thread, ``-1`` all cores. Other
        paths fit the folds in parallel threads (joblib; ``None`` is one).
    tol : float, default=1e-6
        Certificate of the final (refitted) model, as for :class:`SoftmaxRegression`:
        ``max |gradient / column RMS| <= tol``.
    path_tol : float, default=1e-4
        The same certificate for the fold fits, which only score the grid. At ``1e-4`` the
        held-out log-losses agree with tightly converged fold fits to about ``1e-4`` and the
        fold passes of large float64 data run in float32 (``SINGLE_PRECISION_TOL``), for
        2-3x less work than ``1e-6``; lower it when neighbouring grid points score closer
        than that.
    fit_intercept, solver, max_iter, class_weight, verbose, basis, l1_ratio, penalty_factor
        As for :class:`SoftmaxRegression`; the basis is fitted on each training fold.
        ``solver="auto"`` fits dense ridge paths by Newton-CG with a Kronecker-factored
        preconditioner, all folds in one stacked oracle (``softmaxreg._cv_newton``).

    Attributes
    ----------
    Cs_ : ndarray of shape (n_Cs,)
    l1_ratios_ : ndarray of shape (n_l1_ratios,)
        ``[l1_ratio]`` when no grid is given.
    scores_ : ndarray of shape (n_folds, n_l1_ratios, n_Cs)
        Held-out score of each fold and grid point (greater is better).
    coefs_paths_ : ndarray of shape (n_folds, n_l1_ratios, n_Cs, R, n_features + fit_intercept)
        Fold coefficients, intercept last (``R = 1`` for two classes). Rows of classes missing
        from a training fold are ``nan``. Only without a basis (basis features differ by fold).
    C_ : float
    l1_ratio_ : float or None
    n_iter_ : ndarray of shape (n_folds, n_l1_ratios, n_Cs)
    coef_, intercept_, classes_, basis_, result_
        Of the final fit, as in :class:`SoftmaxRegression`.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> X, y = load_iris(return_X_y=True)
    >>> model = SoftmaxRegressionCV(Cs=[0.01, 1.0, 100.0], cv=3).fit(X, y)
    >>> model.scores_.shape
    (3, 1, 3)
    """

    def __init__(
        self,
        Cs=10,
        *,
        cv=None,
        penalty="l2",
        scoring=None,
        l1_ratios=None,
        refit=True,
        n_jobs=None,
        fit_intercept=True,
        solver="auto",
        tol=1e-6,
        path_tol=1e-4,
        max_iter=100,
        class_weight=None,
        verbose=0,
        basis=None,
        l1_ratio=None,
        penalty_factor=None,
    ):
        self.Cs = Cs
        self.cv = cv
        self.penalty = penalty
        self.scoring = scoring
        self.l1_ratios = l1_ratios
        self.refit = refit
        self.n_jobs = n_jobs
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.tol = tol
        self.path_tol = path_tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.verbose = verbose
        self.basis = basis
        self.l1_ratio = l1_ratio
        self.penalty_factor = penalty_factor

    @property
    def partial_fit(self):
        """Not available: cross-validation needs all the data at once (``AttributeError``)."""
        raise AttributeError(
            "SoftmaxRegressionCV has no partial_fit: cross-validation needs all the data; "
            "use SoftmaxRegression(C=model.C_).partial_fit for streamed batches."
        )

    def inference(self, *args, **kwargs):
        """Not available: classical inference needs an unpenalised fit (``ValueError``)."""
        raise ValueError(
            "inference() needs an unpenalised fit, and SoftmaxRegressionCV tunes a penalty: "
            "use SoftmaxRegression(penalty=None).fit(X, y).inference(X, y)."
        )

    def _check_path_tol(self):
        tol = self.path_tol
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
            raise ValueError(f"path_tol must be a non-negative number, got {tol!r}.")

    def _single(self, C, l1_ratio):
        return SoftmaxRegression(
            C=C,
            penalty=self.penalty,
            fit_intercept=self.fit_intercept,
            solver=self.solver,
            tol=self.tol,
            max_iter=self.max_iter,
            class_weight=self.class_weight,
            verbose=self.verbose,
            basis=self.basis,
            l1_ratio=l1_ratio,
            penalty_factor=self.penalty_factor,
        )

    def _grids(self):
        if self.penalty is None:
            raise ValueError("SoftmaxRegressionCV tunes a penalty: penalty=None has none.")
        integer = isinstance(self.Cs, Integral) and not isinstance(self.Cs, bool)
        if np.isscalar(self.Cs) and not (integer and self.Cs >= 1):
            raise ValueError(f"Cs must be a positive integer or positive values, got {self.Cs!r}.")
        Cs = np.logspace(-4, 4, self.Cs) if np.isscalar(self.Cs) else np.asarray(self.Cs, float)
        if Cs.ndim != 1 or Cs.size == 0 or not np.all(np.isfinite(Cs)) or np.any(Cs <= 0):
            raise ValueError(f"Cs must be a positive integer or positive values, got {self.Cs!r}.")
        ratios = [self.l1_ratio] if self.l1_ratios is None else list(self.l1_ratios)
        if not ratios:
            raise ValueError("l1_ratios must not be empty.")
        return Cs, ratios

    def fit(self, X, y, sample_weight=None, groups=None):
        """Cross-validate the grid, then refit on all data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
        groups : array-like of shape (n_samples,), optional
            Group labels for a group-aware ``cv`` splitter (e.g. ``GroupKFold``), passed to
            its ``split``.

        Returns
        -------
        self : SoftmaxRegressionCV
        """
        Cs, ratios = self._grids()
        probe = self._single(float(Cs[0]), ratios[0])
        probe._check_params()
        self._check_path_tol()
        refuse_missing_labels(y)  # as SoftmaxRegression.fit
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc", "coo"], dtype=_FLOATS)
        if sp.issparse(X):
            X = X.tocsr()
        _check_magnitude(X)  # as SoftmaxRegression.fit: overflowing features are named
        classes, codes = probe._encode_labels(y)
        probe.classes_ = classes
        sw = probe._weights(X, codes, sample_weight)
        folds = list(check_cv(self.cv, y, classifier=True).split(X, y, groups))
        self._unconverged = []
        runs, kron = self._paths(X, codes, sw, classes, folds, Cs, ratios)
        self.Cs_, self.l1_ratios_ = Cs, np.array(ratios, dtype=object if None in ratios else float)
        self.scores_ = np.array([r[0] for r in runs])
        self.n_iter_ = np.array([r[2] for r in runs])
        if self._unconverged:
            worst = max(self._unconverged, key=lambda r: r.grad_norm / max(r.gtol, 1e-300))
            warnings.warn(
                f"{len(self._unconverged)} cross-validation fit(s) did not converge (worst: "
                f"{worst.message}; gradient norm {worst.grad_norm:.3g} > {worst.gtol:.3g}). "
                "Increase max_iter, standardise the features or use fewer large Cs.",
                ConvergenceWarning,
                stacklevel=2,
            )
        if self.basis is None:
            self.coefs_paths_ = np.array([r[1] for r in runs])
        mean = self.scores_.mean(axis=0)
        i, j = np.unravel_index(np.argmax(mean), mean.shape)
        self.C_, self.l1_ratio_ = float(Cs[j]), ratios[i]
        if self.refit and kron:
            with blas_one_thread():
                self._refit_kronecker(X, codes, sw, classes)
        elif self.refit:
            final = self._single(self.C_, self.l1_ratio_).fit(X, y, sample_weight=sample_weight)
            self.__dict__.update(
                {
                    k: v
                    for k, v in vars(final).items()
                    if k.endswith("_")
                    and k not in ("n_features_in_", "feature_names_in_", "n_iter_")
                }
            )
        else:
            self._average_folds(runs, classes)
        return self

    def _paths(self, X, codes, sw, classes, folds, Cs, ratios):
        """Every fold's scores, paths and iterations, and whether the Kronecker path ran."""
        full = all(np.unique(codes[train]).size == classes.size for train, _ in folds)
        ridge = self.penalty == "l2" and self.basis is None and full and len(ratios) == 1
        kron = ridge and self.solver == "auto"
        kron = kron and fits_kronecker(X.shape[1], classes.size, len(folds), self.fit_intercept)
        if kron:
            with blas_one_thread():  # the stacked passes, not BLAS, use the cores
                return self._kronecker(X, codes, sw, classes, folds, Cs), True
        if ridge:
            return self._stacked(X, codes, sw, classes, folds, Cs), False
        runs = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(self._fold)(X, codes, sw, classes, train, test, Cs, ratios)
            for train, test in folds
        )
        return runs, False

    def _fold(self, X, codes, sw, classes, train, test, Cs, ratios):
        """Scores (n_ratios, n_Cs), coefficient paths and iterations of one fold."""
        present = np.unique(codes[train])
        remap = np.full(classes.size, -1)
        remap[present] = np.arange(present.size)
        Xtr, Xte = X[train], X[test]
        basis = None
        if self.basis is not None:
            basis = make_basis(self.basis).fit(Xtr)
            Xtr = np.asarray(basis.transform(Xtr), dtype=X.dtype)
        width = Xtr.shape[1] + self.fit_intercept
        rows = 1 if classes.size == 2 else classes.size
        scores = np.empty((len(ratios), Cs.size))
        paths = np.full((len(ratios), Cs.size, rows, width), np.nan)
        n_iter = np.zeros((len(ratios), Cs.size), dtype=int)
        for a, rho in enumerate(ratios):
            coefs = [np.zeros((1, width))] * Cs.size
            if present.size > 1:
                coefs, results = regularization_path(
                    Xtr,
                    remap[codes[train]],
                    Cs,
                    n_classes=present.size,
                    sample_weight=sw[train],
                    penalty=self.penalty,
                    l1_ratio=rho,
                    penalty_factor=self.penalty_factor,
                    fit_intercept=self.fit_intercept,
                    solver=self.solver,
                    tol=self.path_tol,
                    max_iter=self.max_iter,
                )
                n_iter[a] = [r.n_iter for r in results]
                self._unconverged += [r for r in results if not r.converged]
            for c in range(Cs.size):
                model = _FoldModel(classes, present, coefs[c], basis)
                scores[a, c] = self._score(model, Xte, codes[test], sw[test], classes)
                if present.size == classes.size:
                    paths[a, c] = coefs[c]
        return scores, paths, n_iter

    def _stacked(self, X, codes, sw, classes, folds, Cs):
        """Every fold's ridge path at once (:class:`FoldStack`), for the ``l2`` penalty."""
        train = fold_membership(X.shape[0], folds)
        K, d = classes.size, X.shape[1]
        rows = 1 if K == 2 else K
        scores = np.empty((len(folds), 1, Cs.size))
        paths = np.empty((len(folds), 1, Cs.size, rows, d + self.fit_intercept))
        n_iter = np.zeros((len(folds), 1, Cs.size), dtype=int)
        solver = self.solver if self.solver in ("lbfgs", "newton-cg") else "newton-cg"
        coef = None
        for j in np.argsort(Cs, kind="stable"):
            l2 = split_penalty("l2", float(Cs[j]), None, self.penalty_factor, d)[0]
            stack = FoldStack(X, codes, sw, train, K, l2, self.fit_intercept)
            coef = np.zeros(stack.n_coef) if coef is None else coef
            result = solve(solver, stack, coef, tol=self.path_tol, max_iter=self.max_iter)
            coef = result.coef
            M = stack._full(coef)
            M = M[:, 1:] - M[:, :1] if K == 2 else M - M.mean(axis=1, keepdims=True)
            for f, (_, test) in enumerate(folds):
                model = _FoldModel(classes, np.arange(K), M[f], None)
                scores[f, 0, j] = self._score(model, X[test], codes[test], sw[test], classes)
            paths[:, 0, j] = M
            n_iter[:, 0, j] = result.n_iter
            if not result.converged:
                self._unconverged.append(result)
        return [(scores[f], paths[f], n_iter[f]) for f in range(len(folds))]

    def _threads(self):
        """Threads of the stacked passes: ``n_jobs`` (``-1``: all cores), or by data size."""
        if self.n_jobs is None:
            return None
        n_jobs = int(self.n_jobs)
        return (os.cpu_count() or 1) if n_jobs < 0 else max(n_jobs, 1)

    def _kronecker(self, X, codes, sw, classes, folds, Cs):
        """Every fold's ridge path at once by Kronecker-preconditioned Newton-CG."""
        strengths = split_penalty("l2", 1.0, None, self.penalty_factor, X.shape[1])[0]
        # Fold fits only score the grid: float32 products halve the passes' cost and keep
        # the gradient exact far below path_tol (the refit is float64).
        work = X.shape[0] * (X.shape[1] + 1) * classes.size * len(folds)
        single = X.dtype == np.float64 and self.path_tol >= SINGLE_PRECISION_TOL
        single = single and work >= SINGLE_PRECISION_WORK
        Xp = X.astype(np.float32) if single else X
        stack = FoldStack(
            Xp,
            codes,
            sw,
            fold_membership(X.shape[0], folds),
            classes.size,
            strengths,
            self.fit_intercept,
            threads=self._threads(),
        )
        coefs, results = ridge_path(
            stack, strengths, Cs, tol=self.path_tol, max_iter=self.max_iter
        )  # (n_Cs, F, R, p)
        self._unconverged += [r for r in results if not r.converged]
        paths = coefs.transpose(1, 0, 2, 3)[:, None]  # (F, 1, n_Cs, R, p)
        n_iter = np.array([r.n_iter for r in results])
        runs = []
        for f, (_, test) in enumerate(folds):
            if self.scoring is None or self.scoring == "neg_log_loss":
                scores = self._log_loss_path(paths[f, 0], X[test], codes[test], sw[test])
            else:
                scores = [
                    self._score(
                        _FoldModel(classes, np.arange(classes.size), M, None),
                        X[test],
                        codes[test],
                        sw[test],
                        classes,
                    )
                    for M in paths[f, 0]
                ]
            runs.append((np.asarray(scores)[None], paths[f], n_iter[None]))
        return runs

    def _log_loss_path(self, coefs, X, codes, sw):
        """Held-out log-loss scores of the coefficients ``coefs`` (n_Cs, R, p) at once."""
        n_C, R, p = coefs.shape
        d = X.shape[1]
        A = np.asarray(X @ coefs[:, :, :d].reshape(n_C * R, d).T, dtype=np.float64)
        A = A.reshape(-1, n_C, R)
        if p > d:
            A += coefs[:, :, d]
        if R == 1:
            A = np.concatenate([np.zeros_like(A), A], axis=2)
        L = log_softmax(A, axis=2)[np.arange(codes.size), :, codes]  # (n_test, n_Cs)
        L = np.maximum(L, np.log(np.finfo(np.float64).eps))
        return np.average(L, axis=0, weights=sw)

    def _refit_kronecker(self, X, codes, sw, classes):
        """The refit at ``C_`` from the mean of the fold solutions, certified by the library's
        own objective (the gradient of :class:`~softmaxreg._objective.Objective`)."""
        j = int(np.flatnonzero(self.Cs_ == self.C_)[0])
        coef0 = self.coefs_paths_[:, 0, j].mean(axis=0).ravel()
        strengths = split_penalty("l2", 1.0, None, self.penalty_factor, X.shape[1])[0]
        lam = np.zeros(self.coefs_paths_.shape[4])
        lam[: X.shape[1]] = strengths / self.C_
        stack = FoldStack(
            X,
            codes,
            sw,
            np.ones((X.shape[0], 1), dtype=bool),
            classes.size,
            strengths,
            self.fit_intercept,
            threads=self._threads(),
        )
        result, _ = newton_ridge(stack, lam, coef0, tol=self.tol, max_iter=self.max_iter)
        objective, _ = build_problem(
            ArraySource(X, codes, sw, classes.size),
            penalty="l2",
            C=self.C_,
            penalty_factor=self.penalty_factor,
            fit_intercept=self.fit_intercept,
        )
        f, g = objective.loss_grad(result.coef)
        result.grad_norm = float(np.max(np.abs(g / objective.gradient_scale()), initial=0.0))
        result.converged, result.loss = result.grad_norm <= result.gtol, f
        warn_not_converged(result, stacklevel=4)
        self.classes_, self.basis_, self._separation_checked_ = classes, None, None
        n_iter = self.n_iter_  # the folds' (scikit-learn's n_iter_), not the refit's
        self._store(objective, result, X.dtype)
        self.n_iter_ = n_iter

    def _score(self, model, X, codes, sw, classes):
        if self.scoring is None or self.scoring == "neg_log_loss":
            # scikit-learn's log_loss (probabilities clipped at eps), from exact log-probabilities
            L = model.predict_log_proba(X)[np.arange(codes.size), codes]
            return float(np.average(np.maximum(L, np.log(np.finfo(np.float64).eps)), weights=sw))
        return get_scorer(self.scoring)(model, X, classes[codes])

    def _average_folds(self, runs, classes):
        best = [np.unravel_index(np.argmax(r[0]), r[0].shape) for r in runs]
        if self.basis is not None or np.isnan(self.coefs_paths_).any():
            raise ValueError(
                "refit=False averages the fold coefficients: it needs every class in every "
                "training fold and no basis. Use refit=True."
            )
        M = np.mean([r[1][i, j] for r, (i, j) in zip(runs, best, strict=True)], axis=0)
        self.C_ = float(np.mean([self.Cs_[j] for _, j in best]))
        rho = [self.l1_ratios_[i] for i, _ in best]
        self.l1_ratio_ = None if rho[0] is None else float(np.mean(rho))
        self.classes_ = classes
        d = M.shape[1] - self.fit_intercept
        self.coef_ = M[:, :d]
        self.intercept_ = M[:, d] if self.fit_intercept else np.zeros(M.shape[0])
        self.basis_ = None
