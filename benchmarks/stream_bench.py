"""Streaming benchmark: an exact streamed fit of a large synthetic Parquet dataset.

Subcommands (``python benchmarks/stream_bench.py --help``):

``make PATH --rows N``
    Write a synthetic planted-softmax dataset (50 standard-normal features, 10 classes) as a
    directory of Parquet files with moderate row groups.
``fit PATH [--cache auto|on|off]``
    Fit it streamed (L-BFGS, one pass per oracle call), recording passes, the wall time of
    every pass and the peak resident memory of this process (``psutil``, sampled) next to the
    time pyarrow alone needs to read and decode the same data. Results are written as JSON.
``throughput PATH``
    Seconds per oracle pass (default source with its block cache: first and later passes;
    no cache) and per block pass, then pyarrow alone, all in one run.
``pyarrow PATH``
    Seconds pyarrow alone needs to read and decode the columns (best of plain readers).
``verify``
    On a size that fits in memory, compare the streamed fit with the in-memory fit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

N_FEATURES, N_CLASSES = 50, 10
ROWS_PER_FILE = 1 << 20
ROW_GROUP = 1 << 17


def planted(n_rows, seed=0, start=0):
    """Rows ``start..start+n_rows`` of the synthetic problem (deterministic per chunk)."""
    rng = np.random.default_rng([seed, start])
    W = np.random.default_rng(seed).normal(scale=0.4, size=(N_CLASSES, N_FEATURES))
    X = rng.standard_normal((n_rows, N_FEATURES))
    A = X @ W.T
    A -= A.max(axis=1, keepdims=True)
    P = np.exp(A)
    P /= P.sum(axis=1, keepdims=True)
    u = rng.random(n_rows)[:, None]
    y = (P.cumsum(axis=1) < u).sum(axis=1).clip(max=N_CLASSES - 1)
    return X, y


def make(path: Path, rows: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.mkdir(parents=True, exist_ok=True)
    names = [f"x{j}" for j in range(N_FEATURES)]
    for part, start in enumerate(range(0, rows, ROWS_PER_FILE)):
        n = min(ROWS_PER_FILE, rows - start)
        X, y = planted(n, seed, start)
        cols = [pa.array(X[:, j]) for j in range(N_FEATURES)] + [pa.array(y.astype(np.int64))]
        table = pa.Table.from_arrays(cols, names=[*names, "y"])
        tmp = path / f".part-{part:05d}.parquet.tmp"
        pq.write_table(table, tmp, row_group_size=ROW_GROUP)
        os.replace(tmp, path / f"part-{part:05d}.parquet")
    print(f"wrote {rows} rows to {path}", file=sys.stderr)


class PeakRSS:
    """Peak resident memory of this process: ``ru_maxrss`` and a 20 ms ``psutil`` sampler."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def max_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pyarrow_pass(source) -> float:
    """Seconds pyarrow alone needs to read the columns and decode them to NumPy.

    The fastest of two plain pyarrow readers over the same files and columns: whole row groups
    (``ParquetFile.read_row_group``, pyarrow's defaults, multithreaded) and
    ``ParquetFile.iter_batches`` (defaults); every column is converted with ``to_numpy``.
    """
    import pyarrow.parquet as pq

    cols = [*source.feature_names, source.target]

    def row_groups():
        for f in source.files:
            pf = pq.ParquetFile(f)
            for i in range(pf.metadata.num_row_groups):
                table = pf.read_row_group(i, columns=cols)
                for name in cols:
                    table.column(name).to_numpy()

    def batches():
        for f in source.files:
            for batch in pq.ParquetFile(f).iter_batches(columns=cols):
                for name in cols:
                    batch.column(name).to_numpy()

    times = []
    for reader in (row_groups, batches):
        t0 = time.perf_counter()
        reader()
        times.append(time.perf_counter() - t0)
    return min(times)


def pyarrow_pass_subprocess(path: Path, repeats: int = 2) -> float:
    """:func:`pyarrow_pass` (best of ``repeats``) in a child process, whose memory is its own."""
    import subprocess

    cmd = [sys.executable, __file__, "pyarrow", str(path), "--repeats", str(repeats)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout)["pyarrow_pass_s"])


def data_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*.parquet"))


def fit(path: Path, solver: str, tol: float, cache, out: Path | None) -> dict:
    """Streamed fit of the files under ``path``; progress (and a partial record) per iteration.

    Records the wall seconds of every oracle pass (``pass_s``: the first one writes the
    decoded-block cache unless ``cache`` is off), the peak resident memory of the fit, and
    and, in the same run (before and after the fit, in a child process so that pyarrow's
    buffers do not count in the fit's memory), the seconds pyarrow alone needs to read and
    decode the data (the smaller of the two is the reference).
    """
    from softmaxreg import ParquetSource, SoftmaxRegression

    record: dict = {
        "path": str(path),
        "file_bytes": data_bytes(path),
        "solver": solver,
        "tol": tol,
        "cache": cache,
    }

    def save():
        record["peak_rss_sampled_bytes"] = rss.peak
        record["peak_rss_maxrss_bytes"] = max_rss_bytes()
        if out is not None:
            out.write_text(json.dumps(record, indent=2))

    with PeakRSS() as rss:
        t0 = time.perf_counter()
        source = ParquetSource(path, target="y", cache=cache)
        record.update(
            rows=source.n_samples,
            features=source.n_features,
            classes=source.n_classes,
            batch_rows=source.batch_rows,
            decoded_bytes=source.n_samples * (source.n_features * 8 + 16),
            first_pass_s=time.perf_counter() - t0,
        )
        record["pyarrow_pass_before_s"] = pyarrow_pass_subprocess(path)
        save()
        pass_s = record["pass_s"] = []
        threaded = source.map_reduce_threaded

        def timed_pass(fn):  # wall seconds of every oracle pass
            t0 = time.perf_counter()
            try:
                return threaded(fn)
            finally:
                pass_s.append(time.perf_counter() - t0)

        source.map_reduce_threaded = timed_pass
        t_fit = time.perf_counter()

        def progress(coef, row):
            row = {**row, "wall_s": time.perf_counter() - t_fit, "rss": rss.peak}
            record.setdefault("iterations", []).append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            save()

        model = SoftmaxRegression(solver=solver, tol=tol, max_iter=500)
        model._progress = lambda: progress  # per-iteration log with wall time and RSS
        model.fit(source)
        t_fit = time.perf_counter() - t_fit
        source.close()
        record["peak_rss_fit_bytes"] = max(rss.peak, max_rss_bytes())
    record["pyarrow_pass_after_s"] = pyarrow_pass_subprocess(path)
    record["pyarrow_read_decode_pass_s"] = min(
        record["pyarrow_pass_before_s"], record["pyarrow_pass_after_s"]
    )
    res = model.result_
    passes = res.n_fun + res.n_hessp
    record.update(
        converged=bool(res.converged),
        n_iter=res.n_iter,
        passes=passes,
        fit_s=t_fit,
        s_per_pass=t_fit / passes,
        pass_over_pyarrow=t_fit / passes / record["pyarrow_read_decode_pass_s"],
        first_pass_over_pyarrow=pass_s[0] / record["pyarrow_read_decode_pass_s"],
        later_pass_median_over_pyarrow=float(np.median(pass_s[1:] or pass_s))
        / record["pyarrow_read_decode_pass_s"],
        later_pass_max_over_pyarrow=max(pass_s[1:] or pass_s)
        / record["pyarrow_read_decode_pass_s"],
        loss=res.loss,
        grad_norm=res.grad_norm,
    )
    save()
    if out is not None:
        np.save(out.with_suffix(".coef.npy"), np.hstack([model.coef_, model.intercept_[:, None]]))
    return record


def _timed(fn) -> tuple[float, float]:
    """Wall and CPU seconds (all threads of this process) of ``fn()``."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def throughput(path: Path, repeats: int = 2) -> dict:
    """Seconds per pass, all in the same run: one oracle pass (loss + gradient) with the
    default source (its first pass writes the decoded-block cache; later passes read it),
    without the cache, the block iteration alone (no kernel) with and without the cache, and
    last pyarrow alone (read + decode to NumPy, :func:`pyarrow_pass`). Each figure is wall
    seconds (best of ``repeats`` where repeated) with the CPU seconds of the process beside
    it; the files are read once first so that every figure finds them in the page cache."""
    from softmaxreg import ParquetSource
    from softmaxreg._objective import Objective

    def best(fn):
        runs = [_timed(fn) for _ in range(repeats)]
        return min(runs)

    out = {"path": str(path), "file_bytes": data_bytes(path)}
    with PeakRSS() as rss:
        plain = ParquetSource(path, target="y", cache=False)
        out.update(rows=plain.n_samples, batch_rows=plain.batch_rows)
        out["warm_up_blocks_pass_s"], _ = _timed(lambda: sum(1 for _ in plain.blocks()))
        # not zero: at W = 0 the kernel skips W X^T (a fit's first pass); the `fit` command
        # measures that pass
        coef = 0.01 * np.random.default_rng(0).standard_normal(Objective(plain, l2=1.0).n_coef)
        with ParquetSource(path, target="y") as default:  # cache="auto"
            obj = Objective(default, l2=1.0)
            out["default_first_pass_s"], out["default_first_pass_cpu_s"] = _timed(
                lambda: obj.loss_grad(coef)
            )
            out["cache_used"] = default._cache is not None and default._cache.complete
            out["default_pass_s"], out["default_pass_cpu_s"] = best(lambda: obj.loss_grad(coef))
            out["cache_blocks_pass_s"], _ = best(lambda: sum(1 for _ in default.blocks()))
        pobj = Objective(plain, l2=1.0)
        out["no_cache_pass_s"], out["no_cache_pass_cpu_s"] = best(lambda: pobj.loss_grad(coef))
        out["no_cache_blocks_pass_s"], _ = best(lambda: sum(1 for _ in plain.blocks()))
        out["peak_rss_ours_bytes"] = max(rss.peak, max_rss_bytes())
        # last: pyarrow's default readers buffer whole files (their memory is not ours)
        out["pyarrow_pass_s"] = min(pyarrow_pass(plain) for _ in range(repeats))
    ref = out["pyarrow_pass_s"]
    for key in ("default_first_pass", "default_pass", "no_cache_pass"):
        out[f"{key}_over_pyarrow"] = out[f"{key}_s"] / ref
    out["peak_rss_all_bytes"] = max(rss.peak, max_rss_bytes())
    return out


def verify(rows: int, solver: str, tol: float, workdir: Path) -> dict:
    """Streamed vs in-memory fit on data that fits in memory (same rows, same solver)."""
    import pyarrow.parquet as pq

    from softmaxreg import ParquetSource, SoftmaxRegression

    path = workdir / f"verify-{rows}"
    if not path.exists():
        make(path, rows)
    table = pq.read_table(path)
    X = np.column_stack([table.column(f"x{j}").to_numpy() for j in range(N_FEATURES)])
    y = table.column("y").to_numpy()
    t0 = time.perf_counter()
    mem = SoftmaxRegression(solver=solver, tol=tol, max_iter=500).fit(X, y)
    t_mem = time.perf_counter() - t0
    out = {"rows": rows, "solver": solver, "tol": tol, "in_memory_s": t_mem}
    for batch_rows in (4096, 65536):
        t0 = time.perf_counter()
        st = SoftmaxRegression(solver=solver, tol=tol, max_iter=500).fit(
            ParquetSource(path, target="y", batch_rows=batch_rows)
        )
        A = np.hstack([mem.coef_, mem.intercept_[:, None]])
        B = np.hstack([st.coef_, st.intercept_[:, None]])
        out[f"streamed_{batch_rows}_s"] = time.perf_counter() - t0
        out[f"rel_diff_{batch_rows}"] = float(np.abs(A - B).max() / np.abs(A).max())
    return out


def sgd_bench(scale: float, epochs: int = 5) -> dict:
    """SGD/Adam on the tall benchmark problem: relative loss gap after each epoch."""
    sys.path.insert(0, str(Path(__file__).parent))
    from problems import _tall
    from softmaxreg import SoftmaxRegression

    X, y = _tall(scale)
    t0 = time.perf_counter()
    ref = SoftmaxRegression(solver="lbfgs", tol=1e-8, max_iter=1000).fit(X, y)
    out = {
        "rows": len(y),
        "features": X.shape[1],
        "classes": 10,
        "lbfgs_s": time.perf_counter() - t0,
        "lbfgs_loss": ref.result_.loss,
        "lbfgs_passes": ref.result_.n_fun,
    }

    for solver in ("sgd", "adam"):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = SoftmaxRegression(solver=solver, max_iter=epochs).fit(X, y)
        gaps = [(h["loss"] - ref.result_.loss) / ref.result_.loss for h in m.result_.history]
        out[solver] = {"rel_gap_per_epoch": gaps, "s": time.perf_counter() - t0}
    return out


def _planted_labels(X, seed=0):
    """Labels of the planted softmax model for a block (seeded by the block's first value)."""
    W = np.random.default_rng(seed).normal(scale=0.4, size=(N_CLASSES, X.shape[1]))
    A = X @ W.T
    A -= A.max(axis=1, keepdims=True)
    P = np.exp(A)
    P /= P.sum(axis=1, keepdims=True)
    u = np.random.default_rng(abs(int(X[0, 0] * 1e9)) if len(X) else 0).random(len(X))
    return (P.cumsum(axis=1) < u[:, None]).sum(axis=1).clip(max=N_CLASSES - 1)


def dask_bench(rows: int, workers_list=(1, 2), repeats: int = 3) -> dict:
    """Seconds per oracle pass on a LocalCluster of 1 and 2 single-thread worker processes.

    The data are generated on the workers (the same chunks, hence the same data, for every
    cluster size) and persisted there by ``DaskSource``; the fit is compared with the
    in-memory fit of the same rows.
    """
    import dask.array as da
    from distributed import Client, LocalCluster

    from softmaxreg import SoftmaxRegression
    from softmaxreg._objective import Objective
    from softmaxreg.dask import DaskSource

    chunk = max(rows // 8, 1)
    out = {"rows": rows, "features": N_FEATURES, "classes": N_CLASSES, "chunk_rows": chunk}

    def collections():
        X = da.random.default_rng(0).standard_normal((rows, N_FEATURES), chunks=(chunk, -1))
        return X, X.map_blocks(_planted_labels, drop_axis=1, dtype=np.int64)

    coefs = {}
    for workers in workers_list:
        with (
            LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster),
        ):
            X, y = collections()
            t0 = time.perf_counter()
            obj = Objective(DaskSource(X, y), l2=1.0)
            t_setup = time.perf_counter() - t0
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                obj.loss_grad(np.zeros(obj.n_coef))
                times.append(time.perf_counter() - t0)
            del obj  # release the persisted partitions before the fit persists its own
            t0 = time.perf_counter()
            m = SoftmaxRegression(solver="lbfgs", tol=1e-8).fit(X, y)
            t_fit = time.perf_counter() - t0
            coefs[workers] = m.coef_
            out[f"workers_{workers}"] = {
                "setup_s": t_setup,
                "pass_s": min(times),
                "fit_s": t_fit,
                "passes": m.result_.n_fun,
            }
            if workers == workers_list[0]:
                X0, y0 = (a.compute() for a in (X, y))
    t0 = time.perf_counter()
    ref = SoftmaxRegression(solver="lbfgs", tol=1e-8).fit(X0, y0)
    out["in_memory_fit_s"] = time.perf_counter() - t0
    for workers, c in coefs.items():
        diff = np.abs(c - ref.coef_).max() / np.abs(ref.coef_).max()
        out[f"workers_{workers}"]["rel_diff_vs_in_memory"] = float(diff)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("path", type=Path)
    m.add_argument("--rows", type=int, required=True)
    f = sub.add_parser("fit")
    f.add_argument("path", type=Path)
    f.add_argument("--solver", default="lbfgs")
    f.add_argument("--tol", type=float, default=1e-8)
    f.add_argument(
        "--cache", choices=["auto", "on", "off"], default="auto", help="decoded-block cache"
    )
    f.add_argument("--out", type=Path)
    v = sub.add_parser("verify")
    v.add_argument("--rows", type=int, default=1 << 20)
    v.add_argument("--solver", default="lbfgs")
    v.add_argument("--tol", type=float, default=1e-8)
    v.add_argument("--workdir", type=Path, default=Path("/tmp/softmaxreg-stream-bench"))
    v.add_argument("--out", type=Path)
    h = sub.add_parser("throughput")
    h.add_argument("path", type=Path)
    h.add_argument("--repeats", type=int, default=2)
    h.add_argument("--out", type=Path)
    r = sub.add_parser("pyarrow")
    r.add_argument("path", type=Path)
    r.add_argument("--repeats", type=int, default=2)
    g = sub.add_parser("sgd")
    g.add_argument("--scale", type=float, default=1.0)
    g.add_argument("--out", type=Path)
    k = sub.add_parser("dask")
    k.add_argument("--rows", type=int, default=2_000_000)
    k.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "make":
        make(args.path, args.rows)
        return
    if args.cmd == "pyarrow":
        from softmaxreg import ParquetSource

        src = ParquetSource(args.path, target="y", cache=False)
        best = min(pyarrow_pass(src) for _ in range(args.repeats))
        print(json.dumps({"path": str(args.path), "pyarrow_pass_s": best}))
        return
    if args.cmd == "fit":
        cache = {"auto": "auto", "on": True, "off": False}[args.cache]
        rec = fit(args.path, args.solver, args.tol, cache, args.out)
    elif args.cmd in ("sgd", "dask", "throughput"):
        if args.cmd == "throughput":
            rec = throughput(args.path, args.repeats)
        else:
            rec = sgd_bench(args.scale) if args.cmd == "sgd" else dask_bench(args.rows)
        if args.out:
            args.out.write_text(json.dumps(rec, indent=2))
    else:
        args.workdir.mkdir(parents=True, exist_ok=True)
        rec = verify(args.rows, args.solver, args.tol, args.workdir)
        if args.out:
            args.out.write_text(json.dumps(rec, indent=2))
    print(json.dumps(rec, indent=2))


if __name__ == "__main__":
    main()
