"""The kernel's class-major path (Fortran-ordered blocks, as streamed) equals its row-major
path (C-ordered blocks) to rounding, for every kernel function and block variant."""

import numpy as np
import pytest

from softmaxreg._kernel import (
    _times_xt,
    block_hess_diag,
    block_hessian,
    block_hessp,
    block_loss,
    block_loss_grad,
)
from softmaxreg._sources import Block


def _rel(a, c):
    if a is None:
        assert c is None
        return 0.0
    a, c = np.asarray(a, float), np.asarray(c, float)
    return float(np.max(np.abs(a - c)) / max(np.max(np.abs(a)), 1e-300))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("target_rows", [False, True])
@pytest.mark.parametrize("offset", [False, True])
@pytest.mark.parametrize("intercept", [False, True])
def test_fortran_block_equals_c_block(dtype, target_rows, offset, intercept):
    rng = np.random.default_rng(7)
    n, d, K = 301, 6, 4
    XC = rng.standard_normal((n, d)).astype(dtype)
    T = rng.random((n, K)).astype(dtype) if target_rows else rng.integers(0, K, n)
    w = (rng.random(n) + 0.5).astype(dtype)
    o = rng.standard_normal((n, K)).astype(dtype) if offset else None
    cblk, fblk = Block(XC, T, w, o), Block(np.asfortranarray(XC), T, w, o)
    assert fblk.X.flags.f_contiguous and not fblk.X.flags.c_contiguous
    W = rng.standard_normal((K, d + 1))[:, :d].astype(dtype)  # strided, as the objective passes
    b = rng.standard_normal(K).astype(dtype) if intercept else None
    V = rng.standard_normal((K, d)).astype(dtype)
    vb = rng.standard_normal(K).astype(dtype) if intercept else None
    tol = 1e-12 if dtype == np.float64 else 1e-5
    rc, rf = block_loss_grad(cblk, W, b), block_loss_grad(fblk, W, b)
    assert rf[3].shape == (n, K)
    for a, c in zip(rc, rf, strict=True):
        assert _rel(a, c) < tol
    assert _rel(block_loss(cblk, W, b), block_loss(fblk, W, b)) < tol
    assert _rel(rc[0], block_loss(fblk, W, b)) < tol
    Pc, Pf = rc[3], rf[3]
    for P in (Pf, np.ascontiguousarray(Pf)):  # either layout of the probabilities
        for a, c in zip(block_hessp(cblk, Pc, V, vb), block_hessp(fblk, P, V, vb), strict=True):
            assert _rel(a, c) < tol
    for a, c in zip(
        block_hess_diag(cblk, Pc, intercept), block_hess_diag(fblk, Pf, intercept), strict=True
    ):
        assert _rel(a, c) < tol
    assert _rel(block_hessian(cblk, Pc, intercept), block_hessian(fblk, Pf, intercept)) < tol


@pytest.mark.parametrize(
    "dtype, order, K, d",
    [
        (np.float32, "C", 10, 100),  # the transposed sgemm
        (np.float32, "C", 40, 100),  # many classes: M X^T directly
        (np.float32, "C", 10, 20),  # few features: directly
        (np.float32, "F", 10, 100),  # streamed (Fortran) blocks: directly
        (np.float64, "C", 10, 100),
    ],
)
def test_logit_product_in_either_form_is_m_times_x_transposed(dtype, order, K, d):
    rng = np.random.default_rng(0)
    X = np.asarray(rng.standard_normal((300, d)), dtype=dtype, order=order)
    M = rng.standard_normal((K, d)).astype(dtype)
    got = _times_xt(M, X)
    exact = M.astype(np.float64) @ X.astype(np.float64).T
    assert got.dtype == dtype and got.flags.c_contiguous and got.shape == (K, 300)
    assert _rel(exact, got) < (1e-5 if dtype == np.float32 else 1e-12)
