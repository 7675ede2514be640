"""SoftmaxRegressionCV and the warm-started regularisation path: parity with scikit-learn's
LogisticRegressionCV on the same folds and grid, and folds that miss a class."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils.estimator_checks import parametrize_with_checks

from softmaxreg import SoftmaxRegression, SoftmaxRegressionCV
from softmaxreg._cv import fold_membership
from softmaxreg._path import regularization_path

X, Y = make_classification(300, 8, n_informative=4, n_classes=3, random_state=0)
CS = np.logspace(-3, 2, 8)
FOLDS = StratifiedKFold(4, shuffle=True, random_state=0)


def test_same_choice_and_scores_as_logistic_regression_cv():
    ours = SoftmaxRegressionCV(Cs=CS, cv=FOLDS, tol=1e-10, path_tol=1e-10, max_iter=200).fit(X, Y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = LogisticRegressionCV(
            Cs=CS,
            cv=FOLDS,
            scoring="neg_log_loss",
            l1_ratios=(0.0,),
            tol=1e-8,
            solver="newton-cholesky",
            max_iter=100,
            use_legacy_attributes=False,
        ).fit(X, Y)
    assert ours.C_ == ref.C_
    np.testing.assert_allclose(ours.Cs_, ref.Cs_)
    np.testing.assert_allclose(ours.scores_, ref.scores_, atol=1e-6)
    assert ours.coefs_paths_.shape == ref.coefs_paths_.shape
    np.testing.assert_allclose(ours.coefs_paths_, ref.coefs_paths_, atol=1e-4)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-5)


def _manual_fold_score(Xtr, ytr, Xte, yte, C, n_classes, **params):
    """Fit on the training fold's own classes; lay the probabilities out in all columns."""
    m = SoftmaxRegression(C=C, tol=1e-9, max_iter=200, **params).fit(Xtr, ytr)
    P = np.zeros((len(yte), n_classes))
    P[:, m.classes_] = m.predict_proba(Xte)
    return -log_loss(yte, P, labels=np.arange(n_classes))


@pytest.mark.parametrize("rare", [1, 2])
def test_fold_missing_a_class_is_scored_in_the_right_columns(rare):
    """Class ``rare`` has 3 samples, all in the first test fold: its training fold lacks it."""
    y = Y.copy()
    y[y == rare] = (rare + 1) % 3
    y[:3] = rare
    cv = KFold(3)
    model = SoftmaxRegressionCV(Cs=[0.1, 10.0], cv=cv, path_tol=1e-10, max_iter=200).fit(X, y)
    train, test = next(cv.split(X, y))
    assert rare not in y[train]
    for j, C in enumerate([0.1, 10.0]):
        ref = _manual_fold_score(X[train], y[train], X[test], y[test], C, 3)
        assert model.scores_[0, 0, j] == pytest.approx(ref, rel=1e-7)
    assert np.all(np.isfinite(model.scores_))
    assert np.isnan(model.coefs_paths_[0]).all() and not np.isnan(model.coefs_paths_[1:]).any()
    assert model.predict_proba(X).shape == (len(y), 3)


def test_fold_with_a_single_class_predicts_it():
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    Xs = X[:40]
    model = SoftmaxRegressionCV(Cs=[1.0], cv=KFold(2)).fit(Xs, y)  # each train fold: one class
    assert np.all(np.isfinite(model.scores_)) and model.scores_.max() < -10


def test_path_with_warm_starts_equals_cold_fits():
    Cs = [10.0, 0.01, 1.0]
    coefs, results = regularization_path(X, Y, Cs, tol=1e-10, max_iter=200)
    for C, M, r in zip(Cs, coefs, results, strict=True):
        cold = SoftmaxRegression(C=C, tol=1e-10, max_iter=200).fit(X, Y)
        np.testing.assert_allclose(M[:, :-1], cold.coef_, atol=1e-7)
        np.testing.assert_allclose(M[:, -1], cold.intercept_, atol=1e-7)
        assert r.converged
    # warm starts save work: the path costs fewer iterations than cold fits
    cold_iters = sum(
        SoftmaxRegression(C=C, penalty="l1", tol=1e-8).fit(X, Y).n_iter_[0] for C in Cs
    )
    _, warm = regularization_path(X, Y, Cs, penalty="l1", tol=1e-8)
    assert sum(r.n_iter for r in warm) < cold_iters


def test_l1_cv_scores_equal_manual_fold_fits():
    model = SoftmaxRegressionCV(Cs=[0.05, 1.0], cv=FOLDS, penalty="l1", path_tol=1e-9).fit(X, Y)
    for f, (train, test) in enumerate(FOLDS.split(X, Y)):
        for j, C in enumerate([0.05, 1.0]):
            ref = _manual_fold_score(X[train], Y[train], X[test], Y[test], C, 3, penalty="l1")
            assert model.scores_[f, 0, j] == pytest.approx(ref, rel=1e-6)
    assert np.any(model.coef_ == 0) or model.C_ == 1.0


def test_grid_of_l1_ratios_refit_false_and_scoring():
    model = SoftmaxRegressionCV(
        Cs=3, cv=3, penalty="elasticnet", l1_ratios=[0.2, 0.8], refit=False, scoring="accuracy"
    ).fit(X, Y)
    np.testing.assert_allclose(model.Cs_, np.logspace(-4, 4, 3))
    assert model.scores_.shape == (3, 2, 3) and model.n_iter_.shape == (3, 2, 3)
    assert model.l1_ratio_ is not None and 0.2 <= model.l1_ratio_ <= 0.8
    assert model.coef_.shape == (3, 8)
    assert 0.0 <= model.scores_.min() <= model.scores_.max() <= 1.0
    assert accuracy_score(Y, model.predict(X)) > 0.6


def test_binary_and_bad_parameters():
    yb = (Y > 0).astype(int)
    model = SoftmaxRegressionCV(Cs=[0.1, 1.0], cv=3).fit(X, yb)
    assert model.coef_.shape == (1, 8) and model.coefs_paths_.shape == (3, 1, 2, 1, 9)
    for Cs in ([-1.0], 2.5, 0, True):
        with pytest.raises(ValueError, match="Cs must"):
            SoftmaxRegressionCV(Cs=Cs).fit(X, Y)
    with pytest.raises(ValueError, match="penalty=None"):
        SoftmaxRegressionCV(penalty=None).fit(X, Y)
    assert "Cs" in SoftmaxRegressionCV().get_params()
    assert not hasattr(model, "partial_fit")
    with pytest.raises(ValueError, match="unpenalised"):
        model.inference(X, yb)


_ARRAY_API_CV = """
from sklearn.utils.estimator_checks import check_array_api_input
from softmaxreg import SoftmaxRegressionCV
check_array_api_input("SoftmaxRegressionCV", SoftmaxRegressionCV(Cs=3, cv=3), "numpy")
"""


@parametrize_with_checks([SoftmaxRegressionCV(Cs=3, cv=3)])
def test_scikit_learn_conformance(estimator, check):
    name = getattr(check, "func", check).__name__
    if name == "check_array_api_input" and not os.environ.get("SCIPY_ARRAY_API"):
        # SciPy reads SCIPY_ARRAY_API at import: run this one check in a fresh interpreter
        # with it set, rather than let scikit-learn skip it.
        env = {**os.environ, "SCIPY_ARRAY_API": "1"}
        proc = subprocess.run(
            [sys.executable, "-c", _ARRAY_API_CV], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "SkipTest" not in proc.stderr
        return
    check(estimator)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
def test_fold_stack_equals_the_folds_objectives(n_classes, fit_intercept, sparse):
    """The stacked oracle is the sum of the folds' objectives: value, gradient, Hessian-vector
    product, Hessian diagonal and certificate units, fold by fold."""
    import scipy.sparse as sps

    from softmaxreg._cv_stack import FoldStack
    from softmaxreg._objective import Objective
    from softmaxreg._sources import ArraySource

    Xf, y = make_classification(120, 5, n_informative=3, n_classes=n_classes, random_state=1)
    if sparse:
        Xf = sps.csr_matrix(np.where(np.abs(Xf) > 0.5, Xf, 0.0))
    sw = np.random.default_rng(0).uniform(0.5, 2.0, 120)
    folds = list(StratifiedKFold(3).split(Xf, y))
    train = fold_membership(120, folds)
    l2 = np.array([0.5, 1.0, 0.0, 2.0, 0.7])
    stack = FoldStack(Xf, y, sw, train, n_classes, l2, fit_intercept)
    rng = np.random.default_rng(2)
    w, v = rng.normal(size=stack.n_coef), rng.normal(size=stack.n_coef)
    f_all, g_all, hessp = stack.loss_grad_hessp(w)
    parts = []
    for f, (rows, _) in enumerate(folds):
        obj = Objective(
            ArraySource(Xf[rows], y[rows], sw[rows], n_classes),
            l2=l2,
            fit_intercept=fit_intercept,
            reference=n_classes == 2,
        )
        wf, vf = stack.fold_coef(w, f), stack.fold_coef(v, f)
        fv, gv, hv = obj.loss_grad_hessp(wf)
        parts.append((fv, gv, hv(vf), obj.hessian_diagonal(wf), obj.gradient_scale()))
    assert f_all == pytest.approx(sum(p[0] for p in parts), rel=1e-12)
    for k, got in enumerate([g_all, hessp(v), stack.hessian_diagonal(w), stack.gradient_scale()]):
        np.testing.assert_allclose(got, np.concatenate([p[k + 1] for p in parts]), atol=1e-12)
    assert stack.loss(w) == pytest.approx(f_all, rel=1e-14)


def test_unconverged_fold_fits_warn_once():
    from softmaxreg import ConvergenceWarning

    with pytest.warns(ConvergenceWarning, match="cross-validation fit"):
        SoftmaxRegressionCV(Cs=[1e4], cv=3, max_iter=1, path_tol=1e-12, refit=False).fit(X, Y)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_kronecker_path_equals_trust_region_path(n_classes, fit_intercept):
    """solver="auto" (Kronecker-preconditioned Newton-CG) and solver="newton-cg" (TRON on the
    same stacked folds) reach the same fold solutions, scores and refit."""
    Xk, y = make_classification(200, 6, n_informative=4, n_classes=n_classes, random_state=3)
    Xk = Xk * np.array([1.0, 10.0, 0.1, 1.0, 100.0, 1.0])  # badly scaled columns
    sw = np.random.default_rng(1).uniform(0.5, 2.0, 200)
    params = dict(Cs=[0.01, 1.0, 100.0], cv=FOLDS, fit_intercept=fit_intercept, tol=1e-9)
    params.update(path_tol=1e-9, penalty_factor=[1.0, 0.5, 2.0, 1.0, 1.0, 0.0], max_iter=300)
    kron = SoftmaxRegressionCV(**params).fit(Xk, y, sample_weight=sw)
    tron = SoftmaxRegressionCV(solver="newton-cg", **params).fit(Xk, y, sample_weight=sw)
    assert kron.result_.solver == "newton-kfac" and tron.result_.solver != "newton-kfac"
    assert kron.C_ == tron.C_
    np.testing.assert_allclose(kron.scores_, tron.scores_, rtol=1e-8)
    # both certified at 1e-9; at C=100 the binary problem is nearly separable (flat optimum)
    np.testing.assert_allclose(kron.coefs_paths_, tron.coefs_paths_, atol=1e-4)
    np.testing.assert_allclose(kron.coef_, tron.coef_, atol=1e-4)
    np.testing.assert_allclose(kron.predict_proba(Xk), tron.predict_proba(Xk), atol=1e-6)


def _certificate(model, X, y, sw=None):
    """max |gradient / column RMS| of the library's objective at the model's coefficients."""
    from softmaxreg._path import build_problem
    from softmaxreg._sources import ArraySource

    codes = np.searchsorted(model.classes_, y)
    sw = np.ones(len(y)) if sw is None else sw
    source = ArraySource(X, codes, sw, model.classes_.size)
    objective, _ = build_problem(source, penalty="l2", C=model.C_, fit_intercept=True)
    coef = np.hstack([model.coef_, model.intercept_[:, None]]).ravel()
    _, g = objective.loss_grad(coef)
    return float(np.max(np.abs(g / objective.gradient_scale())))


def test_refit_reaches_the_estimator_certificate():
    """The refit (warm-started from the fold solutions) meets SoftmaxRegression's default
    certificate, and equals SoftmaxRegression(C=C_) fitted from scratch."""
    model = SoftmaxRegressionCV(Cs=CS, cv=FOLDS).fit(X, Y)
    assert model.tol == SoftmaxRegression().tol == 1e-6
    assert model.result_.converged and _certificate(model, X, Y) <= 1e-6
    single = SoftmaxRegression(C=model.C_).fit(X, Y)
    np.testing.assert_allclose(model.coef_, single.coef_, atol=1e-5)
    assert model.n_iter_.shape == (4, 1, CS.size)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_kronecker_preconditioner_inverts_its_matrix(n_classes):
    """apply(v) solves M x = v for the explicit M_f = (A_f (x) G_f + lam_bar I (x) D) / S_f
    (D = diag(1, ..., 1, 0): the intercept unpenalised), on class-centred v."""
    from softmaxreg._cv_stack import FoldStack

    Xf, y = make_classification(
        150, 4, n_informative=3, n_redundant=0, n_classes=n_classes, random_state=2
    )
    sw = np.random.default_rng(0).uniform(0.5, 2.0, 150)
    folds = list(StratifiedKFold(3).split(Xf, y))
    train = fold_membership(150, folds)
    lam = np.array([2.0, 2.0, 2.0, 2.0, 0.0])
    stack = FoldStack(Xf, y, sw, train, n_classes, lam[:4], True)
    rng = np.random.default_rng(3)
    _, _, cache = stack.evaluate(rng.normal(size=stack.n_coef) * 0.3, lam)
    apply = stack.preconditioner(cache, lam)
    P = np.concatenate(cache) * stack.cinv[:, :, None]  # probabilities (n, F, K)
    R = n_classes - (n_classes == 2)
    v = rng.normal(size=(3, R, 5))
    if n_classes > 2:
        v -= v.mean(axis=1, keepdims=True)  # off the softmax's null direction
    x = apply(v.ravel()).reshape(3, R, 5)
    for f in range(3):
        c = stack.c[:, f]
        A = np.einsum("n,nk,kj->kj", c, P[:, f], np.eye(n_classes))
        A -= np.einsum("n,nk,nj->kj", c, P[:, f], P[:, f])
        if n_classes == 2:
            A = A[1:, 1:]
        Phi = np.hstack([Xf, np.ones((150, 1))])
        G = Phi.T @ (c[:, None] * Phi)
        M = np.kron(A / c.sum(), G) + np.kron(np.eye(R), np.diag(lam)) * 1.0
        M /= c.sum()
        np.testing.assert_allclose(M @ x[f].ravel(), v[f].ravel(), rtol=1e-8, atol=1e-10)


def test_fold_stack_on_two_threads_equals_one():
    from softmaxreg._cv_stack import FoldStack

    train = fold_membership(300, list(FOLDS.split(X, Y)))
    one = FoldStack(X, Y, np.ones(300), train, 3, np.ones(8), True, threads=1)
    two = FoldStack(X, Y, np.ones(300), train, 3, np.ones(8), True, threads=2)
    assert len(two._picks) == 2 and len(one._picks) == 1
    w = np.random.default_rng(0).normal(size=one.n_coef)
    lam = np.r_[np.ones(8), 0.0]
    (f1, g1, c1), (f2, g2, c2) = one.evaluate(w, lam), two.evaluate(w, lam)
    assert f1 == pytest.approx(f2, rel=1e-13)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(one.hessp_at(c1, w, lam), two.hessp_at(c2, w, lam), atol=1e-13)
    assert one.loss_at(w, lam) == pytest.approx(two.loss_at(w, lam), rel=1e-13)


def test_float32_fold_passes_pick_the_same_grid_point():
    """Large float64 data at path_tol >= 1e-4 run the fold passes in float32: the scores agree
    with tightly converged float64 fold fits to 1e-4 and the same grid point is chosen."""
    import softmaxreg._cv as cv

    Xl, y = make_classification(3000, 20, n_informative=8, n_classes=4, random_state=5)
    assert 3000 * 21 * 4 * 5 >= cv.SINGLE_PRECISION_WORK
    grid = np.logspace(-3, 2, 6)
    fast = SoftmaxRegressionCV(Cs=grid, cv=5).fit(Xl, y)
    exact = SoftmaxRegressionCV(Cs=grid, cv=5, path_tol=1e-9).fit(Xl, y)
    assert fast.C_ == exact.C_
    np.testing.assert_allclose(fast.scores_, exact.scores_, atol=1e-4)
    np.testing.assert_allclose(fast.coef_, exact.coef_, atol=1e-5)  # both refits at tol=1e-6


def test_kronecker_path_with_another_scorer():
    params = dict(Cs=[0.01, 1.0], cv=FOLDS, scoring="accuracy", path_tol=1e-9)
    kron = SoftmaxRegressionCV(**params).fit(X, Y)
    tron = SoftmaxRegressionCV(solver="newton-cg", **params).fit(X, Y)
    assert kron.result_.solver == "newton-kfac"
    np.testing.assert_allclose(kron.scores_, tron.scores_)
    assert 0.5 < kron.scores_.min() <= kron.scores_.max() <= 1.0


def test_secant_predictor_starts_closer_and_keeps_the_path():
    """The start at each C (the last two solutions extrapolated in log C, when its value is
    lower) is closer to the solution than the last solution on separable folds (solutions
    growing like log C), never worse in value where they saturate, and the path equals cold
    fits at every C."""
    from softmaxreg._cv_newton import _predict, newton_ridge, ridge_path, to_estimator
    from softmaxreg._cv_stack import FoldStack

    for n, d, Cs, separable in (
        (90, 20, np.logspace(-2, 4, 7), True),
        (240, 5, np.logspace(-2, 2, 5), False),
    ):
        Xf, y = make_classification(
            n, d, n_informative=4, n_redundant=0, n_classes=3, random_state=4
        )
        train = fold_membership(n, list(StratifiedKFold(3).split(Xf, y)))
        l2 = np.ones(d)
        stack = FoldStack(Xf, y, np.ones(n), train, 3, l2, True)

        def lam_at(C, l2=l2):
            return np.append(l2 / C, 0.0)

        exact = [
            newton_ridge(stack, lam_at(C), np.zeros(stack.n_coef), tol=1e-10, max_iter=200)[0]
            for C in Cs
        ]
        assert all(r.converged for r in exact)
        for j in range(2, Cs.size):
            w0, w1, w = exact[j - 2].coef, exact[j - 1].coef, exact[j].coef
            history = [(np.log(Cs[j - 2]), w0), (np.log(Cs[j - 1]), w1)]
            f_last = stack.loss_at(w1, lam_at(Cs[j]))
            start, (f_start, *_), taken = _predict(
                stack, lam_at(Cs[j]), (f_last, None, None), history, np.log(Cs[j])
            )
            assert f_start <= f_last
            assert taken == (f_start < f_last)
            if separable:
                assert taken
                assert np.linalg.norm(start - w) < 0.8 * np.linalg.norm(w1 - w)
        coefs, results = ridge_path(stack, l2, Cs, tol=1e-10, max_iter=200)
        assert all(r.converged for r in results)
        for j in range(Cs.size):
            np.testing.assert_allclose(coefs[j], to_estimator(stack, exact[j].coef), atol=1e-6)


def test_groups_reach_a_group_aware_splitter():
    """fit(..., groups=g) with cv=GroupKFold equals the same folds given as a list."""
    from sklearn.model_selection import GroupKFold

    groups = np.arange(len(Y)) % 10
    splitter = GroupKFold(3)
    by_groups = SoftmaxRegressionCV(Cs=4, cv=splitter).fit(X, Y, groups=groups)
    folds = list(splitter.split(X, Y, groups))
    assert all(not set(groups[tr]) & set(groups[te]) for tr, te in folds)
    listed = SoftmaxRegressionCV(Cs=4, cv=folds).fit(X, Y)
    np.testing.assert_array_equal(by_groups.scores_, listed.scores_)
    assert by_groups.C_ == listed.C_
