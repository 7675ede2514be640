"""Fit plus inference, softmaxreg vs statsmodels MNLogit, side by side (issue 4).

Each library runs in its own child process on the same fixed-seed data (a multinomial logit
model with known coefficients), so that its peak resident memory is its own. Timed:

- softmaxreg: ``SoftmaxRegression(penalty=None, tol=...).fit(X, y)`` then
  ``model.inference(X, y).summary()`` (Newton polish, separation check, covariance, llnull);
- statsmodels: ``MNLogit(y, add_constant(X)).fit()`` (its default Newton) then
  ``res.summary()`` (which fits the null model too).

Usage::

    python benchmarks/inference_bench.py --n 1000000 --d 50 --k 5 --out inference_bench.json

``--threads 1`` pins both libraries to one BLAS thread (fair, and much faster than two
spinning OpenBLAS threads on a machine that is busy with other work). softmaxreg still runs
its oracle passes on both cores (row blocks on threads), so its CPU time can exceed its wall
time; the report gives both ratios.

The JSON holds the timings, the peak RSS of each process (MiB) and the largest relative
difference between the two libraries' ``params`` and ``bse``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def make_data(n: int, d: int, K: int, seed: int = 0):
    """Standard normal features and labels drawn from a softmax model (not separable)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    B = rng.normal(scale=1.0 / np.sqrt(d), size=(d, K))
    B[:, 0] = 0.0
    A = X @ B + rng.normal(scale=0.5, size=K)
    A -= A.max(axis=1, keepdims=True)
    P = np.exp(A)
    P /= P.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(P, axis=1)).sum(axis=1)
    return X, np.minimum(y, K - 1)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_softmaxreg(X, y, tol):
    from softmaxreg import SoftmaxRegression

    t0, c0 = time.perf_counter(), _cpu_s()
    model = SoftmaxRegression(penalty=None, tol=tol, max_iter=200).fit(X, y)
    t1, c1 = time.perf_counter(), _cpu_s()
    res = model.inference(X, y)
    res.summary()
    t2, c2 = time.perf_counter(), _cpu_s()
    return {
        "fit_s": t1 - t0,
        "inference_s": t2 - t1,
        "total_s": t2 - t0,
        "fit_cpu_s": c1 - c0,
        "inference_cpu_s": c2 - c1,
        "newton_steps": res.newton_steps,
        "solver": model.result_.solver,
        "fit_iterations": model.result_.n_iter,
        "params": res.params.tolist(),
        "bse": res.bse.tolist(),
        "llf": res.llf,
    }


def run_statsmodels(X, y, tol):
    import statsmodels.api as sm

    t0, c0 = time.perf_counter(), _cpu_s()
    res = sm.MNLogit(y, sm.add_constant(X, prepend=True)).fit(disp=0)
    t1, c1 = time.perf_counter(), _cpu_s()
    res.summary()
    t2, c2 = time.perf_counter(), _cpu_s()
    return {
        "fit_s": t1 - t0,
        "inference_s": t2 - t1,
        "total_s": t2 - t0,
        "fit_cpu_s": c1 - c0,
        "inference_cpu_s": c2 - c1,
        "params": np.asarray(res.params).tolist(),
        "bse": np.asarray(res.bse).tolist(),
        "llf": float(res.llf),
    }


def worker(lib, n, d, K, tol, out):
    X, y = make_data(n, d, K)
    base, cpu0 = _peak_mib(), _cpu_s()
    result = {"softmaxreg": run_softmaxreg, "statsmodels": run_statsmodels}[lib](X, y, tol)
    result.update(
        peak_rss_mib=_peak_mib(),
        data_rss_mib=base,
        cpu_s=_cpu_s() - cpu0,
        load_avg=os.getloadavg()[0],
    )
    with open(out, "w") as fh:
        json.dump(result, fh)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=50)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-8, help="softmaxreg fit tol")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS threads in each child (OPENBLAS/OMP/MKL_NUM_THREADS)",
    )
    ap.add_argument("--libs", default="softmaxreg,statsmodels")
    ap.add_argument("--out", default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.n, args.d, args.k, args.tol, args.worker_out)
    report = {
        "n": args.n,
        "d": args.d,
        "K": args.k,
        "cpus": os.cpu_count(),
        "blas_threads": args.threads,
        "tol": args.tol,
    }
    for lib in args.libs.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "out.json")
            cmd = [sys.executable, __file__, "--worker", lib, "--worker-out", path,
                   "--n", str(args.n), "--d", str(args.d), "--k", str(args.k),
                   "--tol", str(args.tol)]  # fmt: skip
            env = dict(os.environ)
            if args.threads:
                for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                    env[var] = str(args.threads)
            subprocess.run(cmd, check=True, env=env)
            with open(path) as fh:
                report[lib] = json.load(fh)
        r = report[lib]
        print(f"{lib:12s} fit {r['fit_s']:8.2f}s  inference+summary {r['inference_s']:8.2f}s  "
              f"total {r['total_s']:8.2f}s (CPU {r['cpu_s']:8.2f}s, load {r['load_avg']:.1f})  "
              f"peak RSS {r['peak_rss_mib']:8.0f} MiB "
              f"(data {r['data_rss_mib']:.0f} MiB)", flush=True)  # fmt: skip
    if "softmaxreg" in report and "statsmodels" in report:
        a, b = report["softmaxreg"], report["statsmodels"]
        for key in ("params", "bse"):
            x, z = np.asarray(a[key]), np.asarray(b[key])
            report[f"max_rel_diff_{key}"] = float(np.max(np.abs(x - z) / np.abs(z)))
        report["speedup"] = b["total_s"] / a["total_s"]
        report["speedup_cpu"] = b["cpu_s"] / a["cpu_s"]
        # CPU of the timed calls only (cpu_s also counts importing the library)
        timed = [r["fit_cpu_s"] + r["inference_cpu_s"] for r in (a, b)]
        report["speedup_cpu_timed"] = timed[1] / timed[0]
        report["memory_ratio"] = b["peak_rss_mib"] / a["peak_rss_mib"]
        print(
            f"speed-up {report['speedup']:.1f}x wall, {report['speedup_cpu']:.1f}x CPU "
            f"({report['speedup_cpu_timed']:.1f}x CPU of fit + inference alone); "
            "peak memory ratio "
            f"{report['memory_ratio']:.2f}, max rel diff params "
            f"{report['max_rel_diff_params']:.2e}, bse {report['max_rel_diff_bse']:.2e}"
        )
    for lib in ("softmaxreg", "statsmodels"):
        if lib in report:
            report[lib].pop("params"), report[lib].pop("bse")
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(report, fh, indent=2)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
