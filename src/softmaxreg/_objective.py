r"""The objective of softmax regression as an oracle for the solvers.

Conventions
-----------
These conventions hold everywhere in softmaxreg; other docstrings refer to them.

Sizes
    ``n`` samples, ``d`` features (after the basis map ``phi``), ``K`` classes and
    ``p = d + fit_intercept`` coefficients per class row.
Coefficients
    A 1-D float64 vector ``coef`` of length ``R * p``: the C-order ravel of a matrix of shape
    ``(R, p)`` whose row ``k`` holds class ``k``'s feature weights followed by its intercept
    (the last column, when ``fit_intercept``).
Identifiability
    *Symmetric* form (``reference=False``, ``R = K``): every class has a row; the L2 penalty
    makes the feature weights sum to zero over classes at the optimum and solvers keep the
    (unpenalised) intercepts summing to zero. *Reference* form (``reference=True``,
    ``R = K - 1``): class 0's logits are fixed at zero (statsmodels ``MNLogit``; for ``K = 2``
    exactly binary logistic regression). Unpenalised multiclass fits use the reference form,
    so the Hessian is non-singular, and are centred afterwards.
Logits and targets
    :math:`a_{nk} = w_k^T x_n + b_k + o_{nk}` with offsets ``o``; targets :math:`t_n \ge 0`
    with totals :math:`m_n = \sum_k t_{nk}` (one-of-K targets are stored as class codes).
Objective (mean form)
    .. math:: f(W) = \frac{1}{S}\Big[\sum_n s_n \sum_k t_{nk}\,(-\ln y_{nk})
              + \tfrac12 \sum_k \sum_i \lambda_i W_{ki}^2\Big],\qquad S = \sum_n s_n m_n

    with sample weights ``s_n`` (class weights folded in) and per-column penalty strengths
    ``lambda_i`` (``1/C`` for features, ``0`` for the intercept). Dividing by ``S`` leaves the
    optimum unchanged and makes scikit-learn's ``C`` mean exactly the same thing here.
Derivatives
    gradient :math:`\frac1S[\sum_n s_n (m_n y_{nj} - t_{nj})\phi_n + \lambda \circ w_j]`;
    Hessian :math:`\frac1S[\sum_n s_n m_n y_{nk}(I_{kj} - y_{nj})\phi_n\phi_n^T + I_{kj}\,
    \mathrm{diag}(\lambda)]` (docs/derivation.md).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from ._kernel import (
    block_hess_diag,
    block_hessian,
    block_hessp,
    block_loss,
    block_loss_grad,
    dot_squared,
    squared,
)
from ._sources import MIN_THREADED_PASS_WORK, Block, sharing, transposed

#: Classes from which :meth:`Objective.loss_grad_approx_hessp` runs Hessian-vector products in
#: float32 on dense data: there the two GEMMs dominate a product (float32: 2.0x faster at
#: K = 200; 1.3-1.4x at K = 10, where converting each block would eat the gain).
SINGLE_HESSP_CLASSES = 32

#: Non-zeros times classes from which CSR data take float32 products (any number of classes:
#: only the values are converted, and SciPy's products move half the bytes). Measured per
#: product on 2 threads, K = 20: 9.7M non-zeros 215 -> 100 ms, 2M 20.6 -> 13.6 ms, 500,000
#: 9.1 -> 6.1 ms, 200,000 3.5 -> 3.0 ms (small products keep exact ones: little to gain).
SINGLE_HESSP_SPARSE_WORK = 10_000_000

__all__ = ["Objective"]


class Objective:
    """Penalised, weighted cross-entropy over the blocks of a data source.

    Parameters
    ----------
    source : ArraySource or another source (see ``_sources.py``)
        The data, as blocks.
    l2 : float or ndarray of shape (n_features,)
        Penalty strength per feature column (sum form, see Conventions); 0 for none.
    fit_intercept : bool
        Whether the last coefficient column is an (unpenalised) intercept.
    reference : bool
        Reference-class form (class 0 fixed at zero) instead of the symmetric form.
    """

    def __init__(self, source, *, l2=0.0, fit_intercept=True, reference=False):
        self.source = source
        self.n_classes = source.n_classes
        self.n_features = source.n_features
        self.fit_intercept = bool(fit_intercept)
        self.reference = bool(reference)
        self.dtype = np.dtype(source.dtype)
        self.scale = source.weight_sum
        if not self.scale > 0:
            raise ValueError("The sample weights sum to zero: there is nothing to fit.")
        p = self.n_features + self.fit_intercept
        penalty = np.zeros(p)
        penalty[: self.n_features] = l2
        self.penalty = penalty
        self.coef_shape = (self.n_classes - self.reference, p)
        self.n_coef = self.coef_shape[0] * p
        self._rms = None

    def _map_reduce(self, fn, heavy=False):
        """The source's map-reduce, over threads where it offers that (for ``fn`` that write
        no shared state: the oracle's kernels, the certificate's column squares). A pass
        over small in-memory data (:data:`~._sources.MIN_THREADED_PASS_WORK`) runs in this
        thread, unless ``fn`` is ``heavy`` (a full Hessian: far more work than a pass)."""
        threaded = getattr(self.source, "map_reduce_threaded", None)
        small = getattr(self.source, "pass_work", np.inf) < MIN_THREADED_PASS_WORK
        if threaded is None or (small and not heavy):
            return self.source.map_reduce(fn)
        return threaded(fn)

    # -- packing -------------------------------------------------------------------------
    def full(self, coef: np.ndarray) -> np.ndarray:
        """The (K, p) float64 matrix of ``coef``; class 0 is a zero row in reference form."""
        M = np.asarray(coef, dtype=np.float64).reshape(self.coef_shape)
        if self.reference:
            M = np.vstack([np.zeros((1, M.shape[1])), M])
        return M

    def _split(self, coef):
        M = self.full(coef).astype(self.dtype, copy=False)
        d = self.n_features
        return M[:, :d], (M[:, d] if self.fit_intercept else None)

    def _pack(self, gW, gb, coef) -> np.ndarray:
        """Sum-form block totals -> mean-form gradient vector, penalty included.

        In one new array (``(G + penalty * coef) / scale`` in place, the same arithmetic):
        with a million coefficients each temporary was 8 MB at the peak of a fit."""
        d, r = self.n_features, self.reference
        G = np.empty(self.coef_shape)
        G[:, :d] = gW[r:]
        if gb is not None:
            G[:, d] = np.asarray(gb)[r:]
        G += self.penalty * np.asarray(coef).reshape(self.coef_shape)
        G /= self.scale
        return G.ravel()

    def _penalty_value(self, coef) -> float:
        M = np.asarray(coef).reshape(self.coef_shape)
        return 0.5 * float(np.sum(self.penalty * M * M))

    def _finish_loss(self, total: float, coef) -> float:
        f = (float(total) + self._penalty_value(coef)) / self.scale
        return f if np.isfinite(f) else np.inf

    # -- oracle --------------------------------------------------------------------------
    def loss(self, coef: np.ndarray) -> float:
        """Objective value (mean form). Overflowing logits give ``inf``."""
        W, b = self._split(coef)
        with np.errstate(over="ignore", invalid="ignore"):
            (total,) = self._map_reduce(lambda blk, i: (block_loss(blk, W, b),))
        return self._finish_loss(total, coef)

    def loss_grad(self, coef: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective value and gradient, from one pass over the data."""
        f, g, _ = self._evaluate(coef, keep_probs=False)
        return f, g

    def loss_grad_hessp(self, coef: np.ndarray) -> tuple[float, np.ndarray, Callable]:
        """Value, gradient and a Hessian-vector product closure reusing the probabilities."""
        return self._evaluate(coef, keep_probs=True)

    def loss_grad_approx_hessp(self, coef: np.ndarray) -> tuple[float, np.ndarray, Callable]:
        """:meth:`loss_grad_hessp` whose Hessian-vector products may run in float32.

        For inexact Newton steps (the trust-region solver): the value and gradient stay exact,
        so the optimum and the certificate do not change. With many classes
        (:data:`SINGLE_HESSP_CLASSES`) on dense in-memory float64 data, and on large
        in-memory float64 CSR data (:data:`SINGLE_HESSP_SPARSE_WORK`), the probabilities are
        kept in float32 (half their memory) and each block's product runs in float32 (2x
        faster at 2,000 x 64, K = 200 and on the sparse benchmark; ~2e-7 relative error);
        otherwise the products are exact.
        """
        return self._evaluate(coef, keep_probs=True, single=self._single_hessp())

    def _single_hessp(self) -> bool:
        source = self.source
        if self.dtype != np.float64 or not source.is_local or not hasattr(source, "is_sparse"):
            return False
        if source.is_sparse:
            return source.X.nnz * self.n_classes >= SINGLE_HESSP_SPARSE_WORK
        return self.n_classes >= SINGLE_HESSP_CLASSES

    def grad_hessp(self, coef: np.ndarray) -> tuple[np.ndarray, Callable]:
        """Gradient and Hessian-vector product closure at ``coef``."""
        _, g, hessp = self._evaluate(coef, keep_probs=True)
        return g, hessp

    def _evaluate(self, coef, keep_probs, single=False):
        W, b = self._split(coef)
        cache = {} if keep_probs and self.source.is_local else None
        if keep_probs:
            self._last_probs = None  # the previous point's probabilities are not kept alive here

        def kernel(blk, i):
            loss, gW, gb, P = block_loss_grad(blk, W, b, probs=cache is not None)
            if cache is not None:
                cache[i] = P.astype(np.float32) if single else P  # (layout kept)
            return loss, gW, gb

        with np.errstate(over="ignore", invalid="ignore"):
            total, gW, gb = self._map_reduce(kernel)
        f = self._finish_loss(total, coef)
        g = self._pack(gW, gb, coef)
        if not keep_probs:
            return f, g, None
        self._last_probs = (np.array(coef, dtype=np.float64), cache)
        return f, g, self._hessp_closure(W, b, cache, single)

    def _hessp_closure(self, W, b, cache, single=False):
        def hessp(v: np.ndarray) -> np.ndarray:
            V, vb = self._split(v)
            if single:
                V, vb = _single(V), _single(vb)

            def kernel(blk, i):
                P = cache[i] if cache is not None else block_loss_grad(blk, W, b)[3]
                if single:  # the block in float32, one block at a time (no copy of X kept)
                    blk = _single_block(blk)
                return block_hessp(blk, P, V, vb)

            hW, hb = self._map_reduce(kernel)
            return self._pack(hW, hb, v)

        return hessp

    def hessian_diagonal(self, coef: np.ndarray) -> np.ndarray:
        """Diagonal of the Hessian at ``coef``, shape (n_coef,), penalty included.

        Costs half a pass when ``coef`` is the point of the latest :meth:`loss_grad_hessp`
        (its probabilities are reused), one pass otherwise. Used as the diagonal
        (Jacobi) preconditioner of trust-region Newton-CG. With the float32 probabilities of
        :meth:`loss_grad_approx_hessp` on CSR data, the squares and their product are float32.
        """
        W, b = self._split(coef)
        last = getattr(self, "_last_probs", None)
        cache = last[1] if last is not None and np.array_equal(last[0], coef) else None

        def kernel(blk, i):
            P = cache[i] if cache is not None else block_loss_grad(blk, W, b)[3]
            if P.dtype == np.float32 and sp.issparse(blk.X):  # float32 products, float32 too
                blk = _single_block(blk)
            return block_hess_diag(blk, P, b is not None)

        with np.errstate(over="ignore", invalid="ignore"):
            dW, db = self._map_reduce(kernel)
        D = dW if db is None else np.hstack([dW, np.asarray(db)[:, None]])
        if self.reference:
            D = D[1:]
        return (D + self.penalty).ravel() / self.scale

    def hessian(self, coef: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Value, gradient and the full (n_coef, n_coef) Hessian, for small problems."""
        W, b = self._split(coef)

        def kernel(blk, i):
            loss, gW, gb, P = block_loss_grad(blk, W, b)
            return loss, gW, gb, block_hessian(blk, P, self.fit_intercept)

        with np.errstate(over="ignore", invalid="ignore"):
            total, gW, gb, H = self._map_reduce(kernel, heavy=True)
        if self.reference:
            p = self.coef_shape[1]
            H = H[p:, p:]
        H = H + np.diag(np.tile(self.penalty, self.coef_shape[0]))
        return self._finish_loss(total, coef), self._pack(gW, gb, coef), H / self.scale

    def subsample(self, m: int, seed: int = 0) -> Objective | None:
        """The same objective on ``m`` rows drawn without replacement (fixed ``seed``).

        The penalty keeps the full-data scaling (``lambda * S_m / S``, with ``S_m`` the
        subsample's weight total), so the subsample's mean-form loss, gradient and Hessian
        estimate the full ones. ``None`` for sources that cannot take rows (streamed, Dask)
        or when the subsample has no weight.
        """
        take = getattr(self.source, "take", None)
        if take is None:
            return None
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(self.source.n_samples, size=m, replace=False))
        source = take(rows)
        if not source.weight_sum > 0:
            return None
        sub = Objective(
            source, fit_intercept=self.fit_intercept, reference=self.reference
        )  # penalty set below: it may differ per column
        sub.penalty = self.penalty * (source.weight_sum / self.scale)
        return sub

    def null_space(self) -> np.ndarray:
        """Orthonormal basis (n_coef, r) of directions along which the objective is constant.

        In symmetric form, adding the same value to every class's unpenalised column (the
        intercept, or any feature with zero penalty) leaves every softmax unchanged.
        """
        if self.reference:
            return np.zeros((self.n_coef, 0))
        K, p = self.coef_shape
        cols = np.flatnonzero(self.penalty == 0)
        Q = np.zeros((K, p, cols.size))
        Q[:, cols, np.arange(cols.size)] = 1.0 / np.sqrt(K)
        return Q.reshape(K * p, cols.size)

    def gradient_scale(self) -> np.ndarray:
        r"""Per-coefficient units of the convergence certificate, shape (n_coef,).

        The weighted root-mean-square of each feature column,
        :math:`\sigma_i = (\sum_n s_n m_n x_{ni}^2 / S)^{1/2}`, tiled over the class rows; 1 for
        the intercept and for all-zero columns. ``g / scale`` is the gradient with respect to
        the coefficients of standardised features (``w_i sigma_i``), so a test on it does not
        depend on the units of the features. Computed once, in one pass.
        """
        if self._rms is None:
            with np.errstate(over="ignore", invalid="ignore"):
                (sq,) = self._map_reduce(lambda blk, i: (_weighted_column_squares(blk),))
            if not np.all(np.isfinite(sq)):  # any source: streamed and Dask data too
                raise ValueError(
                    "Feature values (times sample weights) are too large for float64 "
                    "arithmetic: their squares overflow. Rescale or standardise the features "
                    "(e.g. sklearn's StandardScaler)."
                )
            rms = np.sqrt(np.asarray(sq) / self.scale)
            self._rms = np.where(rms > 0, rms, 1.0)
        scale = np.ones(self.coef_shape[1])
        scale[: self.n_features] = self._rms
        return np.tile(scale, self.coef_shape[0])


def _weighted_column_squares(block) -> np.ndarray:
    """``sum_n s_n m_n x_ni^2`` of one block, shape (n_features,), in float64."""
    c = block.weights.astype(np.float64)
    if block.totals is not None:
        c = c * block.totals
    if sp.issparse(block.X):
        return np.asarray(transposed(squared(block.X)) @ c).ravel()
    if block.X.dtype == np.float32:
        # float32 squares through BLAS a few rows at a time: 4x faster than einsum casting
        # each element (20,834 x 100: 2.5 -> 0.6 ms); einsum's float64 where float32 overflows
        with np.errstate(over="ignore", invalid="ignore"):
            sq = dot_squared(c.astype(np.float32)[None, :], block.X)[0]
        if np.all(np.isfinite(sq)):
            return sq.astype(np.float64)
    # float64, or float32 cast in einsum's small buffers (no float64 copy of the block)
    return np.einsum("n,ni,ni->i", c, block.X, block.X)


def _single_block(blk: Block) -> Block:
    """The block in float32 (no offset: the Hessian terms do not use it)."""
    return Block(_single(blk.X), _single(blk.targets), _single(blk.weights))


def _single(a):
    """``a`` in float32 if it is a float array (``None`` and integer arrays as they are); a CSR
    matrix keeps its index arrays (only its values are converted)."""
    if a is None or a.dtype.kind != "f":
        return a
    if sp.issparse(a):
        return sharing(a.format, a.data.astype(np.float32), a.indices, a.indptr, a.shape)
    return a.astype(np.float32)
