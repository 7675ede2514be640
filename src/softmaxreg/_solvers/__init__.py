"""Solver registry: every solver has the signature ``minimize(oracle, coef0, *, tol, max_iter,
callback) -> SolverResult`` and sees only the objective oracle (never the data)."""

from __future__ import annotations

from . import lbfgs, newton, newton_cg
from ._base import CountingOracle, SolverResult

__all__ = ["SOLVERS", "SolverResult", "choose_solver", "solve"]

SOLVERS = {
    "lbfgs": lbfgs.minimize,
    "newton-cg": newton_cg.minimize,
    "newton": newton.minimize,
}

#: The full Hessian costs about ``n_coef / 2`` passes over the data; below this it wins.
NEWTON_MAX_COEF = 64


def choose_solver(objective) -> str:
    """The ``auto`` rule: exact Newton for few parameters, else trust-region Newton-CG."""
    if objective.n_coef <= NEWTON_MAX_COEF and not getattr(objective.source, "is_sparse", False):
        return "newton"
    return "newton-cg"


def solve(name, objective, coef0, *, tol, max_iter, callback=None) -> SolverResult:
    """Run the solver registered as ``name`` (or ``"auto"``) on ``objective`` from ``coef0``."""
    if name == "auto":
        name = choose_solver(objective)
    if name not in SOLVERS:
        raise ValueError(f"Unknown solver {name!r}; choose one of {['auto', *SOLVERS]}.")
    return SOLVERS[name](
        CountingOracle(objective), coef0, tol=tol, max_iter=max_iter, callback=callback
    )
