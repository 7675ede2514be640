"""The kernel's shortcut at ``W = 0`` (every fit's first pass) equals the general path."""

import numpy as np
import pytest
import scipy.sparse as sp

import softmaxreg._kernel as kernel
from softmaxreg._kernel import block_loss_grad
from softmaxreg._sources import Block


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("target_rows", [False, True])
@pytest.mark.parametrize("intercept", [False, True])
@pytest.mark.parametrize("order", ["C", "F"])
def test_zero_coefficients_shortcut_equals_the_general_kernel(dtype, target_rows, intercept, order):
    rng = np.random.default_rng(11)
    n, d, K = 257, 5, 4
    X = np.asarray(rng.standard_normal((n, d)), dtype=dtype, order=order)
    T = rng.random((n, K)).astype(dtype) if target_rows else rng.integers(0, K, n)
    w = (rng.random(n) + 0.5).astype(dtype)
    W = np.zeros((K, d + 1), dtype)[:, :d]  # strided, as the objective passes it
    b = (3 * rng.standard_normal(K)).astype(dtype) if intercept else None
    block = Block(X, T, w)
    calls = []
    shortcut = kernel._loss_grad_constant

    def spy(*args):
        calls.append(1)
        return shortcut(*args)

    kernel._loss_grad_constant = spy
    try:
        got = block_loss_grad(block, W, b)
    finally:
        kernel._loss_grad_constant = shortcut
    assert calls  # the shortcut ran
    # the general path: a sparse block (row-major kernel) and a dense one at W != 0, W -> 0
    ref = block_loss_grad(Block(sp.csr_matrix(X), T, w), W, b)
    tiny = block_loss_grad(block, W + np.finfo(dtype).tiny, b)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for expected in (ref, tiny):
        assert got[0] == pytest.approx(expected[0], rel=tol)
        for a, e in zip(got[1:], expected[1:], strict=True):
            if e is None:
                assert a is None
                continue
            a, e = np.asarray(a), np.asarray(e)
            assert a.shape == e.shape and a.dtype == e.dtype
            np.testing.assert_allclose(a, e, rtol=tol, atol=tol * np.abs(e).max())
    assert got[3].flags.writeable and np.allclose(got[3].sum(axis=1), 1.0, rtol=tol)


def test_offsets_take_the_general_path():
    rng = np.random.default_rng(2)
    X, codes = rng.standard_normal((50, 3)), rng.integers(0, 3, 50)
    offset = rng.standard_normal((50, 3))
    W = np.zeros((3, 3))
    got = block_loss_grad(Block(X, codes, np.ones(50), offset), W, np.zeros(3))
    P = np.exp(offset - offset.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got[3], P, rtol=1e-14)
