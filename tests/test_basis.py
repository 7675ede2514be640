"""Basis functions phi: named shortcuts, prediction through the basis, coefficient names and the
model-file state round trip (JSON + arrays, no pickle)."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import FunctionTransformer, PolynomialFeatures, StandardScaler

from softmaxreg import RBFFeatures, SoftmaxRegression, softmax
from softmaxreg._basis import basis_from_state, basis_to_state, coef_feature_names, make_basis


def rings(n, seed):
    """Three concentric rings: no linear boundary separates them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    r = 1.0 + y + rng.normal(0, 0.15, n)
    a = rng.uniform(0, 2 * np.pi, n)
    return np.c_[r * np.cos(a), r * np.sin(a)], y


X_RING, Y_RING = rings(400, 0)
X_TEST, Y_TEST = rings(400, 1)


def test_rbf_basis_separates_concentric_rings():
    linear = SoftmaxRegression().fit(X_RING, Y_RING).score(X_TEST, Y_TEST)
    model = SoftmaxRegression(basis="rbf:30", C=10.0).fit(X_RING, Y_RING)
    assert linear < 0.6
    assert model.score(X_TEST, Y_TEST) >= 0.95
    assert model.coef_.shape == (3, 30)


@pytest.mark.parametrize("basis", ["poly:3", "rbf:12", "fourier:20", "spline:5"])
def test_predictions_go_through_the_fitted_basis(basis):
    model = SoftmaxRegression(basis=basis, C=1.0).fit(X_RING, Y_RING)
    Z = model.basis_.transform(X_TEST[:20])
    P = softmax(Z @ model.coef_.T + model.intercept_, axis=1)
    np.testing.assert_allclose(model.predict_proba(X_TEST[:20]), P, rtol=1e-12)
    names = coef_feature_names(model)
    assert names.shape == (model.coef_.shape[1],)
    assert len(set(names)) == names.size


def test_names_label_coefficients_and_use_input_names():
    df = pd.DataFrame(X_RING, columns=["u", "v"])
    model = SoftmaxRegression(basis="poly:2").fit(df, Y_RING)
    assert list(coef_feature_names(model)) == ["u", "v", "u^2", "u v", "v^2"]
    rbf = SoftmaxRegression(basis="rbf:4").fit(df, Y_RING)
    assert list(coef_feature_names(rbf)) == ["rbf0", "rbf1", "rbf2", "rbf3"]
    assert list(coef_feature_names(SoftmaxRegression().fit(df, Y_RING))) == ["u", "v"]


def test_any_transformer_is_cloned_not_mutated():
    poly = PolynomialFeatures(2)
    model = SoftmaxRegression(basis=poly).fit(X_RING, Y_RING)
    assert not hasattr(poly, "n_output_features_")
    assert model.basis_ is not poly
    assert model.coef_.shape[1] == 6


def test_rbf_width_heuristic():
    phi = RBFFeatures(n_centers=8).fit(X_RING)
    C = phi.centers_
    d_max = np.max(np.linalg.norm(C[:, None] - C[None], axis=2))
    assert phi.width_ == pytest.approx(d_max / np.sqrt(16))
    Z = phi.transform(X_RING[:5])
    ref = np.exp(-np.sum((X_RING[:5, None] - C[None]) ** 2, axis=2) / (2 * phi.width_**2))
    np.testing.assert_allclose(Z, ref, rtol=1e-10)
    assert RBFFeatures(n_centers=50).fit(np.ones((10, 2))).centers_.shape == (1, 2)


@pytest.mark.parametrize(
    "spec", ["poly:3", "rbf:10", "fourier:16", "spline:6", StandardScaler(), PolynomialFeatures(2)]
)
def test_state_round_trip_is_exact(spec):
    basis = make_basis(spec).fit(X_RING)
    state, arrays = basis_to_state(basis)
    state = json.loads(json.dumps(state))  # JSON-able
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in arrays.values())
    rebuilt = basis_from_state(state, {k: np.array(v) for k, v in arrays.items()})
    np.testing.assert_array_equal(rebuilt.transform(X_TEST), basis.transform(X_TEST))
    assert list(rebuilt.get_feature_names_out()) == list(basis.get_feature_names_out())


def test_unserialisable_basis_and_bad_state():
    basis = FunctionTransformer(np.sin).fit(X_RING)
    with pytest.raises(NotImplementedError, match="no pickle"):
        basis_to_state(basis)
    state, arrays = basis_to_state(make_basis("rbf:3").fit(X_RING))
    state["steps"][1][1]["class"] = "os.system"
    with pytest.raises(ValueError, match="Unknown basis class"):
        basis_from_state(state, arrays)
    with pytest.raises(ValueError, match="Malformed"):
        basis_from_state(
            {"class": "StandardScaler", "params": {}, "fitted": {"__class__": {"v": 1}}}, {}
        )


@pytest.mark.parametrize("bad", ["rbf", "rbf:0", "wavelet:3", "poly:x"])
def test_bad_basis_names(bad):
    with pytest.raises(ValueError, match="Unknown basis"):
        SoftmaxRegression(basis=bad).fit(X_RING, Y_RING)


def test_basis_type_error_and_prediction_checks():
    with pytest.raises(TypeError, match="transformer"):
        SoftmaxRegression(basis=3).fit(X_RING, Y_RING)
    model = SoftmaxRegression(basis="rbf:5").fit(X_RING, Y_RING)
    with pytest.raises(ValueError, match="features"):
        model.predict(np.ones((2, 3)))


def test_basis_with_sparse_penalty_and_penalty_factor():
    """The penalty factor has one entry per basis output; group lasso selects basis functions."""
    pf = np.r_[np.zeros(2), np.ones(3)]
    model = SoftmaxRegression(
        basis="poly:2", penalty="group", C=0.05, penalty_factor=pf, tol=1e-8
    ).fit(X_RING, Y_RING)
    assert np.all(model.coef_[:, :2] != 0)
    assert model.score(X_TEST, Y_TEST) > 0.9
    with pytest.raises(ValueError, match="after the basis"):
        SoftmaxRegression(basis="poly:2", penalty="l1", penalty_factor=[1, 1]).fit(X_RING, Y_RING)


@pytest.mark.parametrize("basis", ["poly:3", "rbf:10", "fourier:20"])
def test_onnx_export_of_basis_agrees(basis, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from softmaxreg import export_onnx

    model = SoftmaxRegression(basis=basis).fit(X_RING, Y_RING)
    export_onnx(model, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    proba = session.run(["probabilities"], {"input": X_TEST.astype(np.float32)})[0]
    np.testing.assert_allclose(proba, model.predict_proba(X_TEST.astype(np.float32)), atol=1e-5)


def test_onnx_export_of_spline_basis_says_why_not(tmp_path):
    pytest.importorskip("onnx")
    from softmaxreg import export_onnx

    model = SoftmaxRegression(basis="spline:4").fit(X_RING, Y_RING)
    with pytest.raises(NotImplementedError, match="SplineTransformer"):
        export_onnx(model, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_basis_flag(tmp_path):
    """``softmaxreg fit --basis rbf:20`` saves a model whose predictions equal the API's."""
    from softmaxreg import load_model
    from softmaxreg._cli import main

    pd.DataFrame({"u": X_RING[:, 0], "v": X_RING[:, 1], "y": Y_RING}).to_csv(
        tmp_path / "train.csv", index=False
    )
    args = ["fit", str(tmp_path / "train.csv"), "--target", "y", "--basis", "rbf:20"]
    assert main([*args, "--C", "10", "-o", str(tmp_path / "m.srm")]) == 0
    model = load_model(tmp_path / "m.srm")
    api = SoftmaxRegression(basis="rbf:20", C=10.0).fit(
        pd.DataFrame({"u": X_RING[:, 0], "v": X_RING[:, 1]}), Y_RING
    )
    test = pd.DataFrame({"u": X_TEST[:, 0], "v": X_TEST[:, 1]})
    np.testing.assert_allclose(model.predict_proba(test), api.predict_proba(test), atol=1e-6)
    assert model.score(test, Y_TEST) >= 0.95
