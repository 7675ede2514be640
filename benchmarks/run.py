"""Run the benchmark: ``python -m benchmarks.run [--quick | --scale S] [--problems ...]``.

Writes ``results.json``, ``results.md`` and one ``<problem>.png`` (relative suboptimality
against time, per solver) into ``--out`` (default ``benchmarks/results``). See ``measure.py``
for how times are measured and ``problems.py`` for the problems.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .adapters import available_adapters
from .measure import objective, pass_time, peak_memory, rel_subopt, sweep, time_fit
from .problems import PROBLEMS
from .report import write_markdown, write_plot

__all__ = ["main", "run_problem"]

#: f* comes from exact Newton (a Cholesky per step: quadratic convergence whatever the
#: scaling) where its Hessian is small, else from trust-region Newton-CG.
REFERENCES = ("softmaxreg:newton", "softmaxreg:newton-cg")


def environment() -> dict:
    """Library versions and the BLAS libraries in use (threadpoolctl)."""
    import scipy
    import sklearn
    from threadpoolctl import threadpool_info

    import softmaxreg

    blas = [
        {k: info.get(k) for k in ("prefix", "version", "architecture", "num_threads")}
        for info in threadpool_info()
    ]
    return {
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "softmaxreg": getattr(softmaxreg, "__version__", "?"),
        "threadpools": blas,
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS")},
    }


def _reference(X, y, codes, C, n_coef):
    """f*: a very tight fit on float64 data by the first of :data:`REFERENCES` that takes
    ``n_coef`` coefficients (Newton-CG took minutes on the full-size badly scaled problem)."""
    adapters = available_adapters(list(REFERENCES))
    name = next(n for n in REFERENCES if (adapters[n].max_coef or n_coef) >= n_coef)
    X64 = X.astype(np.float64)
    fitted = adapters[name].fit(X64, y, C=C, tol=1e-12, max_iter=2000)
    return objective(X, codes, C, fitted)


def _predict_throughput(X, y, C, repeats):
    """Rows per second of ``predict_proba`` for softmaxreg and scikit-learn (same data).

    The models are fitted with ``max_iter=5`` (throughput does not depend on the fit).
    """
    from sklearn.linear_model import LogisticRegression

    from softmaxreg import SoftmaxRegression

    out = {}
    for name, model in [("softmaxreg", SoftmaxRegression), ("sklearn", LogisticRegression)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = model(C=C, max_iter=5).fit(X, y)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.predict_proba(X)
            times.append(time.perf_counter() - t0)
        out[name] = X.shape[0] / float(np.median(times))
    return out


def run_problem(
    problem, scale, adapters, *, repeats=3, budget=60.0, sweeps=True, log=print
) -> dict:
    """Measure every adapter on one problem; returns its JSON record."""
    X, y = problem.make(scale)
    classes, codes = np.unique(y, return_inverse=True)
    K, (n, d) = classes.size, X.shape
    n_coef = K * (d + 1)
    rec = {
        "problem": problem.name,
        "description": problem.description,
        "n": n,
        "d": d,
        "K": K,
        "C": problem.C,
        "dtype": str(X.dtype),
        "nnz": int(getattr(X, "nnz", n * d)),
    }
    rec["pass_seconds"] = pass_time(X, K)
    t0 = time.perf_counter()
    fstar = _reference(X, y, codes, problem.C, n_coef)
    log(
        f"[{problem.name}] n={n} d={d} K={K} pass={rec['pass_seconds']:.4f}s "
        f"f*={fstar:.12g} ({time.perf_counter() - t0:.1f}s)"
    )
    rows = []
    for name, adapter in adapters.items():
        row = {"solver": name}
        if adapter.max_coef is not None and n_coef > adapter.max_coef:
            row["skipped"] = f"n_coef={n_coef} > {adapter.max_coef}"
            rows.append(row)
            continue
        # a default fit over the budget is timed once and its memory not measured: slow
        # solvers at full size (minutes per fit) would otherwise take the run's hours
        t, fitted, warns, cpu = time_fit(adapter, X, y, repeats=1, C=problem.C)
        cheap = t <= budget
        if cheap and repeats > 1:
            t, fitted, warns, cpu = time_fit(adapter, X, y, repeats=repeats, C=problem.C)
        f = objective(X, codes, problem.C, fitted)
        row.update(
            default_seconds=t,
            default_cpu_seconds=cpu,
            default_loss=f,
            default_iter=fitted.n_iter,
            default_warnings=warns,
            peak_mib=peak_memory(adapter, X, y, C=problem.C) if cheap else None,
        )
        row["points"], row["reached"] = [], {}
        if sweeps:
            sw = sweep(adapter, X, y, codes, problem.C, fstar, budget=budget, repeats=repeats)
            row["points"] = sw.points
            row["reached"] = {f"{eps:g}": v for eps, v in sw.reached.items()}
        rows.append(row)
        reached = {k: f"{v[0]:.3f}s" for k, v in row["reached"].items()}
        log(
            f"  {name:26s} default {t:.3f}s subopt {rel_subopt(f, fstar):.1e} {warns} "
            f"reached {reached}"
        )
    seen = [p[2] for r in rows for p in r.get("points", [])]
    seen += [r["default_loss"] for r in rows if "default_loss" in r]
    rec["fstar_reference"] = fstar
    rec["fstar"] = min([fstar, *seen])
    for r in rows:
        if "default_loss" in r:
            r["default_subopt"] = rel_subopt(r["default_loss"], rec["fstar"])
    rec["rows"] = rows
    rec["predict_proba_rows_per_s"] = _predict_throughput(X, y, problem.C, repeats)
    return rec


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    ap.add_argument("--scale", type=float, default=1.0, help="size scale (1 = full sizes)")
    ap.add_argument(
        "--quick", action="store_true", help="reduced run: --scale 0.02 --budget 20 unless given"
    )
    ap.add_argument("--problems", nargs="*", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--solvers", nargs="*", default=None, help="adapter names (default all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget", type=float, default=None, help="seconds per fit in a sweep")
    ap.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="hold every library's BLAS at this many threads (default: as is)",
    )
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument(
        "--defaults-only",
        action="store_true",
        help="only the default-settings fits (no time-to-suboptimality sweeps)",
    )
    ap.add_argument(
        "--merge",
        nargs="*",
        default=None,
        metavar="RESULTS_JSON",
        help="only combine these results.json files into --out",
    )
    args = ap.parse_args(argv)
    if args.quick and args.scale == 1.0:
        args.scale = 0.02
    if args.budget is None:
        args.budget = 20.0 if args.quick else 120.0
    return args


def merge(paths, out) -> dict:
    """Combine the ``results.json`` of several runs (e.g. problems run side by side)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    results = dict(runs[0])
    results["command"] = " ; ".join(r["command"] for r in runs)
    results["problems"] = [rec for r in runs for rec in r["problems"]]
    results["load_average"] = [la for r in runs for la in r.get("load_average", [])]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "results.json", json.dumps(results, indent=1, default=float))
    _atomic_write(out / "results.md", write_markdown(results))
    return results


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    adapters = available_adapters(args.solvers)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "scale": args.scale,
        "repeats": args.repeats,
        "budget": args.budget,
        "environment": environment(),
        "problems": [],
    }
    from threadpoolctl import threadpool_limits

    results["blas_threads"] = args.blas_threads
    results["defaults_only"] = args.defaults_only
    results["load_average"] = [os.getloadavg()]
    for name in args.problems:
        with threadpool_limits(args.blas_threads, user_api="blas"):
            rec = run_problem(
                PROBLEMS[name],
                args.scale,
                adapters,
                repeats=args.repeats,
                budget=args.budget,
                sweeps=not args.defaults_only,
            )
        results["load_average"].append(os.getloadavg())
        results["problems"].append(rec)
        write_plot(rec, out / f"{name}.png")
        _atomic_write(out / "results.json", json.dumps(results, indent=1, default=float))
        _atomic_write(out / "results.md", write_markdown(results))
    return results


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
