"""Stochastic solvers (SGD, Adam) and partial_fit with scikit-learn's semantics."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.preprocessing import StandardScaler

from softmaxreg import ConvergenceWarning, SoftmaxRegression
from softmaxreg._objective import Objective
from softmaxreg._solvers import adam, sgd
from softmaxreg._sources import ArraySource
from softmaxreg._stochastic import batch_objective, minibatches


@pytest.fixture(scope="module")
def easy():
    X, y = make_classification(20_000, 10, n_informative=6, n_classes=3, random_state=0)
    X = StandardScaler().fit_transform(X)
    ref = SoftmaxRegression(solver="lbfgs", tol=1e-10).fit(X, y)
    return X, y, ref


@pytest.mark.parametrize("module", [sgd, adam])
def test_update_is_pure(module):
    state = module.init(np.ones(4), decay_steps=10)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}
    new = module.update(state, np.arange(4.0))
    for k, v in before.items():
        np.testing.assert_array_equal(state[k], v)
    assert new["t"] == 1 and not np.array_equal(new["coef"], state["coef"])
    assert np.all(new["coef"] < state["coef"][0] + 1e-12)  # moved against the gradient


def test_minibatch_gradients_are_unbiased(easy):
    """sum_B (S_B / S) grad f_B == grad f exactly, penalty included."""
    X, y, _ = easy
    w = np.random.default_rng(0).uniform(0.1, 2, len(y))
    full = Objective(ArraySource(X, y.astype(np.intp), w, 3), l2=2.0)
    coef = np.random.default_rng(1).normal(size=full.n_coef) * 0.1
    total = np.zeros(full.n_coef)
    for block in minibatches(full.source, 999, np.random.default_rng(2)):
        sub = batch_objective(block, 3, full.penalty, True, False, full.scale)
        total += sub.scale / full.scale * sub.loss_grad(coef)[1]
    np.testing.assert_allclose(total, full.loss_grad(coef)[1], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_stochastic_fit_reaches_near_the_optimum(easy, solver):
    X, y, ref = easy
    with pytest.warns(ConvergenceWarning):  # 5 epochs do not meet the exact certificate
        model = SoftmaxRegression(solver=solver, max_iter=5).fit(X, y)
    gap = (model.result_.loss - ref.result_.loss) / ref.result_.loss
    assert 0 <= gap < 2e-3, gap
    assert len(model.result_.history) == 5
    assert model.score(X, y) > ref.score(X, y) - 0.01


def test_stochastic_fit_is_reproducible(easy):
    X, y, _ = easy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = SoftmaxRegression(solver="adam", max_iter=2).fit(X, y)
        b = SoftmaxRegression(solver="adam", max_iter=2).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_partial_fit_converges_over_epochs(easy):
    X, y, ref = easy
    model = SoftmaxRegression(solver="sgd")
    for epoch in range(4):
        for start in range(0, len(y), 2500):
            rows = slice(start, start + 2500)
            model.partial_fit(X[rows], y[rows], classes=np.unique(y) if epoch == 0 else None)
    assert model.n_iter_[0] == 4 * 8
    assert np.abs(model.coef_ - ref.coef_).max() < 0.1
    assert "loss and gradient not evaluated" in repr(model.result_)  # not "loss=nan"
    assert "nan" not in repr(model.result_)
    assert model.score(X, y) > ref.score(X, y) - 0.01


def test_partial_fit_semantics(easy):
    X, y, _ = easy
    labels = np.array(["a", "b", "c"])[y]
    model = SoftmaxRegression(solver="adam")
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        model.partial_fit(X[:100], labels[:100])
    model.partial_fit(X[:100], labels[:100], classes=["c", "b", "a", "d"])
    assert model.classes_.tolist() == ["a", "b", "c", "d"]
    assert set(model.predict(X[:50])) <= set("abcd")
    model.partial_fit(X[100:200], labels[100:200])  # later calls: classes optional
    with pytest.raises(ValueError, match=r"not in classes_.*'zebra'|'zebra'.*not in classes_"):
        model.partial_fit(X[:3], np.array(["a", "zebra", "b"]))
    with pytest.raises(ValueError, match="differs from the classes"):
        model.partial_fit(X[:3], labels[:3], classes=["a", "b"])
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X[:10, :5], labels[:10])
    with pytest.raises(ValueError, match="stochastic solver"):
        SoftmaxRegression(solver="lbfgs").partial_fit(X[:10], y[:10], classes=[0, 1, 2])
    with pytest.raises(ValueError, match="balanced"):
        SoftmaxRegression(class_weight="balanced").partial_fit(X[:10], y[:10], classes=[0, 1, 2])
    # After fit(), partial_fit continues from that fit without classes (scikit-learn's
    # SGDClassifier; its check_fit_score_takes_y calls fit then partial_fit(X, y)).
    model.set_params(solver="lbfgs").fit(X[:500], labels[:500])
    fitted = model.coef_.copy()
    model.set_params(solver="adam")
    model.partial_fit(X[:500], labels[:500])
    assert model.classes_.tolist() == ["a", "b", "c"]
    assert np.abs(model.coef_ - fitted).max() < 0.5 * np.abs(fitted).max()


def test_partial_fit_binary_shapes(easy):
    X, y, _ = easy
    yb = (y == 0).astype(int)
    model = SoftmaxRegression().partial_fit(X, yb, classes=[0, 1])
    assert model.coef_.shape == (1, X.shape[1]) and model.intercept_.shape == (1,)
    assert model.predict_proba(X[:3]).shape == (3, 2)


@pytest.mark.parametrize("solver, gap", [("sgd", 0.1), ("adam", 0.5)])
def test_stochastic_solvers_move_on_small_data(solver, gap):
    """Iris has 10 minibatches an epoch: the step must decay over enough steps for the
    iterates to travel (the gaps were 1.4 and 3.0 with a horizon of a fraction of an epoch)."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    best = SoftmaxRegression().fit(X, y).result_.loss
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = SoftmaxRegression(solver=solver, max_iter=300).fit(X, y)
    assert (model.result_.loss - best) / best < gap
