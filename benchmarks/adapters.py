"""One adapter per library and solver, all with the same signature.

``adapter.fit(X, y, C=..., tol=..., max_iter=...) -> Fitted`` fits scikit-learn's penalised
multinomial model; ``tol=None`` / ``max_iter=None`` mean the library's defaults. The returned
coefficients are in full form (one row per class) so that one objective function
(:func:`benchmarks.measure.objective`) scores every library the same way.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["ADAPTERS", "Adapter", "Fitted", "available_adapters"]


@dataclass
class Fitted:
    """Coefficients in full form: ``coef`` (K, d), ``intercept`` (K,); iterations."""

    coef: np.ndarray
    intercept: np.ndarray
    n_iter: int


@dataclass(frozen=True)
class Adapter:
    """A library's solver behind one signature.

    ``max_coef`` skips problems with more coefficients than the solver can handle (a full
    Hessian of ``n_coef**2`` doubles); ``needs`` names an optional module.
    """

    name: str
    fit: Callable[..., Fitted]
    max_coef: int | None = None
    needs: str | None = None

    def available(self) -> bool:
        return self.needs is None or importlib.util.find_spec(self.needs) is not None


def _full(coef, intercept, n_classes):
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64)
    if n_classes == 2 and coef.shape[0] == 1:  # binary form: class 0 fixed at zero
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return coef, intercept


def _estimator_adapter(make, solver):
    """One adapter shape for every scikit-learn-style estimator: ``make(C, solver, **kw)``."""

    def fit(X, y, *, C, tol=None, max_iter=None):
        kw = {k: v for k, v in {"tol": tol, "max_iter": max_iter}.items() if v is not None}
        m = make(C=C, solver=solver, **kw).fit(X, y)
        coef, intercept = _full(m.coef_, m.intercept_, m.classes_.size)
        return Fitted(coef, intercept, int(np.max(m.n_iter_)))

    return fit


def _softmaxreg_estimator(**kw):
    from softmaxreg import SoftmaxRegression

    return SoftmaxRegression(**kw)


def _sklearn_estimator(**kw):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**kw)


def _softmaxreg(solver):
    return _estimator_adapter(_softmaxreg_estimator, solver)


def _sklearn(solver):
    return _estimator_adapter(_sklearn_estimator, solver)


def _torch_lbfgs(X, y, *, C, tol=None, max_iter=None):
    """PyTorch L-BFGS (strong Wolfe) on CrossEntropyLoss plus the same L2 term, CPU."""
    import scipy.sparse as sp
    import torch

    dtype = torch.float32 if X.dtype == np.float32 else torch.float64
    Xt = torch.from_numpy(X.toarray() if sp.issparse(X) else np.ascontiguousarray(X)).to(dtype)
    classes, codes = np.unique(y, return_inverse=True)
    yt = torch.from_numpy(codes.astype(np.int64))
    n, d = Xt.shape
    W = torch.zeros(d, classes.size, dtype=dtype, requires_grad=True)
    b = torch.zeros(classes.size, dtype=dtype, requires_grad=True)
    max_iter = 100 if max_iter is None else max_iter
    tol = 1e-4 if tol is None else tol
    opt = torch.optim.LBFGS(
        [W, b],
        max_iter=max_iter,
        tolerance_grad=tol,
        tolerance_change=0.0,
        history_size=10,
        line_search_fn="strong_wolfe",
    )
    loss_fn = torch.nn.CrossEntropyLoss()

    def closure():
        opt.zero_grad()
        loss = loss_fn(Xt @ W + b, yt) + (W * W).sum() / (2 * C * n)
        loss.backward()
        return loss

    opt.step(closure)
    state = opt.state[opt._params[0]]
    coef = W.detach().double().numpy().T
    return Fitted(coef, b.detach().double().numpy(), int(state.get("n_iter", max_iter)))


def _build() -> dict[str, Adapter]:
    adapters = [Adapter("softmaxreg:" + s, _softmaxreg(s)) for s in ["auto", "lbfgs", "newton-cg"]]
    adapters.append(Adapter("softmaxreg:newton", _softmaxreg("newton"), max_coef=3000))
    for s in ["lbfgs", "newton-cg", "newton-cholesky", "sag", "saga"]:
        adapters.append(
            Adapter("sklearn:" + s, _sklearn(s), max_coef=3000 if s == "newton-cholesky" else None)
        )
    adapters.append(Adapter("torch:lbfgs", _torch_lbfgs, needs="torch"))
    return {a.name: a for a in adapters}


ADAPTERS: dict[str, Adapter] = _build()


def available_adapters(names=None) -> dict[str, Adapter]:
    """The adapters named (all by default) whose optional dependencies are installed."""
    chosen = ADAPTERS if names is None else {n: ADAPTERS[n] for n in names}
    return {n: a for n, a in chosen.items() if a.available()}


def quiet_fit(adapter: Adapter, X, y, **kw) -> tuple[Fitted, list[str]]:
    """Fit, returning the warnings raised (class names) instead of printing them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fitted = adapter.fit(X, y, **kw)
    return fitted, sorted({type(w.message).__name__ for w in caught})
