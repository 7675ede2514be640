"""Subsampled Newton (``_solvers/subsampled.py``): the same optimum as the full solvers,
certified on the full data, deterministic, and a clean hand-over when subsample steps fail."""

import numpy as np
import pytest
import scipy.sparse as sp

import softmaxreg._solvers as solvers
from softmaxreg import SoftmaxRegression
from softmaxreg._objective import Objective
from softmaxreg._solvers import subsampled
from softmaxreg._sources import ArraySource

N, D, K = 4000, 4, 3


def _data(n=N, d=D, K=K, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 3.0, d)
    B = rng.normal(size=(K, d))
    A = X @ B.T / np.sqrt(d) + rng.normal(size=K)
    P = np.exp(A - A.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(P, axis=1)).sum(axis=1)
    return X.astype(dtype), np.minimum(y, K - 1)


def _objective(X, y, w=None, *, l2=1.0, reference=False, fit_intercept=True):
    w = np.ones(X.shape[0]) if w is None else w
    src = ArraySource(X, y, w, int(y.max()) + 1)
    return Objective(src, l2=l2, reference=reference, fit_intercept=fit_intercept)


def _both(obj, full="newton", tol=1e-10):
    c0 = np.zeros(obj.n_coef)
    sub = solvers.solve("subsampled-newton", obj, c0, tol=tol, max_iter=100)
    ref = solvers.solve(full, obj, c0, tol=tol, max_iter=100)
    return sub, ref


def _check_same(sub, ref, obj, atol=1e-7):
    assert sub.converged and ref.converged, (sub, ref)
    assert sub.grad_norm <= sub.gtol
    # not a hand-over: the subsample phase itself certified the optimum
    assert "stalled" not in sub.message
    np.testing.assert_allclose(sub.coef, ref.coef, atol=atol, rtol=0)
    assert abs(sub.loss - ref.loss) <= 1e-12 * abs(ref.loss) + 1e-15


def test_sample_size_rule():
    assert subsampled.sample_size(1_000_000, 204) == 1_000_000 // subsampled.FRACTION
    per_coef = subsampled.ROWS_PER_COEF * 1000  # rows for 1000 coefficients
    assert subsampled.sample_size(subsampled.MIN_RATIO * per_coef - 1, 1000) is None
    assert subsampled.sample_size(subsampled.MIN_RATIO * per_coef, 1000) == per_coef


def test_auto_picks_it_only_for_tall_in_memory_data():
    X, y = _data()
    assert solvers.choose_solver(_objective(X, y)) == "subsampled-newton"
    assert solvers.choose_solver(_objective(X[:300], y[:300])) == "newton"

    class Streamed:  # a source without row access (the protocol of streamed/Dask sources)
        def __init__(self, src):
            self._src = src

        def __getattr__(self, name):
            if name == "take":
                raise AttributeError(name)
            return getattr(self._src, name)

    obj = _objective(X, y)
    obj.source = Streamed(obj.source)
    assert solvers.choose_solver(obj) == "newton"
    assert obj.subsample(100) is None


@pytest.mark.parametrize("l2", [1.0, 1e-3])
def test_symmetric_l2_same_as_newton(l2):
    X, y = _data()
    obj = _objective(X, y, l2=l2)
    sub, ref = _both(obj)
    _check_same(sub, ref, obj)
    assert sub.solver == "subsampled-newton"
    # the intercepts stay centred (symmetric form, unpenalised null space)
    assert abs(sub.coef.reshape(K, D + 1)[:, -1].sum()) < 1e-8


def test_reference_form_unpenalised_same_as_newton():
    X, y = _data(seed=1)
    obj = _objective(X, y, l2=0.0, reference=True)
    _check_same(*_both(obj), obj)


def test_weighted_same_as_newton():
    X, y = _data(seed=2)
    w = np.random.default_rng(3).exponential(size=N)
    w[::7] = 0.0
    obj = _objective(X, y, w, l2=0.5)
    _check_same(*_both(obj), obj)


def test_no_intercept_same_as_newton():
    X, y = _data(seed=4)
    obj = _objective(X, y, l2=0.1, fit_intercept=False)
    _check_same(*_both(obj), obj)


def test_conjugate_gradient_variant_same_as_newton_cg(monkeypatch):
    monkeypatch.setattr(solvers, "NEWTON_MAX_COEF", 0)  # many coefficients: the CG variant
    X, y = _data(seed=5)
    obj = _objective(X, y, l2=1.0)
    assert solvers.full_solver(obj) == "newton-cg"
    _check_same(*_both(obj, "newton-cg"), obj)


def test_sparse_same_as_newton_cg():
    X, y = _data(seed=6)
    X[np.abs(X) < 1.0] = 0.0
    obj = _objective(sp.csr_matrix(X), y, l2=1.0)
    assert solvers.choose_solver(obj) == "subsampled-newton"
    sub, ref = _both(obj, "newton-cg")
    _check_same(sub, ref, obj)


def test_float32_reaches_float32_accuracy():
    X, y = _data(seed=7, dtype=np.float32)
    obj = _objective(X, y, l2=1.0)
    sub, ref = _both(obj, tol=1e-6)
    assert sub.converged and sub.coef.dtype == np.float64
    np.testing.assert_allclose(sub.coef, ref.coef, atol=1e-4)


def test_deterministic():
    X, y = _data(seed=8)
    obj = _objective(X, y, l2=1.0)
    a = solvers.solve("subsampled-newton", obj, np.zeros(obj.n_coef), tol=1e-9, max_iter=50)
    b = solvers.solve("subsampled-newton", obj, np.zeros(obj.n_coef), tol=1e-9, max_iter=50)
    np.testing.assert_array_equal(a.coef, b.coef)
    assert a.n_iter == b.n_iter


def test_rare_feature_absent_from_subsample_hands_over():
    """A feature non-zero on a few rows only: unpenalised, the subsample (which misses them)
    has a singular Hessian; the solver must still certify the full-data optimum."""
    X, y = _data(seed=9)
    rows = np.random.default_rng(0).choice(N, subsampled.sample_size(N, 15), replace=False)
    rare = np.setdiff1d(np.arange(N), rows)[:5]  # not in the seed-0 subsample
    X = np.hstack([X, np.zeros((N, 1))])
    X[rare, -1] = 1.0
    y[rare] = np.arange(5) % K
    obj = _objective(X, y, l2=0.0, reference=True)
    sub, ref = _both(obj)
    assert sub.converged
    np.testing.assert_allclose(sub.coef, ref.coef, atol=1e-6)


def test_stalled_subsample_steps_hand_over(monkeypatch):
    """Curvature from far too few rows: the steps stall, the full solver finishes."""
    monkeypatch.setattr(subsampled, "ROWS_PER_COEF", 1)
    monkeypatch.setattr(subsampled, "FRACTION", 10**6)
    monkeypatch.setattr(subsampled, "MAX_SLOW", 1)
    monkeypatch.setattr(subsampled, "SLOW", -1.0)  # any iteration counts as slow
    X, y = _data(seed=10)
    obj = _objective(X, y, l2=1.0)
    sub, ref = _both(obj)
    assert sub.converged and "stalled" in sub.message
    assert sub.solver == "subsampled-newton"
    assert [row["iter"] for row in sub.history] == list(range(1, sub.n_iter + 1))
    np.testing.assert_allclose(sub.coef, ref.coef, atol=1e-7)


def test_max_iter_counts_full_data_iterations():
    X, y = _data(seed=11)
    obj = _objective(X, y, l2=1.0)
    res = solvers.solve("subsampled-newton", obj, np.zeros(obj.n_coef), tol=0.0, max_iter=2)
    assert res.n_iter == 2 and not res.converged


def test_estimator_default_uses_it_and_matches_newton():
    X, y = _data(seed=12)
    auto = SoftmaxRegression(tol=1e-10).fit(X, y)
    exact = SoftmaxRegression(solver="newton", tol=1e-10).fit(X, y)
    assert auto.result_.solver == "subsampled-newton"
    np.testing.assert_allclose(auto.coef_, exact.coef_, atol=1e-7)
    np.testing.assert_allclose(auto.intercept_, exact.intercept_, atol=1e-7)


def test_tall_subsample_warm_starts_from_a_smaller_one(monkeypatch):
    """A subsample that is itself tall gets its own subsample: no full Hessian of it."""
    X, y = _data(n=70_000, seed=13)
    obj = _objective(X, y, l2=1.0)
    m = subsampled.sample_size(70_000, obj.n_coef)
    assert subsampled.sample_size(m, obj.n_coef) is not None
    sizes, inner = [], subsampled.minimize

    def spy(oracle, coef0, **kw):
        sizes.append(oracle.source.n_samples)
        return inner(oracle, coef0, **kw)

    monkeypatch.setattr(subsampled, "minimize", spy)
    sub, ref = _both(obj)
    _check_same(sub, ref, obj)
    # the top call comes from the registry; the warm starts through the module's name
    assert sizes == [m, subsampled.sample_size(m, obj.n_coef)]


def test_bfgs_operator_meets_the_secant_conditions():
    rng = np.random.default_rng(14)
    A = rng.standard_normal((6, 6))
    B0, H = A @ A.T + np.eye(6), np.diag(rng.uniform(1, 5, 6))  # model and "true" curvature
    s1, s2 = rng.standard_normal(6), rng.standard_normal(6)
    op = subsampled.bfgs_operator(lambda v: B0 @ v, [(s1, H @ s1), (s2, H @ s2)])
    np.testing.assert_allclose(op(s2), H @ s2, rtol=1e-10)  # the last pair exactly
    B = np.column_stack([op(e) for e in np.eye(6)])
    np.testing.assert_allclose(B, B.T, atol=1e-10)
    assert np.linalg.eigvalsh(B).min() > 0  # stays positive definite


@pytest.mark.parametrize("l2, reference", [(1.0, False), (0.0, True)])
def test_class_absent_from_subsample_still_certified(l2, reference):
    """A class with 3 rows, none in the subsample (whose problem then has no minimiser in
    that class's intercept): the full-data certificate still gives exact Newton's optimum."""
    n = 20_000
    X, y = _data(n=n, seed=3)
    rows = np.random.default_rng(0).choice(n, subsampled.sample_size(n, 4 * (D + 1)), False)
    rare = np.setdiff1d(np.arange(n), rows)[:3]
    y[rare] = K  # a fourth class
    obj = _objective(X, y, l2=l2, reference=reference)
    drawn = obj.subsample(subsampled.sample_size(n, obj.n_coef), subsampled.SEED)
    assert K not in drawn.source.targets  # the class is really absent from the subsample
    sub, ref = _both(obj)
    assert sub.converged
    np.testing.assert_allclose(sub.coef, ref.coef, atol=1e-6)
