"""Softmax numerics: stability for extreme logits, dtype, exactness, the Jacobian.

RELIABILITY.md item 10 (after SciPy ``special/tests/test_log_softmax.py``).
"""

import numpy as np
import pytest
from scipy import special

from softmaxreg import log_softmax, logsumexp, softmax, softmax_jacobian
from softmaxreg._softmax import row_max

HUGE = {np.float64: 1e300, np.float32: 1e38}


def _extreme_rows(dtype):
    big = HUGE[dtype]
    return np.array(
        [
            [big, -big, 0.0],
            [-big, -big, -big],
            [big, big, big],
            [big, big / 2, -big],
            [0.0, 1.0, 2.0],
            [-big, 0.0, 1e-30],
        ],
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_extreme_logits_finite_normalised_dtype(dtype):
    A = _extreme_rows(dtype)
    P = softmax(A)
    assert P.dtype == dtype
    assert np.all(np.isfinite(P))
    assert np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=4 * np.finfo(dtype).eps)
    # Rows with one dominant entry put all mass there; equal rows are uniform.
    np.testing.assert_array_equal(P[0], np.array([1, 0, 0], dtype=dtype))
    np.testing.assert_allclose(P[1], 1 / 3, rtol=np.finfo(dtype).eps * 4)
    np.testing.assert_allclose(P[2], 1 / 3, rtol=np.finfo(dtype).eps * 4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_softmax_extreme_logits_exact(dtype):
    big = HUGE[dtype]
    A = np.array([[big, 0.0], [0.0, -big], [0.0, 1000.0], [big, big]], dtype=dtype)
    L = log_softmax(A)
    assert L.dtype == dtype
    # Exact to rounding where the probability underflows: ln y = a - lse(a).
    expected = np.array(
        [[0.0, -big], [0.0, -big], [-1000.0, 0.0], [-np.log(2), -np.log(2)]], dtype=dtype
    )
    np.testing.assert_allclose(L, expected, rtol=4 * np.finfo(dtype).eps)
    assert np.all(np.isfinite(L))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_logsumexp_extreme_and_against_scipy(dtype):
    big = HUGE[dtype]
    A = np.array([[big, big], [-big, -big], [big, -big]], dtype=dtype)
    out = logsumexp(A)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, [big, -big, big], rtol=4 * np.finfo(dtype).eps)
    rng = np.random.default_rng(0)
    B = rng.normal(scale=30, size=(20, 7)).astype(dtype)
    rtol = 10 * np.finfo(dtype).eps
    np.testing.assert_allclose(logsumexp(B), special.logsumexp(B, axis=-1), rtol=rtol)
    np.testing.assert_allclose(log_softmax(B), special.log_softmax(B, axis=-1), rtol=rtol)
    np.testing.assert_allclose(softmax(B), special.softmax(B, axis=-1), rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shift", [-1e3, 7.5, 1e4])
def test_shift_invariance(dtype, shift):
    rng = np.random.default_rng(1)
    A = rng.normal(scale=5, size=(10, 4)).astype(dtype)
    eps = np.finfo(dtype).eps
    # Shifting by c changes a - max(a) by at most rounding of |c| (the inputs round).
    tol = 8 * eps * (1 + abs(shift))
    np.testing.assert_allclose(softmax(A + dtype(shift)), softmax(A), atol=tol)
    np.testing.assert_allclose(log_softmax(A + dtype(shift)), log_softmax(A), atol=tol)


def test_axis_argument_and_integer_input():
    A = np.arange(12).reshape(3, 4)
    P = softmax(A, axis=0)
    assert P.dtype == np.float64
    np.testing.assert_allclose(P.sum(axis=0), 1.0)
    np.testing.assert_allclose(P, softmax(A.T).T)
    np.testing.assert_allclose(log_softmax(A, axis=0), np.log(P))


def test_input_not_mutated():
    A = np.array([[1.0, 2.0, 3.0]])
    before = A.copy()
    softmax(A)
    log_softmax(A)
    logsumexp(A)
    softmax_jacobian(softmax(A))
    np.testing.assert_array_equal(A, before)


def test_softmax_jacobian_formula_and_structure():
    rng = np.random.default_rng(2)
    Y = softmax(rng.normal(size=(5, 4)))
    J = softmax_jacobian(Y)
    assert J.shape == (5, 4, 4)
    for n in range(5):
        np.testing.assert_allclose(J[n], np.diag(Y[n]) - np.outer(Y[n], Y[n]), atol=1e-15)
    np.testing.assert_allclose(J, np.swapaxes(J, -1, -2))  # symmetric
    np.testing.assert_allclose(J.sum(axis=-1), 0, atol=1e-15)  # rows sum to zero
    assert np.all(np.linalg.eigvalsh(J) > -1e-15)  # positive semi-definite
    assert softmax_jacobian(Y.astype(np.float32)).dtype == np.float32


def test_softmax_jacobian_against_finite_differences():
    """dy_k/da_j = y_k (I_kj - y_j), checked with a five-point stencil per logit."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=5)
    h = 1e-3
    fd = np.empty((5, 5))
    for j in range(5):
        e = np.zeros(5)
        e[j] = h
        fd[:, j] = (
            -softmax(a + 2 * e) + 8 * softmax(a + e) - 8 * softmax(a - e) + softmax(a - 2 * e)
        ) / (12 * h)
    np.testing.assert_allclose(softmax_jacobian(softmax(a)), fd, rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_jacobian_extreme_probabilities_finite(dtype):
    J = softmax_jacobian(softmax(_extreme_rows(dtype)))
    assert J.dtype == dtype
    assert np.all(np.isfinite(J))


@pytest.mark.parametrize("K, order", [(3, "C"), (16, "C"), (17, "C"), (5, "F")])
def test_row_max_equals_numpy_max(K, order):
    A = np.asarray(np.random.default_rng(0).normal(size=(50, K)) * 1e3, order=order)
    np.testing.assert_array_equal(row_max(A), A.max(axis=1))
