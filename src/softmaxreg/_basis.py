r"""Fixed basis functions :math:`\phi(x)`: the model is linear in ``phi(x)``, not in ``x``.

``SoftmaxRegression(basis=...)`` takes any scikit-learn transformer or one of the named
shortcuts below; the fitted transformer is stored as ``basis_`` and applied by every prediction
method, and its output names label the coefficients (:func:`coef_feature_names`).

Named shortcuts (``"name:N"``)
------------------------------
``"poly:D"``
    ``PolynomialFeatures(degree=D, include_bias=False)`` (the intercept is the model's).
``"rbf:N"``
    ``StandardScaler`` then :class:`RBFFeatures` with ``N`` Gaussian bumps
    :math:`\phi_j(x) = \exp(-\|x - \mu_j\|^2 / (2\sigma^2))` at k-means centres
    :math:`\mu_j` (``random_state=0``). Width heuristic (Haykin, *Neural Networks*, 2nd ed.,
    sec. 5.11): :math:`\sigma = d_{\max} / \sqrt{2N}`, with :math:`d_{\max}` the largest distance
    between two centres.
``"fourier:N"``
    ``StandardScaler`` then ``RBFSampler(gamma="scale", n_components=N, random_state=0)``:
    ``N`` random Fourier features of the Gaussian kernel (Rahimi & Recht 2007).
``"spline:N"``
    ``SplineTransformer(n_knots=N, degree=3, include_bias=False)``: cubic B-splines per feature.

Model files (:func:`basis_to_state`, :func:`basis_from_state`) store a fitted basis as JSON plus
NumPy arrays, never pickle, for the transformers in :data:`SERIALISABLE` (and pipelines of them).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.interpolate import BSpline
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.cluster import KMeans
from sklearn.kernel_approximation import RBFSampler
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MinMaxScaler,
    PolynomialFeatures,
    SplineTransformer,
    StandardScaler,
)
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "RBFFeatures",
    "SERIALISABLE",
    "basis_from_state",
    "basis_to_state",
    "coef_feature_names",
    "make_basis",
]


class RBFFeatures(TransformerMixin, BaseEstimator):
    r"""Gaussian radial basis functions at k-means centres.

    Parameters
    ----------
    n_centers : int, default=10
        Number of basis functions ``N`` (at most the number of distinct training rows).
    width : float or "auto", default="auto"
        :math:`\sigma`; ``"auto"`` is :math:`d_{\max}/\sqrt{2N}` (see the module docstring).
    random_state : int, default=0
        Seed of k-means (fixed, so that a fit is reproducible).

    Attributes
    ----------
    centers_ : ndarray of shape (N, n_features_in_)
    width_ : float

    Examples
    --------
    >>> import numpy as np
    >>> phi = RBFFeatures(n_centers=3).fit(np.arange(12.0).reshape(6, 2))
    >>> phi.transform(np.zeros((1, 2))).shape
    (1, 3)
    """

    def __init__(self, n_centers=10, width="auto", random_state=0):
        self.n_centers = n_centers
        self.width = width
        self.random_state = random_state

    def fit(self, X, y=None):
        """Place the centres by k-means on ``X`` (n_samples, n_features) and set the width."""
        X = validate_data(self, X, accept_sparse=False, dtype=[np.float64, np.float32])
        if not isinstance(self.n_centers, int | np.integer) or self.n_centers < 1:
            raise ValueError(f"n_centers must be a positive integer, got {self.n_centers!r}.")
        n_distinct = np.unique(X, axis=0).shape[0]
        k = min(int(self.n_centers), n_distinct)
        km = KMeans(n_clusters=k, n_init=1, random_state=self.random_state).fit(X)
        self.centers_ = km.cluster_centers_.astype(np.float64)
        if self.width == "auto":
            diff = self.centers_[:, None, :] - self.centers_[None, :, :]
            d_max = float(np.sqrt(np.max(np.sum(diff * diff, axis=2), initial=0.0)))
            width = d_max / np.sqrt(2.0 * k) if d_max > 0 else float(np.std(X)) or 1.0
        else:
            width = float(self.width)
            if not width > 0 or not np.isfinite(width):
                raise ValueError(f"width must be a positive number or 'auto', got {self.width!r}.")
        self.width_ = width
        return self

    def transform(self, X):
        """``phi(X)`` of shape (n_samples, N)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, accept_sparse=False, dtype=[np.float64, np.float32])
        C = self.centers_
        sq = (X * X).sum(axis=1)[:, None] - 2.0 * (X @ C.T) + (C * C).sum(axis=1)[None, :]
        return np.exp(-np.maximum(sq, 0.0) / (2.0 * self.width_**2)).astype(X.dtype, copy=False)

    def get_feature_names_out(self, input_features=None):
        """Names ``rbf0 .. rbf{N-1}``."""
        check_is_fitted(self)
        return np.array([f"rbf{j}" for j in range(self.centers_.shape[0])], dtype=object)


_NAMED = ("poly", "rbf", "fourier", "spline")


def make_basis(spec):
    """An unfitted transformer for ``spec``: a named shortcut ``"name:N"`` or a transformer.

    Parameters
    ----------
    spec : str or scikit-learn transformer
        See the module docstring for the names; a transformer is cloned.

    Returns
    -------
    transformer : scikit-learn transformer (unfitted)
    """
    if isinstance(spec, str):
        name, _, arg = spec.partition(":")
        try:
            n = int(arg)
        except ValueError:
            n = 0
        if name not in _NAMED or n < 1:
            raise ValueError(
                f"Unknown basis {spec!r}: use 'poly:D', 'rbf:N', 'fourier:N' or 'spline:N' "
                "with a positive integer, or a scikit-learn transformer."
            )
        if name == "poly":
            return PolynomialFeatures(degree=n, include_bias=False)
        if name == "rbf":
            return Pipeline([("scale", StandardScaler()), ("rbf", RBFFeatures(n_centers=n))])
        if name == "fourier":
            sampler = RBFSampler(gamma="scale", n_components=n, random_state=0)
            return Pipeline([("scale", StandardScaler()), ("fourier", sampler)])
        return SplineTransformer(n_knots=max(n, 2), degree=3, include_bias=False)
    if hasattr(spec, "fit") and hasattr(spec, "transform"):
        return clone(spec)
    raise TypeError(
        f"basis must be None, a name such as 'rbf:20', or a scikit-learn transformer "
        f"(with fit and transform); got {type(spec).__name__}."
    )


def fit_basis(est, X):
    """Fit ``est.basis`` on ``X``, store it as ``est.basis_`` and return ``phi(X)``."""
    if est.basis is None:
        est.basis_ = None
        return X
    est.basis_ = make_basis(est.basis).fit(X)
    return _checked_output(est.basis_, X)


def apply_basis(est, X):
    """``phi(X)`` with the fitted basis (``X`` unchanged without one)."""
    basis = getattr(est, "basis_", None)
    return X if basis is None else _checked_output(basis, X)


def _checked_output(basis, X):
    Z = basis.transform(X)
    Z = Z.tocsr() if sp.issparse(Z) else np.asarray(Z)
    dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    Z = Z.astype(dtype, copy=False)
    values = Z.data if sp.issparse(Z) else Z
    if Z.ndim != 2 or Z.shape[0] != X.shape[0] or not np.all(np.isfinite(values)):
        raise ValueError(
            f"The basis {type(basis).__name__} gave an output of shape {Z.shape} with "
            "non-finite values or the wrong number of rows; check the basis on this input."
        )
    return Z


def coef_feature_names(est) -> np.ndarray:
    """Names of the columns of ``est.coef_``: the basis outputs, the input names or ``x0..``."""
    basis = getattr(est, "basis_", None)
    names_in = getattr(est, "feature_names_in_", None)
    if basis is not None:
        try:
            return np.asarray(basis.get_feature_names_out(names_in), dtype=object)
        except (AttributeError, ValueError, TypeError):
            return np.array([f"phi{j}" for j in range(est.coef_.shape[1])], dtype=object)
    if names_in is not None:
        return np.asarray(names_in, dtype=object)
    return np.array([f"x{j}" for j in range(est.coef_.shape[1])], dtype=object)


# -- model-file state (no pickle) --------------------------------------------------------------
#: Transformer classes :func:`basis_to_state` can store (and ``Pipeline`` of them).
SERIALISABLE = {
    cls.__name__: cls
    for cls in (
        StandardScaler,
        MinMaxScaler,
        PolynomialFeatures,
        SplineTransformer,
        RBFSampler,
        RBFFeatures,
    )
}
_SCALARS = (bool, int, float, str, type(None))


def _to_json(value, key, arrays, prefix):
    """A JSON-able description of one attribute value; arrays go to ``arrays``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, _SCALARS):
        return {"v": value}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {"strings": [str(v) for v in value.tolist()]}
        if value.dtype.kind not in "biuf":
            raise TypeError(f"array of dtype {value.dtype}")
        arrays[f"{prefix}{key}"] = value
        return {"array": f"{prefix}{key}"}
    if isinstance(value, list) and all(isinstance(b, BSpline) for b in value):
        for j, b in enumerate(value):
            arrays[f"{prefix}{key}.{j}.t"] = np.asarray(b.t)
            arrays[f"{prefix}{key}.{j}.c"] = np.asarray(b.c)
        return {"bsplines": [{"k": int(b.k), "extrapolate": _extrapolate(b)} for b in value]}
    raise TypeError(type(value).__name__)


def _extrapolate(b):
    return b.extrapolate if isinstance(b.extrapolate, str) else bool(b.extrapolate)


def _from_json(desc, key, arrays, prefix):
    if "v" in desc:
        return desc["v"]
    if "strings" in desc:
        return np.array(desc["strings"], dtype=object)
    if "array" in desc:
        return np.array(arrays[desc["array"]])
    if "bsplines" in desc:
        return [
            BSpline(
                np.array(arrays[f"{prefix}{key}.{j}.t"]),
                np.array(arrays[f"{prefix}{key}.{j}.c"]),
                int(spec["k"]),
                extrapolate=spec["extrapolate"],
            )
            for j, spec in enumerate(desc["bsplines"])
        ]
    raise ValueError(f"Malformed basis state entry {key!r}.")


def basis_to_state(basis, prefix: str = "basis/") -> tuple[dict, dict]:
    """Describe a fitted basis as JSON plus NumPy arrays (for the model file; no pickle).

    Parameters
    ----------
    basis : fitted transformer
        One of :data:`SERIALISABLE`, or a ``Pipeline`` of them.
    prefix : str
        Prefix of the array names.

    Returns
    -------
    state : dict
        JSON-able: class name, constructor parameters and fitted attributes.
    arrays : dict of str to ndarray

    Raises
    ------
    NotImplementedError
        For a transformer this function cannot store without pickle.
    """
    arrays: dict = {}
    state = _state(basis, prefix, arrays)
    return state, arrays


def _state(basis, prefix, arrays):
    name = type(basis).__name__
    if isinstance(basis, Pipeline):
        steps = []
        for j, (step_name, step) in enumerate(basis.steps):
            steps.append([step_name, _state(step, f"{prefix}{j}/", arrays)])
        return {"class": "Pipeline", "steps": steps}
    if SERIALISABLE.get(name) is not type(basis):
        raise NotImplementedError(
            f"Cannot store a basis of type {name} in a model file (no pickle): use one of "
            f"{sorted(SERIALISABLE)} or a Pipeline of them, or a named basis such as 'rbf:20'."
        )
    params = basis.get_params(deep=False)
    fitted = {k: v for k, v in vars(basis).items() if k not in params and not k.startswith("__")}
    try:
        p_json = {k: _to_json(v, f"param.{k}", arrays, prefix) for k, v in params.items()}
        f_json = {k: _to_json(v, f"attr.{k}", arrays, prefix) for k, v in fitted.items()}
    except TypeError as exc:
        raise NotImplementedError(
            f"Cannot store this {name} in a model file: an attribute has type {exc}."
        ) from None
    return {"class": name, "params": p_json, "fitted": f_json}


def basis_from_state(state: dict, arrays: dict, prefix: str = "basis/"):
    """Rebuild the fitted basis written by :func:`basis_to_state` (no code is run from the file).

    Parameters
    ----------
    state : dict
    arrays : dict of str to ndarray
    prefix : str

    Returns
    -------
    basis : fitted transformer
    """
    if not isinstance(state, dict) or "class" not in state:
        raise ValueError("Malformed basis state: expected a dict with a 'class' entry.")
    if state["class"] == "Pipeline":
        steps = [
            (str(step_name), basis_from_state(sub, arrays, f"{prefix}{j}/"))
            for j, (step_name, sub) in enumerate(state["steps"])
        ]
        return Pipeline(steps)
    cls = SERIALISABLE.get(state["class"])
    if cls is None:
        raise ValueError(f"Unknown basis class {state['class']!r} in the model file.")
    try:
        params = {
            k: _from_json(v, f"param.{k}", arrays, prefix) for k, v in state["params"].items()
        }
        basis = cls(**params)
        for k, v in state["fitted"].items():
            if not str(k).isidentifier() or str(k).startswith("__"):
                raise ValueError(f"bad attribute name {k!r}")
            setattr(basis, k, _from_json(v, f"attr.{k}", arrays, prefix))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"Malformed basis state for {state['class']}: {exc}.") from None
    return basis


# -- ONNX (hook called by softmaxreg._onnx) ----------------------------------------------------
def basis_to_onnx(basis, x_name: str, elem_type: int):
    """ONNX nodes computing ``phi(x)`` for a fitted basis (the hook of ``softmaxreg._onnx``).

    Supported: ``StandardScaler``, ``MinMaxScaler``, ``PolynomialFeatures``, ``RBFSampler``,
    :class:`RBFFeatures` and pipelines of them (so every named basis but ``"spline:N"``).

    Parameters
    ----------
    basis : fitted transformer
    x_name : str
        Name of the input tensor, shape (N, n_features_in_), of type ``elem_type``.
    elem_type : int
        ``onnx.TensorProto.FLOAT`` or ``DOUBLE``: the computation type.

    Returns
    -------
    nodes : list of NodeProto
    initializers : list of TensorProto
    output_name : str

    Raises
    ------
    NotImplementedError
        For a basis without an ONNX translation (e.g. ``SplineTransformer``).
    """
    from onnx import TensorProto

    dtype = np.float32 if elem_type == TensorProto.FLOAT else np.float64
    steps = basis.steps if isinstance(basis, Pipeline) else [("phi", basis)]
    nodes, inits, name = [], [], x_name
    for j, (_, step) in enumerate(steps):
        translate = _ONNX_STEPS.get(type(step).__name__)
        if translate is None or SERIALISABLE.get(type(step).__name__) is not type(step):
            raise NotImplementedError(
                f"ONNX export of a basis with a {type(step).__name__} is not supported "
                "(supported: StandardScaler, MinMaxScaler, PolynomialFeatures, RBFSampler, "
                "RBFFeatures; e.g. basis='rbf:N', 'poly:D' or 'fourier:N', not 'spline:N')."
            )
        n, i, name = translate(step, name, f"basis{j}_", dtype)
        nodes += n
        inits += i
    return nodes, inits, name


def _const(name, value, dtype):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def _onnx_standard(step, x, p, dtype):
    from onnx import helper

    mean = step.mean_ if step.with_mean else np.zeros(step.n_features_in_)
    scale = step.scale_ if step.with_std else np.ones(step.n_features_in_)
    nodes = [
        helper.make_node("Sub", [x, p + "mean"], [p + "c"]),
        helper.make_node("Div", [p + "c", p + "scale"], [p + "out"]),
    ]
    return nodes, [_const(p + "mean", mean, dtype), _const(p + "scale", scale, dtype)], p + "out"


def _onnx_minmax(step, x, p, dtype):
    from onnx import helper

    nodes = [
        helper.make_node("Mul", [x, p + "scale"], [p + "s"]),
        helper.make_node("Add", [p + "s", p + "min"], [p + "out"]),
    ]
    return (
        nodes,
        [_const(p + "scale", step.scale_, dtype), _const(p + "min", step.min_, dtype)],
        p + "out",
    )


def _onnx_poly(step, x, p, dtype):
    """Each output is a product of gathered input columns (a column of ones pads the rest)."""
    from onnx import helper

    powers = np.asarray(step.powers_)
    d, width = powers.shape[1], max(int(powers.sum(axis=1).max()), 1)
    index = np.full((powers.shape[0], width), d, dtype=np.int64)
    for r, row in enumerate(powers):
        cols = np.repeat(np.arange(d), row)
        index[r, : cols.size] = cols
    nodes = [
        helper.make_node("Gather", [x, p + "col0"], [p + "x0"], axis=1),
        helper.make_node("Mul", [p + "x0", p + "zero"], [p + "z"]),
        helper.make_node("Add", [p + "z", p + "one"], [p + "ones"]),
        helper.make_node("Concat", [x, p + "ones"], [p + "x1"], axis=1),
        helper.make_node("Gather", [p + "x1", p + "index"], [p + "g"], axis=1),
        helper.make_node("ReduceProd", [p + "g"], [p + "out"], axes=[2], keepdims=0),
    ]
    inits = [
        _const(p + "col0", [0], np.int64),
        _const(p + "zero", 0, dtype),
        _const(p + "one", 1, dtype),
        _const(p + "index", index, np.int64),
    ]
    return nodes, inits, p + "out"


def _onnx_fourier(step, x, p, dtype):
    from onnx import helper

    nodes = [
        helper.make_node("MatMul", [x, p + "W"], [p + "xw"]),
        helper.make_node("Add", [p + "xw", p + "b"], [p + "a"]),
        helper.make_node("Cos", [p + "a"], [p + "c"]),
        helper.make_node("Mul", [p + "c", p + "k"], [p + "out"]),
    ]
    inits = [
        _const(p + "W", step.random_weights_, dtype),
        _const(p + "b", step.random_offset_, dtype),
        _const(p + "k", (2.0 / step.n_components) ** 0.5, dtype),
    ]
    return nodes, inits, p + "out"


def _onnx_rbf(step, x, p, dtype):
    """``exp(-(|x|^2 - 2 x.c + |c|^2) / (2 w^2))``, the distance clipped at zero."""
    from onnx import helper

    C = step.centers_
    nodes = [
        helper.make_node("Mul", [x, x], [p + "xx"]),
        helper.make_node("ReduceSum", [p + "xx", p + "ax"], [p + "x2"], keepdims=1),
        helper.make_node("MatMul", [x, p + "Ct2"], [p + "xc"]),
        helper.make_node("Sub", [p + "x2", p + "xc"], [p + "s"]),
        helper.make_node("Add", [p + "s", p + "c2"], [p + "sq"]),
        helper.make_node("Max", [p + "sq", p + "zero"], [p + "sq0"]),
        helper.make_node("Mul", [p + "sq0", p + "k"], [p + "e"]),
        helper.make_node("Exp", [p + "e"], [p + "out"]),
    ]
    inits = [
        _const(p + "ax", [1], np.int64),
        _const(p + "Ct2", 2.0 * C.T, dtype),
        _const(p + "c2", (C * C).sum(axis=1), dtype),
        _const(p + "zero", 0, dtype),
        _const(p + "k", -1.0 / (2.0 * step.width_**2), dtype),
    ]
    return nodes, inits, p + "out"


_ONNX_STEPS = {
    "StandardScaler": _onnx_standard,
    "MinMaxScaler": _onnx_minmax,
    "PolynomialFeatures": _onnx_poly,
    "RBFSampler": _onnx_fourier,
    "RBFFeatures": _onnx_rbf,
}
