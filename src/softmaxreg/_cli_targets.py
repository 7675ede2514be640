"""Command-line support for probability/count target columns and offset columns (issue 9).

``softmaxreg fit --target-columns c1,c2,...`` fits a target matrix (one column per class:
probabilities or counts, see ``softmaxreg._targets``); ``--offset-columns o1,...`` reads fixed
logit terms (one column per class, or one column for two classes) for ``fit`` and ``predict``.
"""

from __future__ import annotations

import argparse

import numpy as np

from ._io import DataError, _need_column, _numeric_values

__all__ = [
    "column_list",
    "offset_for_model",
    "read_columns",
    "read_offset",
    "target_scores",
    "targets_and_offset",
]


def column_list(text: str) -> list[str]:
    """``argparse`` type of ``--target-columns``/``--offset-columns``: ``"a,b,c"`` -> names."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"empty column name in {text!r} (use a,b,c)")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"a column is named twice in {text!r}")
    return names


def read_columns(frame, names, what: str, path) -> np.ndarray:
    """The named numeric columns as an (n_rows, len(names)) float64 array; gaps are errors."""
    for name in names:
        _need_column(frame, name, what, path)
    values = np.column_stack([_numeric_values(frame[name], name, path) for name in names])
    if np.isnan(values).any():
        row, col = np.argwhere(np.isnan(values))[0]
        raise DataError(f"{path}: the {what} column {names[col]!r} is empty in data row {row + 1}")
    return values


def read_offset(frame, offset_columns, path) -> np.ndarray | None:
    """Offset columns as (n, k), or (n,) for a single column (the binary logit's offset)."""
    if not offset_columns:
        return None
    offset = read_columns(frame, offset_columns, "offset", path)
    return offset[:, 0] if offset.shape[1] == 1 else offset


def targets_and_offset(frame, y, target_columns, offset_columns, path):
    """Training targets, offset and class names from ``--target-columns``/``--offset-columns``.

    The class names are the target column names, sorted (``classes_`` is always sorted); the
    target columns and an offset with one column per target column are permuted alike, so
    both options take the columns in the same (any) order.

    Returns
    -------
    y : ndarray of shape (n,) (labels, unchanged) or (n, K)
    offset : ndarray of shape (n,) or (n, k), or None
    classes : ndarray of shape (K,) or None
    """
    classes = None
    offset = read_offset(frame, offset_columns, path)
    if target_columns:
        names = np.asarray(target_columns, dtype=object)
        order = np.argsort(names, kind="stable")
        y, classes = read_columns(frame, target_columns, "target", path)[:, order], names[order]
        if offset is not None and offset.ndim == 2 and offset.shape[1] == names.size:
            offset = offset[:, order]
    return y, offset, classes


def offset_for_model(model, offset):
    """A prediction offset whose columns follow the fit's ``--target-columns`` order, put in
    the order of ``classes_`` (the fit report in the model file keeps that order)."""
    meta = getattr(model, "model_metadata_", None) or {}
    columns = (meta.get("fit_report") or {}).get("target_columns")
    if offset is None or offset.ndim != 2 or not columns or offset.shape[1] != len(columns):
        return offset
    return offset[:, np.argsort(np.asarray(columns, dtype=object), kind="stable")]


def target_scores(model, X, y, offset=None) -> dict:
    """Fit-report scores with a target matrix or an offset: accuracy and log-loss per *trial*.

    ``y`` holds labels (n,) or targets (n, K) in the order of ``model.classes_``; a count row
    counts its trials, so these equal the scores of the repeated one-hot rows.
    """
    classes = model.classes_
    T = np.asarray(y, dtype=np.float64) if np.ndim(y) == 2 else None
    if T is None:
        y = np.asarray(y)
        T = (y[:, None] == classes[None, :]).astype(np.float64)
        if not T.any(axis=1).all():
            unseen = y[~T.any(axis=1)][0]
            raise DataError(f"label {unseen!r} is not one of the model's classes")
    log_p = model.predict_log_proba(X, offset=offset)
    total = T.sum()
    best = np.argmax(log_p, axis=1)
    return {
        "n_samples": int(T.shape[0]),
        "n_trials": float(total),
        "accuracy": float(T[np.arange(T.shape[0]), best].sum() / total),
        "log_loss": float(-np.sum(T * np.where(T > 0, log_p, 0.0)) / total),
    }
