"""Prediction: the probabilities of a fitted linear softmax model, by row blocks in place.

Above the numerics (``_softmax.py``, pure functions) in the layers of DESIGN.md: this module
decides block sizes and threads (the library's, :func:`~softmaxreg._sources.for_each_block`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import _sources
from ._softmax import row_max
from ._solvers import _controller

__all__ = ["linear_softmax", "logits_overflow"]


#: Bytes of one row block of :func:`linear_softmax`'s output: the block's logits stay in cache
#: from the product through the in-place softmax.
PREDICT_BLOCK_BYTES = 1 << 18

#: Rows below which :func:`linear_softmax` runs in one thread.
PREDICT_THREAD_ROWS = 1 << 14


def logits_overflow(dtype) -> ValueError:
    """The error for logits ``W x + b`` that are not finite in ``dtype``."""
    return ValueError(
        f"The logits W x + b overflow {np.dtype(dtype).name}: the feature values are too large "
        "for this model's coefficients. Rescale the features as they were in training."
    )


def linear_softmax(X, coef, intercept, offset=None, *, binary=False) -> np.ndarray:
    r"""Probabilities :math:`\mathrm{softmax}(X W^T + b + o)`, by row blocks, in place.

    Each block's logits are computed by one product into the preallocated output and turned
    into probabilities there (row maximum subtracted, ``exp``, division by the row sums)
    while in cache; large inputs are split over the library's threads
    (:func:`~softmaxreg._sources.for_each_block`) with BLAS held at one thread.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n, d)
    coef : ndarray of shape (K, d), or (1, d) with ``binary``
    intercept : ndarray of shape (K,), or (1,) with ``binary``
    offset : ndarray of shape (n, K_out), optional
        Added to the logits after the overflow check of ``X W^T + b``.
    binary : bool
        Two classes from one logit: the logits are ``[0, x w + b]`` (scikit-learn's binary
        model), ``K_out = 2``.

    Returns
    -------
    ndarray of shape (n, K_out)
        In the result dtype of ``X`` and ``coef``.

    Raises
    ------
    ValueError
        If ``X W^T + b`` is not finite (:func:`logits_overflow`).
    """
    n = X.shape[0]
    dtype = np.result_type(X.dtype, coef.dtype)
    WT = np.asarray(coef, dtype=dtype).T
    b = np.asarray(intercept, dtype=dtype)
    # Sparse data: one product (each CSR row block costs a copy and a product's set-up, 3x
    # the time at 4,000 x 7,071), its result the output unless there are two classes.
    pre = np.asarray(X.tocsr() @ np.ascontiguousarray(WT)) if sp.issparse(X) else None
    if pre is not None and not binary and pre.dtype == dtype and pre.flags.c_contiguous:
        out = pre
    else:
        out = np.empty((n, WT.shape[1] + binary), dtype=dtype)
    rows = max(1, PREDICT_BLOCK_BYTES // (dtype.itemsize * out.shape[1]))

    def block(i):
        r = slice(i * rows, (i + 1) * rows)
        A = out[r]
        logits = A[:, 1:] if binary else A
        if pre is not None:
            if out is not pre:
                logits[...] = pre[r]
        elif binary or X.dtype != dtype:
            logits[...] = X[r] @ WT
        else:
            np.matmul(X[r], WT, out=logits)
        logits += b
        if not np.isfinite(logits.sum()) and not np.all(np.isfinite(logits)):
            raise logits_overflow(dtype)
        if binary:
            A[:, 0] = 0
        if offset is not None:
            A += offset[r]
        _softmax_rows(A)

    n_blocks = -(-n // rows)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked, not warned
        if n < PREDICT_THREAD_ROWS or _sources.MAP_THREADS < 2:
            for i in range(n_blocks):
                block(i)
            return out
        with _controller().limit(limits=1, user_api="blas"):
            _sources.for_each_block(n_blocks, block)
    return out


def _softmax_rows(A: np.ndarray) -> None:
    """Softmax of each row of the C-ordered ``A``, in place (few classes: column loops)."""
    K = A.shape[1]
    A -= row_max(A)[:, None]
    np.exp(A, out=A)
    if K > 16:
        A /= A.sum(axis=1, keepdims=True)
        return
    s = A[:, 0].copy()
    for k in range(1, K):
        s += A[:, k]
    A /= s[:, None]
