r"""The numerics of classical inference for unpenalised softmax regression.

Parameters are reported in the *reference-class* form of statsmodels ``MNLogit``: the logits of
the reference class are zero and each other class ``j`` has coefficients :math:`\theta_j`
(one column of ``params`` per non-reference class; rows are the intercept first, then the
features). With sum-form log-likelihood :math:`\ell(\theta) = -S f(\theta)` (see the
Conventions of ``softmaxreg._objective``):

- ``nonrobust``: :math:`V = I^{-1}`, the inverse observed information
  :math:`I = -\nabla^2 \ell = S \nabla^2 f` (for the softmax, observed = expected).
- ``HC0``: the sandwich :math:`V = I^{-1} B I^{-1}` with :math:`B = \sum_n s_n u_n u_n^T`,
  :math:`u_n = (t_n - m_n y_n)_{j \ne ref} \otimes \phi_n` the score of one observation.
  Weights are *frequency* weights: a row of weight ``k`` is ``k`` identical observations, so
  it contributes ``k`` times its outer product (not ``k**2``).
- ``HC1``: HC0 times :math:`N / (N - k)` (``N = nobs``, ``k`` parameters), the usual
  small-sample factor. statsmodels' ``MNLogit.fit(cov_type="HC1")`` reports HC0 unscaled.
- ``cluster``: :math:`B = \sum_g S_g S_g^T` with :math:`S_g = \sum_{n \in g} s_n u_n`, times
  :math:`\frac{G}{G-1}\frac{N-1}{N-k}` exactly as statsmodels' ``cov_cluster``. With one group
  per row this is the sandwich for *sampling* (probability) weights.

Marginal effects (:meth:`InferenceResults.get_margeff`) are the derivatives of the class
probabilities with respect to the features, averaged over the observations or taken at the
feature means, with delta-method standard errors from an exact (analytic) Jacobian.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

from ._sources import ArraySource

__all__ = [
    "COV_TYPES",
    "cholesky_info",
    "margeff_jacobian",
    "margeff_moments",
    "meat",
    "newton_polish",
    "null_loglik",
    "validate_groups",
]

COV_TYPES = ("nonrobust", "HC0", "HC1", "cluster")
_CELLS = 1 << 21  # elements per sub-block temporary


# -- per-block pieces ------------------------------------------------------------------------
def _design(X, fit_intercept: bool) -> np.ndarray:
    """Dense float64 design rows ``phi_n`` with the intercept column last (objective order)."""
    Q = X.toarray() if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    Q = Q.astype(np.float64, copy=False)
    if fit_intercept:
        Q = np.hstack([Q, np.ones((Q.shape[0], 1))])
    return Q


def _residuals(block, P: np.ndarray) -> np.ndarray:
    """Unweighted score factors ``t_n - m_n y_n`` of shape (n_b, K)."""
    P = np.ascontiguousarray(P, dtype=np.float64)  # row-major: P may be class-major
    if block.targets.ndim == 1:
        R = -P
        R[np.arange(P.shape[0]), block.targets] += 1.0
        return R
    T = block.targets.astype(np.float64)
    return T - T.sum(axis=1, keepdims=True) * P


def _sub_blocks(n: int, width: int):
    step = max(1, _CELLS // max(width, 1))
    for start in range(0, n, step):
        yield slice(start, start + step)


def _score_rows(block, P, fit_intercept):
    """Per-observation scores ``u_n`` of shape (n_b, R*p) (objective order, reference dropped)."""
    Q = _design(block.X, fit_intercept)
    Rs = _residuals(block, P)[:, 1:]
    return (Rs[:, :, None] * Q[:, None, :]).reshape(Q.shape[0], -1)


def meat(objective, W, b, groups=None, n_groups=0):
    """``B = sum_n s_n u_n u_n^T``, or with ``groups`` the group sums ``sum_g S_g S_g^T``."""
    from ._kernel import block_loss_grad

    source, fi = objective.source, objective.fit_intercept
    n_par = objective.n_coef
    sums = np.zeros((n_groups, n_par)) if groups is not None else None

    def kernel(blk, i):
        P = block_loss_grad(blk, W, b)[3]
        s = blk.weights.astype(np.float64)
        B = np.zeros((n_par, n_par))
        for rows in _sub_blocks(P.shape[0], n_par):
            sub = type(blk)(blk.X[rows], blk.targets[rows], blk.weights[rows])
            U = _score_rows(sub, P[rows], fi)
            if sums is None:
                B += (U * s[rows, None]).T @ U
            else:
                start = i * source.block_rows + rows.start
                g = groups[start : start + U.shape[0]]
                local, inv = np.unique(g, return_inverse=True)
                ind = sp.csr_matrix((s[rows], (inv, np.arange(g.size))), shape=(local.size, g.size))
                sums[local] += np.asarray(ind @ U)
        return (B,)

    with np.errstate(over="ignore", invalid="ignore"):
        (B,) = source.map_reduce(kernel)
    return B if sums is None else sums.T @ sums


# -- fitting to the MLE ----------------------------------------------------------------------
def _information(objective, coef):
    r"""Mean-form loss and gradient, and the sum-form observed information at ``coef``.

    For the unpenalised reference form, one pass computing only the ``R (R + 1) / 2``
    weighted Gram matrices :math:`\Phi^T \mathrm{diag}(c\,(\delta_{kj} y_k - y_k y_j))\Phi`
    of the non-reference class pairs (a third of the work of the full ``K p`` Hessian);
    equal to ``objective.hessian(coef)[2] * objective.scale`` (tested). Each pair's weights
    have one sign (``y_k (1 - y_k) >= 0`` on the diagonal, ``-y_k y_j <= 0`` off it), so each
    Gram is ``+-Z^T Z`` with ``Z = sqrt|w| Phi``, which BLAS forms as ``syrk`` (one triangle:
    half the work of a general product); blocks run on the oracle's threads.
    """
    from ._kernel import _curvature_weights, block_loss_grad

    if not objective.reference or np.any(objective.penalty):
        f, g, H = objective.hessian(coef)
        return f, g, H * objective.scale
    W, b = objective._split(coef)
    R, p = objective.coef_shape
    fi = objective.fit_intercept
    ku, ju = np.triu_indices(R)

    def kernel(blk, i):
        loss, gW, gb, P = block_loss_grad(blk, W, b)
        c = _curvature_weights(blk).astype(np.float64)
        Pr = P[:, 1:].astype(np.float64)
        Pc = Pr * c[:, None]
        Q = _design(blk.X, fi)
        H = np.zeros((R * p, R * p))
        for k, j in zip(ku, ju, strict=True):
            w = Pc[:, k] * (1.0 - Pr[:, k]) if k == j else Pc[:, k] * Pr[:, j]
            Z = Q * np.sqrt(w)[:, None]
            Gt = Z.T @ Z if k == j else -(Z.T @ Z)
            H[k * p : (k + 1) * p, j * p : (j + 1) * p] = Gt
            H[j * p : (j + 1) * p, k * p : (k + 1) * p] = Gt
        return loss, gW, gb, H

    with np.errstate(over="ignore", invalid="ignore"):
        total, gW, gb, H = objective._map_reduce(kernel, heavy=True)
    return objective._finish_loss(total, coef), objective._pack(gW, gb, coef), H


def _rms_logit_change(objective, d) -> float:
    """Weighted root-mean-square change of the logits ``Delta a_n`` for the step ``d``.

    The information's weights ``y (1 - y)`` change relatively by about this much, so it bounds
    the relative error of reusing the information from before the step (one cheap pass).
    """
    from ._kernel import _curvature_weights

    V, vb = objective._split(d)

    def kernel(blk, i):
        A = np.asarray(blk.X @ V.T.astype(np.float64))
        if vb is not None:
            A = A + vb
        c = _curvature_weights(blk).astype(np.float64)
        return (float(c @ np.square(A).mean(axis=1)),)

    (total,) = objective.source.map_reduce(kernel)
    return float(np.sqrt(max(total, 0.0) / objective.source.weight_sum))


def cholesky_info(info, names=""):
    """Cholesky factor (``cho_factor``) of the information, or a ValueError naming the problem."""
    d = np.sqrt(np.clip(np.diag(info), 1e-300, None))
    scaled = info / d[:, None] / d[None, :]
    try:
        evals = np.linalg.eigvalsh(scaled)
    except np.linalg.LinAlgError:
        evals = np.array([0.0])
    if not np.all(np.isfinite(info)) or evals.min() < 1e-10 * max(evals.max(), 1.0):
        raise ValueError(
            "The information matrix is singular or nearly so (smallest scaled eigenvalue "
            f"{evals.min():.3g}): the coefficients are not identified. "
            f"{names() if callable(names) else names} Remove redundant features, or fit with "
            "a penalty (no classical inference then)."
        )
    return la.cho_factor(info, lower=True)


def newton_polish(objective, coef, *, max_steps: int = 50, step_tol: float = 1e-3, diag=""):
    """Newton steps from ``coef`` to the maximum-likelihood estimate on ``objective``.

    The last step is taken without evaluating the information again when it is below
    ``step_tol`` standard errors (the Newton decrement :math:`\\sqrt{g^T I^{-1} g}` in sum
    form: the remaining error is of its square) and changes the logits by less than ``1e-6``
    (weighted root mean square: the information at the new point equals the last one to
    about that relative accuracy, so standard errors are within about ``5e-7``).
    Returns the MLE, the sum-form information and the number of Newton steps.
    """
    w = np.array(coef, dtype=np.float64)
    for step in range(1, max_steps + 1):
        f, g, info = _information(objective, w)
        cho = cholesky_info(info, diag)
        d = -la.cho_solve(cho, g * objective.scale)
        size = float(np.sqrt(max(-(g * objective.scale) @ d, 0.0)))
        if size <= step_tol and (size < 1e-9 or _rms_logit_change(objective, d) <= 1e-6):
            return w + d, info, step
        t, gd = 1.0, g @ d
        while t > 1e-12 and not objective.loss(w + t * d) <= f + 1e-4 * t * gd:
            t *= 0.5
        if t <= 1e-12:  # at the precision limit of the loss: the step is rounding noise
            return w, info, step
        w = w + t * d
    raise ValueError(
        f"Newton's method did not reach the maximum-likelihood estimate in {max_steps} steps "
        f"(last step {size:.3g} standard errors). The classes may be separated (the estimate "
        "does not exist): add a penalty or drop the separating features."
    )


def null_loglik(objective):
    """Log-likelihood of the intercept-only model (or of zero logits without an intercept)."""
    source = objective.source
    if objective.fit_intercept and source.offset is None:

        def kernel(blk, i):
            s = blk.weights.astype(np.float64)
            if blk.targets.ndim == 1:
                return (np.bincount(blk.targets, weights=s, minlength=objective.n_classes),)
            return ((blk.targets.astype(np.float64) * s[:, None]).sum(axis=0),)

        (N,) = source.map_reduce(kernel)
        pos = N > 0
        return float(np.sum(N[pos] * np.log(N[pos] / N.sum())))
    if objective.fit_intercept:
        from ._objective import Objective
        from ._solvers import solve

        zero = ArraySource(
            np.zeros((source.n_samples, 0)),
            source.targets,
            source.weights,
            objective.n_classes,
            offset=source.offset,
        )
        null = Objective(zero, fit_intercept=True, reference=True)
        res = solve("newton", null, np.zeros(null.n_coef), tol=1e-12, max_iter=100)
        return -null.scale * null.loss(res.coef)
    return -objective.scale * objective.loss(np.zeros(objective.n_coef))


def validate_groups(groups, n_samples):
    if groups is None:
        raise ValueError("cov_type='cluster' needs groups: one group label per sample.")
    g = np.asarray(groups)
    if g.ndim != 1 or g.shape[0] != n_samples:
        raise ValueError(
            f"groups must be a 1-D array with one label per sample ({n_samples}), "
            f"got shape {g.shape}."
        )
    if g.dtype.kind == "f" and not np.all(np.isfinite(g)):
        raise ValueError("groups contains NaN or infinite labels.")
    try:
        _, codes = np.unique(g, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"groups must hold comparable labels of one type ({exc}).") from None
    n_groups = int(codes.max()) + 1
    if n_groups < 2:
        raise ValueError("cov_type='cluster' needs at least 2 distinct groups.")
    return codes.astype(np.intp), n_groups


# -- marginal effects ------------------------------------------------------------------------
def _moments(P, Q, w):
    """Weighted moments of the probabilities: sums of w P_j, w P_j P_l and their products with
    ``Q`` up to third order in ``P`` (the pieces of the marginal-effect Jacobian)."""
    K, p = P.shape[1], Q.shape[1]
    Pw = P * w[:, None]
    S1 = Pw.sum(axis=0)
    PP = (Pw[:, :, None] * P[:, None, :]).reshape(-1, K * K)
    S2 = PP.sum(axis=0).reshape(K, K)
    M1 = Pw.T @ Q
    M2 = (PP.T @ Q).reshape(K, K, p)
    M3 = np.zeros((K, K, K, p))
    for rows in _sub_blocks(P.shape[0], K**3):
        PPP = PP[rows].reshape(-1, K, K)[:, :, :, None] * P[rows, None, None, :]
        M3 += (PPP.reshape(-1, K**3).T @ Q[rows]).reshape(K, K, K, p)
    return float(w.sum()), S1, S2, M1, M2, M3


def margeff_moments(objective, W, b, at="overall"):
    """The moments of :func:`_moments` over the data (``at="overall"``) or at the weighted
    means of the features (``at="mean"``)."""
    from ._kernel import _curvature_weights, block_loss_grad

    fi = objective.fit_intercept
    if at == "overall":

        def kernel(blk, i):
            P = np.ascontiguousarray(block_loss_grad(blk, W, b)[3], dtype=np.float64)
            w = _curvature_weights(blk).astype(np.float64)
            return _moments(P, _design(blk.X, fi), w)

        with np.errstate(over="ignore", invalid="ignore"):
            return objective.source.map_reduce(kernel)

    def sums(blk, i):
        w = _curvature_weights(blk).astype(np.float64)
        off = None if blk.offset is None else w @ blk.offset.astype(np.float64)
        return float(w.sum()), np.asarray(blk.X.T @ w).ravel(), off

    total, xsum, osum = objective.source.map_reduce(sums)
    xbar = (xsum / total)[None, :]
    A = xbar @ W.T.astype(np.float64) + (0.0 if b is None else b.astype(np.float64))
    if osum is not None:
        A = A + osum / total
    P = np.exp(A - A.max())
    P /= P.sum()
    return _moments(P, _design(xbar, fi), np.ones(1))


def margeff_jacobian(beta, moments, n_features):
    r"""Average marginal effects ``dP_j/dx_i`` and their Jacobian in the parameters.

    With :math:`\bar\beta_{n i} = \sum_k P_{nk}\beta_{ki}`, the effect of feature ``i`` on
    class ``j`` is :math:`P_{nj}(\beta_{ji} - \bar\beta_{ni})`, averaged with weights ``w``.
    Its derivative with respect to :math:`\beta_{lm}` (class ``l``, design column ``m``) is a
    combination of the moments :math:`M_1, M_2, M_3` (derivation in docs/inference.md).

    Parameters
    ----------
    beta : ndarray of shape (K, p)
        Full coefficients (reference row zero), objective column order (intercept last).
    moments : tuple
        From :func:`margeff_moments`.
    n_features : int

    Returns
    -------
    effects : ndarray of shape (n_features, K)
    jacobian : ndarray of shape (n_features * K, (K - 1) * p)
        Rows in C-order of ``effects``; columns in objective order of the reference form.
    """
    total, S1, S2, M1, M2, M3 = moments
    K, p = beta.shape
    d = n_features
    bf = beta[:, :d]
    eye = np.eye(K)
    effects = (bf.T * S1[None, :] - bf.T @ S2.T) / total
    A = eye[:, :, None] * M1[:, None, :] - M2
    J = np.einsum("ji,jlm->ijlm", bf, A)
    J -= eye[None, :, :, None] * np.einsum("ki,jkm->ijm", bf, M2)[:, :, None, :]
    J += 2.0 * np.einsum("ki,jlkm->ijlm", bf, M3)
    J -= np.einsum("li,jlm->ijlm", bf, M2)
    own = eye * S1[:, None] - S2
    for i in range(d):
        J[i, :, :, i] += own
    J /= total
    return effects, J[:, :, 1:, :].reshape(d * K, (K - 1) * p)
