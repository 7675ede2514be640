"""Passes over the data that softmaxreg's solvers need to reach 1e-3 and 1e-6 (load-independent).

``python -m benchmarks.passes [--scale 0.02] [--problems ...] [--solvers newton-cg lbfgs]``
counts the oracle's work per iteration (loss+gradient = 1 pass, Hessian-vector product = 1,
Hessian diagonal = 0.5, loss only = 0.5, full Hessian = 1 + n_coef/4) in a ``tol=1e-9`` run
and prints the passes at which each relative suboptimality was first reached (``f*`` = the
best loss any of the solvers reached).
"""

from __future__ import annotations

import argparse

import numpy as np

from softmaxreg._objective import Objective
from softmaxreg._solvers import solve
from softmaxreg._sources import ArraySource

from .problems import PROBLEMS

__all__ = ["CountedObjective", "passes"]


class CountedObjective(Objective):
    """An objective that adds up the pass-equivalents of the oracle calls made on it."""

    passes = 0.0

    def loss(self, coef):
        self.passes += 0.5
        return super().loss(coef)

    def loss_grad(self, coef):
        self.passes += 1
        return super().loss_grad(coef)

    def loss_grad_hessp(self, coef):
        self.passes += 1
        f, g, hessp = super().loss_grad_hessp(coef)

        def counted(v):
            self.passes += 1
            return hessp(v)

        return f, g, counted

    def hessian_diagonal(self, coef):
        self.passes += 0.5
        return super().hessian_diagonal(coef)

    def hessian(self, coef):
        self.passes += 1 + self.n_coef / 4
        return super().hessian(coef)


def passes(problem, scale, solvers=("newton-cg", "lbfgs"), max_iter=3000) -> dict:
    """``{solver: {eps: passes or None}}`` for one problem."""
    X, y = problem.make(scale)
    classes, codes = np.unique(y, return_inverse=True)
    traces = {}
    for name in solvers:
        obj = CountedObjective(
            ArraySource(X, codes, np.ones(len(codes), X.dtype), classes.size), l2=1.0 / problem.C
        )
        marks = []
        solve(
            name,
            obj,
            np.zeros(obj.n_coef),
            tol=1e-9,
            max_iter=max_iter,
            callback=lambda coef, row, o=obj, m=marks: m.append((o.passes, row["loss"])),
        )
        traces[name] = marks
    fstar = min(f for marks in traces.values() for _, f in marks)
    out = {}
    for name, marks in traces.items():
        out[name] = {}
        for eps in (1e-3, 1e-6):
            hit = [p for p, f in marks if (f - fstar) / abs(fstar) <= eps]
            out[name][eps] = hit[0] if hit else None
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.passes", description=__doc__)
    ap.add_argument("--scale", type=float, default=0.02)
    ap.add_argument("--problems", nargs="*", default=list(PROBLEMS), choices=list(PROBLEMS))
    ap.add_argument("--solvers", nargs="*", default=["newton-cg", "lbfgs"])
    args = ap.parse_args(argv)
    for name in args.problems:
        for solver, hits in passes(PROBLEMS[name], args.scale, args.solvers).items():
            cells = ", ".join(f"{eps:g}: {p if p is None else round(p)}" for eps, p in hits.items())
            print(f"{name:14s} {solver:10s} passes to {cells}", flush=True)


if __name__ == "__main__":
    main()
