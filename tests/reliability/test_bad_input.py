"""Bad input through the Python API (RELIABILITY.md items 17-19 and 21).

Every case is either a clear error (a ``ValueError``/``TypeError`` whose message names the
problem) or a correct result checked against an independent reference. Cases already covered in
``tests/test_estimator.py`` (NaN/inf in X, 1-D/3-D X, complex X, one class, continuous y, NaN
in y, empty data, weights; string/int/bool label round trips) are not repeated here; see
docs/reliability.md for the whole map.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from softmaxreg import SoftmaxRegression, SoftmaxRegressionCV, load_model, save_model

from ._common import assert_clear, assert_probabilities, noisy

X, Y = noisy(60, 3, 3, seed=1)
TIGHT = dict(tol=1e-10, max_iter=1000)


# -- item 17/18: inputs that must be refused at fit time ------------------------------------
def _ragged():
    return [[1.0, 2.0], [3.0]] * 30, Y


FIT_ERRORS = {
    "one sample": (lambda: (X[:1], Y[:1]), "at least 2 classes"),
    "one sample per class but 1 row": (lambda: (X[:1], np.array(["a"])), "at least 2 classes"),
    "object X with text": (
        lambda: (np.array([["a", "b", "c"]] * 60, dtype=object), Y),
        "could not convert string to float",
    ),
    "DataFrame with a text column": (
        lambda: (pd.DataFrame(X, columns=list("abc")).assign(s="x"), Y),
        "could not convert string to float",
    ),
    "ragged nested list": (_ragged, "inhomogeneous"),
    "scalar X": (lambda: (3.0, Y), "Expected 2D array"),
    "X is None": (lambda: (None, Y), "Expected 2D array"),
    "y is None": (lambda: (X, None), "requires y"),
    "zero features": (lambda: (X[:, :0], Y), "0 feature"),
    "complex X, imaginary part zero": (lambda: (X.astype(complex), Y), "[Cc]omplex"),
    "inf in y": (lambda: (X, np.where(Y == 0, np.inf, Y)), "infinity"),
    "None among string labels": (
        lambda: (X, np.array(["a", "b", None], dtype=object)[Y]),
        "missing label",
    ),
    "NaN among object labels": (
        lambda: (X, np.array([1.0, np.nan, 2.0], dtype=object)[Y]),
        "missing label",
    ),
    "pandas NA among pyarrow string labels": (
        lambda: (X, pd.Series(np.array(["a", "b", None], dtype=object)[Y], dtype="string")),
        "missing label",
    ),
    "2-D y of strings": (lambda: (X, np.array([["a", "b"]] * 60)), "1-D array"),
    "continuous y, few values": (lambda: (X, Y + 0.25), "Unknown label type"),
    "sparse X with NaN": (lambda: (sp.csr_matrix(np.where(X > 1, np.nan, 0.0)), Y), "NaN"),
    "sparse X with inf": (lambda: (sp.csr_matrix(np.where(X > 1, np.inf, 0.0)), Y), "infinity"),
    "infinite sample weight": (lambda: (X, Y, np.full(60, np.inf)), "infinity"),
    "float64 features of 1e300": (lambda: (X * 1e300, Y), "too large for float64"),
    "float32 features of 1e30": (lambda: ((X * 1e30).astype(np.float32), Y), "too large"),
}


#: SoftmaxRegressionCV validates y with scikit-learn's own (clear) message here.
CV_MESSAGES = {"2-D y of strings": "1d array"}


@pytest.mark.parametrize("case", FIT_ERRORS)
@pytest.mark.parametrize("estimator", ["SoftmaxRegression", "SoftmaxRegressionCV"])
def test_fit_refuses_with_a_clear_error(case, estimator):
    make, message = FIT_ERRORS[case]
    if estimator == "SoftmaxRegressionCV":
        model, message = SoftmaxRegressionCV(Cs=2, cv=2), CV_MESSAGES.get(case, message)
    else:
        model = SoftmaxRegression()
    args = make()
    with pytest.raises((ValueError, TypeError), match=message) as info:
        model.fit(*args[:2], sample_weight=args[2] if len(args) > 2 else None)
    assert_clear(info.value)


# -- item 17/19: inputs that must be refused at predict time ---------------------------------
@pytest.fixture(scope="module")
def named():
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    return SoftmaxRegression().fit(frame, Y), frame


PREDICT_ERRORS = {
    "fewer features": (lambda f: f.to_numpy()[:, :2], "features"),
    "more features": (lambda f: np.hstack([f.to_numpy(), f.to_numpy()[:, :1]]), "features"),
    "renamed column": (lambda f: f.rename(columns={"a": "z"}), "unseen at fit time"),
    "reordered columns": (lambda f: f[["c", "b", "a"]], "same order"),
    "extra column": (lambda f: f.assign(d=1.0), "unseen at fit time"),
    "missing column": (lambda f: f[["a", "b"]], "missing"),
    "1-D row": (lambda f: f.to_numpy()[0], "Expected 2D array"),
    "3-D X": (lambda f: f.to_numpy()[:, :, None], "dim 3"),
    "zero rows": (lambda f: f.iloc[:0], "0 sample"),
    "NaN": (lambda f: f.assign(a=np.nan), "NaN"),
    "inf": (lambda f: f.assign(b=-np.inf), "infinity"),
    "complex": (lambda f: f.to_numpy() + 1j, "[Cc]omplex"),
    "text": (lambda f: f.assign(a="x"), "could not convert"),
}


@pytest.mark.parametrize("case", PREDICT_ERRORS)
@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
@pytest.mark.filterwarnings("ignore:X does not have valid feature names:UserWarning")
def test_predict_refuses_with_a_clear_error(named, case, method):
    model, frame = named
    make, message = PREDICT_ERRORS[case]
    with pytest.raises((ValueError, TypeError), match=message) as info:
        getattr(model, method)(make(frame))
    assert_clear(info.value)


def test_unfitted_model_is_a_clear_error():
    from sklearn.exceptions import NotFittedError

    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            getattr(SoftmaxRegression(), method)(X)


def test_array_without_names_after_a_named_fit_warns_and_predicts_the_same(named):
    model, frame = named
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        P = model.predict_proba(frame.to_numpy())
    np.testing.assert_array_equal(P, model.predict_proba(frame))


# -- item 18: labels --------------------------------------------------------------------------
MIXED = {
    "int, str, float": np.array([1, "a", 2.5], dtype=object),
    "str and int that print alike": np.array(["1", 1, "b"], dtype=object),
    "bool, str, int": np.array([True, "x", 3], dtype=object),
}


@pytest.mark.parametrize("kind", MIXED)
def test_mixed_labels_round_trip_in_their_types(kind, tmp_path):
    labels = MIXED[kind]
    y = labels[Y]
    model = SoftmaxRegression().fit(X, y)
    # the same fit as on integer codes, with the labels mapped back
    codes = SoftmaxRegression().fit(X, np.array([list(model.classes_).index(v) for v in y]))
    np.testing.assert_allclose(model.predict_proba(X), codes.predict_proba(X), rtol=0, atol=0)
    assert sorted(map(repr, model.classes_)) == sorted(map(repr, labels))
    pred = model.predict(X)
    assert {(type(v), v) for v in pred} <= {(type(v), v) for v in labels}  # types kept
    # "1" and 1 are two classes, never merged
    assert len(model.classes_) == len(labels)
    save_model(model, tmp_path / "m.smr")
    loaded = load_model(tmp_path / "m.smr")
    assert [(type(v), v) for v in loaded.classes_] == [(type(v), v) for v in model.classes_]
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize(
    "labels",
    [
        pd.Categorical(np.array(["lo", "mid", "hi"])),
        pd.array(["lo", "mid", "hi"], dtype="string"),
        np.array([10**15, -(10**15), 3], dtype=np.int64),
        np.array(["é", "日本", "a" * 300]),
    ],
    ids=["pandas-categorical", "pandas-string", "big-int64", "unicode-and-long"],
)
def test_other_label_containers_round_trip(labels):
    y = labels[Y]
    model = SoftmaxRegression().fit(X, y)
    assert set(model.classes_.tolist()) == set(np.asarray(labels).tolist())
    assert set(model.predict(X).tolist()) <= set(np.asarray(labels).tolist())
    reference = SoftmaxRegression().fit(X, Y)  # label order = sorted order of the labels
    P = model.predict_proba(X)
    ranks = [list(np.asarray(labels)).index(c) for c in model.classes_]
    np.testing.assert_allclose(P, reference.predict_proba(X)[:, ranks], atol=1e-6)


def test_unseen_labels_at_evaluation_count_as_errors_not_crashes():
    model = SoftmaxRegression().fit(X, Y)
    y_new = np.where(Y == 0, 7, Y)  # class 7 was never seen
    expected = np.mean(model.predict(X) == y_new)
    assert model.score(X, y_new) == pytest.approx(expected)
    assert expected < model.score(X, Y)


# -- item 21 (and edge layouts): correct results, checked against a plain C-ordered fit -----
def _reference():
    return SoftmaxRegression(**TIGHT).fit(X, Y)


def _sparse_int64():
    S = sp.csr_matrix(np.where(np.abs(X) > 0.3, X, 0.0))
    S.indices = S.indices.astype(np.int64)
    S.indptr = S.indptr.astype(np.int64)
    return S


def _explicit_zeros():
    S = sp.csr_matrix(np.where(np.abs(X) > 0.3, X, 0.0))
    S.data[::4] = 0.0  # stored zeros
    assert S.nnz > sp.csr_matrix(S.toarray()).nnz
    return S


def _dense_sparse():
    return _explicit_zeros().toarray()


def _memmap(tmp_path):
    np.save(tmp_path / "X.npy", X)
    M = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert not M.flags.writeable
    return M


LAYOUTS = {
    "non-contiguous columns": lambda tmp: (np.repeat(X, 2, axis=1)[:, ::2], X),
    "non-contiguous rows": lambda tmp: (np.repeat(X, 2, axis=0)[::2], X),
    "negative strides": lambda tmp: (X[::-1, ::-1][::-1, ::-1], X),
    "read-only memmap": lambda tmp: (_memmap(tmp), X),
    "float16": lambda tmp: (X.astype(np.float16), X.astype(np.float16).astype(np.float64)),
    "int features": lambda tmp: (np.round(3 * X).astype(np.int32), np.round(3 * X)),
    "object dtype of floats": lambda tmp: (X.astype(object), X),
    "list of lists": lambda tmp: (X.tolist(), X),
    "pandas nullable Float64": lambda tmp: (pd.DataFrame(X).astype("Float64"), X),
    "sparse with explicit zeros": lambda tmp: (_explicit_zeros(), _dense_sparse()),
    "sparse csr_array, int64 indices": lambda tmp: (
        sp.csr_array(_sparse_int64()),
        _sparse_int64().toarray(),
    ),
}


@pytest.mark.parametrize("case", LAYOUTS)
def test_layouts_and_dtypes_give_the_same_fit(case, tmp_path):
    given, plain = LAYOUTS[case](tmp_path)
    model = SoftmaxRegression(**TIGHT).fit(given, Y)
    reference = SoftmaxRegression(**TIGHT).fit(np.ascontiguousarray(plain, dtype=np.float64), Y)
    assert model.coef_.dtype == np.float64  # float16/int/object are fitted in float64
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(model.intercept_, reference.intercept_, rtol=1e-9, atol=1e-10)
    P = model.predict_proba(given)
    assert_probabilities(P, 60, 3)
    np.testing.assert_allclose(P, reference.predict_proba(plain), atol=1e-10)
    if isinstance(given, np.ndarray):
        assert given.flags.writeable or case.startswith("read-only")  # nothing was changed


def test_explicit_zeros_are_not_removed_from_the_callers_matrix():
    S = _explicit_zeros()
    before = (S.data.copy(), S.indices.copy(), S.indptr.copy())
    SoftmaxRegression().fit(S, Y).predict(S)
    for a, b in zip((S.data, S.indices, S.indptr), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_no_warning_for_clean_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SoftmaxRegression().fit(X, Y).predict_proba(X)
