"""Probability and count targets, ``classes=`` and offsets (issue 9).

Every fit with a target matrix or an offset is checked against an *independent* fit: the same
data written as one-hot rows (repeated per trial, or expanded per class with weights), a model
with an extra feature, statsmodels' binomial GLM, or the optimality conditions computed here
with plain NumPy.
"""

import json

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.special import log_softmax as sp_log_softmax
from scipy.special import softmax as sp_softmax
from sklearn.exceptions import DataConversionWarning

from softmaxreg import SOLVERS, SoftmaxRegression
from softmaxreg._objective import Objective
from softmaxreg._sources import ArraySource

TIGHT = dict(tol=1e-8, max_iter=200)


def _fit(X, y, sample_weight=None, params=None, **fit_kw):
    model = SoftmaxRegression(**{**TIGHT, **(params or {})})
    return model.fit(X, y, sample_weight=sample_weight, **fit_kw)


def _assert_same_fit(a, b, atol=1e-7):
    np.testing.assert_array_equal(a.classes_, b.classes_)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=0, atol=atol)
    np.testing.assert_allclose(a.intercept_, b.intercept_, rtol=0, atol=atol)


def _data(n=30, d=3, K=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    counts = rng.integers(0, 4, size=(n, K))
    counts[counts.sum(axis=1) == 0, rng.integers(K)] = 1
    return X, counts


def _repeat_trials(X, T):
    """One-hot rows repeated once per trial: row n appears T[n, k] times with label k."""
    n, K = T.shape
    Xe = np.vstack([X] * K)
    labels = np.repeat(np.arange(K), n)
    reps = T.T.ravel().astype(int)
    return np.repeat(Xe, reps, axis=0), np.repeat(labels, reps)


def _expand_classes(X, T):
    """Each row once per class k with label k and sample weight T[n, k]."""
    n, K = T.shape
    return np.vstack([X] * K), np.repeat(np.arange(K), n), T.T.ravel()


PARAMS = [{}, {"C": 0.3}, {"penalty": None}]


# -- exact equivalences ----------------------------------------------------------------
@pytest.mark.parametrize("K", [2, 3, 4])
@pytest.mark.parametrize("params", PARAMS)
def test_counts_equal_repeated_one_hot_rows(K, params):
    X, T = _data(K=K)
    by_counts = _fit(X, T, params=params)
    Xr, yr = _repeat_trials(X, T)
    _assert_same_fit(by_counts, _fit(Xr, yr, params=params))
    assert by_counts.coef_.shape == ((1, 3) if K == 2 else (K, 3))


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("params", PARAMS)
def test_probabilities_equal_rows_expanded_with_weights(K, params):
    X, T = _data(K=K, seed=1)
    P = (T + 0.5) / (T + 0.5).sum(axis=1, keepdims=True)  # strictly positive rows summing to 1
    Xe, ye, we = _expand_classes(X, P)
    _assert_same_fit(_fit(X, P, params=params), _fit(Xe, ye, sample_weight=we, params=params))


@pytest.mark.parametrize("kind", ["counts", "probabilities"])
def test_objectives_agree_to_rounding_at_any_coefficients(kind):
    """The equivalences hold for the whole objective, not only at the optimum (to 1e-13)."""
    X, T = _data(seed=20)
    rng = np.random.default_rng(20)
    if kind == "counts":
        Xe, ye = _repeat_trials(X, T)
        we = np.ones(ye.size)
    else:
        T = (T + 0.5) / (T + 0.5).sum(axis=1, keepdims=True)
        Xe, ye, we = _expand_classes(X, T)
    O = rng.normal(size=T.shape)
    Oe = np.vstack([O] * 3)
    if kind == "counts":
        Oe = np.repeat(Oe, T.T.ravel().astype(int), axis=0)
    a = Objective(ArraySource(X, T.astype(float), np.ones(len(X)), 3, offset=O), l2=0.7)
    b = Objective(ArraySource(Xe, ye.astype(np.intp), we, 3, offset=Oe), l2=0.7)
    assert a.scale == pytest.approx(b.scale, rel=1e-15)
    for _ in range(3):
        coef = rng.normal(size=a.n_coef)
        (fa, ga), (fb, gb) = a.loss_grad(coef), b.loss_grad(coef)
        assert fa == pytest.approx(fb, rel=1e-13)
        np.testing.assert_allclose(ga, gb, rtol=0, atol=1e-13)
        v = rng.normal(size=a.n_coef)
        np.testing.assert_allclose(a.grad_hessp(coef)[1](v), b.grad_hessp(coef)[1](v), atol=1e-13)


def test_one_hot_matrix_equals_labels():
    X, T = _data(seed=2)
    y = T.argmax(axis=1)
    _assert_same_fit(_fit(X, np.eye(3)[y]), _fit(X, y))


def test_sample_weight_multiplies_target_rows():
    X, T = _data(seed=3)
    s = np.random.default_rng(3).integers(0, 3, size=X.shape[0]).astype(float)
    weighted = _fit(X, T, sample_weight=s)
    keep = s > 0  # all-zero target rows are an error; zero weights drop the row
    _assert_same_fit(weighted, _fit(X[keep], (s[:, None] * T)[keep]))
    Xr, yr = _repeat_trials(np.repeat(X, s.astype(int), axis=0), np.repeat(T, s.astype(int), 0))
    _assert_same_fit(weighted, _fit(Xr, yr))


@pytest.mark.parametrize("class_weight", [{0: 2.0, 2: 0.5}, "balanced"])
def test_class_weight_with_counts_equals_repeated_rows(class_weight):
    X, T = _data(seed=4)
    params = {"class_weight": class_weight}
    Xr, yr = _repeat_trials(X, T)
    _assert_same_fit(_fit(X, T, params=params), _fit(Xr, yr, params=params))


@pytest.mark.parametrize("class_weight", [{1: 3.0}, "balanced"])
def test_class_weight_with_weighted_probabilities_equals_expanded_rows(class_weight):
    X, T = _data(seed=4)
    P = (T + 0.25) / (T + 0.25).sum(axis=1, keepdims=True)
    s = np.random.default_rng(4).uniform(0.5, 2.0, size=X.shape[0])
    Xe, ye, we = _expand_classes(X, P)
    params = {"class_weight": class_weight}
    _assert_same_fit(
        _fit(X, P, sample_weight=s, params=params),
        _fit(Xe, ye, sample_weight=we * np.tile(s, 3), params=params),
    )


def test_binary_counts_and_offset_match_statsmodels_glm():
    sm = pytest.importorskip("statsmodels.api")
    X, T = _data(n=60, K=2, seed=5)
    o = np.random.default_rng(5).normal(size=X.shape[0])
    ours = _fit(X, T, params={"penalty": None}, offset=o)
    glm = sm.GLM(T[:, ::-1], sm.add_constant(X), family=sm.families.Binomial(), offset=o)
    ref = glm.fit(tol=1e-13).params  # endog (successes = class 1, failures = class 0)
    np.testing.assert_allclose(ours.intercept_, ref[:1], rtol=0, atol=1e-7)
    np.testing.assert_allclose(ours.coef_[0], ref[1:], rtol=0, atol=1e-7)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_every_solver_reaches_the_same_optimum(solver):
    X, T = _data(seed=6)
    O = np.random.default_rng(6).normal(size=T.shape)
    ref = _fit(X, T, params={"solver": "newton"}, offset=O)
    _assert_same_fit(_fit(X, T, params={"solver": solver}, offset=O), ref, atol=1e-7)


def test_sparse_equals_dense_with_targets_and_offset():
    X, T = _data(seed=7)
    X[np.abs(X) < 0.7] = 0.0
    O = np.random.default_rng(7).normal(size=T.shape)
    _assert_same_fit(_fit(sp.csr_matrix(X), T, offset=O), _fit(X, T, offset=O))


def test_float32_targets_stay_float32():
    X, T = _data(seed=8)
    m32 = _fit(X.astype(np.float32), T, params={"tol": 1e-6})
    m64 = _fit(X, T)
    assert m32.coef_.dtype == np.float32
    np.testing.assert_allclose(m32.coef_, m64.coef_, atol=1e-4)


# -- classes= and column vectors -------------------------------------------------------
def test_classes_name_the_columns():
    X, T = _data(seed=9)
    names = np.array(["high", "low", "mid"])
    model = _fit(X, T, classes=names)
    np.testing.assert_array_equal(model.classes_, names)
    Xr, yr = _repeat_trials(X, T)
    by_labels = _fit(Xr, names[yr])
    _assert_same_fit(model, by_labels)
    np.testing.assert_array_equal(model.predict(X), by_labels.predict(X))
    res = _fit(X, T, params={"penalty": None}, classes=names).inference(X, names[T.argmax(1)])
    assert res.nobs == X.shape[0]  # label y against the named classes
    with pytest.raises(ValueError, match=r"sorted order.*\['high', 'low', 'mid'\]"):
        _fit(X, T[:, [1, 2, 0]], classes=["low", "mid", "high"])


def test_default_classes_are_column_indices():
    X, T = _data(K=4, seed=10)
    np.testing.assert_array_equal(_fit(X, T).classes_, np.arange(4))


def test_column_vector_y_keeps_scikit_learn_behaviour():
    X, T = _data(seed=11)
    y = T.argmax(axis=1)
    with pytest.warns(DataConversionWarning):
        column = _fit(X, y[:, None])
    _assert_same_fit(column, _fit(X, y))


# -- offsets ---------------------------------------------------------------------------
@pytest.mark.parametrize("params", PARAMS)
def test_constant_offset_shifts_intercepts_by_minus_it(params):
    X, T = _data(seed=12)
    c = np.array([0.7, -1.3, 2.0])
    plain = _fit(X, T, params=params)
    shifted = _fit(X, T, params=params, offset=np.tile(c, (X.shape[0], 1)))
    np.testing.assert_allclose(shifted.coef_, plain.coef_, atol=1e-7)
    # intercepts are reported centred (sum zero), so the shift is -c up to that constant
    np.testing.assert_allclose(shifted.intercept_, plain.intercept_ - (c - c.mean()), atol=1e-7)


@pytest.mark.parametrize("params", PARAMS)
def test_binary_offset_shifts_the_intercept(params):
    X, T = _data(K=2, seed=13)
    plain = _fit(X, T, params=params)
    n = X.shape[0]
    one_d = _fit(X, T, params=params, offset=np.full(n, 0.8))
    two_d = _fit(X, T, params=params, offset=np.tile([0.5, 1.3], (n, 1)))
    np.testing.assert_allclose(one_d.intercept_, plain.intercept_ - 0.8, atol=1e-7)
    np.testing.assert_allclose(one_d.coef_, plain.coef_, atol=1e-7)
    _assert_same_fit(two_d, one_d)


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("params", PARAMS)
def test_offset_column_equals_a_feature_with_fixed_coefficient(K, params):
    """Fit [X, z]; fixing z's coefficients as an offset z beta^T reproduces the rest."""
    X, T = _data(K=K, seed=14)
    z = np.random.default_rng(14).normal(size=X.shape[0])
    full = _fit(np.column_stack([X, z]), T, params=params)
    beta = full.coef_[:, -1]
    offset = z * beta[0] if K == 2 else np.outer(z, beta)
    fixed = _fit(X, T, params=params, offset=offset)
    np.testing.assert_allclose(fixed.coef_, full.coef_[:, :-1], atol=1e-7)
    np.testing.assert_allclose(fixed.intercept_, full.intercept_, atol=1e-7)
    np.testing.assert_allclose(
        fixed.predict_proba(X, offset=offset), full.predict_proba(np.column_stack([X, z]))
    )


def test_fit_with_offset_satisfies_optimality_conditions():
    """The gradient of the penalised cross-entropy, written here from scratch, is zero."""
    X, T = _data(n=50, seed=15)
    rng = np.random.default_rng(15)
    O, s = rng.normal(size=T.shape), rng.uniform(0.2, 2.0, size=X.shape[0])
    C = 0.5
    model = _fit(X, T, sample_weight=s, params={"C": C}, offset=O)
    A = X @ model.coef_.T + model.intercept_ + O
    G = s[:, None] * (T.sum(axis=1, keepdims=True) * sp_softmax(A, axis=1) - T)
    S = np.sum(s * T.sum(axis=1))  # mean form, as the solver's certificate
    np.testing.assert_allclose((G.T @ X + model.coef_ / C) / S, 0, atol=1e-7)
    np.testing.assert_allclose(G.sum(axis=0) / S, 0, atol=1e-7)


@pytest.mark.parametrize("K", [2, 3])
def test_prediction_offsets_add_to_the_logits(K):
    X, T = _data(K=K, seed=16)
    model = _fit(X, T)
    O = np.random.default_rng(16).normal(size=T.shape)
    base = model.decision_function(X)
    if K == 2:
        full = np.column_stack([np.zeros_like(base), base]) + O
        np.testing.assert_allclose(model.decision_function(X, offset=O), full[:, 1] - full[:, 0])
        np.testing.assert_allclose(model.decision_function(X, offset=O[:, 1]), base + O[:, 1])
    else:
        full = base + O
        np.testing.assert_allclose(model.decision_function(X, offset=O), full)
    np.testing.assert_allclose(model.predict_proba(X, offset=O), sp_softmax(full, axis=1))
    np.testing.assert_allclose(model.predict_log_proba(X, offset=O), sp_log_softmax(full, axis=1))
    np.testing.assert_array_equal(model.predict(X, offset=O), full.argmax(axis=1))


def test_offset_with_label_targets():
    X, T = _data(seed=17)
    y = T.argmax(axis=1)
    O = np.random.default_rng(17).normal(size=T.shape)
    _assert_same_fit(_fit(X, y, offset=O), _fit(X, np.eye(3)[y], offset=O))


# -- bad input -------------------------------------------------------------------------
def _bad(T, X=None, match="", **fit_kw):
    X = _data()[0] if X is None else X
    with pytest.raises(ValueError, match=match):
        SoftmaxRegression().fit(X, T, **fit_kw)


def test_bad_targets_raise_clear_errors():
    X, T = _data()
    neg = T.astype(float)
    neg[4, 1] = -1.0
    _bad(neg, match="non-negative.*row 4")
    nan = T.astype(float)
    nan[2, 0] = np.nan
    _bad(nan, match="NaN")
    inf = T.astype(float)
    inf[2, 0] = np.inf
    _bad(inf, match="infinity")
    zero = T.copy()
    zero[[3, 7]] = 0
    _bad(zero, match="2 row.*all zero.*row 3")
    _bad(T[:-1], match="29 rows but X has 30")
    _bad(T, match="3 columns", classes=["a", "b"])
    _bad(T, match="distinct", classes=["a", "b", "a"])
    _bad(T.argmax(axis=1), match="target matrix", classes=[0, 1, 2])


def test_bad_offsets_raise_clear_errors():
    X, T = _data()
    n = X.shape[0]
    _bad(T, match=r"shape \(30, 4\).*\(30, 3\)", offset=np.zeros((n, 4)))
    _bad(T, match=r"shape \(29, 3\)", offset=np.zeros((n - 1, 3)))
    _bad(T, match="cancels in the softmax", offset=np.zeros(n))
    _bad(_data(K=2)[1], match=r"shape \(31,\).*\(30, 2\).*or \(30,\)", offset=np.zeros(n + 1))
    _bad(T, match="NaN", offset=np.full((n, 3), np.nan))
    _bad(T, match="dim 3", offset=np.zeros((n, 3, 1)))
    model = _fit(X, T)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        with pytest.raises(ValueError, match=r"shape \(30, 2\)"):
            getattr(model, method)(X, offset=np.zeros((n, 2)))


# -- inference -------------------------------------------------------------------------
def test_inference_with_counts_and_offset_counts_trials():
    """Counts + offset give the inference of the repeated one-hot trials; nobs = trials."""
    X, T = _data(n=40, seed=18)
    O = np.random.default_rng(18).normal(size=T.shape)
    model = _fit(X, T, params={"penalty": None}, offset=O)
    res = model.inference(X, T, offset=O)
    Xr, yr = _repeat_trials(X, T)
    Or = np.repeat(np.vstack([O] * 3), T.T.ravel().astype(int), axis=0)
    ref = _fit(Xr, yr, params={"penalty": None}, offset=Or).inference(Xr, yr, offset=Or)
    assert res.nobs == ref.nobs == T.sum()
    np.testing.assert_allclose(res.params, ref.params, atol=1e-8)
    np.testing.assert_allclose(res.bse, ref.bse, rtol=1e-8)
    assert res.llf == pytest.approx(ref.llf, rel=1e-12)
    assert res.llnull == pytest.approx(ref.llnull, rel=1e-12)


def test_binary_inference_with_counts_matches_statsmodels_glm():
    sm = pytest.importorskip("statsmodels.api")
    X, T = _data(n=60, K=2, seed=5)
    o = np.random.default_rng(5).normal(size=X.shape[0])
    res = _fit(X, T, params={"penalty": None}, offset=o).inference(X, T, offset=o)
    glm = sm.GLM(T[:, ::-1], sm.add_constant(X), family=sm.families.Binomial(), offset=o)
    ref = glm.fit(tol=1e-13)
    np.testing.assert_allclose(res.params[:, 0], ref.params, atol=1e-8)
    np.testing.assert_allclose(res.bse[:, 0], ref.bse, rtol=1e-7)
    assert res.llf == pytest.approx(ref.llf + _binomial_log_coefficients(T), rel=1e-12)


def _binomial_log_coefficients(T):
    """statsmodels' binomial llf includes log C(m, t); the multinomial cross-entropy does not."""
    from scipy.special import gammaln

    m = T.sum(axis=1)
    return -np.sum(gammaln(m + 1) - gammaln(T + 1).sum(axis=1))


# -- command line ----------------------------------------------------------------------
def _cli_frame(seed=21):
    pd = pytest.importorskip("pandas")
    X, T = _data(n=40, seed=seed)
    O = np.random.default_rng(seed).normal(size=T.shape)
    frame = pd.DataFrame(X, columns=["x1", "x2", "x3"])
    for k, name in enumerate(["lo", "mid", "hi"]):
        frame[f"n_{name}"] = T[:, k]
        frame[f"o_{name}"] = O[:, k]
    return frame, X, T, O


def _cli(capsys, *argv):
    from softmaxreg._cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_target_and_offset_columns_equal_the_python_fit(tmp_path, capsys):
    from softmaxreg import load_model

    frame, X, T, O = _cli_frame()
    frame.to_csv(tmp_path / "grouped.csv", index=False)
    model_path = tmp_path / "grouped.softmaxreg"
    targets, offsets = "n_lo,n_mid,n_hi", "o_lo,o_mid,o_hi"
    code, out, err = _cli(
        capsys,
        "fit",
        tmp_path / "grouped.csv",
        "--target-columns",
        targets,
        "--offset-columns",
        offsets,
        "--tol",
        "1e-8",
        "-o",
        model_path,
        "--json",
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["classes"] == ["n_hi", "n_lo", "n_mid"]  # sorted, as classes_ always are
    assert report["train"]["n_trials"] == T.sum()
    cli_model = load_model(model_path)
    names = np.array(["n_lo", "n_mid", "n_hi"])
    order = np.argsort(names)  # classes_ order: n_hi, n_lo, n_mid
    ref = _fit(X, T[:, order], classes=names[order], offset=O[:, order])
    _assert_same_fit(cli_model, ref)
    code, out, err = _cli(
        capsys,
        "predict",
        model_path,
        tmp_path / "grouped.csv",
        "--proba",
        "--offset-columns",
        offsets,
    )
    assert code == 0, err
    pred = pd_read_csv(out)
    P = ref.predict_proba(X, offset=O[:, order])
    np.testing.assert_allclose(pred[[f"proba_{c}" for c in ref.classes_]], P, atol=1e-6)


def pd_read_csv(text):
    import io

    import pandas as pd

    return pd.read_csv(io.StringIO(text))


def test_cli_target_and_offset_column_errors(tmp_path, capsys):
    frame, *_ = _cli_frame()
    frame.loc[3, "n_mid"] = -1.0
    frame.to_csv(tmp_path / "bad.csv", index=False)
    data = tmp_path / "bad.csv"
    code, _, err = _cli(capsys, "fit", data, "--target", "x1", "--target-columns", "n_lo,n_mid")
    assert code == 2 and "not both" in err
    code, _, err = _cli(capsys, "fit", data, "--target-columns", "n_lo,,n_hi")
    assert code == 2 and "empty column name" in err
    code, _, err = _cli(capsys, "fit", data, "--target-columns", "n_lo,n_nope")
    assert code == 1 and "n_nope" in err and "Traceback" not in err
    code, _, err = _cli(capsys, "fit", data, "--target-columns", "n_lo,n_mid,n_hi")
    assert code == 1 and "non-negative" in err and "Traceback" not in err
    good, *_ = _cli_frame()
    good.to_csv(tmp_path / "good.csv", index=False)
    code, _, err = _cli(
        capsys,
        "fit",
        tmp_path / "good.csv",
        "--target-columns",
        "n_lo,n_mid,n_hi",
        "--offset-columns",
        "o_lo,o_mid",
    )
    assert code == 1 and "offset has shape (40, 2)" in err and "Traceback" not in err
    code, _, err = _cli(
        capsys,
        "fit",
        tmp_path / "good.csv",
        "--target-columns",
        "n_lo,n_mid,n_hi",
        "--features",
        "x1",
        "o_lo",
        "--offset-columns",
        "o_lo,o_mid,o_hi",
    )
    assert code == 1 and "cannot also be a feature" in err
