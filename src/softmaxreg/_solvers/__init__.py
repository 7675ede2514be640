"""Solver registry: every solver has the signature ``minimize(oracle, coef0, *, tol, max_iter,
callback) -> SolverResult`` and sees only the objective oracle (never the data)."""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

from . import lbfgs, newton, newton_cg, subsampled
from ._base import CountingOracle, SolverResult

__all__ = ["SOLVERS", "SolverResult", "choose_solver", "full_solver", "solve"]

SOLVERS = {
    "lbfgs": lbfgs.minimize,
    "newton-cg": newton_cg.minimize,
    "newton": newton.minimize,
    "subsampled-newton": subsampled.minimize,
}

#: The full Hessian costs about ``n_coef / 8`` passes over the data (one blocked GEMM), and
#: exact Newton needs no more iterations on badly scaled or weakly penalised data; up to
#: here it beat preconditioned Newton-CG (badly scaled 20,000 x 40, K=5: 0.6 s against
#: 5.7 s), above it (digits, 650 coefficients: 1.0 s against 0.2 s) it lost.
NEWTON_MAX_COEF = 256


def full_solver(objective) -> str:
    """Exact Newton for few parameters on dense data, else trust-region Newton-CG."""
    if objective.n_coef <= NEWTON_MAX_COEF and not getattr(objective.source, "is_sparse", False):
        return "newton"
    return "newton-cg"


def choose_solver(objective) -> str:
    """The ``auto`` rule: subsampled Newton on tall in-memory data (rows that can be taken,
    ``n`` at least ``MIN_RATIO`` times the subsample), else :func:`full_solver`."""
    source = objective.source
    if hasattr(source, "take") and subsampled.sample_size(source.n_samples, objective.n_coef):
        return "subsampled-newton"
    return full_solver(objective)


#: BLAS threads while a solver runs on in-memory data. The oracle works on row blocks of
#: about 8 MiB, whose products are too small for threads to pay for their start-up and
#: busy-waiting: one thread was 1.3-10x faster per pass on 2 cores (benchmarks/RESULTS.md).
BLAS_THREADS = 1


@lru_cache(maxsize=1)
def _controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def blas_limits(objective):
    """A context that holds the BLAS libraries at :data:`BLAS_THREADS` for local sources."""
    if BLAS_THREADS is None or not getattr(objective.source, "is_local", False):
        return nullcontext()
    return _controller().limit(limits=BLAS_THREADS, user_api="blas")


def solve(name, objective, coef0, *, tol, max_iter, callback=None) -> SolverResult:
    """Run the solver registered as ``name`` (or ``"auto"``) on ``objective`` from ``coef0``."""
    if name == "auto":
        name = choose_solver(objective)
    if name not in SOLVERS:
        raise ValueError(f"Unknown solver {name!r}; choose one of {['auto', *SOLVERS]}.")
    with blas_limits(objective):
        return SOLVERS[name](
            CountingOracle(objective), coef0, tol=tol, max_iter=max_iter, callback=callback
        )
