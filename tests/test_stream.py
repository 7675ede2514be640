"""Streamed Parquet/CSV sources: the same optimum as the in-memory fit, bounded memory, errors."""

import gzip
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from softmaxreg import CSVSource, ParquetSource, SoftmaxRegression, open_source
from softmaxreg._objective import Objective
from softmaxreg._sources import ArraySource
from softmaxreg._stream_predict import predict_file


def make_frame(n=600, d=4, k=3, seed=0, labels=("ant", "bee", "cat", "dog")):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(k, d))
    codes = np.argmax(X @ W.T + rng.gumbel(size=(n, k)), axis=1)
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(d)])
    df["label"] = np.asarray(labels[:k], dtype=object)[codes]
    df["w"] = rng.uniform(0.2, 2.0, size=n)
    return df


def features_of(df):
    return df[[c for c in df.columns if c.startswith("f")]].to_numpy()


def coef_of(model):
    return np.hstack([model.coef_, model.intercept_[:, None]])


def rel_diff(a, b):
    A, B = coef_of(a), coef_of(b)
    return np.abs(A - B).max() / np.abs(A).max()


@pytest.fixture(scope="module")
def frame():
    return make_frame()


@pytest.fixture(scope="module")
def parquet_path(tmp_path_factory, frame):
    path = tmp_path_factory.mktemp("pq") / "data.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=100)
    return path


@pytest.mark.parametrize(
    "solver, batch_rows",
    [("lbfgs", 1), ("lbfgs", 37), ("lbfgs", 10_000), ("newton-cg", 37), ("newton-cg", 256)],
)
def test_parquet_streamed_equals_in_memory(parquet_path, frame, solver, batch_rows):
    X, y = features_of(frame), frame["label"].to_numpy()
    kw = dict(solver=solver, tol=1e-10, C=0.5)
    ref = SoftmaxRegression(**kw).fit(X, y)
    src = ParquetSource(
        parquet_path, target="label", features=["f0", "f1", "f2", "f3"], batch_rows=batch_rows
    )
    model = SoftmaxRegression(**kw).fit(src)
    assert rel_diff(ref, model) < 1e-8
    assert list(model.classes_) == ["ant", "bee", "cat"]
    assert list(model.feature_names_in_) == ["f0", "f1", "f2", "f3"]
    assert model.result_.converged


def test_weights_and_class_weight_stream_like_in_memory(parquet_path, frame):
    X, y, w = features_of(frame), frame["label"].to_numpy(), frame["w"].to_numpy()
    for cw in (None, "balanced", {"ant": 3.0}):
        kw = dict(solver="lbfgs", tol=1e-10, class_weight=cw)
        ref = SoftmaxRegression(**kw).fit(X, y, sample_weight=w)
        src = ParquetSource(parquet_path, target="label", weight="w", batch_rows=50)
        assert rel_diff(ref, SoftmaxRegression(**kw).fit(src)) < 1e-8


def test_penalty_none_binary_and_float32(tmp_path):
    df = make_frame(n=400, d=3, k=2, seed=3)
    path = tmp_path / "b.parquet"
    df.to_parquet(path)
    X, y = features_of(df), df["label"].to_numpy()
    for kw in (dict(penalty=None), dict(C=2.0)):
        ref = SoftmaxRegression(solver="lbfgs", tol=1e-10, **kw).fit(X, y)
        model = SoftmaxRegression(solver="lbfgs", tol=1e-10, **kw).fit(
            ParquetSource(path, target="label", features=["f0", "f1", "f2"], batch_rows=64)
        )
        assert model.coef_.shape == (1, 3)
        assert rel_diff(ref, model) < 1e-8
    ref32 = SoftmaxRegression(solver="lbfgs").fit(X.astype(np.float32), y)
    m32 = SoftmaxRegression(solver="lbfgs").fit(
        ParquetSource(path, target="label", features=["f0", "f1", "f2"], dtype=np.float32)
    )
    assert m32.coef_.dtype == np.float32
    np.testing.assert_allclose(m32.coef_, ref32.coef_, rtol=1e-4, atol=1e-5)


def test_oracle_identical_across_sources(parquet_path, frame):
    """Loss, gradient and Hessian products of a streamed source equal the in-memory ones."""
    X, y = features_of(frame), frame["label"].to_numpy()
    codes = np.unique(y, return_inverse=True)[1]
    mem = Objective(ArraySource(X, codes, np.ones(len(y)), 3), l2=0.3)
    st = Objective(
        ParquetSource(
            parquet_path, target="label", features=["f0", "f1", "f2", "f3"], batch_rows=29
        ),
        l2=0.3,
    )
    coef = np.random.default_rng(1).normal(size=mem.n_coef)
    f1, g1, h1 = mem.loss_grad_hessp(coef)
    f2, g2, h2 = st.loss_grad_hessp(coef)
    v = np.random.default_rng(2).normal(size=mem.n_coef)
    np.testing.assert_allclose(f2, f1, rtol=1e-13)
    np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h2(v), h1(v), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("batch_rows", [13, 500])
@pytest.mark.parametrize("cache", [False, True])
def test_csv_streamed_equals_in_memory(tmp_path, frame, batch_rows, cache):
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    back = pacsv.read_csv(path).to_pandas()  # the exact doubles the CSV holds
    X, y = features_of(back), back["label"].to_numpy()
    ref = SoftmaxRegression(solver="lbfgs", tol=1e-10).fit(X, y)
    src = CSVSource(
        path, target="label", features=["f0", "f1", "f2", "f3"], batch_rows=batch_rows, cache=cache
    )
    model = SoftmaxRegression(solver="lbfgs", tol=1e-10).fit(src)
    assert rel_diff(ref, model) < 1e-8
    if cache:
        assert src._cache is not None and src._cache.complete
        src.close()


def test_directory_of_files_equals_single_file(tmp_path, parquet_path, frame):
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, start in enumerate(range(0, len(frame), 170)):
        frame.iloc[start : start + 170].to_parquet(folder / f"part-{i:03d}.parquet")
    one = SoftmaxRegression(solver="lbfgs", tol=1e-10).fit(
        ParquetSource(parquet_path, target="label", weight="w", batch_rows=64)
    )
    many = SoftmaxRegression(solver="lbfgs", tol=1e-10).fit(
        open_source(folder, target="label", weight="w", batch_rows=64)
    )
    np.testing.assert_array_equal(coef_of(one), coef_of(many))  # same blocks: bitwise


def test_first_pass_facts(parquet_path, frame):
    src = ParquetSource(parquet_path, target="label", weight="w")
    counts = frame["label"].value_counts().sort_index()
    assert src.n_samples == len(frame) and src.n_features == 4  # w and label excluded
    np.testing.assert_array_equal(src.class_counts, counts.to_numpy())
    np.testing.assert_allclose(src.weight_sum, frame["w"].sum())


def test_peak_memory_is_bounded_by_the_block(tmp_path):
    """Python-side allocations of a streamed pass stay far below the data size."""
    rng = np.random.default_rng(0)
    n, d = 200_000, 20
    table = pa.table(
        {**{f"f{j}": rng.normal(size=n) for j in range(d)}, "y": rng.integers(0, 4, n)}
    )
    path = tmp_path / "big.parquet"
    pq.write_table(table, path, row_group_size=10_000)
    data_bytes = n * d * 8  # 32 MB decoded
    del table
    src = ParquetSource(path, target="y", batch_rows=2_000)
    objective = Objective(src, l2=1.0)
    tracemalloc.start()
    try:
        objective.loss_grad(np.zeros(objective.n_coef))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < data_bytes / 8, (peak, data_bytes)


def test_streaming_predict_matches_predict(tmp_path, parquet_path, frame):
    model = SoftmaxRegression().fit(ParquetSource(parquet_path, target="label", weight="w"))
    for out in (tmp_path / "p.parquet", tmp_path / "p.csv"):
        n = predict_file(model, parquet_path, out, proba=True, keep=["label"], batch_rows=71)
        assert n == len(frame)
        got = pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)
        X = frame[list(model.feature_names_in_)]
        np.testing.assert_array_equal(got["prediction"], model.predict(X))
        np.testing.assert_allclose(
            got[[f"proba_{c}" for c in model.classes_]], model.predict_proba(X), rtol=1e-12
        )
        assert list(got["label"]) == list(frame["label"])
    assert not list(tmp_path.glob(".*.tmp"))


def test_errors_are_clear(tmp_path, parquet_path, frame):
    with pytest.raises(ValueError, match="'nope' is not in"):
        ParquetSource(parquet_path, target="nope")
    with pytest.raises(ValueError, match="not numeric.*label"):
        ParquetSource(parquet_path, target="w", features=["f0", "label"])
    with pytest.raises(FileNotFoundError):
        ParquetSource(tmp_path / "missing.parquet", target="label")
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match="Parquet"):
        ParquetSource(bad, target="label")
    with pytest.raises(ValueError, match="without y"):
        SoftmaxRegression().fit(ParquetSource(parquet_path, target="label"), frame["label"])
    nan = frame.copy()
    nan.loc[5, "f1"] = np.nan
    nan.to_parquet(tmp_path / "nan.parquet")
    with pytest.raises(ValueError, match="missing values|NaN"):
        SoftmaxRegression().fit(ParquetSource(tmp_path / "nan.parquet", target="label"))
    csv = tmp_path / "bad.csv"
    csv.write_text("a,b,y\n1,2,x\n3,oops,y\n")
    with pytest.raises(ValueError, match="bad.csv"):
        SoftmaxRegression().fit(CSVSource(csv, target="y"))
    one = tmp_path / "one.csv"
    one.write_text("a,y\n1,x\n2,x\n")
    with pytest.raises(ValueError, match="at least 2 classes"):
        SoftmaxRegression().fit(CSVSource(one, target="y"))
    with pytest.raises(ValueError, match="not in classes"):
        ParquetSource(parquet_path, target="label", classes=["ant", "bee"])


def test_parse_size_and_streaming_decision(tmp_path, parquet_path):
    from types import SimpleNamespace

    from softmaxreg._stream_cli import parse_size, wants_streaming

    assert parse_size("512MB") == 512 << 20
    assert parse_size("4GB") == 4 << 30
    assert parse_size("1.5g") == int(1.5 * (1 << 30))
    assert parse_size("1000") == 1000
    with pytest.raises(ValueError, match="cannot read the size"):
        parse_size("lots")
    args = SimpleNamespace(data=str(parquet_path), memory_budget="1KB")
    assert wants_streaming(args, "parquet")
    args.memory_budget = "1GB"
    assert not wants_streaming(args, "parquet")
    assert not wants_streaming(args, "libsvm")


def test_exact_newton_and_auto_on_a_stream(parquet_path, frame):
    X, y = features_of(frame), frame["label"].to_numpy()
    for solver in ("newton", "auto"):
        ref = SoftmaxRegression(solver=solver, tol=1e-10).fit(X, y)
        src = ParquetSource(
            parquet_path, target="label", features=["f0", "f1", "f2", "f3"], batch_rows=111
        )
        assert rel_diff(ref, SoftmaxRegression(solver=solver, tol=1e-10).fit(src)) < 1e-8


@pytest.mark.parametrize("badly_scaled", [False, True])
def test_auto_on_a_stream_prefers_lbfgs_when_well_conditioned(tmp_path, badly_scaled):
    """Each Hessian-vector product of a stream is a pass: ``auto`` takes L-BFGS there unless
    the penalty is badly conditioned in standardised units (then trust-region Newton-CG)."""
    from softmaxreg._solvers import choose_solver

    rng = np.random.default_rng(5)
    n, d, k = 500, 30, 10  # 310 coefficients: above exact Newton's size
    X = rng.standard_normal((n, d)) * (10.0 ** np.linspace(-3, 3, d) if badly_scaled else 1.0)
    y = rng.integers(0, k, n)
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(d)])
    df["label"] = y
    path = tmp_path / "w.parquet"
    df.to_parquet(path)
    with ParquetSource(path, target="label", batch_rows=128) as src:
        expected = "newton-cg" if badly_scaled else "lbfgs"
        assert choose_solver(Objective(src, l2=np.ones(d))) == expected
        model = SoftmaxRegression(tol=1e-10).fit(src)
    assert model.result_.solver == expected
    assert rel_diff(SoftmaxRegression(tol=1e-10).fit(X, y), model) < 1e-7


def test_stream_benchmark_smoke(tmp_path):
    """benchmarks/stream_bench.py runs end to end at a tiny size."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import stream_bench

    rec = stream_bench.verify(1500, "lbfgs", 1e-8, tmp_path)
    assert rec["rel_diff_4096"] < 1e-8 and rec["rel_diff_65536"] < 1e-8
    tp = stream_bench.throughput(tmp_path / "verify-1500", repeats=1)
    assert tp["cache_used"] and tp["rows"] == 1500
    assert all(tp[k] > 0 for k in ("pyarrow_pass_s", "default_pass_s", "no_cache_pass_s"))


def test_cli_streams_above_the_memory_budget(tmp_path, parquet_path, frame, capsys):
    """`softmaxreg fit/predict` stream when the data exceed --memory-budget: same model."""
    from softmaxreg import load_model
    from softmaxreg._cli import main

    common = [
        str(parquet_path),
        "--target",
        "label",
        "--exclude",
        "w",
        "--solver",
        "lbfgs",
        "--tol",
        "1e-10",
    ]
    assert main(["fit", *common, "-o", str(tmp_path / "mem.softmaxreg")]) == 0
    assert (
        main(
            [
                "fit",
                *common,
                "-o",
                str(tmp_path / "st.softmaxreg"),
                "--memory-budget",
                "1KB",
                "--checkpoint",
                str(tmp_path / "fit.ckpt"),
            ]
        )
        == 0
    )
    mem, st = load_model(tmp_path / "mem.softmaxreg"), load_model(tmp_path / "st.softmaxreg")
    assert rel_diff(mem, st) < 1e-8
    assert (tmp_path / "fit.ckpt").exists()
    assert (
        main(
            [
                "fit",
                *common,
                "-o",
                str(tmp_path / "re.softmaxreg"),
                "--memory-budget",
                "1KB",
                "--checkpoint",
                str(tmp_path / "fit.ckpt"),
                "--resume",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(coef_of(load_model(tmp_path / "re.softmaxreg")), coef_of(st))
    capsys.readouterr()
    model = str(tmp_path / "st.softmaxreg")
    assert main(["predict", model, str(parquet_path), "--proba"]) == 0
    in_memory = capsys.readouterr().out
    assert main(["predict", model, str(parquet_path), "--proba", "--memory-budget", "1KB"]) == 0
    streamed = capsys.readouterr().out
    assert streamed == in_memory and len(streamed.splitlines()) == len(frame) + 1
    for name in ("p.csv", "p.csv.gz"):  # files too, byte for byte (decompressed)
        files = tmp_path / f"mem_{name}", tmp_path / f"st_{name}"
        assert (
            main(["-q", "predict", model, str(parquet_path), "--proba", "-o", str(files[0])]) == 0
        )
        budget = ["--memory-budget", "1KB"]
        assert (
            main(
                ["-q", "predict", model, str(parquet_path), "--proba", "-o", str(files[1]), *budget]
            )
            == 0
        )
        assert capsys.readouterr() == ("", "")  # -q: nothing on stdout or stderr
        read = gzip.decompress if name.endswith(".gz") else bytes
        assert read(files[1].read_bytes()) == read(files[0].read_bytes())
    assert main(["fit", *common, "--resume"]) == 2  # --resume needs --checkpoint
    assert main(["fit", *common, "--memory-budget", "lots"]) == 2


def test_streamed_fit_refuses_target_matrix_options(tmp_path):
    """classes= and offset= are in-memory features: a streamed fit says so, never drops them."""
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n0,1,u\n1,0,v\n1,1,u\n0,0,v\n")
    source = CSVSource(path, target="y")
    with pytest.raises(NotImplementedError, match="offset"):
        SoftmaxRegression().fit(source, offset=np.zeros((4, 2)))


F4 = ["f0", "f1", "f2", "f3"]


def _pass(objective, coef):
    loss, grad = objective.loss_grad(coef)
    return loss, grad


def test_threaded_and_cached_passes_are_bitwise_the_serial_pass(parquet_path, monkeypatch):
    """Kernel threads and the decoded-block cache change where blocks come from, not sums."""
    import softmaxreg._stream as stream

    cached = ParquetSource(parquet_path, target="label", weight="w", batch_rows=37)
    monkeypatch.setattr(stream, "_cpu_count", lambda: 2)
    assert cached._kernel_threads() == 1  # two cores: the reader's and the kernel's
    monkeypatch.setattr(stream, "_cpu_count", lambda: 3)
    monkeypatch.setattr(stream, "MAP_THREADS", 2)
    assert cached._kernel_threads() == 2  # a pool of two kernel threads
    threaded = Objective(cached, l2=1.0)
    coef = np.random.default_rng(1).normal(size=threaded.n_coef)
    first = _pass(threaded, coef)  # writes the cache
    assert cached._cache is not None and cached._cache.complete
    monkeypatch.setattr(stream._FileSource, "_tables", lambda *a: pytest.fail("files read"))
    again = _pass(threaded, coef)  # from the cache only
    monkeypatch.undo()
    monkeypatch.setattr(stream, "MAP_THREADS", 1)
    plain = ParquetSource(parquet_path, target="label", weight="w", batch_rows=37, cache=False)
    serial = _pass(Objective(plain, l2=1.0), coef)
    for a in (first, again):
        assert a[0] == serial[0] and np.array_equal(a[1], serial[1])
    cached.set_class_weight(np.array([2.0, 0.5, 1.0]))
    plain.set_class_weight(np.array([2.0, 0.5, 1.0]))
    a, b = _pass(Objective(cached, l2=1.0), coef), _pass(Objective(plain, l2=1.0), coef)
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    cached.close()
    assert cached._cache is None


@pytest.mark.parametrize("cache", [False, True])
def test_blocks_own_their_arrays(parquet_path, frame, cache):
    """Blocks kept after the iteration moved on still hold their rows (buffers are not reused)."""
    src = ParquetSource(parquet_path, target="label", weight="w", batch_rows=64, cache=cache)
    for _ in range(2):  # with the cache: written, then read back
        blocks = list(src.blocks())
        X = np.vstack([b.X for b in blocks])
        np.testing.assert_array_equal(X, features_of(frame))
        codes = np.concatenate([b.targets for b in blocks])
        np.testing.assert_array_equal(src.classes[codes], frame["label"].to_numpy())
        assert all(b.X.flags.f_contiguous for b in blocks)
    src.close()


def test_cache_decision_and_cleanup(tmp_path, parquet_path, frame, monkeypatch):
    import softmaxreg._stream as stream

    ref = SoftmaxRegression(solver="lbfgs", tol=1e-10).fit(features_of(frame), frame["label"])
    auto = ParquetSource(parquet_path, target="label", features=F4, batch_rows=50)
    assert rel_diff(ref, SoftmaxRegression(solver="lbfgs", tol=1e-10).fit(auto)) < 1e-8
    assert auto._cache is not None and auto._cache.complete  # room on disk: cached
    folder = tmp_path / "cache"
    folder.mkdir()
    with ParquetSource(parquet_path, target="label", batch_rows=50, cache=folder) as src:
        SoftmaxRegression(solver="lbfgs", tol=1e-10).fit(src)
        assert src._cache.complete and not any(folder.iterdir())  # an unnamed file
    assert src._cache is None
    monkeypatch.setattr(stream, "_room_for", lambda *a: False)
    full = ParquetSource(parquet_path, target="label", features=F4, batch_rows=50)
    assert rel_diff(ref, SoftmaxRegression(solver="lbfgs", tol=1e-10).fit(full)) < 1e-8
    assert full._cache is None  # no room: every pass decodes the files
    with pytest.raises(ValueError, match="no such directory"):
        ParquetSource(parquet_path, target="label", cache=tmp_path / "absent")
    with pytest.raises(ValueError, match="cache must be"):
        ParquetSource(parquet_path, target="label", cache=3)


def test_abandoned_first_pass_refills_the_cache(parquet_path, frame):
    src = ParquetSource(parquet_path, target="label", weight="w", batch_rows=64, cache=True)
    it = src.blocks()
    next(it)
    it.close()  # the first pass stops after one block: the cache is not complete
    assert not src._cache.complete
    blocks = list(src.blocks())
    assert src._cache.complete
    np.testing.assert_array_equal(np.vstack([b.X for b in blocks]), features_of(frame))
    np.testing.assert_array_equal(np.vstack([b.X for b in src.blocks()]), features_of(frame))
    src.close()


def test_infinite_features_and_large_finite_features(tmp_path):
    big = np.array([1e308, 1e308, -1e308, 1.0])  # the column sum overflows; values are finite
    table = pa.table({"a": big, "b": [1.0, np.inf, 0.0, 2.0], "y": [0, 1, 0, 1]})
    pq.write_table(table, tmp_path / "inf.parquet")
    with pytest.raises(ValueError, match="NaN or infinite"):
        list(ParquetSource(tmp_path / "inf.parquet", target="y", features=["b"]).blocks())
    src = ParquetSource(tmp_path / "inf.parquet", target="y", features=["a"])
    np.testing.assert_array_equal(next(src.blocks()).X[:, 0], big)


def test_no_disk_for_the_cache_falls_back_to_decoding(parquet_path, frame, monkeypatch):
    import errno
    import os

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    X = features_of(frame)
    for cache in ("auto", True):
        src = ParquetSource(parquet_path, target="label", features=F4, batch_rows=64, cache=cache)
        if cache is True:
            with pytest.warns(UserWarning, match="No decoded-block cache.*No space"):
                blocks = list(src.blocks())
        else:
            blocks = list(src.blocks())
        assert src._cache is None
        np.testing.assert_array_equal(np.vstack([b.X for b in blocks]), X)
