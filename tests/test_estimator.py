"""The estimator: golden references, agreement with scikit-learn, RELIABILITY items 3 and 5-9,
bad input and label round-trips."""

import contextlib

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits, load_iris
from sklearn.linear_model import LogisticRegression

from softmaxreg import SOLVERS, SingularHessianWarning, SoftmaxRegression
from softmaxreg._objective import Objective
from softmaxreg._sources import ArraySource

ALL_SOLVERS = [*SOLVERS, "auto"]
IRIS_X, IRIS_Y = load_iris(return_X_y=True)
TIGHT = dict(tol=1e-10, max_iter=1000)


def _noisy(n, d, K, seed):
    """Gaussian features, labels drawn from a softmax model: never separable."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    P = np.exp(X @ rng.normal(size=(K, d)).T)
    P /= P.sum(axis=1, keepdims=True)
    return X, np.array([rng.choice(K, p=p) for p in P])


def _sklearn(X, y, C=1.0, sample_weight=None, **kw):
    """scikit-learn's multinomial fit, solved to high accuracy (its newton-cg at tol 1e-12)."""
    ref = LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=10000, **kw)
    return ref.fit(X, y, sample_weight=sample_weight)


# -- R glmnet golden numbers (RELIABILITY.md item 3) ---------------------------------------
# Source: scikit-learn ``linear_model/tests/test_logistic.py::test_logistic_glmnet``:
#   library("glmnet"); options(digits=10)
#   df <- data.frame(a=-4:4, b=c(0,0,1,0,1,1,1,0,0), y=...)
#   fit <- glmnet(x=x, y=y, alpha=0, lambda=1, intercept=T, family="multinomial",
#                 standardize=F, thresh=1e-12, nlambda=1); coef(fit, s=1)
# glmnet minimises (1/n) sum CE + lambda/2 ||W||^2, i.e. C = 1/(n lambda) = 1/9 here.
GLMNET_X = np.array([[-4, -3, -2, -1, 0, 1, 2, 3, 4], [0, 0, 1, 0, 1, 1, 1, 0, 0]]).T
GLMNET_Y3 = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
GLMNET_INTERCEPT3 = [-0.12004759652, 2.251747383e-01, -0.1051271418]
GLMNET_COEF3 = [
    [-0.38023389305, -0.01226499932],
    [-8.164030176e-05, 4.734548012e-02],
    [0.3803155334, -0.0350804808],
]
# family="binomial", thresh=1e-10, y=c(0,0,0,1,1,1,1,1,1)
GLMNET_Y2 = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
GLMNET_INTERCEPT2 = [0.89230405539]
GLMNET_COEF2 = [[0.44464569182, 0.01457563448]]


@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_glmnet_golden_numbers(solver):
    model = SoftmaxRegression(C=1 / 9, solver=solver, tol=1e-12, max_iter=1000)
    model.fit(GLMNET_X, GLMNET_Y3)
    np.testing.assert_allclose(model.intercept_, GLMNET_INTERCEPT3, rtol=1e-5)
    # glmnet prints 10 significant digits but its own convergence (thresh=1e-12 on the
    # deviance change) limits the coefficients to about 1e-9 absolute; the -8.16e-05 entry
    # differs from the exact optimum by 8e-10, hence atol=1e-8 (as scikit-learn's test).
    np.testing.assert_allclose(model.coef_, GLMNET_COEF3, rtol=1e-5, atol=1e-8)
    model.fit(GLMNET_X, GLMNET_Y2)
    np.testing.assert_allclose(model.intercept_, GLMNET_INTERCEPT2, rtol=1e-5)
    np.testing.assert_allclose(model.coef_, GLMNET_COEF2, rtol=1e-5)


# -- agreement with scikit-learn (same C, same optimum) -------------------------------------
def _problem(name):
    if name == "iris":
        return IRIS_X, IRIS_Y, None
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        return X[:500] / 16.0, y[:500], None
    if name == "weighted":
        X, y = _noisy(120, 4, 4, 0)
        return X, y, np.random.default_rng(1).uniform(0, 3, size=120)
    if name == "sparse":
        X, y = _noisy(150, 20, 3, 2)
        X[np.random.default_rng(3).random(X.shape) < 0.8] = 0.0
        return sp.csr_matrix(X), y, None
    X, y = _noisy(100, 3, 2, 4)  # binary
    return X, y, None


@pytest.mark.parametrize("name", ["iris", "digits", "weighted", "sparse", "binary"])
def test_agrees_with_sklearn_logistic_regression(name):
    X, y, sw = _problem(name)
    C = 0.5
    ref = _sklearn(X, y, C=C, sample_weight=sw)
    model = SoftmaxRegression(C=C, **TIGHT).fit(X, y, sample_weight=sw)
    assert model.result_.converged
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X), rtol=0, atol=1e-6)
    assert model.coef_.shape == ref.coef_.shape
    assert model.intercept_.shape == ref.intercept_.shape
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        model.decision_function(X) if name == "binary" else model.predict_proba(X),
        ref.decision_function(X) if name == "binary" else ref.predict_proba(X),
        rtol=0,
        atol=1e-5,
    )
    np.testing.assert_array_equal(model.predict(X), ref.predict(X))


def test_binary_shapes_follow_sklearn():
    X, y, _ = _problem("binary")
    labels = np.array(["no", "yes"])[y]
    model = SoftmaxRegression(**TIGHT).fit(X, labels)
    assert model.coef_.shape == (1, 3)
    assert model.intercept_.shape == (1,)
    df = model.decision_function(X)
    assert df.shape == (100,)
    P = model.predict_proba(X)
    assert P.shape == (100, 2)
    # decision_function is the log-odds of classes_[1]; positive means "yes".
    np.testing.assert_allclose(df, np.log(P[:, 1] / P[:, 0]), atol=1e-10)
    np.testing.assert_array_equal(model.predict(X), np.where(df > 0, "yes", "no"))


# -- RELIABILITY items 5-9 -------------------------------------------------------------------
@pytest.mark.parametrize("penalty", ["l2", None])
@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_identifiability_rows_sum_to_zero(solver, penalty):
    X, y = _noisy(150, 3, 4, 5)
    model = SoftmaxRegression(solver=solver, penalty=penalty, **TIGHT).fit(X, y)
    np.testing.assert_allclose(model.coef_.sum(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(model.intercept_.sum(), 0, atol=1e-10)


def test_unpenalised_agrees_with_sklearn_and_statsmodels():
    """Unpenalised fit: scikit-learn (C=inf) and statsmodels ``MNLogit`` as references."""
    sm = pytest.importorskip("statsmodels.api")
    X, y = _noisy(200, 3, 3, 6)
    ref = LogisticRegression(C=np.inf, solver="newton-cg", tol=1e-12, max_iter=10000)
    ref.fit(X, y)
    model = SoftmaxRegression(penalty=None, **TIGHT).fit(X, y)
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    mn = sm.MNLogit(y, sm.add_constant(X)).fit(method="newton", maxiter=100, disp=0)
    np.testing.assert_allclose(model.predict_proba(X), mn.predict(sm.add_constant(X)), atol=1e-8)
    # Reference-class parameters: class k's logit minus class 0's.
    coef = np.hstack([model.intercept_[:, None], model.coef_])
    np.testing.assert_allclose((coef[1:] - coef[0]).T, mn.params, atol=1e-6)


@pytest.mark.parametrize("penalty", ["l2", None])
@pytest.mark.parametrize("weighted", [False, True])
def test_intercept_only_model_gives_log_class_frequencies(penalty, weighted):
    """A constant-free design (one all-zero feature): the intercepts are the log class
    frequencies up to a constant, and the probabilities are the (weighted) frequencies."""
    y = np.repeat(["a", "b", "c"], [5, 12, 3])
    sw = np.random.default_rng(0).uniform(0.5, 2, size=y.size) if weighted else None
    X = np.zeros((y.size, 1))
    # Unpenalised, the all-zero feature is not identified: Newton says so and takes the
    # minimum-norm (pseudo-inverse) step, leaving its coefficient at zero.
    singular = pytest.warns(SingularHessianWarning, match="constant features")
    with singular if penalty is None else contextlib.nullcontext():
        model = SoftmaxRegression(penalty=penalty, **TIGHT).fit(X, y, sample_weight=sw)
    w = np.ones(y.size) if sw is None else sw
    freq = np.array([w[y == c].sum() for c in "abc"]) / w.sum()
    b = model.intercept_
    np.testing.assert_allclose(b - b.mean(), np.log(freq) - np.log(freq).mean(), atol=1e-8)
    np.testing.assert_allclose(model.predict_proba(X[:1])[0], freq, atol=1e-9)
    np.testing.assert_allclose(model.coef_, 0, atol=1e-12)


@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_sample_weights_equal_row_repetition(solver):
    X, y = _noisy(40, 3, 3, 7)
    reps = np.random.default_rng(8).integers(0, 4, size=40)  # zeros included
    reps[:3] = [0, 2, 3]
    weighted = SoftmaxRegression(solver=solver, **TIGHT).fit(X, y, sample_weight=reps)
    Xr, yr = np.repeat(X, reps, axis=0), np.repeat(y, reps)
    repeated = SoftmaxRegression(solver=solver, **TIGHT).fit(Xr, yr)
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, atol=1e-7)
    np.testing.assert_allclose(weighted.intercept_, repeated.intercept_, atol=1e-7)


def test_class_weights_equal_sample_weights():
    X, y = _noisy(60, 3, 3, 9)
    cw = {0: 0.5, 1: 2.0, 2: 3.0}
    a = SoftmaxRegression(class_weight=cw, **TIGHT).fit(X, y)
    b = SoftmaxRegression(**TIGHT).fit(X, y, sample_weight=np.array([cw[k] for k in y]))
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-9)
    np.testing.assert_allclose(a.intercept_, b.intercept_, atol=1e-9)
    # "balanced" equals scikit-learn's balanced weights, also combined with sample weights.
    sw = np.random.default_rng(10).uniform(0.5, 2, size=60)
    bal = SoftmaxRegression(class_weight="balanced", **TIGHT).fit(X, y, sample_weight=sw)
    totals = np.bincount(y, weights=sw)
    manual = sw * (sw.sum() / (3 * totals))[y]
    c = SoftmaxRegression(**TIGHT).fit(X, y, sample_weight=manual)
    np.testing.assert_allclose(bal.coef_, c.coef_, atol=1e-9)


@pytest.mark.parametrize("sparse", [False, True])
def test_inputs_never_mutated(sparse):
    X, y = _noisy(50, 3, 3, 11)
    sw = np.linspace(0.5, 2, 50)
    Xin = sp.csr_matrix(X) if sparse else X.copy()
    copies = (X.copy(), y.copy(), sw.copy())
    model = SoftmaxRegression(class_weight="balanced").fit(Xin, y, sample_weight=sw)
    model.predict_proba(Xin)
    model.predict(Xin)
    got = Xin.toarray() if sparse else Xin
    for a, b in zip((got, y, sw), copies, strict=True):
        np.testing.assert_array_equal(a, b)
    # Read-only inputs work (nothing is written into them).
    for arr in (X, y, sw):
        arr.setflags(write=False)
    SoftmaxRegression().fit(X, y, sample_weight=sw).predict(X)


def test_all_zero_weights_error():
    X, y = _noisy(20, 2, 3, 12)
    with pytest.raises(ValueError, match="(weights|non-zero)"):
        SoftmaxRegression().fit(X, y, sample_weight=np.zeros(20))


@pytest.mark.parametrize("sparse", [False, True])
def test_float32_in_float32_out_agrees_with_float64(sparse):
    """float32 fit vs float64 fit, to a tolerance derived from the certificates.

    Linearising at the float64 optimum ``w64`` (Hessian ``H``), a point whose exact gradient
    is ``g`` lies at ``H^+ g`` from it (``H^+`` the pseudo-inverse: the null direction is
    fixed by centring). The float32 fit certifies ``|g32(w32)|_inf <= gtol32`` on its float32
    gradient, which differs from the exact gradient by the float32 evaluation error ``e``
    (measured at ``w64``, doubled for its variation); so
    ``|w32 - w64|_inf <= ||H^+||_inf (gtol32 + gtol64 + 2 e)``.
    """
    X, y = _noisy(200, 4, 3, 13)
    X64 = sp.csr_matrix(X) if sparse else X
    X32 = X64.astype(np.float32)
    m64 = SoftmaxRegression(tol=1e-10).fit(X64, y)
    m32 = SoftmaxRegression(tol=1e-10).fit(X32, y)
    assert m32.coef_.dtype == np.float32 and m32.intercept_.dtype == np.float32
    assert m32.predict_proba(X32).dtype == np.float32
    assert m32.decision_function(X32).dtype == np.float32
    assert m64.coef_.dtype == np.float64
    obj64 = Objective(ArraySource(X64, y, np.ones(200), 3), l2=1.0)
    obj32 = Objective(ArraySource(X32, y, np.ones(200), 3), l2=1.0)
    w64 = np.hstack([m64.coef_, m64.intercept_[:, None]]).ravel()
    w32 = np.hstack([m32.coef_, m32.intercept_[:, None]]).astype(np.float64).ravel()
    _, g64, H = obj64.hessian(w64)
    e = np.abs(obj32.loss_grad(w64)[1] - g64).max()
    H_inv_norm = np.abs(np.linalg.pinv(H, hermitian=True)).sum(axis=1).max()
    # The certificates bound the gradient in Stopping's units; convert to raw units.
    scale = getattr(obj64, "gradient_scale", None)
    units = np.max(scale()) if callable(scale) else 1.0
    bound = H_inv_norm * (units * (m32.result_.gtol + m64.result_.gtol) + 2 * e)
    assert np.abs(w32 - w64).max() <= bound
    assert bound < 1e-2 * np.abs(w64).max()  # the tolerance is not vacuous
    np.testing.assert_allclose(m32.predict_proba(X32), m64.predict_proba(X64), atol=bound)


# -- bad input -------------------------------------------------------------------------------
BAD_INPUTS = {
    "nan-in-X": (lambda X, y: (np.where(X == X[0, 0], np.nan, X), y, None), "NaN"),
    "inf-in-X": (lambda X, y: (np.where(X == X[0, 0], np.inf, X), y, None), "infinity"),
    "1d-X": (lambda X, y: (X[:, 0], y, None), "2D array"),
    "3d-X": (lambda X, y: (X[:, :, None], y, None), "dim 3"),
    "one-class": (lambda X, y: (X, np.zeros_like(y), None), "at least 2 classes"),
    "continuous-y": (lambda X, y: (X, y + 0.5 * np.arange(y.size), None), "Unknown label"),
    "nan-in-y": (lambda X, y: (X, np.where(y == 0, np.nan, y), None), "NaN"),
    "length-mismatch": (lambda X, y: (X, y[:-1], None), "inconsistent numbers of samples"),
    "weights-mismatch": (lambda X, y: (X, y, np.ones(y.size - 1)), "sample_weight.shape"),
    "negative-weights": (lambda X, y: (X, y, -np.ones(y.size)), "[Nn]egative"),
    "nan-weights": (lambda X, y: (X, y, np.full(y.size, np.nan)), "NaN"),
    "empty": (lambda X, y: (X[:0], y[:0], None), "0 sample"),
    "complex-X": (lambda X, y: (X + 1j, y, None), "[Cc]omplex"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_a_clear_value_error(case):
    make, message = BAD_INPUTS[case]
    X, y = _noisy(30, 3, 3, 14)
    Xb, yb, sw = make(X, y)
    with pytest.raises(ValueError, match=message):
        SoftmaxRegression().fit(Xb, yb, sample_weight=sw)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (dict(C=0), "C must be"),
        (dict(C=np.inf), "C must be"),
        (dict(penalty="lasso"), "penalty must be"),
        (dict(max_iter=0), "max_iter must be"),
        (dict(tol=-1.0), "tol must be"),
        (dict(C=True), "C must be"),
        (dict(max_iter=True), "max_iter must be"),
        (dict(fit_intercept="no"), "fit_intercept must be"),
        (dict(class_weight={0: -1.0}), "class_weight values must be finite and non-negative"),
        (dict(class_weight={0: np.nan}), "class_weight values must be finite and non-negative"),
    ],
)
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        SoftmaxRegression(**params).fit(IRIS_X, IRIS_Y)


def test_bad_input_at_prediction():
    model = SoftmaxRegression().fit(IRIS_X, IRIS_Y)
    with pytest.raises(ValueError, match="features"):
        model.predict(IRIS_X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        model.predict_proba(np.full((2, 4), np.nan))


# -- labels ----------------------------------------------------------------------------------
LABELS = {
    "str": np.array(["setosa", "versicolor", "virginica"]),
    "long-str": np.array(["x" * 200, "x" * 199 + "y", "short"]),
    "object-str": np.array(["alpha", "b" * 80, "c"], dtype=object),
    "int": np.array([-5, 7, 1000]),
    "uint8": np.array([1, 2, 3], dtype=np.uint8),
    "bool": np.array([False, True, True]),
}


@pytest.mark.parametrize("kind", LABELS)
def test_labels_round_trip_in_their_type(kind):
    labels = LABELS[kind][IRIS_Y]
    model = SoftmaxRegression().fit(IRIS_X, labels)
    pred = model.predict(IRIS_X)
    assert pred.dtype == model.classes_.dtype
    assert set(model.classes_.tolist()) == set(labels.tolist())
    assert set(pred.tolist()) <= set(labels.tolist())  # no truncated or altered labels
    assert type(pred[0]) is type(labels[0])
    assert model.score(IRIS_X, labels) > 0.9 or kind == "bool"
    if kind == "long-str":
        assert max(len(s) for s in pred) == 200
    # A plain Python list of labels round-trips too.
    listed = SoftmaxRegression().fit(IRIS_X, labels.tolist())
    assert set(listed.predict(IRIS_X).tolist()) <= set(labels.tolist())


def test_predict_is_argmax_of_proba_and_log_proba_is_exact():
    model = SoftmaxRegression().fit(IRIS_X, IRIS_Y)
    P = model.predict_proba(IRIS_X)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_array_equal(model.predict(IRIS_X), model.classes_[P.argmax(axis=1)])
    np.testing.assert_allclose(model.predict_log_proba(IRIS_X), np.log(P), rtol=1e-12)
    far = IRIS_X[:2] * 1e6  # probabilities underflow; log-probabilities stay finite and exact
    L = model.predict_log_proba(far)
    assert np.all(np.isfinite(L))


def test_warm_start_continues_from_previous_solution():
    model = SoftmaxRegression(warm_start=True, tol=1e-8, max_iter=1000).fit(IRIS_X, IRIS_Y)
    first = model.n_iter_[0]
    model.fit(IRIS_X, IRIS_Y)
    assert model.n_iter_[0] < first


@pytest.mark.parametrize("solver", ALL_SOLVERS)
def test_overflowing_features_are_a_clear_error(solver):
    """RELIABILITY item 14 (in part): features that overflow the gradient (float32 near its
    range) or the Hessian (exact Newton at 1e300) are named, never certified with an
    infinite gtol or reported as a LinAlgError."""
    with pytest.raises(ValueError, match="(?s)(overflow|too large).*float32|float32.*overflow"):
        SoftmaxRegression(solver=solver).fit((IRIS_X * 1e37).astype(np.float32), IRIS_Y)
    if solver in ("newton", "auto"):
        with pytest.raises(ValueError, match="(overflow|too large).*Rescale"):
            SoftmaxRegression(solver=solver).fit(IRIS_X * 1e300, IRIS_Y)


def test_memory_layouts_and_sparse_formats_give_the_same_fit():
    """RELIABILITY item 21: Fortran order, read-only memmap-like arrays, CSR with int64
    indices, CSC and COO all fit the same model as the C-ordered dense array."""
    X, y = _noisy(80, 4, 3, 15)
    ref = SoftmaxRegression(**TIGHT).fit(X, y)
    csr64 = sp.csr_matrix(X)
    csr64.indices = csr64.indices.astype(np.int64)
    csr64.indptr = csr64.indptr.astype(np.int64)
    readonly = X.copy()
    readonly.setflags(write=False)
    variants = [np.asfortranarray(X), readonly, csr64, sp.csc_matrix(X), sp.coo_matrix(X)]
    for Xv in variants:
        model = SoftmaxRegression(**TIGHT).fit(Xv, y)
        np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-8)
        np.testing.assert_allclose(model.predict_proba(Xv), ref.predict_proba(X), atol=1e-9)


def test_penalty_factor_without_a_penalty_warns_and_a_scalar_offset_is_refused():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 4)), rng.integers(0, 3, 200)
    with pytest.warns(UserWarning, match="penalty_factor"):
        SoftmaxRegression(penalty=None, penalty_factor=[1, 1, 1, 0]).fit(X, y)
    with pytest.raises(ValueError, match="offset must be an array"):
        SoftmaxRegression().fit(IRIS_X, IRIS_Y, offset=1.0)
