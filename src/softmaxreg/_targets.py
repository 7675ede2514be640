r"""Probability and count targets, and offsets: validation for the estimator.

The cross-entropy :math:`\sum_n s_n \sum_k t_{nk}(-\ln y_{nk})` does not need one-of-K targets.
A target row :math:`t_n \ge 0` may hold class probabilities (a row summing to one: soft labels,
label smoothing, distillation) or counts (grouped data: how many of :math:`m_n = \sum_k t_{nk}`
trials fell in each class). The kernel treats both alike: the gradient rows are
:math:`s_n(m_n y_n - t_n)` and the curvature weights :math:`s_n m_n`, so a count row is exactly
its one-hot trials repeated, and a probability row is exactly its one-hot rows expanded per class
with weights :math:`t_{nk}` (docs/derivation.md, "Probability and count targets").

Offsets :math:`o_{nk}` are fixed terms added to the logits, :math:`a_{nk} = w_k^T x_n + b_k +
o_{nk}`; they are data, not coefficients, so they are never penalised.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_array

__all__ = [
    "compact_codes",
    "is_target_matrix",
    "target_class_weights",
    "unit_weights",
    "validate_offset",
    "validate_targets",
]


def compact_codes(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Class codes in the smallest unsigned integer type that holds them (``uint8`` up to 256
    classes): an eighth of an ``intp`` array for the whole fit; the kernel widens one block at
    a time."""
    return np.asarray(codes).astype(np.min_scalar_type(max(n_classes - 1, 0)), copy=False)


def unit_weights(n_samples: int, dtype) -> np.ndarray:
    """Weights of one for every row, as a read-only broadcast view (no (n,) array of ones)."""
    return np.broadcast_to(np.ones(1, dtype=dtype), (n_samples,))


def is_target_matrix(y) -> bool:
    """Whether ``y`` is an (n_samples, n_classes) target matrix with at least two columns.

    A column vector of shape (n_samples, 1) is *not*: it keeps scikit-learn's behaviour
    (``DataConversionWarning``, then raveled to class labels).
    """
    if y is None or sp.issparse(y):
        return False
    shape = getattr(y, "shape", None)
    if shape is None:
        try:  # np.asarray, not np.shape: array-likes need not support __array_function__
            shape = np.asarray(y).shape
        except (ValueError, TypeError):  # ragged nested lists: let scikit-learn report them
            return False
    return len(shape) == 2 and shape[1] >= 2


def validate_targets(Y, n_samples: int, classes, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Check an (n_samples, K) target matrix and name its classes.

    Parameters
    ----------
    Y : array-like of shape (n_samples, K)
        Non-negative, finite targets; rows summing to one are probabilities, other rows
        counts. No row may be all zero.
    n_samples : int
        Number of rows of ``X``.
    classes : array-like of shape (K,) or None
        Class labels of the columns, in column order, which must be sorted order (as
        scikit-learn's ``classes_`` always is, so that the columns of ``y``, of an offset
        and of ``predict_proba`` all follow ``classes_``); ``None`` gives ``0..K-1``.
    dtype : numpy dtype
        The dtype of ``X``; the targets are returned in it.

    Returns
    -------
    classes : ndarray of shape (K,)
    targets : ndarray of shape (n_samples, K)
    """
    kind = np.asarray(Y).dtype.kind if not hasattr(Y, "dtypes") else "f"
    if kind in "OUSMm":
        raise ValueError(
            f"A 2-D y must be a numeric target matrix of shape (n_samples, n_classes) "
            f"(probabilities or counts), got dtype {np.asarray(Y).dtype}; pass class labels "
            "as a 1-D array of shape (n_samples,)."
        )
    T = check_array(Y, dtype=np.float64, input_name="y", ensure_min_samples=1)
    n, K = T.shape
    if n != n_samples:
        raise ValueError(
            f"The target matrix y has {n} rows but X has {n_samples}: give one target row "
            "per sample."
        )
    if classes is None:
        classes = np.arange(K)
    else:
        classes = np.asarray(classes)
        if classes.ndim != 1 or classes.size != K:
            raise ValueError(
                f"classes names {classes.size} labels but the target matrix y has {K} "
                "columns: give one label per column, in column order."
            )
        try:
            order = np.argsort(classes, kind="stable")
        except TypeError:
            raise ValueError(
                f"classes must be labels of one comparable type, got {classes.tolist()!r}."
            ) from None
        if np.unique(classes).size != K:
            raise ValueError(f"classes must be distinct labels, got {classes.tolist()!r}.")
        if not np.array_equal(order, np.arange(K)):
            raise ValueError(
                f"classes must be in sorted order, as classes_ always is, got "
                f"{classes.tolist()!r}: reorder the columns of y (and of any offset) to "
                f"{classes[order].tolist()!r}."
            )
    if np.any(T < 0):
        rows = np.flatnonzero(np.any(T < 0, axis=1))
        raise ValueError(
            f"Targets must be non-negative probabilities or counts; {rows.size} row(s) of y "
            f"hold negative values (first: row {rows[0]})."
        )
    zero = np.flatnonzero(~np.any(T > 0, axis=1))
    if zero.size:
        raise ValueError(
            f"{zero.size} row(s) of the target matrix y are all zero (first: row {zero[0]}): "
            "each row needs a positive total. Drop those rows (a zero row carries no "
            "information) or give them sample_weight 0 with a valid target row. (A 2-D y is "
            "read as one column of probabilities or counts per class; labels go in a 1-D y.)"
        )
    return classes, T.astype(dtype, copy=False)


def target_class_weights(
    class_weight, classes: np.ndarray, T: np.ndarray, sample_weight: np.ndarray
) -> np.ndarray:
    """Fold class weights into a target matrix: column ``k`` is multiplied by ``c_k``.

    This is exact: expanding a target row into one-hot rows with weights ``s_n t_nk`` and
    weighting class ``k`` by ``c_k`` gives weights ``c_k s_n t_nk``. ``"balanced"`` uses
    ``c_k = M / (K M_k)`` with class masses ``M_k = sum_n s_n t_nk`` and ``M = sum_k M_k``
    (scikit-learn's weighted rule on the expanded rows, as for labels; a column without
    mass gets weight 0, which changes nothing).
    """
    if class_weight is None:
        return T
    K = classes.size
    if isinstance(class_weight, str) and class_weight == "balanced":
        mass = np.asarray(sample_weight, dtype=np.float64) @ T
        cw = np.divide(mass.sum(), K * mass, out=np.zeros(K), where=mass > 0)
    elif isinstance(class_weight, dict):
        unknown = [c for c in class_weight if c not in set(classes.tolist())]
        if unknown:
            raise ValueError(
                f"class_weight names labels {unknown!r} that are not among the classes "
                f"{classes.tolist()!r}."
            )
        cw = np.array([float(class_weight.get(c, 1.0)) for c in classes.tolist()])
        if np.any(cw < 0) or not np.all(np.isfinite(cw)):
            raise ValueError("class_weight values must be finite and non-negative.")
    else:
        raise ValueError(f"class_weight must be a dict, 'balanced' or None, got {class_weight!r}.")
    return T * cw.astype(T.dtype)


def validate_offset(offset, n_samples: int, n_classes: int, dtype) -> np.ndarray | None:
    """Check an offset and return it as an (n_samples, n_classes) array (or ``None``).

    Parameters
    ----------
    offset : array-like of shape (n_samples, n_classes), (n_samples,) or None
        Fixed terms added to the logits. The 1-D form is accepted for two classes only: it
        is added to the binary logit ``log(p_1 / p_0)`` (the shape of
        ``decision_function``), i.e. it becomes ``[0, o_n]``. With three or more classes a
        single term added to every class would cancel in the softmax, so a full
        (n_samples, n_classes) offset is required.
    n_samples, n_classes : int
    dtype : numpy dtype

    Returns
    -------
    ndarray of shape (n_samples, n_classes) or None
    """
    if offset is None:
        return None
    if np.ndim(offset) == 0:
        raise ValueError(
            f"offset must be an array of shape (n_samples, n_classes) (or (n_samples,) for "
            f"two classes), got the scalar {offset!r}."
        )
    O = check_array(offset, dtype=np.float64, ensure_2d=False, input_name="offset")
    if O.ndim == 1 and n_classes == 2 and O.shape[0] == n_samples:
        O = np.column_stack([np.zeros_like(O), O])
    elif O.ndim == 1 and n_classes > 2:
        raise ValueError(
            f"offset of shape {O.shape} is ambiguous with {n_classes} classes: a term added to "
            "every class cancels in the softmax. Give an offset of shape "
            f"(n_samples, {n_classes}), one column per class (1-D offsets are accepted for "
            "two classes, as the offset of the binary logit)."
        )
    if O.ndim != 2 or O.shape != (n_samples, n_classes):
        raise ValueError(
            f"offset has shape {O.shape} but must have shape ({n_samples}, {n_classes}) "
            "(one row per sample, one column per class)"
            + (f" or ({n_samples},)." if n_classes == 2 else ".")
        )
    return O.astype(dtype, copy=False)
