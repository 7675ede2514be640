"""L1, elastic-net and grouped-lasso penalties: prox operators, the optimality certificate,
scikit-learn ``saga`` parity (same C meaning) and the grouped lasso's KKT conditions."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_iris, make_classification
from sklearn.linear_model import LogisticRegression

from softmaxreg import ConvergenceWarning, SoftmaxRegression
from softmaxreg._objective import Objective
from softmaxreg._path import build_problem
from softmaxreg._proximal import NonSmoothPenalty, split_penalty
from softmaxreg._solvers.proximal import solve_penalised
from softmaxreg._sources import ArraySource

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = (X_IRIS - X_IRIS.mean(0)) / X_IRIS.std(0)
TIGHT = dict(tol=1e-9, max_iter=500)


def _problem(X, y, penalty, C, l1_ratio=None, penalty_factor=None, sw=None):
    K = np.unique(y).size
    sw = np.ones(len(y)) if sw is None else sw
    source = ArraySource(X, y.astype(np.intp), sw, K)
    return build_problem(
        source, penalty=penalty, C=C, l1_ratio=l1_ratio, penalty_factor=penalty_factor
    )


def _composite(objective, nonsmooth, coef):
    return objective.loss(coef) + nonsmooth.value(coef)


def _saga(X, y, C, l1_ratio):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegression(
            C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-10, max_iter=20000
        ).fit(X, y)


@pytest.mark.parametrize("kind", ["l1", "group"])
def test_prox_minimises_its_definition(kind):
    """prox_{t h}(v) minimises h(u) + |u - v|^2 / (2t): no random perturbation does better."""
    rng = np.random.default_rng(0)
    pen = NonSmoothPenalty(kind, rng.uniform(0.5, 2, 4), (3, 5), scale=1.0)
    for _ in range(5):
        v, t = rng.normal(size=15), rng.uniform(0.1, 1.5)
        u = pen.prox(v, t)

        def model(w, v=v, t=t):
            return pen.value(w) + (w - v) @ (w - v) / (2 * t)

        best = model(u)
        for _ in range(200):
            assert model(u + 1e-3 * rng.normal(size=15)) >= best - 1e-12
        assert u.reshape(3, 5)[:, 4] == pytest.approx(v.reshape(3, 5)[:, 4])  # intercepts


@pytest.mark.parametrize("solver", ["prox-newton", "fista"])
@pytest.mark.parametrize("penalty", ["l1", "elasticnet", "group"])
def test_certificate_means_optimality(solver, penalty):
    """The returned certificate is the residual recomputed independently, and it is small."""
    obj, ns = _problem(X_IRIS, Y_IRIS, penalty, C=0.2, l1_ratio=0.6)
    res = solve_penalised(solver, obj, np.zeros(obj.n_coef), ns, tol=1e-8, max_iter=5000)
    assert res.converged
    _, g = obj.loss_grad(res.coef)
    r = np.max(np.abs(ns.residual(res.coef, g) / obj.gradient_scale()))  # standardised units
    assert r == pytest.approx(res.grad_norm, rel=1e-6, abs=1e-15)
    assert r <= res.gtol
    # First-order conditions, element by element (l1) or column by column (group).
    W, G, s = res.coef.reshape(obj.coef_shape), g.reshape(obj.coef_shape), ns.strength
    if ns.kind == "l1":
        zero = W == 0
        assert np.all(np.abs(G[zero]) <= np.broadcast_to(s, W.shape)[zero] + 1e-7)
        assert np.allclose((G + s * np.sign(W))[~zero], 0, atol=1e-7)


@pytest.mark.parametrize("C", [0.05, 1.0])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_objective_no_worse_than_saga(C, l1_ratio):
    """Same C meaning as scikit-learn: at saga's solution our objective is no lower."""
    penalty = "l1" if l1_ratio == 1.0 else "elasticnet"
    obj, ns = _problem(X_IRIS, Y_IRIS, penalty, C=C, l1_ratio=l1_ratio)
    model = SoftmaxRegression(C=C, penalty=penalty, l1_ratio=l1_ratio, **TIGHT).fit(X_IRIS, Y_IRIS)
    ours = np.hstack([model.coef_, model.intercept_[:, None]]).ravel()
    ref = _saga(X_IRIS, Y_IRIS, C, l1_ratio)
    theirs = np.hstack([ref.coef_, ref.intercept_[:, None]]).ravel()
    F_ours, F_saga = _composite(obj, ns, ours), _composite(obj, ns, theirs)
    assert F_ours <= F_saga * (1 + 1e-9)
    assert F_ours == pytest.approx(F_saga, rel=1e-6)
    np.testing.assert_allclose(model.predict_proba(X_IRIS), ref.predict_proba(X_IRIS), atol=2e-3)


def test_binary_l1_is_sklearns_binary_model():
    X, y = make_classification(200, 6, n_informative=3, random_state=1)
    model = SoftmaxRegression(C=0.1, penalty="l1", **TIGHT).fit(X, y)
    ref = _saga(X, y, 0.1, 1.0)
    assert model.coef_.shape == (1, 6)
    np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-4)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, atol=1e-4)
    assert np.sum(model.coef_ == 0) >= 1


def test_group_lasso_zeroes_whole_features_and_satisfies_kkt():
    X, y = make_classification(
        300, 10, n_informative=3, n_redundant=0, n_classes=3, n_clusters_per_class=1, random_state=0
    )
    model = SoftmaxRegression(C=0.02, penalty="group", **TIGHT).fit(X, y)
    W = model.coef_
    out = np.all(W == 0, axis=0)
    assert 0 < out.sum() < W.shape[1]
    assert np.all(W[:, ~out] != 0)  # a feature is in for every class or for none
    # KKT at the solution, from an independently built objective (sum form, S = n):
    obj, _ = _problem(X, y, "l2", C=1.0)
    obj = Objective(obj.source, l2=0.0)
    coef = np.hstack([W, model.intercept_[:, None]]).ravel()
    G = obj.loss_grad(coef)[1].reshape(3, -1)[:, :10] * len(y)
    lam = 1 / 0.02
    gn = np.linalg.norm(G, axis=0)
    assert np.all(gn[out] <= lam * (1 + 1e-6))
    Wn = W[:, ~out] / np.linalg.norm(W[:, ~out], axis=0)
    np.testing.assert_allclose(G[:, ~out], -lam * Wn, atol=1e-5 * lam)


def test_solvers_agree():
    obj, ns = _problem(X_IRIS, Y_IRIS, "group", C=0.5, l1_ratio=0.7)
    a = solve_penalised("prox-newton", obj, np.zeros(obj.n_coef), ns, tol=1e-9, max_iter=100)
    b = solve_penalised("fista", obj, np.zeros(obj.n_coef), ns, tol=1e-9, max_iter=20000)
    assert a.converged and b.converged
    assert a.loss == pytest.approx(b.loss, rel=1e-10)
    np.testing.assert_allclose(a.coef, b.coef, atol=1e-5)


def test_penalty_factor():
    """A zero factor leaves a feature unpenalised; scaling every factor equals scaling 1/C."""
    pf = np.array([0.0, 1.0, 1.0, 1.0])
    m = SoftmaxRegression(C=0.005, penalty="l1", penalty_factor=pf, **TIGHT).fit(X_IRIS, Y_IRIS)
    assert np.all(m.coef_[:, 1:] == 0) and np.any(m.coef_[:, 0] != 0)
    a = SoftmaxRegression(
        C=0.3, penalty="elasticnet", l1_ratio=0.5, penalty_factor=2 * np.ones(4), **TIGHT
    ).fit(X_IRIS, Y_IRIS)
    b = SoftmaxRegression(C=0.15, penalty="elasticnet", l1_ratio=0.5, **TIGHT).fit(X_IRIS, Y_IRIS)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)
    with pytest.raises(ValueError, match="penalty_factor"):
        SoftmaxRegression(penalty="l1", penalty_factor=[1.0, 2.0]).fit(X_IRIS, Y_IRIS)
    with pytest.raises(ValueError, match="non-negative"):
        SoftmaxRegression(penalty="l1", penalty_factor=[1, -1, 1, 1]).fit(X_IRIS, Y_IRIS)


def test_l2_penalty_factor_matches_rescaled_features():
    """Ridge with factor v_i equals the plain ridge on features divided by sqrt(v_i)."""
    v = np.array([1.0, 4.0, 0.25, 1.0])
    a = SoftmaxRegression(C=0.5, penalty_factor=v, **TIGHT).fit(X_IRIS, Y_IRIS)
    b = SoftmaxRegression(C=0.5, **TIGHT).fit(X_IRIS / np.sqrt(v), Y_IRIS)
    np.testing.assert_allclose(a.coef_ * np.sqrt(v), b.coef_, atol=1e-6)


def test_sample_weights_equal_repetition():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 3, size=len(Y_IRIS))
    a = SoftmaxRegression(C=0.3, penalty="l1", **TIGHT).fit(X_IRIS, Y_IRIS, sample_weight=w)
    idx = np.repeat(np.arange(len(Y_IRIS)), w)
    b = SoftmaxRegression(C=0.3, penalty="l1", **TIGHT).fit(X_IRIS[idx], Y_IRIS[idx])
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)


def test_elasticnet_edges():
    """l1_ratio=0 is the ridge fit; penalties split as documented."""
    a = SoftmaxRegression(C=0.7, penalty="elasticnet", l1_ratio=0.0, **TIGHT).fit(X_IRIS, Y_IRIS)
    b = SoftmaxRegression(C=0.7, **TIGHT).fit(X_IRIS, Y_IRIS)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)
    l2, l1, kind = split_penalty("elasticnet", 2.0, 0.25, None, 3)
    np.testing.assert_allclose(l2, 0.375)
    np.testing.assert_allclose(l1, 0.125)
    assert kind == "l1"
    assert split_penalty("group", 2.0, None, None, 3)[2] == "group"


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(penalty="elasticnet"), "l1_ratio"),
        (dict(penalty="elasticnet", l1_ratio=1.5), "l1_ratio"),
        (dict(penalty="l1", solver="lbfgs"), "proximal solver"),
        (dict(penalty="l2", solver="fista"), r"a proximal solver, for the penalties.*lbfgs"),
        (dict(penalty=None, solver="prox-newton"), "proximal solver"),
        (dict(penalty="lasso"), "penalty must be"),
        (dict(basis="bogus"), "Unknown basis"),
    ],
)
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        SoftmaxRegression(**params).fit(X_IRIS, Y_IRIS)


def test_l1_ratio_without_a_mixing_penalty_warns_that_it_is_ignored():
    with pytest.warns(UserWarning, match="l1_ratio is only used"):
        model = SoftmaxRegression(penalty="l2", l1_ratio=0.5).fit(X_IRIS, Y_IRIS)
    plain = SoftmaxRegression(penalty="l2").fit(X_IRIS, Y_IRIS)
    np.testing.assert_array_equal(model.coef_, plain.coef_)


def test_float32_and_sparse():

    a = SoftmaxRegression(C=0.3, penalty="l1", tol=1e-8).fit(X_IRIS, Y_IRIS)
    b = SoftmaxRegression(C=0.3, penalty="l1", tol=1e-8).fit(sp.csr_matrix(X_IRIS), Y_IRIS)
    c = SoftmaxRegression(C=0.3, penalty="l1", tol=1e-8).fit(X_IRIS.astype(np.float32), Y_IRIS)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-6)
    assert c.coef_.dtype == np.float32
    np.testing.assert_allclose(a.coef_, c.coef_, atol=1e-3)


@pytest.mark.parametrize("penalty", ["l1", "group"])
def test_working_sets_reach_the_same_certified_optimum(penalty):
    """Wide problems (more coefficients than one Hessian should hold) use working sets."""
    from softmaxreg._path import solve_working_set

    X, y = make_classification(150, 900, n_informative=5, n_classes=3, random_state=0)
    obj, ns = _problem(X, y, penalty, C=0.05)
    assert obj.n_coef > 2500
    model = SoftmaxRegression(C=0.05, penalty=penalty, tol=1e-8).fit(X, y)
    assert model.result_.solver == "working-set" and model.result_.converged
    coef = np.hstack([model.coef_, model.intercept_[:, None]]).ravel()
    _, g = obj.loss_grad(coef)
    r = ns.residual(coef, g) / obj.gradient_scale()
    assert np.max(np.abs(r)) <= model.result_.gtol * (1 + 1e-9)
    ref = solve_penalised("fista", obj, np.zeros(obj.n_coef), ns, tol=1e-8, max_iter=20000)
    assert _composite(obj, ns, coef) == pytest.approx(ref.loss, rel=1e-8)
    assert 0 < np.sum(np.any(model.coef_ != 0, axis=0)) < 100
    # and directly, on a narrow problem, against proximal Newton on all features
    obj, ns = _problem(X[:, :40], y, penalty, C=0.05)
    ws = solve_working_set(obj, ns, np.zeros(obj.n_coef), tol=1e-9, max_iter=100)
    pn = solve_penalised("prox-newton", obj, np.zeros(obj.n_coef), ns, tol=1e-9, max_iter=100)
    assert ws.converged and ws.loss == pytest.approx(pn.loss, rel=1e-10)


@pytest.mark.parametrize(
    "penalty, extra", [("l1", {}), ("elasticnet", {"l1_ratio": 0.9}), ("group", {})]
)
def test_working_sets_fit_the_intercepts_when_every_feature_is_zero(penalty, extra):
    """Wide data (working sets) and a penalty strong enough to zero every feature: the fit
    is the intercept-only model (probabilities = class frequencies), not the start at zero
    reported as converged (the intercepts' residual was not checked)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 1000))
    y = rng.choice(3, 200, p=[0.7, 0.2, 0.1])
    model = SoftmaxRegression(penalty=penalty, C=0.001, **extra).fit(X, y)
    assert model.result_.solver == "working-set" and model.result_.converged
    assert not model.coef_.any()
    np.testing.assert_allclose(model.predict_proba(X[:3]), [np.bincount(y) / 200] * 3, atol=1e-7)


def test_working_sets_keep_to_max_iter():
    X = sp.random(500, 20_000, density=2e-3, format="csr", random_state=0)
    y = np.random.default_rng(0).choice(4, 500)
    with pytest.warns(ConvergenceWarning):
        model = SoftmaxRegression(penalty="l1", C=1.0, max_iter=3).fit(X, y)
    assert model.result_.solver == "working-set" and model.n_iter_[0] <= 3
