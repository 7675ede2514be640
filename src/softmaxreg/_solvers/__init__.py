"""Solver registry: every solver has the signature ``minimize(oracle, coef0, *, tol, max_iter,
callback) -> SolverResult`` and sees only the objective oracle (never the data)."""

from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

import numpy as np

from . import lbfgs, newton, newton_cg, subsampled
from ._base import CountingOracle, SolverResult, every_feature_penalised

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


#: Wide dense data (``n <= WIDE_RATIO * d``) with a well-conditioned penalty go to L-BFGS.
#: There TRON needs few outer iterations but many Hessian-vector products (each one pass),
#: while diagonal-scaled L-BFGS needs 20-40 passes. Measured (CPU s, default tol 1e-6, BLAS
#: at 1 thread, make_classification standardised, K=5; TRON / L-BFGS): 707 x 707 C=1
#: 0.078 / 0.049, C=100 0.087 / 0.039, C=1e4 0.103 / 0.036; 350 x 707 0.023 / 0.026;
#: 1400 x 707 0.154 / 0.123; 2800 x 707 0.569 / 0.416; 1581 x 1581 C=1 0.359 / 0.237,
#: C=100 0.305 / 0.126; correlated columns (rank 30 + noise 1e-2/1e-4) C=1 0.18-0.20 /
#: 0.17-0.19, C=100 0.351 / 0.245, C=1e4 0.259 / 0.044. L-BFGS loses when the penalty in
#: standardised units, ``lambda_j / sigma_j**2``, spreads over the columns: column scales
#: over 10^+-0.5 (spread 100): 0.119 / 0.073; 10^+-1 (1e4): 0.189 / 0.197; 10^+-2 (1e8):
#: 0.324 / no convergence in 1000 iterations. Hence the rule also needs that spread
#: <= ``WIDE_MAX_PENALTY_SPREAD`` and every feature penalised. Benchmark 'wide', time to
#: 1e-6 (wall s, auto before -> after, sklearn lbfgs): 707 x 707 0.035 -> 0.027, 0.031;
#: 1581 x 1581 0.251 -> 0.158, 0.202 (benchmarks/RESULTS.md).
WIDE_RATIO = 2
WIDE_MAX_PENALTY_SPREAD = 100.0


def _wide_well_conditioned(objective) -> bool:
    """Dense, ``n <= WIDE_RATIO * d``, every feature penalised within a spread of 100."""
    source, d = objective.source, objective.n_features
    if getattr(source, "is_sparse", False) or source.n_samples > WIDE_RATIO * d:
        return False
    return _penalty_well_conditioned(objective)


def _penalty_well_conditioned(objective) -> bool:
    """Every feature penalised, within a spread of :data:`WIDE_MAX_PENALTY_SPREAD` in
    standardised units (``lambda_j / sigma_j**2``): where L-BFGS converges fast."""
    if not every_feature_penalised(objective):
        return False
    d = objective.n_features
    lam = objective.penalty[:d]
    rms = objective.gradient_scale()[:d]  # one pass, cached: the solver's certificate uses it
    standardised = lam / np.square(rms)
    return bool(standardised.max() <= WIDE_MAX_PENALTY_SPREAD * standardised.min())


def choose_solver(objective) -> str:
    """The ``auto`` rule: subsampled Newton on tall in-memory data (rows that can be taken,
    ``n`` at least ``MIN_RATIO`` times the subsample); L-BFGS on wide well-conditioned dense
    data (:data:`WIDE_RATIO`) and on well-conditioned streamed or distributed data, whose
    Hessian-vector products each cost a pass that recomputes the probabilities (3M x 50
    Parquet rows, K = 10, tol 1e-6: L-BFGS 26 passes, 23.9 s; Newton-CG 7 gradient and 23
    Hessian-vector passes and its preconditioner's, 34.9 s); else :func:`full_solver`."""
    source = objective.source
    if hasattr(source, "take") and subsampled.sample_size(source.n_samples, objective.n_coef):
        return "subsampled-newton"
    if objective.n_coef > NEWTON_MAX_COEF:
        if _wide_well_conditioned(objective):
            return "lbfgs"
        if not getattr(source, "is_local", True) and _penalty_well_conditioned(objective):
            return "lbfgs"
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
