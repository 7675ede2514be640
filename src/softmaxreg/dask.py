"""Dask: exact fits of Dask arrays and DataFrames on a ``distributed`` cluster.

This is the only module of softmaxreg that imports dask. :meth:`SoftmaxRegression.fit` hands
over here when ``X`` is a Dask collection, so ``model.fit(X, y)`` with ``X`` a
``dask.array.Array`` or ``dask.dataframe.DataFrame`` (and ``y`` a Dask array or Series with the
same row partitions) fits on the active ``distributed.Client`` (or Dask's default scheduler):

- the partitions (features, class codes, weights) are persisted on the workers once;
- each oracle call (loss and gradient, or a Hessian-vector product) is **one** ``dask.compute``
  of the per-block kernel over the persisted partitions; the partial sums (arrays of shape
  (K, d)) come back to the client, which sums them and runs the solver;
- the classes, their weight totals and a finiteness check are one first ``compute``.

The objective is the same sum over blocks as in memory, so every exact solver reaches the same
optimum. A worker lost mid-fit is survived: its persisted partitions are recomputed from
their graph by the scheduler; if the tasks keep failing, ``distributed`` raises after its
allowed retries (``distributed.scheduler.allowed-failures``) and the fit stops with that error
rather than returning a partial answer.

Prediction on Dask input returns Dask output (:func:`predict`, used by the estimator's
prediction methods).
"""

from __future__ import annotations

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np

from ._sources import Block, checked_class_weight, sum_tuples

__all__ = ["DaskSource", "fit_dask", "predict"]


def _as_dask_array(obj):
    if isinstance(obj, (dd.DataFrame, dd.Series)):
        obj = obj.to_dask_array(lengths=True)
    elif not isinstance(obj, da.Array):
        obj = da.from_array(np.asarray(obj), chunks=-1)
    if any(np.isnan(c) for c in obj.chunks[0]):
        obj = obj.compute_chunk_sizes()
    return obj


def _block_tuple(fn, X, codes, w, cw, i):
    """Run the kernel function on one persisted partition (on a worker)."""
    if X.shape[0] == 0:
        return None
    return fn(Block(X, codes, w * cw[codes].astype(w.dtype)), i)


def _sum_parts(parts):
    return sum_tuples(p for p in parts if p is not None)


class DaskSource:
    """Row partitions of Dask collections, persisted on the workers (the source protocol).

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features) or dask.dataframe.DataFrame
        Numeric features; float32 stays float32, other types become float64.
    y : dask array or Series of shape (n_samples,), or array-like
        Class labels, partitioned like the rows of ``X``.
    sample_weight : dask array or Series of shape (n_samples,), optional
    classes : array-like, optional
        All class labels; by default the labels found in ``y``.
    """

    is_local = False

    def __init__(self, X, y, sample_weight=None, *, classes=None):
        self.feature_names = None
        if isinstance(X, dd.DataFrame):
            self.feature_names = np.asarray([str(c) for c in X.columns], dtype=object)
        X = _as_dask_array(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got {X.ndim} dimensions.")
        if X.dtype.kind not in "fiub":
            raise ValueError(f"X must be numeric, got dtype {X.dtype}.")
        self.dtype = np.dtype(np.float32 if X.dtype == np.float32 else np.float64)
        X = X.astype(self.dtype).rechunk({1: -1})
        y = _as_dask_array(y).rechunk((X.chunks[0],))
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}.")
        if sample_weight is None:
            w = da.ones(X.shape[0], chunks=(X.chunks[0],), dtype=self.dtype)
        else:
            w = _as_dask_array(sample_weight).astype(self.dtype)
            w = w.rechunk((X.chunks[0],))
        X, y, w = dask.persist(X, y, w)
        codes = self._first_pass(X, y, w, classes)
        self._persisted = (X, codes, w)  # holds the futures: the data stays on the workers
        self._parts = list(
            zip(
                X.to_delayed().ravel(),
                codes.to_delayed().ravel(),
                w.to_delayed().ravel(),
                strict=True,
            )
        )
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self.n_classes = int(self.classes.size)
        self.class_weight = np.ones(self.n_classes)
        self.weight_sum = float(self.class_weight_sums.sum())

    def _first_pass(self, X, y, w, classes):
        """Classes, checks, class counts and weight totals; returns the persisted codes."""
        found, finite, wmin = dask.compute(da.unique(y), da.isfinite(X).all(), w.min())
        if not finite:
            raise ValueError("X has NaN or infinite values; remove or impute them first.")
        if not (wmin >= 0):
            raise ValueError("sample_weight has negative or non-finite values.")
        self.classes = np.unique(found) if classes is None else np.unique(np.asarray(classes))
        unseen = np.setdiff1d(found, self.classes)
        if unseen.size:
            raise ValueError(f"y has labels {unseen[:5].tolist()} that are not in classes.")
        (codes,) = dask.persist(y.map_blocks(_encode, self.classes, dtype=np.intp))
        counts, sums = dask.compute(
            da.bincount(codes, minlength=self.classes.size),
            da.bincount(codes, weights=w.astype(np.float64), minlength=self.classes.size),
        )
        self.class_counts, self.class_weight_sums = counts, sums
        return codes

    def set_class_weight(self, class_weight) -> None:
        """Multiply each class's sample weights by ``class_weight[k]`` (shape (n_classes,))."""
        self.class_weight = checked_class_weight(class_weight, self.n_classes)
        self.weight_sum = float(self.class_weight @ self.class_weight_sums)

    def map_reduce(self, fn) -> tuple:
        """``sum(fn(block, i))`` over the partitions: one ``dask.compute``, summed here."""
        task = dask.delayed(_block_tuple, pure=False)
        parts = [task(fn, X, c, w, self.class_weight, i) for i, (X, c, w) in enumerate(self._parts)]
        try:
            (total,) = dask.compute(dask.delayed(_sum_parts)(parts))
        except Exception as exc:
            if type(exc).__name__ != "KilledWorker":
                raise
            raise RuntimeError(
                "Dask workers kept dying while computing a pass over the data (distributed "
                "gave up after its allowed retries, distributed.scheduler.allowed-failures); "
                "the fit stopped without a result. Check the workers' memory limits and logs."
            ) from exc
        return total

    def __repr__(self) -> str:
        return (
            f"DaskSource(n_samples={self.n_samples}, n_features={self.n_features}, "
            f"n_classes={self.n_classes}, partitions={len(self._parts)})"
        )


def _encode(y, classes):
    codes = np.searchsorted(classes, y)
    codes = np.minimum(codes, classes.size - 1)
    if not np.array_equal(classes[codes], y):
        raise ValueError("y has labels that are not in the classes.")
    return codes.astype(np.intp)


def fit_dask(est, X, y, sample_weight=None, **options):
    """Fit ``est`` on Dask collections (see the module docstring); returns ``est``."""
    from ._external import fit_source

    if y is None:
        raise ValueError("fit(X, y) on Dask data needs y (a Dask array or Series).")
    return fit_source(est, DaskSource(X, y, sample_weight), **options)


def _predict_block(block, est, method):
    out = getattr(est, method)(block)
    return out


def predict(est, method: str, X):
    """``est.<method>(X)`` for Dask ``X``, lazily, as a Dask array (or Series/DataFrame)."""
    K = est.classes_.size
    wide = method in ("predict_proba", "predict_log_proba") or (
        method == "decision_function" and K > 2
    )
    if isinstance(X, dd.DataFrame):
        if wide:
            meta = np.empty((0, K), dtype=np.float64)
            cols = [f"{method}_{c}" for c in est.classes_.tolist()]
            return X.map_partitions(
                lambda df: _frame(getattr(est, method)(df), df.index, cols),
                meta=_frame(meta, None, cols),
            )
        dtype = est.classes_.dtype if method == "predict" else np.float64
        return X.map_partitions(
            lambda df: _series(getattr(est, method)(df), df.index),
            meta=_series(np.empty(0, dtype=dtype), None),
        )
    X = _as_dask_array(X).rechunk({1: -1})
    if wide:
        return X.map_blocks(
            _predict_block, est, method, dtype=np.float64, chunks=(X.chunks[0], (K,))
        )
    dtype = est.classes_.dtype if method == "predict" else np.float64
    return X.map_blocks(_predict_block, est, method, dtype=dtype, drop_axis=1)


def _frame(values, index, cols):
    import pandas as pd

    return pd.DataFrame(values, index=index, columns=cols)


def _series(values, index):
    import pandas as pd

    return pd.Series(values, index=index)
