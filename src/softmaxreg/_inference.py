r"""The inference results object: everything statsmodels' ``MNLogit`` reports.

Parameters are in the *reference-class* form of ``MNLogit``: the reference class's logits are
zero; ``params`` has one column per non-reference class and one row per term, the intercept
first, then the features. ``cov_params()`` is ordered like ``params.ravel(order="F")``
(class by class, terms within a class), as in statsmodels. The numerics (the MLE, the
information, the sandwich, the marginal-effect Jacobian) are in ``softmaxreg._mle``; the
covariance types and the weighting are described there and in docs/inference.md.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as la
from scipy import stats

from ._mle import (
    COV_TYPES,
    cholesky_info,
    margeff_jacobian,
    margeff_moments,
    meat,
    newton_polish,
    null_loglik,
    validate_groups,
)

__all__ = ["InferenceResults", "MarginalEffects", "compute_inference"]

_COLUMNS = ["coef", "std err", "z", "P>|z|"]


def compute_inference(
    objective, coef0, *, cov_type="nonrobust", groups=None, feature_names, class_labels, diagnose=""
) -> InferenceResults:
    """Polish ``coef0`` to the MLE of a reference-form ``objective`` and build the results.

    Parameters
    ----------
    objective : Objective
        Unpenalised, ``reference=True``; class code 0 is the reference class.
    coef0 : ndarray of shape (n_coef,)
        Starting coefficients in objective order (see the Conventions of ``_objective``).
    cov_type : {"nonrobust", "HC0", "HC1", "cluster"}
    groups : array-like of shape (n_samples,), optional
        Cluster labels, for ``cov_type="cluster"`` only.
    feature_names : sequence of str of length n_features
    class_labels : ndarray of shape (n_classes,)
        Class labels in code order (the reference first).
    diagnose : str or callable
        Text (or a function returning it) naming collinear columns, for the singular case.

    Returns
    -------
    InferenceResults
    """
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type must be one of {list(COV_TYPES)}, got {cov_type!r}.")
    if np.any(objective.penalty):
        raise ValueError("Classical inference needs an unpenalised objective.")
    if cov_type == "cluster":
        gcodes, n_groups = validate_groups(groups, objective.source.n_samples)
    elif groups is not None:
        raise ValueError(f"groups is only used with cov_type='cluster', not {cov_type!r}.")
    coef, info, steps = newton_polish(objective, coef0, diag=diagnose)
    cov = la.cho_solve(cholesky_info(info, diagnose), np.eye(info.shape[0]))
    W, b = objective._split(coef)
    nobs, k = objective.scale, objective.n_coef
    if cov_type in ("HC0", "HC1"):
        cov = cov @ meat(objective, W, b) @ cov
        if cov_type == "HC1":
            cov *= nobs / (nobs - k)
    elif cov_type == "cluster":
        cov = cov @ meat(objective, W, b, gcodes, n_groups) @ cov
        cov *= n_groups / (n_groups - 1.0) * (nobs - 1.0) / (nobs - k)
    return InferenceResults(
        objective,
        coef,
        cov,
        llf=-objective.scale * objective.loss(coef),
        llnull=null_loglik(objective),
        cov_type=cov_type,
        feature_names=list(feature_names),
        class_labels=np.asarray(class_labels),
        n_groups=n_groups if cov_type == "cluster" else None,
        newton_steps=steps,
    )


def _encode(est, X, y, sample_weight):
    """Targets (class codes or a target matrix) and weights, against the fitted classes."""
    from sklearn.utils.validation import _check_sample_weight

    from ._targets import compact_codes, is_target_matrix, target_class_weights, validate_targets

    classes = est.classes_
    if is_target_matrix(y):
        _, T = validate_targets(y, X.shape[0], classes, np.float64)
        sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        return target_class_weights(est.class_weight, classes, T, sw), sw
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"y must be 1-D with one label per row of X ({X.shape[0]}), got shape {y.shape}."
        )
    codes = np.searchsorted(classes, y)
    codes = np.clip(codes, 0, classes.size - 1)
    bad = classes[codes] != y
    if np.any(bad):
        raise ValueError(
            f"y contains labels the model was not fitted with (e.g. {y[bad][0]!r}); the "
            f"classes are {classes.tolist()!r}."
        )
    codes = compact_codes(codes, classes.size)
    return codes, est._weights(X, codes, sample_weight)


def feature_names(est) -> list:
    """Names of the model's features: ``feature_names_in_``, the basis outputs, or x1..xd."""
    if getattr(est, "basis_", None) is not None:
        from ._basis import coef_feature_names

        return [str(f) for f in coef_feature_names(est)]
    if hasattr(est, "feature_names_in_"):
        return [str(f) for f in est.feature_names_in_]
    return [f"x{i + 1}" for i in range(est.coef_.shape[1])]


def _check_nonempty(targets, sw, labels):
    K = labels.size
    if targets.ndim == 1:
        mass = np.bincount(targets, weights=sw, minlength=K)
    else:
        mass = (targets * sw[:, None]).sum(axis=0)
    empty = labels[~(mass > 0)]
    if empty.size:
        raise ValueError(
            f"The class(es) {empty.tolist()!r} have no observations (or zero total weight) in "
            "these data: their coefficients are not estimable (they run to minus infinity). "
            "Pass data that contain every class, or refit without the empty classes."
        )


def _class_order(classes, reference_class):
    """Class indices with the reference first (then the others in ``classes_`` order)."""
    matches = np.flatnonzero(classes == reference_class) if reference_class is not None else [0]
    if len(matches) != 1:
        raise ValueError(
            f"reference_class={reference_class!r} is not one of the classes {classes.tolist()!r}."
        )
    return np.r_[matches[0], np.delete(np.arange(classes.size), matches[0])]


def _reference_problem(est, X, targets, sw, offset, order):
    """The reference-form objective (class code 0 = the reference) and the estimator's
    coefficients in its order."""
    from ._objective import Objective
    from ._sources import ArraySource
    from ._targets import validate_offset

    K = order.size
    targets = np.argsort(order)[targets] if targets.ndim == 1 else targets[:, order]
    offset = validate_offset(offset, X.shape[0], K, np.float64)
    source = ArraySource(X, targets, sw, K, offset=None if offset is None else offset[:, order])
    objective = Objective(source, fit_intercept=est.fit_intercept, reference=True)
    M = np.hstack([est.coef_, est.intercept_[:, None]]) if est.fit_intercept else est.coef_
    M = (np.vstack([np.zeros_like(M), M]) if K == 2 else M)[order].astype(np.float64)
    return objective, (M[1:] - M[0]).ravel()


def estimator_inference(
    est, X, y, sample_weight=None, *, cov_type="nonrobust", groups=None, reference_class=None,
    offset=None,
) -> InferenceResults:  # fmt: skip
    """The work of :meth:`SoftmaxRegression.inference` (see there)."""
    from sklearn.utils.validation import check_is_fitted, validate_data

    from ._basis import apply_basis
    from ._separation import collinearity_message, find_separation, fingerprint
    from ._sources import ArraySource

    check_is_fitted(est)
    if est.penalty is not None:
        raise ValueError(
            f"inference() needs an unpenalised fit (penalty=None); this model has "
            f"penalty={est.penalty!r}, C={est.C!r}. Classical standard errors and tests do not "
            "hold for a penalised (shrunken) estimator. Refit with penalty=None."
        )
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type must be one of {list(COV_TYPES)}, got {cov_type!r}.")
    X = validate_data(est, X, reset=False, accept_sparse=["csr", "csc", "coo"], dtype=np.float64)
    targets, sw = _encode(est, X, y, sample_weight)
    X = apply_basis(est, X)
    checked = getattr(est, "_separation_checked_", None) == fingerprint(
        ArraySource(X, targets, sw, est.classes_.size), est.fit_intercept
    )  # the fit proved these very data not separated
    order = _class_order(est.classes_, reference_class)
    labels = est.classes_[order]
    objective, coef0 = _reference_problem(est, X, targets, sw, offset, order)
    _check_nonempty(objective.source.targets, sw, labels)
    names = feature_names(est)
    sep = None if checked else find_separation(objective, names, labels, coef0)
    if sep is not None:
        raise ValueError(sep.message(for_inference=True))
    return compute_inference(
        objective, coef0, cov_type=cov_type, groups=groups, feature_names=names,
        class_labels=labels, diagnose=lambda: collinearity_message(objective, names),
    )  # fmt: skip


def _ztable(est, se, alpha):
    z = est / se
    crit = stats.norm.ppf(1 - alpha / 2)
    return z, 2 * stats.norm.sf(np.abs(z)), est - crit * se, est + crit * se


class InferenceResults:
    """Maximum-likelihood inference for a softmax regression (statsmodels ``MNLogit`` style).

    Built by :meth:`SoftmaxRegression.inference`; see docs/inference.md.

    Attributes
    ----------
    params : ndarray of shape (n_terms, n_classes - 1)
        Coefficients of each non-reference class (columns, in ``class_names`` order) relative
        to the reference class; rows are ``term_names`` (intercept first, then features).
    bse, zvalues, pvalues : ndarray of shape (n_terms, n_classes - 1)
        Standard errors, z statistics and two-sided normal p-values.
    llf, llnull : float
        Log-likelihood of the model and of the intercept-only model (zero logits when the
        model has no intercept).
    llr, llr_pvalue : float
        Likelihood-ratio statistic against the null model, and its chi-squared p-value with
        ``df_model`` degrees of freedom.
    aic, bic, prsquared : float
        ``-2 llf + 2 k``, ``-2 llf + log(nobs) k`` (``k`` parameters) and McFadden's
        ``1 - llf / llnull``.
    nobs : float
        Sum of the (frequency) weights times the target totals: the number of rows when
        unweighted.
    df_model, df_resid : float
        Non-intercept parameters, and ``nobs - k``.
    cov_type : str
    n_groups : int or None
        Number of clusters for ``cov_type="cluster"``.
    term_names : list of str
    class_names : list of str
        The non-reference classes (the columns of ``params``).
    reference_class : object
        The reference class label.
    newton_steps : int
        Newton steps taken from the estimator's coefficients to the MLE of these data.
    """

    def __init__(
        self,
        objective,
        coef,
        cov,
        *,
        llf,
        llnull,
        cov_type,
        feature_names,
        class_labels,
        n_groups=None,
        newton_steps=0,
    ):
        self._objective = objective
        self._coef = coef
        self._cov_obj = cov
        R, p = objective.coef_shape
        d = objective.n_features
        order = ([d] if objective.fit_intercept else []) + list(range(d))
        self._perm = np.array([r * p + t for r in range(R) for t in order])
        self.term_names = (["intercept"] if objective.fit_intercept else []) + [
            str(f) for f in feature_names
        ]
        self.class_labels = class_labels
        self.reference_class = class_labels[0]
        self.class_names = [str(c) for c in class_labels[1:]]
        self.params = coef.reshape(R, p)[:, order].T.copy()
        self._cov = cov[np.ix_(self._perm, self._perm)]
        self.bse = np.sqrt(np.diag(self._cov)).reshape(R, p).T
        self.zvalues = self.params / self.bse
        self.pvalues = 2 * stats.norm.sf(np.abs(self.zvalues))
        self.llf, self.llnull = float(llf), float(llnull)
        self.nobs = float(objective.scale)
        self.k_params = R * p
        self.df_model = float(R * d)
        self.df_resid = self.nobs - self.k_params
        self.cov_type, self.n_groups, self.newton_steps = cov_type, n_groups, newton_steps

    # -- scalar statistics ----------------------------------------------------------------
    @property
    def llr(self) -> float:
        return 2.0 * (self.llf - self.llnull)

    @property
    def llr_pvalue(self) -> float:
        return float(stats.chi2.sf(self.llr, self.df_model))

    @property
    def aic(self) -> float:
        return -2.0 * self.llf + 2.0 * self.k_params

    @property
    def bic(self) -> float:
        return -2.0 * self.llf + np.log(self.nobs) * self.k_params

    @property
    def prsquared(self) -> float:
        return 1.0 - self.llf / self.llnull

    def cov_params(self) -> np.ndarray:
        """Covariance of ``params.ravel(order="F")``: shape (k, k), class-major."""
        return self._cov.copy()

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Normal confidence intervals, shape (n_terms, n_classes - 1, 2): lower, upper."""
        _check_alpha(alpha)
        _, _, lo, hi = _ztable(self.params, self.bse, alpha)
        return np.stack([lo, hi], axis=-1)

    # -- tables ---------------------------------------------------------------------------
    def to_frame(self, alpha: float = 0.05):
        """A pandas DataFrame with one row per (class, term): coef, std err, z, P>|z|, CI.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from softmaxreg import SoftmaxRegression
        >>> X, y = load_iris(return_X_y=True)
        >>> m = SoftmaxRegression(penalty=None, tol=1e-10).fit(X[50:, :2], y[50:])
        >>> m.inference(X[50:, :2], y[50:]).to_frame().shape
        (3, 6)
        """
        import pandas as pd

        _check_alpha(alpha)
        z, pv, lo, hi = _ztable(self.params, self.bse, alpha)
        cols = [self.params, self.bse, z, pv, lo, hi]
        data = np.column_stack([c.T.ravel() for c in cols])
        index = pd.MultiIndex.from_product(
            [self.class_names, self.term_names], names=["class", "term"]
        )
        return pd.DataFrame(data, index=index, columns=_COLUMNS + _ci_names(alpha))

    def wald_test_terms(self):
        """Joint Wald test of each term across all non-reference classes.

        Returns a pandas DataFrame indexed by term with columns ``chi2``, ``df``, ``P>chi2``:
        the statistic :math:`\\theta_t^T V_{tt}^{-1} \\theta_t` for the ``n_classes - 1``
        coefficients of term ``t``, chi-squared with ``n_classes - 1`` degrees of freedom.
        """
        import pandas as pd

        p, R = self.params.shape
        rows = []
        for t in range(p):
            idx = np.arange(R) * p + t
            th = self.params[t]
            stat = float(th @ np.linalg.solve(self._cov[np.ix_(idx, idx)], th))
            rows.append((stat, R, float(stats.chi2.sf(stat, R))))
        return pd.DataFrame(
            rows, index=pd.Index(self.term_names, name="term"), columns=["chi2", "df", "P>chi2"]
        )

    def compare_lr_test(self, restricted: InferenceResults) -> tuple[float, float, float]:
        """Likelihood-ratio test of this model against a nested ``restricted`` one.

        Returns ``(statistic, p-value, df)`` as statsmodels' ``compare_lr_test``:
        ``2 (llf - restricted.llf)``, chi-squared with the difference in parameters.
        """
        if not isinstance(restricted, InferenceResults):
            raise TypeError("restricted must be the InferenceResults of a nested model.")
        if not np.isclose(restricted.nobs, self.nobs, rtol=1e-12):
            raise ValueError(
                f"The models were fitted to different data (nobs {restricted.nobs:g} vs "
                f"{self.nobs:g}); a likelihood-ratio test needs the same observations."
            )
        missing = sorted(set(restricted.term_names) - set(self.term_names))
        df = self.k_params - restricted.k_params
        if missing or df <= 0 or restricted.class_names != self.class_names:
            raise ValueError(
                "restricted is not nested in this model: it must have the same classes and a "
                f"subset of the terms (extra terms: {missing}, parameter difference {df})."
            )
        stat = 2.0 * (self.llf - restricted.llf)
        return stat, float(stats.chi2.sf(stat, df)), float(df)

    def summary(self, alpha: float = 0.05, yname: str = "y") -> str:
        """A plain-text table in the layout of statsmodels' ``MNLogit`` summary."""
        _check_alpha(alpha)
        z, pv, lo, hi = _ztable(self.params, self.bse, alpha)
        left = [
            ("Dep. Variable:", yname),
            ("Model:", "MNLogit"),
            ("Method:", "MLE"),
            ("Reference class:", str(self.reference_class)),
            ("Covariance Type:", self.cov_type),
        ]
        if self.n_groups is not None:
            left.append(("No. Clusters:", str(self.n_groups)))
        right = [
            ("No. Observations:", f"{self.nobs:g}"),
            ("Df Residuals:", f"{self.df_resid:g}"),
            ("Df Model:", f"{self.df_model:g}"),
            ("Pseudo R-squ.:", f"{self.prsquared:.4f}"),
            ("Log-Likelihood:", f"{self.llf:.6g}"),
            ("LL-Null:", f"{self.llnull:.6g}"),
            ("LLR p-value:", f"{self.llr_pvalue:.4g}"),
        ]
        width = 78
        lines = ["SoftmaxRegression inference results".center(width), "=" * width]
        for i in range(max(len(left), len(right))):
            a = left[i] if i < len(left) else ("", "")
            c = right[i] if i < len(right) else ("", "")
            lines.append(f"{a[0]:<17}{a[1]:>21}  {c[0]:<19}{c[1]:>19}")
        tw = max(12, *(len(t) for t in self.term_names))
        head = ["coef", "std err", "z", "P>|z|", *_ci_names(alpha)]
        for j, cname in enumerate(self.class_names):
            lines += [
                "=" * width,
                f"{(yname + '=' + cname)[:tw]:<{tw}}" + "".join(f"{h:>11}" for h in head),
                "-" * width,
            ]
            for t, term in enumerate(self.term_names):
                vals = [self.params[t, j], self.bse[t, j], z[t, j], pv[t, j], lo[t, j], hi[t, j]]
                lines.append(f"{term[:tw]:<{tw}}" + "".join(_fmt(v) for v in vals))
        lines.append("=" * width)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (
            f"<InferenceResults: {len(self.class_names) + 1} classes, "
            f"{len(self.term_names)} terms, nobs={self.nobs:g}, cov_type={self.cov_type!r}>"
        )

    # -- marginal effects -----------------------------------------------------------------
    def get_margeff(self, at: str = "overall") -> MarginalEffects:
        """Marginal effects ``dP(class)/dx`` with delta-method standard errors.

        Parameters
        ----------
        at : {"overall", "mean"}
            ``"overall"``: the (weighted) average of the effects over the observations
            (statsmodels ``get_margeff(at="overall", method="dydx")``); ``"mean"``: the
            effects at the (weighted) mean of the features.

        Returns
        -------
        MarginalEffects
            Effects of shape (n_features, n_classes), one column per class in code order
            (the reference first).
        """
        if at not in ("overall", "mean"):
            raise ValueError(f"at must be 'overall' or 'mean', got {at!r}.")
        obj = self._objective
        d = obj.n_features
        if d == 0:
            raise ValueError("The model has no features: there are no marginal effects.")
        W, b = obj._split(self._coef)
        moments = margeff_moments(obj, W, b, at)
        effects, J = margeff_jacobian(obj.full(self._coef), moments, d)
        cov = J @ self._cov_obj @ J.T
        names = self.term_names[1:] if obj.fit_intercept else self.term_names
        return MarginalEffects(effects, cov, names, [str(c) for c in self.class_labels], at)


class MarginalEffects:
    """Marginal effects of the features on the class probabilities.

    Attributes
    ----------
    margeff, margeff_se, zvalues, pvalues : ndarray of shape (n_features, n_classes)
    margeff_cov : ndarray of shape (n_features * n_classes, n_features * n_classes)
        Covariance of ``margeff.ravel()`` (C order) by the delta method.
    feature_names, class_names : list of str
    at : str
    """

    def __init__(self, effects, cov, feature_names, class_names, at):
        self.margeff = effects
        self.margeff_cov = cov
        self.margeff_se = np.sqrt(np.clip(np.diag(cov), 0.0, None)).reshape(effects.shape)
        self.zvalues = effects / self.margeff_se
        self.pvalues = 2 * stats.norm.sf(np.abs(self.zvalues))
        self.feature_names, self.class_names, self.at = feature_names, class_names, at

    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Shape (n_features, n_classes, 2)."""
        _check_alpha(alpha)
        _, _, lo, hi = _ztable(self.margeff, self.margeff_se, alpha)
        return np.stack([lo, hi], axis=-1)

    def summary_frame(self, alpha: float = 0.05):
        """A pandas DataFrame with one row per (class, feature)."""
        import pandas as pd

        _check_alpha(alpha)
        z, pv, lo, hi = _ztable(self.margeff, self.margeff_se, alpha)
        cols = [self.margeff, self.margeff_se, z, pv, lo, hi]
        data = np.column_stack([c.T.ravel() for c in cols])
        index = pd.MultiIndex.from_product(
            [self.class_names, self.feature_names], names=["class", "feature"]
        )
        return pd.DataFrame(data, index=index, columns=["dy/dx", *_COLUMNS[1:], *_ci_names(alpha)])


def _check_alpha(alpha):
    if not (isinstance(alpha, (int, float)) and 0 < alpha < 1):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}.")


def _ci_names(alpha):
    return [f"[{alpha / 2:g}", f"{1 - alpha / 2:g}]"]


def _fmt(v: float) -> str:
    a = abs(v)
    s = f"{v:.4f}" if (a == 0 or 1e-3 <= a < 1e5) else f"{v:.3e}"
    return f"{s:>11}"
