r"""All cross-validation folds as one stacked smooth problem: one pass over ``X`` serves every fold.

The ``F`` training folds are ``F`` independent penalised problems on overlapping rows. Stacking
their coefficients (shape ``(F, R, p)``, each fold in the Conventions of
``softmaxreg._objective``) gives a separable objective

.. math:: f(W_1, \dots, W_F) = \sum_f f_f(W_f),\qquad
          f_f = \frac{1}{S_f}\Big[\sum_n s_n t_{nf} CE_n(W_f) + \tfrac12\sum_{k,i}
          \lambda_i W_{f,ki}^2\Big]

with ``t_nf = 1`` when row ``n`` is in training fold ``f``. Its gradient is the concatenation
of the folds' gradients, so the smooth solvers' certificate (max-norm in standardised units,
each fold's own column scales) certifies every fold at once. One pass computes the logits of
all folds with one product ``X @ [W_1; ...; W_F]^T`` of width ``F K`` instead of ``F``
products of width ``K``: the data are read once per iteration, not ``F`` times.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

from ._sources import MAP_THREADS, default_block_rows, sum_tuples

__all__ = ["FoldStack"]


#: Floating-point work of a pass per thread below which the stack runs on one thread
#: (digits, 1,797 rows x 5 folds: no gain from two; 20,000 x 50 x 5 folds: 1.4x).
THREAD_WORK = 2e7


#: Rows (about) from which the preconditioner's class curvature ``A_f`` is averaged: a K x K
#: mean needs no more, and on 100,000 rows the full sum cost 15% of the CV.
CURVATURE_ROWS = 16384


@lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="softmaxreg-cv")


def _weighted_gram(X, w, fit_intercept):
    """``sum_n w_n phi_n phi_n^T`` with ``phi_n = [x_n, 1]``, float64 of shape (p, p)."""
    if sp.issparse(X):
        Xw = X.multiply(w[:, None]).tocsr()
        G = np.asarray((X.T @ Xw).toarray(), dtype=np.float64)
        m = np.asarray(Xw.sum(axis=0), dtype=np.float64).ravel()
    else:
        Xw = X * w[:, None].astype(X.dtype)
        G = np.asarray(Xw.T @ X, dtype=np.float64)
        m = Xw.sum(axis=0, dtype=np.float64)
    if not fit_intercept:
        return G
    return np.block([[G, m[:, None]], [m[None, :], np.array([[float(w.sum())]])]])


class FoldStack:
    """The stacked objective of ``F`` training folds (an oracle for the smooth solvers).

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)
    codes : ndarray of shape (n_samples,) of int
    weights : ndarray of shape (n_samples,)
    train : ndarray of shape (n_samples, n_folds) of bool
        Training-fold membership; every fold must hold every class.
    n_classes : int
    l2 : ndarray of shape (n_features,)
        Ridge strengths (sum form, see the Conventions).
    fit_intercept : bool
    threads : int, optional
        Threads over row blocks; by default :data:`~softmaxreg._sources.MAP_THREADS` when a
        pass has at least :data:`THREAD_WORK` operations per thread, else one.
    """

    def __init__(self, X, codes, weights, train, n_classes, l2, fit_intercept=True, threads=None):
        self.X = X.tocsr() if sp.issparse(X) else X
        self.codes = codes
        self.n_folds = train.shape[1]
        self.n_classes = K = int(n_classes)
        self.n_features = d = X.shape[1]
        self.fit_intercept = bool(fit_intercept)
        self.reference = K == 2
        self.dtype = X.dtype
        self.c = weights[:, None].astype(np.float64) * train  # (n, F) row weights per fold
        self.scales = self.c.sum(axis=0)  # S_f
        p = d + self.fit_intercept
        self.penalty = np.zeros(p)
        self.penalty[:d] = l2
        self.fold_shape = (K - self.reference, p)
        self.coef_shape = (self.n_folds * self.fold_shape[0], p)
        self.n_coef = self.coef_shape[0] * p
        self.rows = default_block_rows(d, self.n_folds * K, X.dtype.itemsize)
        n = X.shape[0]
        work = n * self.n_folds * K * (2 * (X.nnz / max(n, 1) if sp.issparse(X) else d) + 8)
        if threads is None:
            threads = MAP_THREADS if work >= MAP_THREADS * THREAD_WORK else 1
        self.threads = max(1, int(threads))
        if self.threads > 1:  # a block for each thread at least
            self.rows = min(self.rows, -(-n // self.threads))
        self._ones = np.ones(K, dtype=X.dtype)
        if self.fit_intercept:  # the intercept as a column of ones: one product gives both
            ones = np.ones((n, 1), dtype=X.dtype)
            self.X1 = (
                sp.hstack([self.X, ones], format="csr") if sp.issparse(X) else np.hstack([X, ones])
            )
        else:
            self.X1 = self.X
        self.cinv = np.divide(1.0, self.c, out=np.zeros_like(self.c), where=self.c > 0)
        self._cinv = self.cinv.astype(X.dtype)  # for the passes, in the data's precision
        # flat indices of each row's target logit in an (n_b, F, K) block, and the constant
        # part of the gradient sum_n c_nf e_{y_n} phi_n^T (shape (F K, p))
        self._picks = [
            (
                np.arange(r.stop - r.start if r.stop <= n else n - r.start)[:, None]
                * (self.n_folds * K)
                + np.arange(self.n_folds) * K
                + codes[r][:, None]
            )
            for r in self._blocks()
        ]
        T = np.zeros((self.n_folds, K, self.X1.shape[1]))
        for k in range(K):
            rows = np.flatnonzero(codes == k)
            T[:, k] = np.asarray(self.X1[rows].T @ self.c[rows]).T
        self._target_sum = T.reshape(self.n_folds * K, -1)
        self._rms = None
        self._last = None
        # what the solver registry asks of a source (BLAS thread limits, solver choice)
        self.source = SimpleNamespace(is_local=True, is_sparse=sp.issparse(X))

    # -- packing ---------------------------------------------------------------------------
    def _full(self, coef):
        """(F, K, p) float64 with class 0 at zero in reference form."""
        M = np.asarray(coef, dtype=np.float64).reshape(self.n_folds, *self.fold_shape)
        if self.reference:
            M = np.concatenate([np.zeros((self.n_folds, 1, M.shape[2])), M], axis=1)
        return M

    def _pack(self, TW, Tb, coef):
        """Sum-form totals (F, K, p) (or (F, K, d) and intercepts (F, K)) -> the mean-form
        gradient vector, penalty added."""
        T = TW if Tb is None else np.concatenate([TW, Tb[:, :, None]], axis=2)
        if self.reference:
            T = T[:, 1:]
        M = np.asarray(coef).reshape(self.n_folds, *self.fold_shape)
        return ((T + self.penalty * M) / self.scales[:, None, None]).ravel()

    def _blocks(self):
        for start in range(0, self.X.shape[0], self.rows):
            yield slice(start, start + self.rows)

    def _dot(self, rows, M):
        """``[X, 1][rows] @ M.T`` as a dense (n_b, F K) array (``M`` of width ``p``)."""
        return np.asarray(self.X1[rows] @ M.T)

    def _tdot(self, rows, R):
        """``R.T @ [X, 1][rows]``, shape (F K, p) (for dense ``X`` BLAS's faster layout)."""
        Xb = self.X1[rows]
        R = R.astype(self.dtype, copy=False)  # float32 data: float32 products
        return np.asarray(Xb.T @ R).T if sp.issparse(Xb) else R.T @ Xb

    def _class_sum(self, A):
        """``A.sum(axis=2)`` of an (n_b, F, K) array (a matrix-vector product: NumPy's
        reductions over a short last axis are ~10x slower)."""
        return (A.reshape(-1, self.n_classes) @ self._ones).reshape(A.shape[:2])

    def _class_max(self, A):
        """``A.max(axis=2)`` of an (n_b, F, K) array, by ``K - 1`` element-wise maxima."""
        m = A[:, :, 0].copy()
        for k in range(1, self.n_classes):
            np.maximum(m, A[:, :, k], out=m)
        return m

    def _map(self, fn):
        """Element-wise sum of ``fn(rows, i)`` over the row blocks, on :data:`MAP_THREADS`
        threads when there are several blocks (NumPy and BLAS release the GIL)."""
        blocks = list(self._blocks())
        if self.threads < 2 or len(blocks) < 2:
            return sum_tuples(fn(rows, i) for i, rows in enumerate(blocks))
        err = np.geterr()

        def run(i):
            with np.errstate(**err):
                return fn(blocks[i], i)

        return sum_tuples(_pool(self.threads).map(run, range(len(blocks))))

    # -- oracle ----------------------------------------------------------------------------
    def _evaluate(self, coef, keep, grad=True):
        """Value, gradient and (``keep``) the per-block weighted probabilities ``c_nf y_nfk``."""
        F, K = self.n_folds, self.n_classes
        M = self._full(coef)
        W = M.reshape(F * K, -1).astype(self.dtype)
        cache = [None] * len(self._picks)

        def block(rows, i):
            A = self._dot(rows, W).reshape(-1, F, K)  # in the data's precision
            A -= self._class_max(A)[:, :, None]
            picked = A.reshape(-1)[self._picks[i]]  # (n_b, F), shifted logits of the targets
            E = np.exp(A, out=A)
            total = self._class_sum(E)
            c = self.c[rows]
            loss = ((np.log(total) - picked) * c).sum(axis=0)
            if not grad:
                return (loss,)
            E *= (c / total)[:, :, None]  # c y: the probabilities times the row weights
            if keep:
                cache[i] = E
            return loss, self._tdot(rows, E.reshape(-1, F * K))

        with np.errstate(over="ignore", invalid="ignore"):
            loss, *grads = self._map(block)
        pen = 0.5 * np.einsum("fkp,p,fkp->f", M, self.penalty, M)
        f = float(np.sum((loss + pen) / self.scales))
        if not grad:
            return (f if np.isfinite(f) else np.inf), None, None
        g = self._pack((grads[0] - self._target_sum).reshape(F, K, -1), None, coef)
        if keep:
            self._last = (np.array(coef, dtype=np.float64), cache)
        return (f if np.isfinite(f) else np.inf), g, cache

    def loss(self, coef):
        return self._evaluate(coef, keep=False, grad=False)[0]

    def loss_grad(self, coef):
        f, g, _ = self._evaluate(coef, keep=False)
        return f, g

    def loss_grad_hessp(self, coef):
        f, g, cache = self._evaluate(coef, keep=True)
        return f, g, self._hessp(cache)

    def _hessp(self, cache):
        F, K = self.n_folds, self.n_classes

        def hessp(v):
            V = self._full(v).reshape(F * K, -1).astype(self.dtype)

            def block(rows, i):
                Pc = cache[i]  # c y
                dA = self._dot(rows, V).reshape(-1, F, K)
                R = Pc * dA
                m = self._class_sum(R)
                m *= self._cinv[rows]
                dA -= m[:, :, None]  # dA - y.dA
                np.multiply(Pc, dA, out=R)  # c y (dA - y.dA)
                return (self._tdot(rows, R.reshape(-1, F * K)),)

            (H,) = self._map(block)
            return self._pack(H.reshape(F, K, -1), None, v)

        return hessp

    def hessian_diagonal(self, coef):
        """Diagonal of the stacked Hessian (Jacobi preconditioner of Newton-CG)."""
        F, K, d = self.n_folds, self.n_classes, self.n_features
        if self._last is None or not np.array_equal(self._last[0], coef):
            self._evaluate(coef, keep=True)
        dW, db = np.zeros((F * K, d)), np.zeros((F, K))
        for rows, Pc in zip(self._blocks(), self._last[1], strict=True):
            Q = Pc * (1 - Pc * self.cinv[rows][:, :, None])  # c y (1 - y)
            Xb = self.X[rows]
            X2 = Xb.multiply(Xb) if sp.issparse(Xb) else np.square(Xb)
            dW += np.asarray(X2.T @ Q.reshape(-1, F * K)).T
            db += Q.sum(axis=0)
        D = dW.reshape(F, K, d)
        if self.fit_intercept:
            D = np.concatenate([D, db[:, :, None]], axis=2)
        if self.reference:
            D = D[:, 1:]
        return ((D + self.penalty) / self.scales[:, None, None]).ravel()

    def gradient_scale(self):
        """Each fold's weighted column RMS (the certificate's units), tiled like ``coef``."""
        if self._rms is None:
            X2 = self.X.multiply(self.X) if sp.issparse(self.X) else np.square(self.X)
            sq = np.asarray(X2.T @ self.c).T / self.scales[:, None]  # (F, d)
            rms = np.sqrt(sq)
            self._rms = np.where(rms > 0, rms, 1.0)
        S = np.ones((self.n_folds, *self.fold_shape))
        S[:, :, : self.n_features] = self._rms[:, None, :]
        return S.ravel()

    def null_space(self):
        """Per fold, equal shifts over classes of each unpenalised column (symmetric form)."""
        if self.reference:
            return np.zeros((self.n_coef, 0))
        F, (K, p) = self.n_folds, self.fold_shape
        cols = np.flatnonzero(self.penalty == 0)
        Q = np.zeros((F, K, p, F, cols.size))
        for f in range(F):
            Q[f, :, cols, f, np.arange(cols.size)] = 1.0 / np.sqrt(K)
        return Q.reshape(F * K * p, F * cols.size)

    # -- the interface of softmaxreg._cv_newton (ridge strengths passed per call) -------------
    def _with(self, lam):
        self.penalty = np.asarray(lam, dtype=np.float64)
        return self

    def evaluate(self, coef, lam):
        """Value, gradient and the per-block probabilities at ``coef`` for ridge ``lam`` (p,)."""
        f, g, cache = self._with(lam)._evaluate(coef, keep=True)
        return f, g, cache

    def loss_at(self, coef, lam):
        return self._with(lam)._evaluate(coef, keep=False, grad=False)[0]

    def repenalise(self, coef, f, g, lam_old, lam):
        """Value and gradient at ``coef`` for ridge ``lam`` from those for ``lam_old`` (the
        data terms do not depend on the penalty: no pass over the data)."""
        M = np.asarray(coef).reshape(self.n_folds, *self.fold_shape)
        dlam = np.asarray(lam) - np.asarray(lam_old)
        df = 0.5 * np.einsum("fkp,p,fkp->f", M, dlam, M) / self.scales
        dg = (dlam * M / self.scales[:, None, None]).ravel()
        self.penalty = np.asarray(lam, dtype=np.float64)
        return f + float(df.sum()), g + dg

    def hessp_at(self, cache, v, lam):
        return self._with(lam)._hessp(cache)(v)

    def gram(self):
        """Each fold's ``sum_n c_nf phi_n phi_n^T`` (intercept's 1 last), shape (F, p, p).

        The weighted Gram of all rows minus that of the rows outside each training fold.
        """
        if getattr(self, "_gram", None) is None:
            w = self.c.max(axis=1)  # each row's weight (0 where in no training fold)
            total = _weighted_gram(self.X, w, self.fit_intercept)
            G = np.empty((self.n_folds, *total.shape))
            for f in range(self.n_folds):
                out = np.flatnonzero((self.c[:, f] == 0) & (w > 0))
                G[f] = total - _weighted_gram(self.X[out], w[out], self.fit_intercept)
            self._gram = G
        return self._gram

    def _gram_eigen(self):
        """Eigenvalues (F, p) and eigenvectors (F, p, p) of each fold's Gram matrix."""
        if getattr(self, "_eigen", None) is None:
            self._eigen = np.linalg.eigh(self.gram())
        return self._eigen

    def preconditioner(self, cache, lam):
        """``v -> M^{-1} v``, ``M`` the Kronecker-factored Hessian of each fold (block diagonal).

        Fold ``f``: ``M_f = (A_f (x) G_f + I (x) lam_bar diag(1, ..., 1, 0)) / S_f`` with
        ``A_f`` the sum over its rows of ``c (diag y - y y^T)`` divided by the rows' weight,
        ``G_f`` its Gram matrix and ``lam_bar`` the mean ridge strength of the features (the
        intercept unpenalised; ``softmaxreg._cv_newton``). With the eigenvectors of ``A_f``
        (per step, ``K x K``) and of ``G_f`` (once) it is diagonal up to a rank-one term
        for the intercept: applying it costs a few small products.
        """
        F, K, p = self.n_folds, self.n_classes, self.n_features + self.fit_intercept
        A = np.zeros((F, K, K))
        step = max(1, self.X.shape[0] // CURVATURE_ROWS)  # A is a mean: a sample of rows does
        for rows, Pc in zip(self._blocks(), cache, strict=True):
            Pc = Pc[::step].astype(np.float64)  # diag(y) - y y^T cancels where y is near 1
            P = Pc * self.cinv[rows][::step, :, None]  # (n_b, F, K)
            # per fold sum_n c y y^T: a batched product (5x fewer flops than all fold pairs)
            A -= np.matmul(Pc.transpose(1, 2, 0), P.transpose(1, 0, 2))
            A[:, np.arange(K), np.arange(K)] += Pc.sum(axis=0)
        A *= step
        if self.reference:
            A = A[:, 1:, 1:]
        a, U = np.linalg.eigh(A / self.scales[:, None, None])  # (F, R), (F, R, R)
        top = np.maximum(a.max(axis=1, keepdims=True), 1e-300)
        # The all-ones class direction is the softmax's null space (symmetric form): there the
        # Hessian is the ridge alone; its unpenalised columns get a typical curvature.
        a = np.where(a > 1e-8 * top, a, top)
        gamma, Q = self._gram_eigen()
        gamma = np.maximum(gamma, 0.0)
        lam_bar = float(np.mean(np.asarray(lam)[: self.n_features])) if self.n_features else 0.0
        floor = 1e-12 * top * gamma.max(axis=1, keepdims=True)  # (F, 1)
        D = 1.0 / (a[:, :, None] * gamma[:, None, :] + (lam_bar + floor)[:, :, None])  # (F,R,p)
        if self.fit_intercept:
            # The intercept is not penalised: M = C - lam_bar e e^T with C = A (x) G + lam_bar I
            # and e the intercept's column, inverted by Sherman-Morrison (u = C^-1 e).
            u = np.matmul(D * Q[:, None, -1, :], Q.transpose(0, 2, 1))  # (F, R, p)
            shrink = lam_bar / (1.0 - lam_bar * u[:, :, -1])  # (F, R)

        def apply(v):
            Z = np.matmul(U.transpose(0, 2, 1), v.reshape(F, -1, p))  # rotate classes
            Y = np.matmul(np.matmul(Z, Q) * D, Q.transpose(0, 2, 1))  # C^-1 z
            if self.fit_intercept:
                Y += u * (shrink * np.einsum("frp,frp->fr", u, Z))[:, :, None]
            return (np.matmul(U, Y) * self.scales[:, None, None]).ravel()

        return apply

    def fold_coef(self, coef, f):
        """Fold ``f``'s coefficient vector in its own objective's layout."""
        return np.asarray(coef).reshape(self.n_folds, -1)[f]
