"""Dask: fits on a distributed LocalCluster equal the in-memory fit; Dask in, Dask out."""

import os
import signal

import numpy as np
import pandas as pd
import pytest

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import softmaxreg.dask as sdask  # noqa: E402
from softmaxreg import SoftmaxRegression  # noqa: E402


def data(n=1200, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.argmax(X @ rng.normal(size=(k, d)).T + rng.gumbel(size=(n, k)), axis=1)
    w = rng.uniform(0.2, 2.0, n)
    return X, y, w


def coef_of(model):
    return np.hstack([model.coef_, model.intercept_[:, None]])


def rel_diff(a, b):
    A, B = coef_of(a), coef_of(b)
    return np.abs(A - B).max() / np.abs(A).max()


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_dask_array_fit_equals_in_memory(client, solver):
    X, y, w = data()
    kw = dict(solver=solver, tol=1e-10, C=0.7)
    ref = SoftmaxRegression(**kw).fit(X, y, sample_weight=w)
    Xd, yd, wd = (da.from_array(a, chunks=250) for a in (X, y, w))
    model = SoftmaxRegression(**kw).fit(Xd, yd, sample_weight=wd)
    assert rel_diff(ref, model) < 1e-8
    assert model.result_.converged


def test_dask_dataframe_fit_with_string_labels(client):
    X, y, _ = data(seed=1)
    labels = np.array(["red", "green", "blue"], dtype=object)[y]
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    ref = SoftmaxRegression(solver="lbfgs", tol=1e-10, class_weight="balanced").fit(df, labels)
    ddf = dd.from_pandas(df, npartitions=4)
    ys = dd.from_pandas(pd.Series(labels), npartitions=4)
    model = SoftmaxRegression(solver="lbfgs", tol=1e-10, class_weight="balanced").fit(ddf, ys)
    assert rel_diff(ref, model) < 1e-8
    assert list(model.classes_) == ["blue", "green", "red"]
    assert list(model.feature_names_in_) == ["a", "b", "c", "d"]
    pred = model.predict(ddf)
    assert isinstance(pred, dd.Series)
    np.testing.assert_array_equal(pred.compute().to_numpy(), ref.predict(df))
    proba = model.predict_proba(ddf)
    assert isinstance(proba, dd.DataFrame)
    np.testing.assert_allclose(proba.compute().to_numpy(), ref.predict_proba(df), atol=1e-9)


def test_one_compute_per_oracle_call(client, monkeypatch):
    X, y, _ = data()
    computes, passes = [], []
    real_compute, real_map_reduce = sdask.dask.compute, sdask.DaskSource.map_reduce
    monkeypatch.setattr(
        sdask.dask, "compute", lambda *a, **k: computes.append(1) or real_compute(*a, **k)
    )
    monkeypatch.setattr(
        sdask.DaskSource, "map_reduce", lambda s, fn: passes.append(1) or real_map_reduce(s, fn)
    )
    model = SoftmaxRegression(solver="newton-cg").fit(
        da.from_array(X, chunks=300), da.from_array(y, chunks=300)
    )
    res = model.result_
    first_pass = 2  # classes + checks, then class counts and weight totals
    assert len(computes) == first_pass + len(passes)
    assert len(passes) >= res.n_fun + res.n_hessp


def test_predict_on_dask_array_returns_dask(client):
    X, y, _ = data()
    model = SoftmaxRegression().fit(X, y)
    Xd = da.from_array(X, chunks=(500, 2))
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        out = getattr(model, method)(Xd)
        assert isinstance(out, da.Array), method
        np.testing.assert_allclose(out.compute(), getattr(model, method)(X), rtol=1e-12)


def test_bad_dask_input(client):
    X, y, _ = data()
    Xn = X.copy()
    Xn[7, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SoftmaxRegression().fit(da.from_array(Xn, chunks=300), da.from_array(y, chunks=300))
    with pytest.raises(ValueError, match="needs y"):
        SoftmaxRegression().fit(da.from_array(X, chunks=300))
    with pytest.raises(ValueError, match="at least 2 classes"):
        SoftmaxRegression().fit(da.from_array(X, chunks=300), da.zeros(len(y), chunks=300))


def test_worker_killed_mid_fit_is_survived(monkeypatch):
    """SIGKILL one of two worker processes during the fit: same optimum as in memory."""
    X, y, _ = data(n=2000, seed=2)
    ref = SoftmaxRegression(solver="lbfgs", tol=1e-10).fit(X, y)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    killed = []
    real = sdask.DaskSource.map_reduce

    def map_reduce(self, fn):
        if len(killed) == 0 and getattr(self, "_calls", 0) == 3:
            nanny = next(iter(cluster.workers.values()))
            os.kill(nanny.process.pid, signal.SIGKILL)
            killed.append(nanny.process.pid)
        self._calls = getattr(self, "_calls", 0) + 1
        return real(self, fn)

    monkeypatch.setattr(sdask.DaskSource, "map_reduce", map_reduce)
    try:
        with distributed.Client(cluster):
            model = SoftmaxRegression(solver="lbfgs", tol=1e-10).fit(
                da.from_array(X, chunks=250), da.from_array(y, chunks=250)
            )
    finally:
        cluster.close()
    assert killed
    assert rel_diff(ref, model) < 1e-8


def test_importing_softmaxreg_does_not_import_dask():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, softmaxreg; "
        "softmaxreg.SoftmaxRegression().fit(np.eye(4), [0, 1, 0, 1]); "
        "assert not any(m == 'dask' or m.startswith('dask.') for m in sys.modules), 'dask'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def _die(block, index):
    os._exit(1)  # the worker process dies while computing a block


def test_workers_that_keep_dying_fail_clearly():
    """After distributed's allowed retries the fit raises a clear error, never a result."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
    try:
        with distributed.Client(cluster):
            X, y, _ = data(n=200)
            src = sdask.DaskSource(da.from_array(X, chunks=100), da.from_array(y, chunks=100))
            with pytest.raises(RuntimeError, match="workers kept dying"):
                src.map_reduce(_die)
    finally:
        cluster.close()
