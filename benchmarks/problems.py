"""The benchmark problem registry: fixed-seed data sets at a chosen size scale.

Every problem is a :class:`Problem` with a ``make(scale)`` function returning ``(X, y)``;
``scale = 1`` gives the full sizes of issue 3, smaller values shrink the rows (and, for the
wide and sparse problems, the columns by ``sqrt(scale)``) so that a reduced run fits a laptop.
The objective is scikit-learn's mean form ``(1/n) sum_i CE_i + ||W||^2 / (2 C n)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.datasets import load_digits, make_classification
from sklearn.preprocessing import StandardScaler

__all__ = ["PROBLEMS", "Problem", "planted_sparse"]


@dataclass(frozen=True)
class Problem:
    """One benchmark problem.

    Attributes
    ----------
    name : str
    description : str
    make : callable ``scale -> (X, y)``
        Builds the data (deterministic: fixed seeds).
    C : float
        Inverse penalty strength (scikit-learn's ``C``).
    """

    name: str
    description: str
    make: Callable[[float], tuple]
    C: float = 1.0


def _rows(n: int, scale: float, minimum: int = 300) -> int:
    return max(minimum, int(round(n * scale)))


def _standard(X: np.ndarray) -> np.ndarray:
    return StandardScaler().fit_transform(X)


def _digits(scale: float):
    X, y = load_digits(return_X_y=True)
    return _standard(X), y


def _classification(n, d, K, *, informative, seed=0, sep=1.0, clusters=2, dtype=np.float64):
    X, y = make_classification(
        n_samples=n,
        n_features=d,
        n_informative=informative,
        n_classes=K,
        n_clusters_per_class=clusters,
        class_sep=sep,
        random_state=seed,
    )
    return _standard(X).astype(dtype), y


def _tall(scale: float, dtype=np.float64):
    return _classification(_rows(1_000_000, scale), 100, 10, informative=50, dtype=dtype)


def _many_classes(scale: float):
    return _classification(_rows(200_000, scale, 2000), 64, 200, informative=32, clusters=1)


def _wide(scale: float):
    f = np.sqrt(min(scale, 1.0))
    n = d = max(200, int(round(5000 * f)))
    return _classification(n, d, 5, informative=min(100, d // 4))


def planted_sparse(n: int, d: int, nnz_row: int, K: int, seed: int = 0):
    """Text-like CSR data: ``nnz_row`` random columns per row with Zipf-like column
    frequencies, positive values, rows L2-normalised, labels drawn from a planted softmax."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, d + 1) ** 0.8
    popularity /= popularity.sum()
    cols = rng.choice(d, size=n * nnz_row, p=popularity).astype(np.int32)
    vals = rng.exponential(1.0, size=n * nnz_row)
    indptr = np.arange(0, n * nnz_row + 1, nnz_row, dtype=np.int64)
    X = sp.csr_matrix((vals, cols, indptr), shape=(n, d))
    X.sum_duplicates()
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X
    W = rng.normal(scale=8.0, size=(d, K))
    A = np.asarray(X @ W)
    P = np.exp(A - A.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    u = rng.random(n)[:, None]
    y = np.minimum((P.cumsum(axis=1) < u).sum(axis=1), K - 1)
    return X.tocsr(), y


def _sparse(scale: float):
    f = np.sqrt(min(scale, 1.0))
    return planted_sparse(_rows(200_000, scale), max(1000, int(50_000 * f)), 50, 20)


def _badly_scaled(scale: float):
    X, y = make_classification(
        n_samples=_rows(200_000, scale),
        n_features=40,
        n_informative=20,
        n_classes=5,
        random_state=1,
    )
    X = _standard(X) * np.logspace(-3, 5, X.shape[1])
    return X, y


def _separable(scale: float):
    return _classification(
        _rows(100_000, scale), 30, 4, informative=20, seed=2, sep=3.0, clusters=1
    )


PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in [
        Problem("digits", "scikit-learn digits, standardised (1,797 x 64, K=10)", _digits),
        Problem("tall", "make_classification 1e6 x 100, 50 informative, K=10", _tall),
        Problem("many_classes", "make_classification 2e5 x 64, K=200", _many_classes),
        Problem("wide", "make_classification 5,000 x 5,000, K=5", _wide),
        Problem("sparse", "text-like CSR 2e5 x 5e4, ~50 nnz/row, K=20", _sparse),
        Problem(
            "badly_scaled",
            "2e5 x 40, K=5, column scales 1e-3..1e5, not standardised",
            _badly_scaled,
        ),
        Problem("separable", "nearly separable 1e5 x 30, K=4, C=100", _separable, C=100.0),
        Problem(
            "tall_float32",
            "the tall problem in float32",
            lambda scale: _tall(scale, dtype=np.float32),
        ),
    ]
}
