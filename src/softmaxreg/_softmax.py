"""Softmax numerics: pure, stable, dtype-preserving functions of logits.

All functions accept any finite logits (``|a|`` up to ``1e300`` in float64 or ``1e38`` in
float32) and never overflow: they subtract the row maximum before exponentiating, so
``exp`` only sees non-positive arguments.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import _sources

__all__ = ["linear_softmax", "log_softmax", "logsumexp", "softmax", "softmax_jacobian"]


def _as_float(a) -> np.ndarray:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    return a


def _shifted(a: np.ndarray, axis: int) -> np.ndarray:
    """Return ``a - max(a)`` along ``axis``; finite inputs give non-positive entries."""
    amax = np.max(a, axis=axis, keepdims=True)
    with np.errstate(over="ignore"):  # max - min beyond the float range rounds to -inf: exact
        return a - amax


def logsumexp(a, axis: int = -1) -> np.ndarray:
    r"""Stable :math:`\log \sum_j \exp(a_j)` along ``axis``.

    Parameters
    ----------
    a : array_like of shape (..., K)
        Logits.
    axis : int, default=-1
        Axis to reduce.

    Returns
    -------
    ndarray of shape (...,)
        Same floating dtype as ``a``.

    Examples
    --------
    >>> import numpy as np
    >>> float(logsumexp(np.array([1e300, 1e300])) - 1e300)
    0.0
    """
    a = _as_float(a)
    amax = np.max(a, axis=axis, keepdims=True)
    shifted = _shifted(a, axis)
    out = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True)) + amax
    return np.squeeze(out, axis=axis)


def softmax(a, axis: int = -1) -> np.ndarray:
    r"""Softmax :math:`y_k = \exp(a_k) / \sum_j \exp(a_j)` along ``axis``.

    Parameters
    ----------
    a : array_like of shape (..., K)
        Logits; integer input is promoted to float64, floating dtypes are preserved.
    axis : int, default=-1
        The class axis.

    Returns
    -------
    ndarray of shape (..., K)
        Probabilities, finite and summing to one along ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> softmax(np.array([0.0, np.log(3.0)])).round(6).tolist()
    [0.25, 0.75]
    """
    e = np.exp(_shifted(_as_float(a), axis))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def log_softmax(a, axis: int = -1) -> np.ndarray:
    r"""Log-softmax :math:`\ln y_k = a_k - \log\sum_j \exp(a_j)` along ``axis``.

    Computed as ``(a - max) - log(sum(exp(a - max)))`` so it is exact to rounding even where
    the probability underflows to zero.

    Parameters
    ----------
    a : array_like of shape (..., K)
        Logits.
    axis : int, default=-1
        The class axis.

    Returns
    -------
    ndarray of shape (..., K)
        Log-probabilities, same floating dtype as ``a``.

    Examples
    --------
    >>> import numpy as np
    >>> log_softmax(np.array([0.0, 1000.0])).tolist()
    [-1000.0, 0.0]
    """
    shifted = _shifted(_as_float(a), axis)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax_jacobian(y) -> np.ndarray:
    r"""Softmax Jacobian from its output: :math:`\partial y_k/\partial a_j = y_k(I_{kj} - y_j)`.

    Parameters
    ----------
    y : array_like of shape (..., K)
        Softmax probabilities (the output of :func:`softmax`).

    Returns
    -------
    ndarray of shape (..., K, K)
        ``J[..., k, j] = y_k (delta_kj - y_j)``; symmetric, rows and columns sum to zero.

    Examples
    --------
    >>> import numpy as np
    >>> softmax_jacobian(np.array([0.5, 0.5])).tolist()
    [[0.25, -0.25], [-0.25, 0.25]]
    """
    y = _as_float(y)
    eye = np.eye(y.shape[-1], dtype=y.dtype)
    return y[..., :, None] * (eye - y[..., None, :])


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
        from ._solvers import _controller  # BLAS at one thread under the block threads

        with _controller().limit(limits=1, user_api="blas"):
            _sources.for_each_block(n_blocks, block)
    return out


def _softmax_rows(A: np.ndarray) -> None:
    """Softmax of each row of the C-ordered ``A``, in place (few classes: column loops)."""
    K = A.shape[1]
    if K > 16:
        A -= A.max(axis=1, keepdims=True)
        np.exp(A, out=A)
        A /= A.sum(axis=1, keepdims=True)
        return
    m = A[:, 0].copy()
    for k in range(1, K):
        np.maximum(m, A[:, k], out=m)
    A -= m[:, None]
    np.exp(A, out=A)
    s = A[:, 0].copy()
    for k in range(1, K):
        s += A[:, k]
    A /= s[:, None]
