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

from types import SimpleNamespace

import numpy as np
import scipy.sparse as sp

from ._sources import default_block_rows

__all__ = ["FoldStack"]


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
    """

    def __init__(self, X, codes, weights, train, n_classes, l2, fit_intercept=True):
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
        """Sum-form totals (F, K, d), (F, K) -> the mean-form gradient vector, penalty added."""
        T = TW if Tb is None else np.concatenate([TW, Tb[:, :, None]], axis=2)
        if self.reference:
            T = T[:, 1:]
        M = np.asarray(coef).reshape(self.n_folds, *self.fold_shape)
        return ((T + self.penalty * M) / self.scales[:, None, None]).ravel()

    def _blocks(self):
        for start in range(0, self.X.shape[0], self.rows):
            yield slice(start, start + self.rows)

    def _dot(self, rows, M):
        """``X[rows] @ M.T`` as a dense (n_b, F K) array."""
        return np.asarray(self.X[rows] @ M.T)

    def _tdot(self, rows, R):
        """``R.T @ X[rows]``, shape (F K, d)."""
        return np.asarray(self.X[rows].T @ R).T

    # -- oracle ----------------------------------------------------------------------------
    def _evaluate(self, coef, keep):
        F, K, d = self.n_folds, self.n_classes, self.n_features
        M = self._full(coef)
        W = M[:, :, :d].reshape(F * K, d).astype(self.dtype)
        loss = np.zeros(F)
        gW, gb, cache = np.zeros((F * K, d)), np.zeros((F, K)), []
        with np.errstate(over="ignore", invalid="ignore"):
            for rows in self._blocks():
                A = self._dot(rows, W).reshape(-1, F, K).astype(np.float64)
                if self.fit_intercept:
                    A += M[:, :, d]
                amax = A.max(axis=2, keepdims=True)
                A -= amax
                lse = np.log(np.exp(A).sum(axis=2, keepdims=True))
                A -= lse  # log-probabilities
                c, y = self.c[rows], self.codes[rows]
                picked = A[np.arange(A.shape[0]), :, y]  # (n_b, F)
                loss -= np.einsum("nf,nf->f", c, picked)
                P = np.exp(A, out=A)
                G = P * c[:, :, None]
                G[np.arange(G.shape[0]), :, y] -= c
                gW += self._tdot(rows, G.reshape(-1, F * K))
                gb += G.sum(axis=0)
                if keep:
                    cache.append(P)
        pen = 0.5 * np.einsum("fkp,p,fkp->f", M, self.penalty, M)
        f = float(np.sum((loss + pen) / self.scales))
        g = self._pack(gW.reshape(F, K, d), gb if self.fit_intercept else None, coef)
        if keep:
            self._last = (np.array(coef, dtype=np.float64), cache)
        return (f if np.isfinite(f) else np.inf), g, cache

    def loss(self, coef):
        return self._evaluate(coef, keep=False)[0]

    def loss_grad(self, coef):
        f, g, _ = self._evaluate(coef, keep=False)
        return f, g

    def loss_grad_hessp(self, coef):
        f, g, cache = self._evaluate(coef, keep=True)
        return f, g, self._hessp(cache)

    def _hessp(self, cache):
        F, K, d = self.n_folds, self.n_classes, self.n_features

        def hessp(v):
            V = self._full(v)
            Vw = V[:, :, :d].reshape(F * K, d).astype(self.dtype)
            hW, hb = np.zeros((F * K, d)), np.zeros((F, K))
            for rows, P in zip(self._blocks(), cache, strict=True):
                dA = self._dot(rows, Vw).reshape(-1, F, K).astype(np.float64)
                if self.fit_intercept:
                    dA += V[:, :, d]
                R = P * (dA - np.einsum("nfk,nfk->nf", P, dA)[:, :, None])
                R *= self.c[rows][:, :, None]
                hW += self._tdot(rows, R.reshape(-1, F * K))
                hb += R.sum(axis=0)
            return self._pack(hW.reshape(F, K, d), hb if self.fit_intercept else None, v)

        return hessp

    def hessian_diagonal(self, coef):
        """Diagonal of the stacked Hessian (Jacobi preconditioner of Newton-CG)."""
        F, K, d = self.n_folds, self.n_classes, self.n_features
        if self._last is None or not np.array_equal(self._last[0], coef):
            self._evaluate(coef, keep=True)
        dW, db = np.zeros((F * K, d)), np.zeros((F, K))
        for rows, P in zip(self._blocks(), self._last[1], strict=True):
            Q = P * (1 - P) * self.c[rows][:, :, None]
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

    def fold_coef(self, coef, f):
        """Fold ``f``'s coefficient vector in its own objective's layout."""
        return np.asarray(coef).reshape(self.n_folds, -1)[f]
