"""Inference (issue 4): parity with statsmodels MNLogit, robust covariances, weights,
separation and rank-deficiency diagnostics, tables and bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import statsmodels.api as sm
from scipy import stats
from sklearn.datasets import load_iris

from softmaxreg import SeparationWarning, SoftmaxRegression
from softmaxreg._inference import InferenceResults

# Stata 'mlogit vote logpopul selfLR age educ income, baseoutcome(0)' on statsmodels' anes96,
# as stored in statsmodels/discrete/tests/results/results_discrete.py (mnlogit_basezero);
# columns are the classes 1..6, rows the terms logpopul, selfLR, age, educ, income, _cons.
STATA_PARAMS = np.reshape([
    -.01153598, .29771435, -.024945, .08249144, .00519655, -.37340167,
    -.08875065, .39166864, -.02289784, .18104276, .04787398, -2.2509132,
    -.1059667, .57345051, -.01485121, -.00715242, .05757516, -3.6655835,
    -.0915567, 1.2787718, -.00868135, .19982796, .08449838, -7.6138431,
    -.0932846, 1.3469616, -.01790407, .21693885, .08095841, -7.0604782,
    -.14088069, 2.0700801, -.00943265, .3219257, .10889408, -12.105751,
], (6, 6), order="F")  # fmt: skip
STATA_BSE = np.reshape([
    .0342823657, .093626795, .0065248584, .0735865799, .0176336937, .6298376313,
    .0391615553, .1082386919, .0079144618, .0852893563, .0222809297, .7631899491,
    .0570382292, .1585481337, .0113313133, .1262913234, .0336142088, 1.156541492,
    .0437902764, .1288965854, .0084187486, .0941250559, .0261963632, .9575809602,
    .0393516553, .1171860107, .0076110152, .0850070091, .0229760791, .8443638283,
    .042138047, .1434089089, .0081338625, .0910979921, .025300888, 1.059954821,
], (6, 6), order="F")  # fmt: skip
STATA = dict(llf=-1461.922747312, llnull=-1750.34670999, llr=576.8479253554,
             prsquared=.1647810465387, aic=2995.84549462, bic=3170.45003661)  # fmt: skip
# Stata 'margins, dydx(*)' (average marginal effects), classes 0..6 by features (same source)
STATA_AME_ROW0 = [0.00868085993550, -0.09779854015456, 0.00272556969847,
                  -0.01992376579372, -0.00603133322764]  # fmt: skip
STATA_AME_SE_ROW0 = [0.0038581061, 0.0080471125, 0.0007068488, 0.0082318967, 0.0020261706]


def _stata_order(a):
    """Stata's rows (features..., _cons) -> ours (intercept, features...)."""
    return np.vstack([a[-1:], a[:-1]])


@pytest.fixture(scope="module")
def anes():
    data = sm.datasets.anes96.load_pandas()
    X = data.exog.astype(float)
    y = np.asarray(data.endog).astype(int)
    return X, y


@pytest.fixture(scope="module")
def fitted(anes):
    X, y = anes
    model = SoftmaxRegression(penalty=None, tol=1e-10, max_iter=200).fit(X, y)
    return model


@pytest.fixture(scope="module")
def sm_res(anes):
    X, y = anes
    mod = sm.MNLogit(y, sm.add_constant(np.asarray(X), prepend=True))
    return mod.fit(disp=0, method="newton", tol=1e-12, maxiter=100)


def _sm_fit(anes, **kw):
    X, y = anes
    mod = sm.MNLogit(y, sm.add_constant(np.asarray(X), prepend=True))
    return mod.fit(disp=0, method="newton", tol=1e-12, maxiter=100, **kw)


# -- parity ----------------------------------------------------------------------------------
def test_nonrobust_matches_statsmodels(anes, fitted, sm_res):
    r = fitted.inference(*anes)
    assert isinstance(r, InferenceResults)
    assert r.params.shape == (6, 6)
    np.testing.assert_allclose(r.params, sm_res.params, rtol=1e-6)
    np.testing.assert_allclose(r.bse, sm_res.bse, rtol=1e-6)
    np.testing.assert_allclose(r.zvalues, sm_res.tvalues, rtol=1e-6)
    np.testing.assert_allclose(r.pvalues, sm_res.pvalues, rtol=1e-6)
    np.testing.assert_allclose(r.cov_params(), sm_res.cov_params(), rtol=1e-6, atol=1e-14)
    # MNLogit's conf_int is (classes, terms, 2); ours (terms, classes, 2)
    np.testing.assert_allclose(r.conf_int(0.1), sm_res.conf_int(0.1).transpose(1, 0, 2), rtol=1e-6)
    assert r.llf == pytest.approx(sm_res.llf, rel=1e-9)
    # statsmodels fits the null model numerically (Nelder-Mead + BFGS); ours is exact
    assert r.llnull == pytest.approx(sm_res.llnull, rel=1e-8)
    for name in ["aic", "bic", "llr", "prsquared", "nobs", "df_model", "df_resid"]:
        assert getattr(r, name) == pytest.approx(getattr(sm_res, name), rel=1e-7), name
    assert r.llr_pvalue == pytest.approx(sm_res.llr_pvalue, rel=1e-5)
    assert r.term_names == ["intercept", "logpopul", "selfLR", "age", "educ", "income"]
    assert r.class_names == ["1", "2", "3", "4", "5", "6"] and r.reference_class == 0


def test_matches_stored_stata_reference(anes, fitted):
    r = fitted.inference(*anes)
    np.testing.assert_allclose(r.params, _stata_order(STATA_PARAMS), rtol=2e-6, atol=1e-8)
    np.testing.assert_allclose(r.bse, _stata_order(STATA_BSE), rtol=1e-6)
    for name, value in STATA.items():
        assert getattr(r, name) == pytest.approx(value, rel=1e-9), name
    me = r.get_margeff()
    np.testing.assert_allclose(me.margeff[:, 0], STATA_AME_ROW0, rtol=1e-6)  # Stata tol
    np.testing.assert_allclose(me.margeff_se[:, 0], STATA_AME_SE_ROW0, rtol=1e-6)


@pytest.mark.parametrize("at", ["overall", "mean"])
def test_marginal_effects_match_statsmodels(anes, fitted, sm_res, at):
    me = fitted.inference(*anes).get_margeff(at)
    ref = sm_res.get_margeff(at=at, method="dydx")
    assert me.margeff.shape == (5, 7)
    np.testing.assert_allclose(me.margeff, ref.margeff, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(me.margeff_se, ref.margeff_se, rtol=1e-6)
    np.testing.assert_allclose(me.pvalues, ref.pvalues, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(me.margeff.sum(axis=1), 0, atol=1e-12)  # probabilities sum to 1
    frame = me.summary_frame()
    assert frame.shape == (35, 6) and frame.index.names == ["class", "feature"]


def test_hc0_matches_statsmodels_and_hc1_scales(anes, fitted):
    ref = _sm_fit(anes, cov_type="HC0")
    r0 = fitted.inference(*anes, cov_type="HC0")
    np.testing.assert_allclose(r0.params, ref.params, rtol=1e-6)
    np.testing.assert_allclose(r0.bse, ref.bse, rtol=1e-6)
    np.testing.assert_allclose(r0.pvalues, ref.pvalues, rtol=1e-6)
    r1 = fitted.inference(*anes, cov_type="HC1")
    k = r1.params.size
    np.testing.assert_allclose(r1.cov_params(), r0.cov_params() * 944 / (944 - k), rtol=1e-12)
    # statsmodels' MNLogit reports HC0 for cov_type="HC1" (no cov_HC1 on discrete results)
    np.testing.assert_allclose(_sm_fit(anes, cov_type="HC1").bse, r0.bse, rtol=1e-6)


def test_cluster_matches_statsmodels(anes, fitted):
    groups = np.arange(944) % 37
    ref = _sm_fit(anes, cov_type="cluster", cov_kwds={"groups": groups})
    r = fitted.inference(*anes, cov_type="cluster", groups=groups)
    np.testing.assert_allclose(r.bse, ref.bse, rtol=1e-6)
    assert r.n_groups == 37 and "No. Clusters" in r.summary()


def test_binary_iris_matches_statsmodels():
    X, y = load_iris(return_X_y=True)
    X, y = X[50:], y[50:]
    model = SoftmaxRegression(penalty=None, tol=1e-10).fit(X, y)
    r = model.inference(X, y)
    ref = sm.MNLogit(y, sm.add_constant(X)).fit(disp=0, method="newton", tol=1e-12)
    assert r.params.shape == (5, 1)
    np.testing.assert_allclose(r.params, ref.params, rtol=1e-6)
    np.testing.assert_allclose(r.bse, ref.bse, rtol=1e-6)
    np.testing.assert_allclose(r.pvalues, ref.pvalues, rtol=1e-6)
    assert r.llf == pytest.approx(ref.llf, rel=1e-9)
    me, sme = r.get_margeff(), ref.get_margeff()
    np.testing.assert_allclose(me.margeff, sme.margeff, rtol=1e-6)
    np.testing.assert_allclose(me.margeff_se, sme.margeff_se, rtol=1e-6)
    # sparse input gives the same inference
    sparse = SoftmaxRegression(penalty=None, tol=1e-10).fit(sp.csr_matrix(X), y)
    rs = sparse.inference(sp.csr_matrix(X), y, cov_type="HC0")
    np.testing.assert_allclose(rs.bse, model.inference(X, y, cov_type="HC0").bse, rtol=1e-6)


def test_without_intercept_matches_statsmodels():
    X, y = load_iris(return_X_y=True)
    X, y = X[50:], y[50:]
    r = SoftmaxRegression(penalty=None, fit_intercept=False, tol=1e-10).fit(X, y).inference(X, y)
    ref = sm.MNLogit(y, X).fit(disp=0, method="newton", tol=1e-12)
    assert r.term_names == ["x1", "x2", "x3", "x4"]
    np.testing.assert_allclose(r.params, ref.params, rtol=1e-6)
    np.testing.assert_allclose(r.bse, ref.bse, rtol=1e-6)
    assert r.llnull == pytest.approx(-100 * np.log(2))  # zero logits: the null without intercept


def test_loose_fit_is_polished_to_the_mle(anes, sm_res):
    model = SoftmaxRegression(penalty=None, tol=1e-3).fit(*anes)
    r = model.inference(*anes)
    assert r.newton_steps >= 2
    np.testing.assert_allclose(r.params, sm_res.params, rtol=1e-6)
    np.testing.assert_allclose(r.bse, sm_res.bse, rtol=1e-6)


def test_reference_class(anes, fitted):
    X, y = anes
    r = fitted.inference(X, y, reference_class=3)
    assert r.reference_class == 3 and r.class_names == ["0", "1", "2", "4", "5", "6"]
    # statsmodels takes the smallest label as the reference: relabel 3 -> -1
    ref = sm.MNLogit(np.where(y == 3, -1, y), sm.add_constant(np.asarray(X))).fit(
        disp=0, method="newton", tol=1e-12
    )
    np.testing.assert_allclose(r.params, ref.params, rtol=1e-6)
    np.testing.assert_allclose(r.bse, ref.bse, rtol=1e-6)
    assert r.llf == pytest.approx(fitted.inference(X, y).llf, rel=1e-12)


def test_information_equals_core_hessian(anes):
    from softmaxreg._mle import _information
    from softmaxreg._objective import Objective
    from softmaxreg._sources import ArraySource

    X, y = np.asarray(anes[0]), anes[1]
    w = np.random.default_rng(2).uniform(0.5, 2.0, y.size)
    obj = Objective(ArraySource(X, y, w, 7, block_rows=100), reference=True)
    coef = np.random.default_rng(3).normal(scale=0.05, size=obj.n_coef)
    f, g, info = _information(obj, coef)
    f2, g2, H = obj.hessian(coef)
    assert f == pytest.approx(f2, rel=1e-13)
    np.testing.assert_allclose(g, g2, rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(info, H * obj.scale, rtol=1e-10, atol=1e-9)


# -- weights -----------------------------------------------------------------------------------
def test_integer_weights_equal_row_repetition(anes, fitted):
    X, y = anes
    w = np.random.default_rng(0).integers(0, 4, size=y.size)
    groups = np.arange(y.size) % 23
    rep = np.repeat(np.arange(y.size), w)
    Xr, yr, gr = X.iloc[rep], y[rep], groups[rep]
    for kw, kwr in [({}, {}), ({"cov_type": "HC1"}, {"cov_type": "HC1"}),
                    ({"cov_type": "cluster", "groups": groups},
                     {"cov_type": "cluster", "groups": gr})]:  # fmt: skip
        a = fitted.inference(X, y, sample_weight=w, **kw)
        b = fitted.inference(Xr, yr, **kwr)
        np.testing.assert_allclose(a.params, b.params, rtol=1e-8)
        np.testing.assert_allclose(a.bse, b.bse, rtol=1e-8)
        assert a.llf == pytest.approx(b.llf, rel=1e-10) and a.nobs == b.nobs == w.sum()
        assert a.llnull == pytest.approx(b.llnull, rel=1e-10)
    ma, mb = a.get_margeff(), b.get_margeff()
    np.testing.assert_allclose(ma.margeff, mb.margeff, rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(ma.margeff_se, mb.margeff_se, rtol=1e-8)


def test_count_targets_equal_expanded_rows(anes, fitted):
    X, y = anes
    Xa = np.asarray(X)[:200]
    counts = np.zeros((200, 7))
    rng = np.random.default_rng(1)
    for i in range(200):
        counts[i] = np.bincount(rng.choice(y, size=3), minlength=7)
    model = SoftmaxRegression(penalty=None, tol=1e-10).fit(Xa, counts, classes=np.arange(7))
    a = model.inference(Xa, counts)
    rows = np.repeat(np.arange(200), 7)
    codes = np.tile(np.arange(7), 200)
    w = counts.ravel()
    b = model.inference(Xa[rows], codes, sample_weight=w)
    np.testing.assert_allclose(a.params, b.params, rtol=1e-8)
    np.testing.assert_allclose(a.bse, b.bse, rtol=1e-8)
    assert a.nobs == pytest.approx(600) and a.llf == pytest.approx(b.llf, rel=1e-10)


def test_offsets_fix_coefficients(anes, fitted):
    """An offset equal to a feature times its MLE coefficients leaves the other MLEs and llf
    unchanged (the profile likelihood is maximised at the joint maximum)."""
    X, y = anes
    full = fitted.inference(X, y)
    theta = np.r_[0.0, full.params[3]]  # 'age' row; the reference class has zero
    offset = np.asarray(X["age"])[:, None] * theta[None, :]
    Xs = X.drop(columns="age")
    model = SoftmaxRegression(penalty=None, tol=1e-10).fit(Xs, y, offset=offset)
    r = model.inference(Xs, y, offset=offset)
    np.testing.assert_allclose(r.params, np.delete(full.params, 3, axis=0), rtol=1e-6)
    assert r.llf == pytest.approx(full.llf, rel=1e-10)
    assert np.all(r.bse <= np.delete(full.bse, 3, axis=0) * (1 + 1e-9))


# -- tests, tables -----------------------------------------------------------------------------
def test_wald_and_lr_tests_match_statsmodels(anes, fitted, sm_res):
    X, y = anes
    r = fitted.inference(X, y)
    wald = r.wald_test_terms()
    assert list(wald.index) == r.term_names and (wald["df"] == 6).all()
    k = r.params.shape[0]
    for t in (1, 4):  # logpopul, educ: all six class coefficients zero
        R = np.zeros((6, r.params.size))
        R[np.arange(6), np.arange(6) * k + t] = 1
        ref = sm_res.wald_test(R, scalar=True)
        assert wald["chi2"].iloc[t] == pytest.approx(ref.statistic, rel=1e-6)
        assert wald["P>chi2"].iloc[t] == pytest.approx(ref.pvalue, rel=1e-5)
    small = SoftmaxRegression(penalty=None, tol=1e-10).fit(X[["selfLR", "age"]], y)
    rr = small.inference(X[["selfLR", "age"]], y)
    sm_small = sm.MNLogit(y, sm.add_constant(np.asarray(X[["selfLR", "age"]]))).fit(
        disp=0, method="newton", tol=1e-12
    )
    stat, pval, df = r.compare_lr_test(rr)
    # MNLogit results have no compare_lr_test: the statistic from statsmodels' two llf
    ref_stat = 2 * (sm_res.llf - sm_small.llf)
    assert stat == pytest.approx(ref_stat, rel=1e-8) and df == 18
    assert pval == pytest.approx(stats.chi2.sf(ref_stat, 18), rel=1e-8)
    with pytest.raises(ValueError, match="not nested"):
        rr.compare_lr_test(r)


def test_summary_and_frame_content(anes, fitted):
    r = fitted.inference(*anes)
    text = r.summary()
    for needle in ["MNLogit", "No. Observations:", "944", "Log-Likelihood:", "-1461.92",
                   "Pseudo R-squ.:", "0.1648", "y=6", "logpopul", "intercept", "[0.025",
                   "Covariance Type:", "nonrobust", "Reference class:"]:  # fmt: skip
        assert needle in text, needle
    assert str(r) == text and all(len(line) <= 80 for line in text.splitlines())
    frame = r.to_frame()
    assert frame.shape == (36, 6)
    assert list(frame.columns) == ["coef", "std err", "z", "P>|z|", "[0.025", "0.975]"]
    assert frame.loc[("4", "selfLR"), "coef"] == pytest.approx(r.params[2, 3])
    assert frame.loc[("6", "intercept"), "std err"] == pytest.approx(r.bse[0, 5])
    ci = r.conf_int()
    np.testing.assert_allclose(frame["[0.025"].to_numpy(), ci[:, :, 0].T.ravel())


# -- separation and rank deficiency -------------------------------------------------------------
def test_iris_setosa_separation_warns_and_inference_refuses():
    data = load_iris(as_frame=True)
    X, y = data.data, data.target.map(dict(enumerate(data.target_names)))
    with pytest.warns(SeparationWarning, match=r"'setosa'.*penalty='l2'") as rec:
        model = SoftmaxRegression(penalty=None, max_iter=300).fit(X, y)
    assert "petal length (cm)" in str(rec[0].message)
    with pytest.raises(ValueError, match="Separation.*'setosa'"):
        model.inference(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a penalised fit does not warn
        SoftmaxRegression(C=1.0, max_iter=300).fit(X, y)


def test_quasi_complete_separation_by_a_dummy():
    rng = np.random.default_rng(3)
    n = 400
    X = pd.DataFrame({"dose": rng.normal(size=n), "treated": rng.integers(0, 2, n)})
    y = rng.choice(["a", "b", "c"], size=n)
    y[(X["treated"] == 1) & (y == "c")] = "a"  # class c never occurs among the treated
    with pytest.warns(SeparationWarning, match=r"'treated'.*boundary") as rec:
        model = SoftmaxRegression(penalty=None, max_iter=300).fit(X, y)
    assert "'dose'" not in str(rec[0].message) and "'c'" in str(rec[0].message)
    with pytest.raises(ValueError, match="treated"):
        model.inference(X, y)


def test_non_separated_data_do_not_warn(anes):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = SoftmaxRegression(penalty=None, tol=1e-8).fit(*anes)
    assert model._separation_checked_ is not None  # proven, so inference skips the LP


def test_inference_checks_other_data(anes, fitted):
    """The fit's proof covers only its own data: other (separated) data are checked."""
    X, y = anes
    y_sep = np.asarray(X["selfLR"]).astype(int) - 1  # classes 0..6 = intervals of selfLR
    with pytest.raises(ValueError, match="Separation.*'selfLR'"):
        fitted.inference(X, y_sep)


def test_collinear_columns_are_named(anes):
    X, y = anes
    Xc = X.assign(both=X["age"] + 2 * X["educ"], const=3.0)
    model = SoftmaxRegression(penalty=None, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(Xc, y)
    with pytest.raises(ValueError, match=r"'both' is a linear combination of 'age', 'educ'"):
        model.inference(Xc, y)
    with pytest.raises(ValueError, match=r"'const' is constant"):
        model.inference(Xc, y)


# -- bad input ---------------------------------------------------------------------------------
def test_bad_input(anes, fitted):
    X, y = anes
    with pytest.raises(ValueError, match="cov_type must be one of"):
        fitted.inference(X, y, cov_type="HC3")
    with pytest.raises(ValueError, match="one label per sample"):
        fitted.inference(X, y, cov_type="cluster", groups=np.arange(10))
    with pytest.raises(ValueError, match="needs groups"):
        fitted.inference(X, y, cov_type="cluster")
    with pytest.raises(ValueError, match="only used with cov_type='cluster'"):
        fitted.inference(X, y, groups=np.arange(944))
    with pytest.raises(ValueError, match="reference_class=9 is not one of the classes"):
        fitted.inference(X, y, reference_class=9)
    with pytest.raises(ValueError, match=r"class\(es\) \[5\] have no observations"):
        fitted.inference(X[y != 5], y[y != 5])
    with pytest.raises(ValueError, match="not fitted with"):
        fitted.inference(X, np.where(y == 6, 7, y))
    with pytest.raises(ValueError, match="alpha must be"):
        fitted.inference(X, y).conf_int(1.5)
    penalised = SoftmaxRegression(C=1.0).fit(X, y)
    with pytest.raises(ValueError, match="needs an unpenalised fit"):
        penalised.inference(X, y)
