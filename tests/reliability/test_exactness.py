"""Numerical edge cases (RELIABILITY.md items 4, 10, 12-14), beyond tests/test_estimator.py.

Each case is a correct result, checked against an independent reference (scikit-learn, an
exactly equivalent rescaled problem, or a gradient computed here in NumPy), or a clear error;
and none may hang (a 60 s alarm guards every test of this module).
"""

import signal
import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from softmaxreg import (
    SOLVERS,
    ConvergenceWarning,
    SeparationWarning,
    SingularHessianWarning,
    SoftmaxRegression,
)

from ._common import assert_probabilities, noisy

TIGHT = dict(tol=1e-10, max_iter=2000)
EVERY_SOLVER = ["auto", *SOLVERS]


@pytest.fixture(autouse=True)
def no_hang():
    """Fail (instead of hanging the suite) if a test runs for more than 60 s."""

    def alarm(signum, frame):
        raise TimeoutError("the fit hung for 60 s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def independent_gradient(model, X, y, C):
    """Max-norm of the gradient of scikit-learn's objective ``sum CE + ||W||^2 / (2C)``,
    divided by n (the package's mean form), computed here in NumPy from the fitted
    ``coef_``/``intercept_`` (symmetric form, three or more classes)."""
    classes = list(model.classes_)
    Y = np.zeros((len(y), len(classes)))
    Y[np.arange(len(y)), [classes.index(v) for v in y]] = 1
    A = X @ model.coef_.T + model.intercept_
    A -= A.max(axis=1, keepdims=True)
    P = np.exp(A)
    P /= P.sum(axis=1, keepdims=True)
    G = np.hstack([(P - Y).T @ X + model.coef_ / C, (P - Y).sum(axis=0)[:, None]])
    return np.abs(G).max() / len(y)


def sklearn_fit(X, y, C=1.0):
    return LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=10000).fit(X, y)


# -- item 13 and the shapes: agreement with scikit-learn ----------------------------
def _shape_case(name):
    rng = np.random.default_rng(3)
    if name == "1 feature":
        return noisy(50, 1, 3, seed=4)
    if name == "n < K (one row per class)":
        return rng.normal(size=(6, 3)), np.arange(6)
    if name == "more features than samples":
        return rng.normal(size=(12, 40)), np.arange(12) % 3
    if name == "K = 2, string labels":
        X, y = noisy(50, 3, 2, seed=5)
        return X, np.array(["neg", "pos"])[y]
    if name == "rank-deficient (x3 = x1 + x2)":
        X, y = noisy(60, 2, 3, seed=6)
        return np.hstack([X, X.sum(axis=1, keepdims=True)]), y
    raise AssertionError(name)


SHAPES = [
    "1 feature",
    "n < K (one row per class)",
    "more features than samples",
    "K = 2, string labels",
    "rank-deficient (x3 = x1 + x2)",
]


@pytest.mark.parametrize("solver", EVERY_SOLVER)
@pytest.mark.parametrize("name", SHAPES)
def test_edge_shapes_agree_with_scikit_learn(name, solver):
    X, y = _shape_case(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all: an L2 fit is well posed
        model = SoftmaxRegression(solver=solver, **TIGHT).fit(X, y)
    assert model.result_.converged
    ref = sklearn_fit(X, y)
    assert_probabilities(model.predict_proba(X), len(y), len(ref.classes_))
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-5)
    np.testing.assert_array_equal(model.classes_, ref.classes_)


def test_a_thousand_classes():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(2000, 2))
    y = np.arange(2000) % 1000 * 3 - 1500  # 1000 integer labels, two rows each
    model = SoftmaxRegression(tol=1e-8, max_iter=200).fit(X, y)
    assert model.coef_.shape == (1000, 2) and model.classes_.size == 1000
    assert model.result_.converged
    assert independent_gradient(model, X, y, C=1.0) < 1e-7
    assert_probabilities(model.predict_proba(X), 2000, 1000)
    np.testing.assert_allclose(model.coef_.sum(axis=0), 0, atol=1e-10)  # item 5
    assert set(model.predict(X).tolist()) <= set(y.tolist())


def test_constant_column_gets_zero_weight():
    """With an unpenalised intercept, a constant column's L2-penalised weight is exactly
    zero at the optimum, and the fit equals the fit without the column."""
    X, y = noisy(60, 3, 3, seed=8)
    with_const = SoftmaxRegression(**TIGHT).fit(np.hstack([X, np.full((60, 1), 5.0)]), y)
    without = SoftmaxRegression(**TIGHT).fit(X, y)
    np.testing.assert_allclose(with_const.coef_[:, 3], 0, atol=1e-9)
    np.testing.assert_allclose(with_const.coef_[:, :3], without.coef_, atol=1e-9)
    np.testing.assert_allclose(with_const.intercept_, without.intercept_, atol=1e-8)


@pytest.mark.parametrize("solver", EVERY_SOLVER)
def test_duplicated_column_equals_a_rescaled_single_column(solver):
    """L2 with a column twice: both copies get w/2... exactly the fit with that column scaled
    by sqrt(2) (weights v, v on x, x <=> weight sqrt(2) v on sqrt(2) x, same penalty)."""
    X, y = noisy(80, 3, 3, seed=9)
    dup = SoftmaxRegression(solver=solver, **TIGHT).fit(np.hstack([X, X[:, :1]]), y)
    scaled = X.copy()
    scaled[:, 0] *= np.sqrt(2)
    ref = SoftmaxRegression(solver=solver, **TIGHT).fit(scaled, y)
    np.testing.assert_allclose(dup.coef_[:, 0], dup.coef_[:, 3], atol=1e-8)
    np.testing.assert_allclose(dup.coef_[:, 0] * 2, ref.coef_[:, 0] * np.sqrt(2), atol=1e-7)
    np.testing.assert_allclose(
        dup.predict_proba(np.hstack([X, X[:, :1]])), ref.predict_proba(scaled), atol=1e-9
    )


def test_unpenalised_collinear_columns_warn_and_still_predict():
    X, y = noisy(80, 2, 3, seed=10)
    Xc = np.hstack([X, X[:, :1], np.ones((80, 1))])  # duplicated and constant columns
    with pytest.warns(SingularHessianWarning, match="collinear or constant"):
        model = SoftmaxRegression(penalty=None, solver="newton", **TIGHT).fit(Xc, y)
    ref = SoftmaxRegression(penalty=None, **TIGHT).fit(X, y)  # the identified model
    np.testing.assert_allclose(model.predict_proba(Xc), ref.predict_proba(X), atol=1e-7)


# -- item 14: huge feature values ----------------------------------------------------------
@pytest.mark.parametrize("scale", [1e30, 1e100, 1e150])
@pytest.mark.parametrize("solver", ["auto", "newton", "newton-cg"])
@pytest.mark.filterwarnings("ignore::softmaxreg.SingularHessianWarning")
def test_huge_features_without_intercept_give_the_exact_fit(scale, solver):
    """Features times ``s`` with ``C`` is exactly the problem on the features with
    ``C * s**2`` (weights divided by ``s``): the same probabilities.

    (Exact Newton warns SingularHessianWarning here: the penalty is ``1e-60`` of the data
    Hessian, below its rounding; the result is still exact. The reference, with ``C = s**2``,
    is effectively unpenalised and warns for the same reason.)"""
    X, y = noisy(60, 3, 3, seed=11)
    big = SoftmaxRegression(solver=solver, fit_intercept=False, **TIGHT).fit(X * scale, y)
    ref = SoftmaxRegression(C=scale**2, fit_intercept=False, **TIGHT).fit(X, y)
    P = big.predict_proba(X * scale)
    assert_probabilities(P, 60, 3)
    np.testing.assert_allclose(P, ref.predict_proba(X), atol=1e-7)


@pytest.mark.parametrize("scale", [1e4, 1e10, 1e30])
@pytest.mark.parametrize("solver", EVERY_SOLVER)
@pytest.mark.filterwarnings("ignore::softmaxreg.SingularHessianWarning")
def test_badly_scaled_features_with_intercept_are_exact_or_not_converged(solver, scale):
    """Item 4, "converged must mean it": with an intercept, features of scale ``s`` are not
    an exact rescaling (the intercept does not scale), but the certificate must still only
    certify the optimum. At a realistic scale (1e4, e.g. incomes in units) every solver must
    converge; beyond, a solver may give up, but only with a ConvergenceWarning.

    (This caught a certificate relative to the largest starting gradient, which left the
    intercepts uncertified: lbfgs reported convergence with probabilities off by 0.05.)"""
    X, y = noisy(60, 3, 3, seed=11)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        big = SoftmaxRegression(solver=solver, max_iter=300).fit(X * scale, y)
    ref = SoftmaxRegression(C=scale**2, **TIGHT).fit(X, y)  # the same problem, unscaled
    warned = any(issubclass(r.category, ConvergenceWarning) for r in record)
    assert big.result_.converged != warned
    if scale == 1e4:
        assert big.result_.converged
    if big.result_.converged:
        P = big.predict_proba(X * scale)
        np.testing.assert_allclose(P, ref.predict_proba(X), atol=1e-4)


@pytest.mark.parametrize("solver", EVERY_SOLVER)
@pytest.mark.parametrize("scale", [1e160, 1e300])
def test_features_too_large_for_float64_are_a_clear_error(scale, solver):
    X, y = noisy(30, 2, 3, seed=12)
    with pytest.raises(ValueError, match="too large for float64.*Rescale or standardise"):
        SoftmaxRegression(solver=solver).fit(X * scale, y)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("solver", EVERY_SOLVER)
def test_streamed_features_too_large_are_a_clear_error(tmp_path, kind, solver):
    """The streamed sources get the same clear error (lbfgs used to certify a wrong fit)."""
    import pandas as pd

    import softmaxreg

    X, y = noisy(40, 2, 3, seed=12)
    frame = pd.DataFrame(X * 1e300, columns=["a", "b"]).assign(y=y)
    path = tmp_path / f"d.{kind}"
    frame.to_csv(path, index=False) if kind == "csv" else frame.to_parquet(path)
    Source = softmaxreg.CSVSource if kind == "csv" else softmaxreg.ParquetSource
    with pytest.raises(ValueError, match="too large for float64.*Rescale or standardise"):
        SoftmaxRegression(solver=solver).fit(Source(path, target="y", batch_rows=16))


def test_huge_features_at_predict_time_give_finite_probabilities():
    X, y = noisy(60, 3, 3, seed=13)
    model = SoftmaxRegression().fit(X, y)
    for scale in (1e30, 1e300):
        P = model.predict_proba(X * scale)
        assert_probabilities(P, 60, 3)
        # the intercepts are negligible at this scale: the class of the largest W x
        np.testing.assert_array_equal(
            model.predict(X * scale), model.classes_[np.argmax(X @ model.coef_.T, axis=1)]
        )
        L = model.predict_log_proba(X * scale)
        assert not np.any(np.isnan(L)) and np.all(L <= 0)
    big32 = SoftmaxRegression().fit(X.astype(np.float32), y)
    P32 = big32.predict_proba((X * 1e37).astype(np.float32))
    assert P32.dtype == np.float32 and np.all(np.isfinite(P32))


# -- item 12: separable data ---------------------------------------------------------------
def _separable(K):
    rng = np.random.default_rng(14)
    centres = 8.0 * np.eye(3)[:K]
    y = np.arange(60) % K
    return centres[y] + rng.normal(size=(60, 3)), y


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize("solver", EVERY_SOLVER)
def test_separable_data_warn_and_stay_finite(K, solver):
    X, y = _separable(K)
    with pytest.warns(SeparationWarning, match="separat.*Remedies") as record:
        model = SoftmaxRegression(penalty=None, solver=solver, max_iter=100).fit(X, y)
    assert all(r.category in (SeparationWarning, ConvergenceWarning) for r in record)
    assert np.all(np.isfinite(model.coef_)) and np.all(np.isfinite(model.intercept_))
    assert 1 <= model.n_iter_[0] <= 100
    assert_probabilities(model.predict_proba(X), 60, K)
    assert model.score(X, y) == 1.0
