"""Float32 Hessian-vector products for the trust-region steps: exact value and gradient, the
same certified optimum, products within float32 accuracy of the exact ones."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import softmaxreg._objective as objective_module
from softmaxreg import ConvergenceWarning, SoftmaxRegression
from softmaxreg._objective import SINGLE_HESSP_CLASSES, Objective
from softmaxreg._sources import ArraySource


def _problem(n=600, d=8, k=SINGLE_HESSP_CLASSES + 8, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.argmax(X @ rng.standard_normal((d, k)) + rng.gumbel(size=(n, k)), axis=1)
    return X.astype(dtype), y


def _objective(X, y, block_rows=None):
    k = int(y.max()) + 1
    src = ArraySource(X, y, np.ones(len(y)), k, block_rows=block_rows)
    return Objective(src, l2=np.full(X.shape[1], 0.5))


@pytest.mark.parametrize("block_rows", [None, 97])
@pytest.mark.parametrize("form", ["dense", "sparse, few classes"])
def test_value_and_gradient_exact_products_within_float32(block_rows, form, monkeypatch):
    monkeypatch.setattr(objective_module, "SINGLE_HESSP_SPARSE_WORK", 0)
    if form == "dense":
        X, y = _problem()
    else:  # CSR data: float32 products whatever the number of classes
        X, y = _problem(k=5)
        X = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0))
    obj = _objective(X, y, block_rows)
    rng = np.random.default_rng(1)
    w, v = 0.1 * rng.standard_normal(obj.n_coef), rng.standard_normal(obj.n_coef)
    f, g, hessp = obj.loss_grad_hessp(w)
    fa, ga, approx = obj.loss_grad_approx_hessp(w)
    assert fa == f and np.array_equal(ga, g)  # bitwise: the optimum does not move
    assert next(iter(obj._last_probs[1].values())).dtype == np.float32  # half the memory
    exact, fast = hessp(v), approx(v)
    assert fast.dtype == np.float64
    rel = np.abs(fast - exact).max() / np.abs(exact).max()
    assert 0 < rel < 1e-5
    # the preconditioner reuses the float32 probabilities
    np.testing.assert_allclose(
        obj.hessian_diagonal(w), _objective(X, y).hessian_diagonal(w), rtol=1e-5
    )


@pytest.mark.parametrize("case", ["few_classes", "float32", "sparse float32", "small sparse"])
def test_exact_products_where_float32_does_not_pay(case):
    k = SINGLE_HESSP_CLASSES - 1 if case == "few_classes" else SINGLE_HESSP_CLASSES + 8
    single = case in ("float32", "sparse float32")
    X, y = _problem(k=k, dtype=np.float32 if single else np.float64)
    obj = _objective(sp.csr_matrix(X) if "sparse" in case else X, y)
    rng = np.random.default_rng(2)
    w, v = 0.1 * rng.standard_normal(obj.n_coef), rng.standard_normal(obj.n_coef)
    exact = obj.loss_grad_hessp(w)[2](v)
    assert np.array_equal(obj.loss_grad_approx_hessp(w)[2](v), exact)


def test_trust_region_fit_reaches_the_certified_optimum(monkeypatch):
    X, y = _problem(n=900)
    calls = []
    original = Objective.loss_grad_approx_hessp

    def spy(self, coef):
        calls.append(self._single_hessp())
        return original(self, coef)

    monkeypatch.setattr(Objective, "loss_grad_approx_hessp", spy)
    fast = SoftmaxRegression(solver="newton-cg", tol=1e-9).fit(X, y)
    assert calls and all(calls) and fast.result_.converged
    monkeypatch.setattr(objective_module, "SINGLE_HESSP_CLASSES", 10**9)
    exact = SoftmaxRegression(solver="newton-cg", tol=1e-9).fit(X, y)
    ref = SoftmaxRegression(solver="lbfgs", tol=1e-10, max_iter=5000).fit(X, y)
    A = np.hstack([fast.coef_, fast.intercept_[:, None]])
    for other in (exact, ref):
        B = np.hstack([other.coef_, other.intercept_[:, None]])
        assert np.abs(A - B).max() / np.abs(B).max() < 1e-7
    assert abs(fast.result_.loss - ref.result_.loss) <= 1e-12 * abs(ref.result_.loss)


def test_checkpointed_trust_region_resumes_bitwise(tmp_path):
    X, y = _problem(n=500)
    path = tmp_path / "c.ckpt"
    whole = SoftmaxRegression(solver="newton-cg", tol=1e-9).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        SoftmaxRegression(solver="newton-cg", tol=1e-9, max_iter=2).fit(X, y, checkpoint=path)
    resumed = SoftmaxRegression(solver="newton-cg", tol=1e-9).fit(X, y, checkpoint=path)
    assert np.array_equal(resumed.coef_, whole.coef_)
    assert np.array_equal(resumed.intercept_, whole.intercept_)


def test_sparse_trust_region_fit_reaches_the_exact_products_optimum(monkeypatch):
    monkeypatch.setattr(objective_module, "SINGLE_HESSP_SPARSE_WORK", 0)
    X, y = _problem(n=900, d=30, k=6)
    X = sp.csr_matrix(np.where(np.abs(X) > 1.0, X, 0.0))
    fast = SoftmaxRegression(solver="newton-cg", tol=1e-9).fit(X, y)
    monkeypatch.setattr(Objective, "_single_hessp", lambda self: False)
    exact = SoftmaxRegression(solver="newton-cg", tol=1e-9).fit(X, y)
    assert fast.result_.converged and exact.result_.converged
    A = np.hstack([fast.coef_, fast.intercept_[:, None]])
    B = np.hstack([exact.coef_, exact.intercept_[:, None]])
    assert np.abs(A - B).max() / np.abs(B).max() < 1e-7
    assert abs(fast.result_.loss - exact.result_.loss) <= 1e-12 * abs(exact.result_.loss)
