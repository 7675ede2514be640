"""ONNX export: the graph agrees with the model, labels keep their type, failures leave no file."""

import os
import sys
import types

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import scipy.sparse as sp

import softmaxreg
from softmaxreg import ONNXExportError, SoftmaxRegression, _onnx, export_onnx


def _data(n=80, d=5, k=3, seed=1):
    rng = np.random.default_rng(seed)
    codes = np.arange(n) % k
    return 1.5 * rng.standard_normal((k, d))[codes] + rng.standard_normal((n, d)), codes


def _run(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    return session.run(None, {"input": np.asarray(X, dtype=np.float32)})


@pytest.mark.parametrize(
    "labels, label_dtype",
    [
        (lambda c: c, np.int64),
        (lambda c: c + 10, np.int64),
        (lambda c: np.array(["ant", "bee", "cicada"])[c], object),
        (lambda c: c == 1, np.bool_),
        (lambda c: np.where(c == 0, -3, 4), np.int64),
        (lambda c: 2.0 * c, np.float64),
    ],
)
def test_onnx_agrees_with_model(tmp_path, labels, label_dtype):
    X, codes = _data()
    y = labels(codes)
    model = SoftmaxRegression(C=10.0).fit(X, y)
    path = tmp_path / "m.onnx"
    export_onnx(model, path, sample=X)
    label, proba = _run(path, X)
    X32 = X.astype(np.float32).astype(np.float64)  # the graph's input is float32
    assert proba.dtype == np.float32 and proba.shape == (len(X), model.classes_.size)
    assert np.max(np.abs(proba - model.predict_proba(X32))) <= 1e-5
    assert label.dtype == label_dtype
    np.testing.assert_array_equal(label.tolist(), model.predict(X32).tolist())


def test_onnx_float32_sparse_and_feature_names(tmp_path):
    X, codes = _data(d=4)
    model32 = SoftmaxRegression().fit(X.astype(np.float32), codes)
    Xs = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0.0))
    sparse = SoftmaxRegression().fit(Xs, codes)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    named = SoftmaxRegression().fit(frame, codes)
    for i, (model, sample, rows) in enumerate(
        [(model32, None, X), (sparse, Xs, Xs.toarray()), (named, frame, X)]
    ):
        path = tmp_path / f"m{i}.onnx"
        export_onnx(model, path, sample=sample)
        _, proba = _run(path, rows)
        reference = rows.astype(np.float32).astype(model.coef_.dtype)
        if i == 2:
            reference = pd.DataFrame(reference, columns=frame.columns)
        assert np.max(np.abs(proba - model.predict_proba(reference))) <= 1e-5
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m2.onnx")).metadata_props}
    assert meta["feature_names"] == '["a", "b", "c", "d"]'


def test_default_sample_is_used(tmp_path):
    X, codes = _data()
    model = SoftmaxRegression().fit(X, codes)
    export_onnx(model, tmp_path / "m.onnx")
    _, proba = _run(tmp_path / "m.onnx", X)
    assert np.max(np.abs(proba - model.predict_proba(X.astype(np.float32)))) <= 1e-5


def test_disagreement_fails_loudly_and_writes_nothing(tmp_path, monkeypatch):
    X, codes = _data()
    model = SoftmaxRegression().fit(X, codes)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous export")
    real = _onnx._weights

    def perturbed(m):
        W, b = real(m)
        b = b.copy()
        b[0] += 1e-3  # one class only (a common shift would not change the softmax)
        return W, b

    monkeypatch.setattr(_onnx, "_weights", perturbed)
    with pytest.raises(ONNXExportError, match="max \\|probability difference\\|"):
        export_onnx(model, path, sample=X)
    assert path.read_bytes() == b"previous export"
    assert os.listdir(tmp_path) == ["m.onnx"]
    with pytest.raises(ONNXExportError):
        export_onnx(model, tmp_path / "new.onnx", sample=X)
    assert not (tmp_path / "new.onnx").exists()


def test_bad_sample_is_a_clear_error(tmp_path):
    X, codes = _data()
    model = SoftmaxRegression().fit(X, codes)
    with pytest.raises(ValueError, match="sample must have shape"):
        export_onnx(model, tmp_path / "m.onnx", sample=X[:, :2])
    with pytest.raises(ValueError, match="NaN"):
        export_onnx(model, tmp_path / "m.onnx", sample=np.full_like(X, np.nan))
    assert not (tmp_path / "m.onnx").exists()


def test_basis_without_onnx_translation_is_not_implemented(tmp_path, monkeypatch):
    fake = types.ModuleType("softmaxreg._basis")  # a basis module without basis_to_onnx
    monkeypatch.setitem(sys.modules, "softmaxreg._basis", fake)
    monkeypatch.setattr(softmaxreg, "_basis", fake, raising=False)
    X, codes = _data()
    model = SoftmaxRegression().fit(X, codes)
    model.basis_ = object()
    with pytest.raises(NotImplementedError, match="fitted basis"):
        export_onnx(model, tmp_path / "m.onnx", sample=X)
    assert not (tmp_path / "m.onnx").exists()


def test_mixed_label_types_are_not_implemented(tmp_path):
    X, codes = _data()
    model = SoftmaxRegression().fit(X, codes)
    model.classes_ = np.array([0, "one", 2.5], dtype=object)
    with pytest.raises(NotImplementedError, match="one type"):
        export_onnx(model, tmp_path / "m.onnx", sample=X)
