r"""The per-block kernel: cross-entropy, gradient and Hessian terms of one block of rows.

Pure functions of a :class:`~softmaxreg._sources.Block` and the coefficients in *full* form
(``W`` of shape (K, d) and intercepts ``b`` of shape (K,) or ``None``), in the dtype of the
block's ``X``. They return *sum-form* contributions (no division by the weight total, no
penalty); :class:`~softmaxreg._objective.Objective` sums them over blocks and adds the penalty.

With logits :math:`a_n = W x_n + b + o_n`, probabilities :math:`y_n = \mathrm{softmax}(a_n)`,
targets :math:`t_n \ge 0` with totals :math:`m_n = \sum_k t_{nk}` and weights :math:`s_n`:

- loss :math:`\sum_n s_n \sum_k t_{nk}(\log\sum_j e^{a_{nj}} - a_{nk})`
- gradient rows :math:`g_n = s_n (m_n y_n - t_n)`, so :math:`\nabla_{w_j} = \sum_n g_{nj} x_n`
- Hessian :math:`\sum_n s_n m_n\, y_{nk}(I_{kj} - y_{nj})\, \phi_n \phi_n^T`
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._softmax import row_max
from ._sources import Block, sharing, transposed

__all__ = [
    "block_hess_diag",
    "block_hessian",
    "block_hessp",
    "block_loss",
    "block_loss_grad",
    "dot_squared",
    "squared",
]


def _class_major(X) -> bool:
    """Whether ``X`` is a dense block: the kernel then works on class-major (K, n_b) arrays,
    ``W X^T`` and ``G^T X`` being BLAS's fast layouts and the reductions over classes running
    along contiguous rows. Measured per block against the row-major (n_b, K) path, BLAS at one
    thread: loss + gradient 1.1-1.8x and Hessian-vector products 1.04-1.4x faster on
    C-ordered blocks (20,000 x 100 K=10, 4,000 x 64 K=200, 707 x 707 K=5, 1,797 x 64 K=10,
    4,000 x 40 K=5), about 2x on Fortran-ordered (streamed) ones. Sparse blocks stay row-major.
    """
    return isinstance(X, np.ndarray)


def _logits(block: Block, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Row-major logits ``X W^T (+ b + offset)``, (n_b, K), of a sparse block."""
    A = np.asarray(block.X @ np.ascontiguousarray(W.T))
    if b is not None:
        A += b
    if block.offset is not None:
        A += block.offset
    return A


def _times_xt(M: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``M X^T``, C-ordered (K, n_b), for a dense block ``X``. For float32 C-ordered blocks
    of at least 32 features and at most 16 classes as the transposed copy of ``X M^T``:
    OpenBLAS's sgemm is 1.6-3x faster that way (20,834 x 100, K = 10: 1.75 -> 1.09 ms;
    8,000 x 300, K = 4: 1.39 -> 0.60 ms; one thread), and slower with more classes, fewer
    features, float64 or Fortran order (60,000 x 20, K = 10: 0.73 -> 0.88 ms)."""
    if X.dtype == np.float32 and X.flags.c_contiguous and M.shape[0] <= 16 and X.shape[1] >= 32:
        return np.ascontiguousarray((X @ np.ascontiguousarray(M.T)).T)
    return np.ascontiguousarray(M) @ X.T


def _logits_t(block: Block, W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """The logits of a dense block, class-major: ``W X^T (+ b + offset^T)``, (K, n_b)."""
    AT = _times_xt(W, block.X)
    if b is not None:
        AT += b[:, None]
    if block.offset is not None:
        AT += block.offset.T
    return AT


def _lse(A: np.ndarray) -> np.ndarray:
    amax = row_max(A)
    return np.log(np.exp(A - amax[:, None]).sum(axis=1)) + amax


def _weighted_ce(block: Block, A: np.ndarray, lse: np.ndarray) -> float:
    s = block.weights.astype(np.float64)
    if block.targets.ndim == 1:
        ce = lse - A[np.arange(A.shape[0]), block.targets]
        return float(s @ ce.astype(np.float64))
    T = block.targets
    ce = block.totals * lse - np.einsum("nk,nk->n", T, A)
    return float(s @ ce.astype(np.float64))


def _xt_dot(X, G: np.ndarray) -> np.ndarray:
    """``(X^T G)^T`` of shape (K, d): for dense ``X`` as ``G^T X``, BLAS's faster layout."""
    if sp.issparse(X):
        return np.asarray(transposed(X) @ G).T
    return G.T @ X


def block_loss(block: Block, W: np.ndarray, b: np.ndarray | None) -> float:
    """Weighted cross-entropy of one block (sum form)."""
    if not _class_major(block.X):
        A = _logits(block, W, b)
        return _weighted_ce(block, A, _lse(A))
    AT = _logits_t(block, W, b)
    amax = AT.max(axis=0)
    E = np.subtract(AT, amax)
    lse = np.log(np.exp(E, out=E).sum(axis=0)) + amax
    n = AT.shape[1]
    if block.targets.ndim == 1:
        ce = lse - AT.ravel()[block.targets.astype(np.intp, copy=False) * n + np.arange(n)]
    else:
        ce = block.totals * lse - np.einsum("nk,kn->n", block.targets, AT)
    return float(block.weights.astype(np.float64) @ ce.astype(np.float64))


def _curvature_weights(block: Block) -> np.ndarray:
    """``s_n m_n``: the per-row factor of the Hessian."""
    m = block.totals
    return block.weights if m is None else block.weights * m.astype(block.weights.dtype)


def block_loss_grad(block: Block, W: np.ndarray, b: np.ndarray | None, probs: bool = True):
    """Loss, gradient of ``W`` (K, d), gradient of ``b`` (K,) and probabilities (n_b, K).

    One ``X @ W.T`` and one ``X.T @ G``; the logits buffer is reused for the probabilities.
    On a dense block the work is class-major and the probabilities are returned as
    the (n_b, K) transpose of a C-ordered (K, n_b) array. Without ``probs`` the gradient
    rows ``G`` overwrite the probabilities (one (n_b, K) array less) and ``None`` is returned
    in their place.
    """
    if _class_major(block.X):
        return _loss_grad_t(block, W, b, probs)
    A = _logits(block, W, b)
    A -= row_max(A)[:, None]  # the shift cancels in the cross-entropy
    if block.targets.ndim == 1:
        a_target = A[np.arange(A.shape[0]), block.targets]
    else:
        a_target = np.einsum("nk,nk->n", block.targets, A)
    P = np.exp(A, out=A)  # one exp: the probabilities overwrite the logits buffer
    total = np.einsum("nk->n", P)
    lse = np.log(total)
    ce = lse - a_target if block.targets.ndim == 1 else block.totals * lse - a_target
    loss = float(block.weights.astype(np.float64) @ ce.astype(np.float64))
    P /= total[:, None]
    G = _scaled(P, _curvature_weights(block)[:, None], probs)
    if block.targets.ndim == 1:
        G[np.arange(G.shape[0]), block.targets] -= block.weights
    else:
        G -= block.weights[:, None] * block.targets
    gW = _xt_dot(block.X, G)
    gb = G.sum(axis=0) if b is not None else None
    return loss, gW, gb, (P if probs else None)


def _scaled(P: np.ndarray, c: np.ndarray, copy: bool) -> np.ndarray:
    """``P * c``, in ``P``'s buffer unless ``copy`` or the product needs a wider dtype."""
    if copy or np.result_type(P, c) != P.dtype:
        return P * c
    P *= c
    return P


def _loss_grad_t(block: Block, W: np.ndarray, b: np.ndarray | None, probs: bool = True):
    """:func:`block_loss_grad` of a dense block, class-major: ``W X^T`` and
    ``G^T X`` with (K, n_b) C-ordered operands (BLAS's fast layouts), reductions over classes
    along contiguous rows; the same arithmetic element by element."""
    if block.offset is None and not W.any():
        return _loss_grad_constant(block, W, b, probs)
    AT = _logits_t(block, W, b)
    AT -= AT.max(axis=0)  # the shift cancels in the cross-entropy
    n, flat = AT.shape[1], None
    if block.targets.ndim == 1:
        # (code, row) as flat indices: 2x faster than AT[codes, rows]
        flat = block.targets.astype(np.intp, copy=False) * n + np.arange(n)
        a_target = AT.ravel()[flat]
    else:
        a_target = np.einsum("nk,kn->n", block.targets, AT)
    PT = np.exp(AT, out=AT)  # one exp: the probabilities overwrite the logits buffer
    total = PT.sum(axis=0)
    lse = np.log(total)
    ce = lse - a_target if block.targets.ndim == 1 else block.totals * lse - a_target
    loss = float(block.weights.astype(np.float64) @ ce.astype(np.float64))
    PT /= total
    return (loss, *_gradient_t(block, PT, b is not None, flat, probs))


def _loss_grad_constant(block: Block, W: np.ndarray, b: np.ndarray | None, probs: bool = True):
    """:func:`_loss_grad_t` at ``W = 0`` without offsets (a fit's usual start): every row has
    the logits ``b``, so the probabilities are one softmax and only ``G^T X`` touches ``X``
    (half the work of a block: 1.15 against 2.2 ms on 20,971 x 50, K = 10)."""
    K, n = W.shape[0], block.X.shape[0]
    dtype = np.result_type(W, block.X)  # that of the logits W X^T
    shifted = np.zeros(K, dtype) if b is None else (b - b.max()).astype(dtype)
    p = np.exp(shifted)
    total = p.sum()
    lse = np.log(total)
    p /= total
    if block.targets.ndim == 1:
        codes = block.targets.astype(np.intp, copy=False)
        ce = lse - shifted[codes]
    else:
        ce = block.totals * lse - block.targets @ shifted
    loss = float(block.weights.astype(np.float64) @ ce.astype(np.float64))
    PT = np.empty((K, n), dtype)
    PT[:] = p[:, None]
    return (loss, *_gradient_t(block, PT, b is not None, probs=probs))


def _gradient_t(block: Block, PT: np.ndarray, intercept: bool, flat=None, probs=True):
    """``(G^T X, G^T 1, P)`` from class-major probabilities ``PT`` (K, n_b): the gradient
    rows ``G = c P - s T``. For class codes ``flat`` (as computed by the caller, if it did)
    indexes each row's (code, row) element: one per row, no repeated index. Without
    ``probs``, ``G`` overwrites ``PT`` and ``P`` is ``None``."""
    GT = _scaled(PT, _curvature_weights(block), probs)
    if block.targets.ndim == 1:
        if flat is None:
            n = PT.shape[1]
            flat = block.targets.astype(np.intp, copy=False) * n + np.arange(n)
        GT.ravel()[flat] -= block.weights
    else:
        GT -= block.weights * block.targets.T
    return GT @ block.X, (GT.sum(axis=1) if intercept else None), (PT.T if probs else None)


def block_hessp(block: Block, P: np.ndarray, V: np.ndarray, vb: np.ndarray | None):
    """Hessian-vector product of one block for the direction ``(V, vb)``, given probabilities.

    ``R = c * P * (dA - sum_j P_j dA_j)`` with ``dA = X V^T + vb`` and ``c = s m``;
    returns ``(R^T X, sum_n R_n)``: two products with ``X`` and no ``exp``. Class-major
    (``V X^T``, ``R^T X``) on a dense block, as in :func:`block_loss_grad`.
    """
    if _class_major(block.X):
        PT = P.T
        RT = _times_xt(V, block.X)  # dA^T, (K, n_b)
        if vb is not None:
            RT += vb[:, None]
        RT -= np.einsum("kn,kn->n", PT, RT)
        RT *= PT
        RT *= _curvature_weights(block)
        return RT @ block.X, (RT.sum(axis=1) if vb is not None else None)
    dA = np.asarray(block.X @ np.ascontiguousarray(V.T))
    if vb is not None:
        dA += vb
    R = dA  # in place: R = c * P * (dA - sum_j P_j dA_j)
    R -= np.einsum("nk,nk->n", P, dA)[:, None]
    R *= P
    R *= _curvature_weights(block)[:, None]
    hW = _xt_dot(block.X, R)
    hb = R.sum(axis=0) if vb is not None else None
    return hW, hb


def squared(X):
    """``X`` squared element-wise; for canonical CSR (no duplicate entries), the squared
    values on ``X``'s own structure (half the time of ``X.multiply(X)``)."""
    if not sp.issparse(X):
        return np.square(X)
    if not X.has_canonical_format:
        return X.multiply(X)
    return sharing("csr", np.square(X.data), X.indices, X.indptr, X.shape)


#: Bytes of each sub-block temporary of :func:`block_hess_diag` (the squared rows of ``X``)
#: and :func:`block_hessian` (its rank-one factor ``U``): they go through the cache in pieces
#: instead of as one block-sized copy (``X**2`` of 10,000 x 100 was 7.6 MiB per thread, ``U``
#: up to 16 MiB: the largest temporaries of a fit). Measured per pass/Hessian against whole
#: blocks, BLAS at one thread: as fast or faster (tall, badly_scaled, separable at --quick
#: sizes; benchmarks/RESULTS.md).
SUB_BLOCK_BYTES = 1 << 19


def dot_squared(QT: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``QT @ X**2`` of shape (K, d) for dense ``X``, squaring ``X`` a few rows at a time:
    at most :data:`SUB_BLOCK_BYTES`, and no more than ``QT`` itself (or 64 KiB) holds, so the
    squares never outweigh the block's own (K, n_b) temporaries."""
    n, d = X.shape
    budget = min(SUB_BLOCK_BYTES, max(QT.nbytes, 1 << 16))
    step = max(1, budget // max(X.itemsize * d, 1))
    if step >= n:
        return QT @ np.square(X)
    out = None
    X2 = np.empty((step, d), dtype=X.dtype)
    for start in range(0, n, step):
        rows = slice(start, start + step)
        sq = np.square(X[rows], out=X2[: min(step, n - start)])
        part = QT[:, rows] @ sq
        out = part if out is None else np.add(out, part, out=out)
    return out


def block_hess_diag(block: Block, P: np.ndarray, with_intercept: bool):
    """Diagonal of one block's Hessian: ``(sum_n c_n y_nk (1 - y_nk) x_ni^2, sum_n ...)``.

    Returns ``(dW, db)`` of shapes (K, d) and (K,) (``db`` is ``None`` without intercept);
    one product of the squared block with the (n_b, K) curvature weights (class-major
    ``Q^T X^2`` on a dense block).
    """
    if _class_major(block.X):
        PT = P.T
        QT = PT * (1 - PT)
        QT *= _curvature_weights(block)
        return dot_squared(QT, block.X), (QT.sum(axis=1) if with_intercept else None)
    Q = P * (1 - P)
    Q *= _curvature_weights(block)[:, None]
    X2 = squared(block.X)
    dW = np.asarray(transposed(X2) @ Q).T
    return dW, (Q.sum(axis=0) if with_intercept else None)


def block_hessian(block: Block, P: np.ndarray, fit_intercept: bool, max_cells: int | None = None):
    """Full Hessian of one block, shape (K*p, K*p) with p = d + fit_intercept, in float64.

    ``H = sum_n c_n [diag(y_n) - y_n y_n^T] (x) phi_n phi_n^T``. As every ``y_n`` sums to one,
    each block row sums to zero (``sum_k H_kj = 0``), so only the blocks of classes
    ``1..K-1`` are built and class 0's follow (``((K-1)/K)^2`` of the work), in sub-blocks of
    rows whose temporaries hold at most ``max_cells`` floats (default
    :data:`SUB_BLOCK_BYTES`). Every product has the form ``Z^T Z``, which NumPy hands to
    BLAS's ``syrk`` (one triangle: half the work). Few classes and wide rows
    (:func:`_pairs_wanted`) take one weighted Gram matrix per class pair
    (:func:`_hessian_pairs`), else all pairs at once (:func:`_hessian_stacked`).
    """
    n, p = block.X.shape[0], block.X.shape[1] + fit_intercept
    R = P.shape[1] - 1  # classes built directly
    c = _curvature_weights(block).astype(np.float64)
    cells = max_cells or SUB_BLOCK_BYTES // 8
    if _pairs_wanted(R, p):
        H = _hessian_pairs(block.X, P, c, p, min(n, max(1, cells // (2 * p))))
    else:
        H = _hessian_stacked(block.X, P, c, p, min(n, max(1, cells // (R * p))))
    return _with_class_zero(H, p)


def _pairs_wanted(R: int, p: int) -> bool:
    """Per-pair Gram matrices for few classes and wide rows. Measured per Hessian (BLAS at one
    thread) against :func:`_hessian_stacked`: 2,000 x 30, K=4 and 2,000 x 40, K=5 as fast or
    faster with 0.3-0.5 MiB less memory; 20,000 x 5, K=30 and 4,000 x 3, K=60 4-9x slower
    (many small products)."""
    return R <= 5 and p >= 16


def _hessian_pairs(X, P, c, p, step):
    """Classes ``1..R`` of the Hessian as ``R (R + 1) / 2`` Gram matrices
    ``Phi^T diag(c (delta_kj y_k - y_k y_j)) Phi``, each weight of one sign (``Z^T Z`` with
    ``Z = sqrt|w| X``; the intercept's row ``X^T w`` and corner ``sum w`` of all pairs in one
    product), in sub-blocks of ``step`` rows: no (rows, R p) factor, no copy of dense float64
    rows, half the flops of :func:`_hessian_stacked`."""
    (n, d), R = X.shape, P.shape[1] - 1
    H = np.zeros((R * p, R * p))
    in_place = not sp.issparse(X) and X.dtype == np.float64
    X_buf = None if in_place else np.empty((step, d))
    Z_buf, W_buf = np.empty((step, d)), np.empty((R * (R + 1) // 2, step))
    ku, ju = np.triu_indices(R)
    XW, WS = np.zeros((ku.size, d)), np.zeros(ku.size)  # intercept terms of the pairs
    for start in range(0, n, step):
        rows = slice(start, start + step)
        m = min(step, n - start)
        if in_place:
            Xr = X[rows]
        else:
            Xr = X_buf[:m]
            Xr[...] = X[rows].toarray() if sp.issparse(X) else X[rows]
        Z, Wp = Z_buf[:m], W_buf[:, :m]
        Y = np.array(P[rows, 1:].T, dtype=np.float64, order="C")  # (R, m); P may be class-major
        cY = Y * c[rows]
        for i, (k, j) in enumerate(zip(ku, ju, strict=True)):
            w = Wp[i]
            if k == j:
                np.multiply(cY[k], 1.0 - Y[k], out=w)
            else:
                np.multiply(cY[k], Y[j], out=w)
                np.negative(w, out=w)
            np.multiply(Xr, np.sqrt(np.abs(w))[:, None], out=Z)
            G = Z.T @ Z
            if k == j:
                H[k * p : k * p + d, j * p : j * p + d] += G
            else:
                H[k * p : k * p + d, j * p : j * p + d] -= G
        if p > d:
            XW += Wp @ Xr
            WS += Wp.sum(axis=1)
    for i, (k, j) in enumerate(zip(ku, ju, strict=True)):
        Hkj = H[k * p : (k + 1) * p, j * p : (j + 1) * p]
        if p > d:  # the intercept
            Hkj[:d, d] = Hkj[d, :d] = XW[i]
            Hkj[d, d] = WS[i]
        if k < j:  # H_jk = H_kj^T (= H_kj: each block is symmetric)
            H[j * p : (j + 1) * p, k * p : (k + 1) * p] = Hkj.T
    return H


def _hessian_stacked(X, P, c, p, step):
    """Classes ``1..R`` of the Hessian with all class pairs at once: the ``diag`` part as Gram
    matrices ``Z_k^T Z_k`` with ``Z_k = sqrt(c y_k) phi``, the rank-one part as one ``U^T U``
    with ``U_n = sqrt(c_n) (y_n (x) phi_n)``, in sub-blocks of ``step`` rows."""
    n, R = X.shape[0], P.shape[1] - 1
    H = np.zeros((R * p, R * p))
    # sub-block buffers, reused: phi rows (a ones column for the intercept), Z_k and U
    Phi_buf, Z_buf, U_buf = np.ones((step, p)), np.empty((step, p)), np.empty((step, R, p))
    for start in range(0, n, step):
        rows = slice(start, start + step)
        m = min(step, n - start)
        Phi, Z, U = Phi_buf[:m], Z_buf[:m], U_buf[:m]
        Phi[:, : X.shape[1]] = X[rows].toarray() if sp.issparse(X) else X[rows]
        Pr = np.ascontiguousarray(P[rows, 1:], dtype=np.float64)  # P may be class-major
        root_c = np.sqrt(c[rows])[:, None]
        Zroot = np.sqrt(Pr) * root_c
        for k in range(R):
            np.multiply(Phi, Zroot[:, k : k + 1], out=Z)
            H[k * p : (k + 1) * p, k * p : (k + 1) * p] += Z.T @ Z
        np.multiply((Pr * root_c)[:, :, None], Phi[:, None, :], out=U)
        U2 = U.reshape(m, R * p)
        H -= U2.T @ U2
    return H


def _with_class_zero(H1: np.ndarray, p: int) -> np.ndarray:
    """The Hessian from its classes-``1..K-1`` part ``H1``, its block rows summing to zero."""
    Rp = H1.shape[0]
    H = np.empty((Rp + p, Rp + p))
    H[p:, p:] = H1
    row0 = -H1.reshape(Rp // p, p, Rp).sum(axis=0)  # H_0j = -sum_{k>0} H_kj
    H[:p, p:] = row0
    H[p:, :p] = row0.T
    H[:p, :p] = -row0.reshape(p, Rp // p, p).sum(axis=1)  # H_00 = -sum_{j>0} H_0j
    return H
