"""ONNX export: the fitted model as a small ONNX graph, checked with onnxruntime at export time.

The graph (built with ``onnx.helper`` directly; no skl2onnx)::

    input  float32[N, d]
      -> Cast(double)                 (float64 models compute in double, float32 models in float)
      -> [basis nodes]                (hook: ``softmaxreg._basis.basis_to_onnx``, when a basis)
      -> MatMul(W) -> Add(b)          logits[N, K]; binary models use rows [0; w] and [0, b]
      -> Softmax(axis=1) -> Cast(float32)          -> probabilities float32[N, K]
      -> ArgMax(axis=1) -> Gather(classes)         -> label[N]

``label`` is int64 for integer classes, string for string classes, bool for boolean classes
and double for float classes. ``onnx`` and ``onnxruntime`` are imported only when exporting.
"""

from __future__ import annotations

import json

import numpy as np

from ._modelfile import atomic_write

__all__ = ["ONNXExportError", "export_onnx"]

OPSET = 17
IR_VERSION = 8  # readable by onnxruntime >= 1.10


class ONNXExportError(RuntimeError):
    """The exported graph disagrees with the model, or the model cannot be exported."""


def _class_tensor(classes: np.ndarray, helper, TensorProto):
    """The constant tensor of class labels and its ONNX element type."""
    values = classes.tolist()
    kind = classes.dtype.kind
    if kind == "O":
        if all(isinstance(v, str) for v in values):
            kind = "U"
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            kind = "i"
        else:
            raise NotImplementedError(
                "ONNX export needs class labels of one type (all str, all int, all bool or all "
                f"float); got {sorted({type(v).__name__ for v in values})}."
            )
    if kind == "U":
        data = [str(v).encode("utf-8") for v in values]
        return helper.make_tensor("classes", TensorProto.STRING, [len(data)], data), "string"
    if kind in "iu":
        ints = np.asarray(values, dtype=np.int64)
        if not np.array_equal(ints, np.asarray(classes).astype(object).astype(np.int64)):
            raise NotImplementedError("Integer class labels do not fit in int64.")
        return helper.make_tensor("classes", TensorProto.INT64, [len(ints)], ints), "int64"
    if kind == "b":
        return helper.make_tensor("classes", TensorProto.BOOL, [len(values)], values), "bool"
    if kind == "f":
        floats = np.asarray(values, dtype=np.float64)
        return helper.make_tensor("classes", TensorProto.DOUBLE, [len(floats)], floats), "double"
    raise NotImplementedError(
        f"ONNX export does not support class labels of dtype {classes.dtype}."
    )


def _weights(model) -> tuple[np.ndarray, np.ndarray]:
    """``W`` of shape (d, K) and ``b`` of shape (K,) with ``logits = X W + b`` (all classes)."""
    coef, intercept = np.asarray(model.coef_), np.asarray(model.intercept_)
    if model.classes_.size == 2:  # binary: logits [0, w.x + b], as the estimator computes them
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([np.zeros_like(intercept), intercept])
    return np.ascontiguousarray(coef.T), intercept


def _basis_nodes(model, x_name: str, elem_type: int):
    """Hook for a fitted basis: ``(nodes, initializers, output_name)`` computing ``phi(x)``."""
    basis = getattr(model, "basis_", None)
    if basis is None:
        return [], [], x_name
    try:
        from ._basis import basis_to_onnx
    except ImportError:
        basis_to_onnx = None
    if basis_to_onnx is None:
        raise NotImplementedError(
            f"ONNX export of a model with a fitted basis ({type(basis).__name__}) is not "
            "supported: this softmaxreg has no ONNX translation of bases "
            "(softmaxreg._basis.basis_to_onnx)."
        )
    return basis_to_onnx(basis, x_name, elem_type)


def _build(model):
    """The ONNX ModelProto of ``model``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from . import __version__

    W, b = _weights(model)
    float_type = np.float32 if W.dtype == np.float32 else np.float64
    elem = TensorProto.FLOAT if float_type is np.float32 else TensorProto.DOUBLE
    classes, label_type = _class_tensor(np.asarray(model.classes_), helper, TensorProto)
    label_elem = {
        "string": TensorProto.STRING,
        "int64": TensorProto.INT64,
        "bool": TensorProto.BOOL,
        "double": TensorProto.DOUBLE,
    }[label_type]
    basis_nodes, basis_inits, phi = _basis_nodes(model, "x", elem)
    n_classes = model.classes_.size
    nodes = [
        helper.make_node("Cast", ["input"], ["x"], to=elem),
        *basis_nodes,
        helper.make_node("MatMul", [phi, "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["proba"], axis=1),
        helper.make_node("Cast", ["proba"], ["probabilities"], to=TensorProto.FLOAT),
        helper.make_node("ArgMax", ["logits"], ["index"], axis=1, keepdims=0),
        helper.make_node("Gather", ["classes", "index"], ["label"], axis=0),
    ]
    inits = [
        numpy_helper.from_array(W.astype(float_type), "W"),
        numpy_helper.from_array(b.astype(float_type), "b"),
        classes,
        *basis_inits,
    ]
    graph = helper.make_graph(
        nodes,
        "softmaxreg",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", model.n_features_in_])],
        [
            helper.make_tensor_value_info("label", label_elem, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_classes]),
        ],
        inits,
    )
    proto = helper.make_model(
        graph,
        producer_name="softmaxreg",
        producer_version=__version__,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    names = getattr(model, "feature_names_in_", None)
    helper.set_model_props(
        proto,
        {
            "classes": json.dumps([str(c) for c in model.classes_.tolist()]),
            "feature_names": json.dumps(None if names is None else [str(n) for n in names]),
        },
    )
    onnx.checker.check_model(proto)
    return proto


def _sample_rows(model, sample) -> np.ndarray:
    """The rows to check the export on, as float32 of shape (n, d)."""
    d = model.n_features_in_
    if sample is None:
        rng = np.random.default_rng(0)
        z = rng.standard_normal((64, d))
        sample = np.vstack([np.zeros((1, d)), 0.1 * z[:32], z[32:], 5.0 * z[:8]])
    elif hasattr(sample, "toarray"):
        sample = sample.toarray()
    rows = np.asarray(sample, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != d or rows.shape[0] == 0:
        raise ValueError(f"sample must have shape (n_samples >= 1, {d}); got {rows.shape}.")
    if not np.all(np.isfinite(rows)):
        raise ValueError("sample contains NaN or infinite values; pass finite rows.")
    return rows.astype(np.float32)


def _reference(model, rows32: np.ndarray):
    """The model's own probabilities and labels on the (float32-rounded) rows."""
    rows = rows32.astype(model.coef_.dtype)
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        import pandas as pd

        rows = pd.DataFrame(rows, columns=names)
    return model.predict_proba(rows), model.predict(rows)


def _check(proto, model, rows32: np.ndarray, atol: float) -> float:
    """Run the graph with onnxruntime; raise unless it agrees with the model within ``atol``."""
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    label, proba = session.run(["label", "probabilities"], {"input": rows32})
    expected, expected_label = _reference(model, rows32)
    err = float(np.max(np.abs(proba.astype(np.float64) - expected)))
    if not err <= atol:
        raise ONNXExportError(
            f"The ONNX graph disagrees with the model: max |probability difference| = {err:.3g} "
            f"> {atol:g} on {len(rows32)} sample rows. Nothing was written."
        )
    # Labels must agree wherever the top two probabilities are not (numerically) tied.
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * atol
    got = np.asarray(label.tolist(), dtype=object)
    want = np.asarray(expected_label.tolist(), dtype=object)
    if not np.array_equal(got[clear], want[clear]):
        raise ONNXExportError("The ONNX graph's labels disagree with model.predict.")
    return err


def export_onnx(model, path, *, sample=None, atol: float = 1e-5) -> None:
    """Export a fitted :class:`SoftmaxRegression` as an ONNX graph, verified before writing.

    The graph has one input ``input`` (float32, shape (N, d)) and two outputs: ``label``
    (shape (N,); int64 for integer classes, string for string classes) and ``probabilities``
    (float32, shape (N, n_classes), columns in ``classes_`` order). Before anything is
    written, onnxruntime runs the graph on sample rows and the export fails (raising
    :class:`ONNXExportError`, leaving no file) if any probability differs from
    ``model.predict_proba`` by more than ``atol``. The file is written atomically.

    The input is float32, as in most ONNX classifiers: rows are rounded to float32 on the way
    in, and the check compares with the model on the same rounded rows. Inside, float64
    models compute in double. Prediction-time ``offset`` has no input in the graph.

    Parameters
    ----------
    model : SoftmaxRegression
        A fitted estimator.
    path : str or path-like
        Destination ``.onnx`` file.
    sample : array-like of shape (n_samples, n_features), optional
        Rows to check the export on; default: 105 random rows at several scales.
    atol : float, default=1e-5
        The largest allowed absolute probability difference.

    Raises
    ------
    ONNXExportError
        The graph and the model disagree.
    NotImplementedError
        The model has a basis without an ONNX translation, or mixed-type labels.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from softmaxreg import SoftmaxRegression, export_onnx
    >>> X, y = load_iris(return_X_y=True)
    >>> model = SoftmaxRegression().fit(X, y)
    >>> export_onnx(model, os.path.join(tempfile.mkdtemp(), "iris.onnx"), sample=X)
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    rows = _sample_rows(model, sample)
    proto = _build(model)
    _check(proto, model, rows, atol)
    with atomic_write(path, "wb") as f:
        f.write(proto.SerializeToString())
