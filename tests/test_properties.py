"""Property tests (hypothesis; the deterministic "ci" profile of tests/conftest.py).

RELIABILITY.md item 11: shift invariance, class and row permutation equivariance,
``predict == argmax(predict_proba)``, fit invariant to row order.
"""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from softmaxreg import SoftmaxRegression, log_softmax, softmax

FINITE64 = st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)
MODERATE = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
logits = hnp.arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(2, 6)), elements=FINITE64)
moderate_logits = hnp.arrays(
    np.float64, st.tuples(st.integers(1, 5), st.integers(2, 6)), elements=MODERATE
)


@given(logits)
def test_softmax_finite_normalised_for_any_finite_logits(A):
    P = softmax(A)
    assert np.all(np.isfinite(P)) and np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-13)
    L = log_softmax(A)
    assert not np.any(np.isnan(L)) and np.all(L <= 0)
    # The largest logit of each row has the largest probability.
    np.testing.assert_array_equal(P[np.arange(len(A)), A.argmax(axis=1)], P.max(axis=1))


@given(moderate_logits, st.floats(-1e3, 1e3, allow_nan=False))
def test_softmax_shift_invariance(A, c):
    tol = 8 * np.finfo(float).eps * (1 + abs(c) + np.abs(A).max())
    np.testing.assert_allclose(softmax(A + c), softmax(A), atol=tol)
    np.testing.assert_allclose(log_softmax(A + c), log_softmax(A), atol=tol)


@given(moderate_logits, st.randoms(use_true_random=False))
def test_softmax_class_permutation_equivariance(A, random):
    perm = list(range(A.shape[1]))
    random.shuffle(perm)
    # Equal up to the rounding of the row sum, whose order changes.
    eps = np.finfo(float).eps
    np.testing.assert_allclose(softmax(A[:, perm]), softmax(A)[:, perm], rtol=8 * eps)
    tol = 8 * eps * (1 + np.abs(A).max())
    np.testing.assert_allclose(log_softmax(A[:, perm]), log_softmax(A)[:, perm], atol=tol)


problems = st.tuples(
    st.integers(0, 2**32 - 1),  # seed
    st.integers(12, 40),  # n
    st.integers(1, 3),  # d
    st.integers(2, 4),  # K
)


def _data(seed, n, d, K):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.arange(n) % K  # every class present
    rng.shuffle(y)
    return X, y, rng


def _fit(X, y, **kw):
    return SoftmaxRegression(C=1.0, tol=1e-10, max_iter=500, **kw).fit(X, y)


@given(problems)
def test_predict_is_argmax_of_predict_proba(problem):
    X, y, _ = _data(*problem)
    model = _fit(X, y)
    P = model.predict_proba(X)
    np.testing.assert_array_equal(model.predict(X), model.classes_[P.argmax(axis=1)])
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-13)


@given(problems)
def test_fit_invariant_to_row_order(problem):
    X, y, rng = _data(*problem)
    perm = rng.permutation(len(y))
    a, b = _fit(X, y), _fit(X[perm], y[perm])
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-7)
    np.testing.assert_allclose(a.intercept_, b.intercept_, atol=1e-7)
    np.testing.assert_allclose(a.predict_proba(X)[perm], a.predict_proba(X[perm]), atol=1e-15)


@given(problems)
def test_class_permutation_equivariance(problem):
    """Renaming the classes permutes the probability columns and nothing else."""
    X, y, rng = _data(*problem)
    K = problem[3]
    perm = rng.permutation(K)  # class k is renamed perm[k]
    a, b = _fit(X, y), _fit(X, perm[y])
    Pa, Pb = a.predict_proba(X), b.predict_proba(X)
    # Column perm[k] of b is column k of a.
    np.testing.assert_allclose(Pb[:, perm], Pa, atol=1e-7)


@given(problems, st.floats(-5, 5, allow_nan=False))
def test_model_shift_invariance_of_intercepts(problem, c):
    """Adding the same constant to every class's intercept changes no probability."""
    X, y, _ = _data(*problem)
    model = _fit(X, y)
    if len(model.classes_) == 2:  # one logit against a zero reference: no free shift
        return
    P = model.predict_proba(X)
    model.intercept_ = model.intercept_ + c
    np.testing.assert_allclose(model.predict_proba(X), P, atol=1e-13)
