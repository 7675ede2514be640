"""The objective oracle: loss, gradient, Hessian and Hessian-vector product against
five-point-stencil finite differences, and equal values on every code path.

RELIABILITY.md items 1 and 2 (after scikit-learn ``linear_model/tests/test_linear_loss.py``).
"""

import numpy as np
import pytest
import scipy.sparse as sp

from softmaxreg._objective import Objective
from softmaxreg._sources import ArraySource

N, D, K = 23, 3, 3


def make_source(
    *,
    weights=False,
    targets="codes",
    offset=False,
    sparse=False,
    dtype=np.float64,
    block_rows=None,
    seed=0,
):
    """A small random problem; ``targets`` is "codes", "probs" (rows sum to 1) or "counts"."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D))
    X[rng.random((N, D)) < 0.3] = 0.0  # some structural zeros for CSR
    if targets == "codes":
        T = rng.integers(0, K, size=N).astype(np.intp)
    elif targets == "probs":
        T = rng.dirichlet(np.ones(K), size=N)
    else:
        T = rng.integers(0, 4, size=(N, K)).astype(float)
        T[T.sum(axis=1) == 0, 0] = 1.0
    s = rng.uniform(0.2, 3.0, size=N) if weights else np.ones(N)
    if weights:
        s[[2, 5]] = 0.0  # zero weights are legal
    o = rng.normal(size=(N, K)) if offset else None
    X = X.astype(dtype)
    if T.dtype.kind == "f":
        T = T.astype(dtype)
    if o is not None:
        o = o.astype(dtype)
    if sparse:
        X = sp.csr_matrix(X)
    return ArraySource(X, T, s, K, offset=o, block_rows=block_rows)


def make_objective(*, fit_intercept=True, penalty=True, reference=False, **source_kw):
    source = make_source(**source_kw)
    return Objective(
        source, l2=0.7 if penalty else 0.0, fit_intercept=fit_intercept, reference=reference
    )


def random_coef(obj, seed=1, scale=0.8):
    return np.random.default_rng(seed).normal(scale=scale, size=obj.n_coef)


def five_point(fun, x, h):
    """Five-point-stencil derivative of ``fun`` at ``x`` along each coordinate (columns)."""
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((-fun(x + 2 * e) + 8 * fun(x + e) - 8 * fun(x - e) + fun(x - 2 * e)) / (12 * h))
    return np.array(cols).T


CASES = [
    dict(fit_intercept=True, penalty=True, weights=False),
    dict(fit_intercept=False, penalty=True, weights=True),
    dict(fit_intercept=True, penalty=False, weights=True),
    dict(fit_intercept=False, penalty=False, weights=False),
    dict(fit_intercept=True, penalty=True, weights=True, targets="probs"),
    dict(fit_intercept=True, penalty=False, weights=True, targets="counts", offset=True),
    dict(fit_intercept=False, penalty=True, weights=False, targets="codes", offset=True),
]
CASE_IDS = [
    "intercept-penalty",
    "weights-penalty",
    "intercept-weights",
    "bare",
    "soft-targets",
    "count-targets-offset",
    "offset",
]


@pytest.mark.parametrize("reference", [False, True], ids=["symmetric", "reference"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_gradient_against_finite_differences(case, reference):
    obj = make_objective(reference=reference, **case)
    coef = random_coef(obj)
    f, g = obj.loss_grad(coef)
    assert f == pytest.approx(obj.loss(coef), rel=1e-13)
    fd = five_point(lambda c: np.array([obj.loss(c)]), coef, 1e-3)[0]
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)


def test_loss_against_direct_formula():
    """f = (1/S)[sum_n s_n sum_k t_nk (-ln y_nk) + 0.5 sum lambda W^2] with S = sum s_n m_n."""
    for targets in ["codes", "probs", "counts"]:
        obj = make_objective(weights=True, targets=targets, offset=True)
        coef = random_coef(obj)
        src = obj.source
        M = coef.reshape(obj.coef_shape)
        A = src.X @ M[:, :D].T + M[:, D] + src.offset
        logp = A - np.log(np.exp(A).sum(axis=1, keepdims=True))
        T = np.eye(K)[src.targets] if src.targets.ndim == 1 else src.targets
        S = np.sum(src.weights * T.sum(axis=1))
        expected = (-(src.weights[:, None] * T * logp).sum() + 0.35 * np.sum(M[:, :D] ** 2)) / S
        assert obj.loss(coef) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("reference", [False, True], ids=["symmetric", "reference"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_hessian_and_hessp_against_finite_differences(case, reference):
    obj = make_objective(reference=reference, **case)
    coef = random_coef(obj)
    f, g, H = obj.hessian(coef)
    assert H.shape == (obj.n_coef, obj.n_coef)
    np.testing.assert_allclose(H, H.T, atol=1e-14)
    f2, g2 = obj.loss_grad(coef)
    assert f == pytest.approx(f2, rel=1e-13)
    np.testing.assert_allclose(g, g2, rtol=1e-12, atol=1e-15)
    fd = five_point(lambda c: obj.loss_grad(c)[1], coef, 1e-3)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-9)

    # Hessian-vector products: both closures, against H @ v and against the FD of the gradient.
    g3, hessp = obj.grad_hessp(coef)
    f4, g4, hessp4 = obj.loss_grad_hessp(coef)
    np.testing.assert_allclose(g3, g2, rtol=1e-13, atol=1e-16)
    assert f4 == pytest.approx(f2, rel=1e-13)
    rng = np.random.default_rng(5)
    for _ in range(3):
        v = rng.normal(size=obj.n_coef)
        Hv = H @ v
        np.testing.assert_allclose(hessp(v), Hv, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(hessp4(v), Hv, rtol=1e-10, atol=1e-13)
        fd_v = five_point(lambda t, v=v: obj.loss_grad(coef + t[0] * v)[1], np.zeros(1), 1e-3)
        np.testing.assert_allclose(hessp(v), fd_v[:, 0], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_hessian_positive_semidefinite_and_reference_definite(case):
    for reference in (False, True):
        obj = make_objective(reference=reference, **case)
        H = obj.hessian(random_coef(obj))[2]
        evals = np.linalg.eigvalsh(H)
        assert evals.min() > -1e-12
        if reference:  # class 0 fixed: the Hessian has no null space for this full-rank X
            assert evals.min() > 1e-8


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_null_space_leaves_loss_unchanged(case):
    obj = make_objective(**case)
    Q = obj.null_space()
    n_free = (~np.asarray(obj.penalty > 0)).sum()
    assert Q.shape == (obj.n_coef, n_free)
    np.testing.assert_allclose(Q.T @ Q, np.eye(n_free), atol=1e-15)
    coef = random_coef(obj)
    f, g, H = obj.hessian(coef)
    for i in range(n_free):
        for t in (-3.0, 0.5, 10.0):
            assert obj.loss(coef + t * Q[:, i]) == pytest.approx(f, rel=1e-12)
    np.testing.assert_allclose(Q.T @ g, 0, atol=1e-14)
    np.testing.assert_allclose(H @ Q, 0, atol=1e-13)
    # Reference form removes the redundancy: no null space.
    assert make_objective(reference=True, **case).null_space().shape[1] == 0


def test_penalty_and_mean_form_scaling():
    """Scaling all weights by c leaves the data term's mean unchanged and divides lambda by c."""
    obj = make_objective(weights=True, penalty=False)
    coef = random_coef(obj)
    src = obj.source
    scaled = ArraySource(src.X, src.targets, 3.0 * src.weights, K)
    obj3 = Objective(scaled, l2=0.0)
    assert obj3.loss(coef) == pytest.approx(obj.loss(coef), rel=1e-13)
    np.testing.assert_allclose(obj3.loss_grad(coef)[1], obj.loss_grad(coef)[1], rtol=1e-12)
    # The penalty term is 0.5 * l2 * ||W||^2 / S, the intercept column unpenalised.
    pen = Objective(src, l2=2.0)
    M = coef.reshape(obj.coef_shape)
    expected = obj.loss(coef) + 0.5 * 2.0 * np.sum(M[:, :D] ** 2) / obj.scale
    assert pen.loss(coef) == pytest.approx(expected, rel=1e-13)


def _values(obj, coef, v):
    f, g, hessp = obj.loss_grad_hessp(coef)
    return f, g, hessp(v), obj.hessian(coef)[2]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_dense_csr_and_block_rows_agree(case):
    case = dict(case)
    kw = {k: case.pop(k) for k in ("fit_intercept", "penalty")}
    ref = make_objective(**kw, **case)
    coef = random_coef(ref)
    v = np.random.default_rng(7).normal(size=ref.n_coef)
    expected = _values(ref, coef, v)
    for variant in (dict(sparse=True), dict(block_rows=4), dict(sparse=True, block_rows=7)):
        got = _values(make_objective(**kw, **case, **variant), coef, v)
        assert got[0] == pytest.approx(expected[0], rel=1e-13)
        for a, b in zip(got[1:], expected[1:], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_float32_agrees_with_float64_to_derived_tolerance(case, sparse):
    """float32 evaluation error bound, derived from the operations:

    rounding the data and the coefficients to float32 and forming a logit from ``p`` products
    perturbs it by at most ``delta_a = (p + 2) eps32 (sum_i |w_i x_i| + |b| + |o|)``; the
    cross-entropy is 1-Lipschitz in each logit in the max-norm sense (its gradient
    ``m y - t`` has l1-norm <= 2 m), so row ``n`` moves by at most ``2 s_n m_n delta_a`` and
    the mean-form loss (divided by ``S = sum s_n m_n``) by ``2 delta_a``, plus float32
    summation over ``n`` rows (``n eps32``). The gradient and Hessian terms are products of
    probabilities (perturbed by ``2 delta_a``) with ``|x|``.
    """
    case = dict(case)
    kw = {k: case.pop(k) for k in ("fit_intercept", "penalty")}
    obj64 = make_objective(**kw, sparse=sparse, **case)
    obj32 = make_objective(**kw, sparse=sparse, dtype=np.float32, **case)
    assert obj32.dtype == np.float32
    assert obj32.source.X.dtype == np.float32  # no silent up-casting of the data
    coef = random_coef(obj64)
    v = np.random.default_rng(8).normal(size=obj64.n_coef)
    eps = np.finfo(np.float32).eps
    src = obj64.source
    M = obj64.full(coef)
    X = src.X.toarray() if sparse else src.X
    A_abs = np.abs(X) @ np.abs(M[:, :D]).T
    if obj64.fit_intercept:
        A_abs += np.abs(M[:, D])
    if src.offset is not None:
        A_abs += np.abs(src.offset)
    delta_a = (obj64.coef_shape[1] + 2) * eps * A_abs.max()
    xmax = max(1.0, np.abs(X).max())
    tol_f = (2 * delta_a + N * eps) * (1 + np.abs(obj64.loss(coef)))
    tol_g = (2 * delta_a + N * eps) * xmax
    f64, g64, Hv64, H64 = _values(obj64, coef, v)
    f32, g32, Hv32, H32 = _values(obj32, coef, v)
    assert abs(f32 - f64) <= tol_f
    np.testing.assert_allclose(g32, g64, rtol=0, atol=tol_g)
    np.testing.assert_allclose(Hv32, Hv64, rtol=0, atol=tol_g * xmax * np.abs(v).sum())
    np.testing.assert_allclose(H32, H64, rtol=0, atol=tol_g * xmax)
    # And the tolerance is meaningful: far below the values' own scale.
    assert tol_g < 1e-3 * np.abs(g64).max()


def test_overflowing_coefficients_give_inf_not_nan():
    obj = make_objective(penalty=False)
    coef = np.full(obj.n_coef, 1e300)
    coef[::2] *= -1
    f = obj.loss(coef)
    assert f == np.inf or np.isfinite(f)
    assert not np.isnan(f)


def test_oracle_does_not_mutate_inputs():
    obj = make_objective(weights=True, targets="probs", offset=True)
    src = obj.source
    before = [a.copy() for a in (src.X, src.targets, src.weights, src.offset)]
    coef = random_coef(obj)
    coef_before = coef.copy()
    obj.loss(coef)
    _, _, hessp = obj.loss_grad_hessp(coef)
    hessp(coef)
    obj.hessian(coef)
    np.testing.assert_array_equal(coef, coef_before)
    for a, b in zip((src.X, src.targets, src.weights, src.offset), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_zero_total_weight_is_an_error():
    src = make_source()
    zero = ArraySource(src.X, src.targets, np.zeros(N), K)
    with pytest.raises(ValueError, match="sum to zero"):
        Objective(zero)


def test_derivation_doc_names_existing_tests_and_functions():
    """docs/derivation.md names the test and the function behind each equation: keep it true."""
    import pathlib
    import re

    import softmaxreg._kernel as kernel

    root = pathlib.Path(__file__).resolve().parents[1]
    doc = (root / "docs" / "derivation.md").read_text()
    sources = "".join(p.read_text() for p in (root / "tests").glob("test_*.py"))
    names = set(re.findall(r"`(test_\w+)", doc))
    assert len(names) > 20
    missing = sorted(n for n in names if f"def {n}(" not in sources)
    assert not missing, f"docs/derivation.md names tests that do not exist: {missing}"
    for fn in re.findall(r"`_kernel\.(\w+)`", doc):
        assert hasattr(kernel, fn), fn
    for fn in re.findall(r"`Objective\.(\w+)`", doc):
        assert hasattr(Objective, fn), fn


@pytest.mark.parametrize("rows", [5, 3_000])
def test_float32_certificate_units_match_float64_and_survive_float32_overflow(rows):
    """The column root-mean-squares of float32 data (float32 squares through BLAS) equal the
    float64 ones to float32 accuracy; where float32 squares overflow, float64 takes over."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 7)) * np.logspace(-3, 3, 7)
    y = np.arange(rows) % 3
    w = rng.uniform(0.5, 2.0, rows)
    scales = [
        Objective(ArraySource(X.astype(dt), y, w.astype(dt), 3, block_rows=997)).gradient_scale()
        for dt in (np.float32, np.float64)
    ]
    np.testing.assert_allclose(scales[0], scales[1], rtol=1e-5)
    big = np.full((rows, 2), 1e19, dtype=np.float32)  # squares 1e38: their sum overflows float32
    scale = Objective(ArraySource(big, y, np.ones(rows, np.float32), 3)).gradient_scale()
    np.testing.assert_allclose(scale[:2], 1e19, rtol=1e-6)
