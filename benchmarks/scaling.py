"""Scaling plot: default-settings fit time against n, d and K.

``python -m benchmarks.scaling [--base-n 20000] [--out benchmarks/results]`` times
softmaxreg's default fit and scikit-learn's default ``lbfgs`` on ``make_classification``
data, varying one of n (rows), d (features) and K (classes) around a base problem, and writes
``scaling.json`` and ``scaling.png`` (log-log, one panel per axis).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .adapters import ADAPTERS
from .measure import time_fit
from .problems import _classification

__all__ = ["main", "scaling"]

SOLVERS = ["softmaxreg:auto", "sklearn:lbfgs"]


def _sizes(base_n: int) -> dict:
    return {
        "n": [(base_n // 4 * m, 50, 10) for m in (1, 2, 4, 8)],
        "d": [(base_n, d, 10) for d in (25, 50, 100, 200)],
        "K": [(base_n, 50, k) for k in (3, 10, 30, 100)],
    }


def scaling(base_n: int = 20000, repeats: int = 3, log=print) -> dict:
    """Median default-fit seconds per solver for every size of :func:`_sizes`."""
    out = {}
    for axis, sizes in _sizes(base_n).items():
        rows = []
        for n, d, K in sizes:
            X, y = _classification(n, d, K, informative=min(d - 2, 20), clusters=1)
            row = {"n": n, "d": d, "K": K}
            for name in SOLVERS:
                row[name] = time_fit(ADAPTERS[name], X, y, repeats=repeats, C=1.0)[0]
            log(f"{axis}: {row}")
            rows.append(row)
        out[axis] = rows
    return out


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, (axis, rows) in zip(axes, result.items(), strict=True):
        if not rows:
            ax.set_visible(False)
            continue
        for name in SOLVERS:
            ax.plot([r[axis] for r in rows], [r[name] for r in rows], marker="o", label=name)
        ax.set(xscale="log", yscale="log", xlabel=axis, ylabel="default fit seconds")
        ax.grid(True, which="both", lw=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    tmp = str(path) + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__)
    ap.add_argument("--base-n", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = scaling(args.base_n, args.repeats)
    tmp = out / "scaling.json.tmp"
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, out / "scaling.json")
    plot(result, out / "scaling.png")
    return result


if __name__ == "__main__":
    main()
