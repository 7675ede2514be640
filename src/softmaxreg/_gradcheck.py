"""``softmaxreg gradcheck``: the analytic derivatives against finite differences.

On small random problems that cover the objective's options (2 to 5 classes, symmetric and
reference-class form, with and without intercept, penalty, sample weights including zeros,
offsets, count targets, dense and sparse features) it compares, in float64,

* the gradient of :class:`~softmaxreg._objective.Objective` with a five-point central
  difference of its loss, coordinate by coordinate;
* Hessian-vector products (the closure of ``loss_grad_hessp`` and the full ``hessian``) with a
  five-point central difference of the gradient along random directions;
* :func:`softmaxreg.softmax_jacobian` with a five-point difference of :func:`softmaxreg.softmax`.

The error reported is ``max|analytic - numeric| / max(max|numeric|, 1e-12)``. A five-point
stencil with step ``h = 1e-3`` has truncation error ``O(h^4)`` and rounding error about
``eps / h``, so correct derivatives give about 1e-9 or less; the default threshold 1e-6 leaves
room for that while any mistake in a formula gives an error of order one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._objective import Objective
from ._softmax import softmax, softmax_jacobian
from ._sources import ArraySource

__all__ = ["PROBLEMS", "format_gradcheck", "run_gradcheck"]

STEP = 1e-3


@dataclass(frozen=True)
class Problem:
    """One random problem configuration."""

    name: str
    n_classes: int
    n_features: int = 4
    n_samples: int = 40
    fit_intercept: bool = True
    reference: bool = False
    l2: float = 0.0
    weights: bool = False
    offset: bool = False
    counts: bool = False
    sparse: bool = False


PROBLEMS = (
    Problem("binary, reference form, intercept", 2, reference=True),
    Problem("3 classes, symmetric, L2, intercept", 3, l2=0.7),
    Problem("3 classes, reference form, no intercept", 3, reference=True, fit_intercept=False),
    Problem("4 classes, symmetric, L2, sample weights (some zero)", 4, l2=0.3, weights=True),
    Problem("3 classes, symmetric, offsets", 3, l2=0.1, offset=True),
    Problem("5 classes, reference form, count targets", 5, reference=True, counts=True),
    Problem(
        "4 classes, sparse features, L2, weights",
        4,
        n_features=6,
        l2=0.5,
        weights=True,
        sparse=True,
    ),
)


def _relative_error(analytic, numeric) -> float:
    analytic, numeric = np.asarray(analytic), np.asarray(numeric)
    scale = max(float(np.max(np.abs(numeric), initial=0.0)), 1e-12)
    return float(np.max(np.abs(analytic - numeric), initial=0.0)) / scale


def _five_point(f, x, direction, h=STEP):
    """``d/dt f(x + t direction)`` at ``t = 0`` by the five-point central stencil."""
    return (
        f(x - 2 * h * direction)
        - 8 * f(x - h * direction)
        + 8 * f(x + h * direction)
        - f(x + 2 * h * direction)
    ) / (12 * h)


def make_objective(problem: Problem, rng: np.random.Generator) -> Objective:
    """A random data set for ``problem`` wrapped as an :class:`Objective`."""
    n, d, K = problem.n_samples, problem.n_features, problem.n_classes
    if problem.sparse:
        X = sp.random(n, d, density=0.5, format="csr", random_state=rng, dtype=np.float64)
    else:
        X = rng.standard_normal((n, d))
    if problem.counts:
        targets = rng.integers(0, 4, size=(n, K)).astype(np.float64)
        targets[:, 0] += 1.0  # every row has a positive total
    else:
        targets = np.arange(n) % K  # every class present
    weights = np.ones(n)
    if problem.weights:
        weights = rng.uniform(0.2, 3.0, size=n)
        weights[:3] = 0.0
    offset = rng.standard_normal((n, K)) if problem.offset else None
    source = ArraySource(X, targets, weights, K, offset=offset, block_rows=16)
    l2 = problem.l2 * n  # the penalty in the objective's sum form
    return Objective(
        source, l2=l2, fit_intercept=problem.fit_intercept, reference=problem.reference
    )


def check_problem(problem: Problem, rng: np.random.Generator, n_directions: int = 3) -> dict:
    """The largest relative errors of the gradient and the Hessian products on one problem."""
    obj = make_objective(problem, rng)
    coef = 0.5 * rng.standard_normal(obj.n_coef)
    f, g, hessp = obj.loss_grad_hessp(coef)
    numeric_g = np.array([_five_point(obj.loss, coef, e) for e in np.eye(obj.n_coef)])
    _, g_full, H = obj.hessian(coef)
    errors = {
        "loss": abs(f - obj.loss(coef)) / max(abs(f), 1e-12),
        "gradient": _relative_error(g, numeric_g),
        "hessp": 0.0,
        "hessian": _relative_error(g_full, numeric_g),
    }
    grad = lambda c: obj.loss_grad(c)[1]  # noqa: E731
    for _ in range(n_directions):
        v = rng.standard_normal(obj.n_coef)
        numeric_hv = _five_point(grad, coef, v)
        errors["hessp"] = max(errors["hessp"], _relative_error(hessp(v), numeric_hv))
        errors["hessian"] = max(errors["hessian"], _relative_error(H @ v, numeric_hv))
    return errors


def check_softmax_jacobian(rng: np.random.Generator, n_trials: int = 5) -> float:
    """The largest relative error of ``softmax_jacobian`` over random logits."""
    worst = 0.0
    for trial in range(n_trials):
        K = 2 + trial
        a = 2.0 * rng.standard_normal(K)
        J = softmax_jacobian(softmax(a))
        numeric = np.column_stack([_five_point(softmax, a, e) for e in np.eye(K)])
        worst = max(worst, _relative_error(J, numeric))
    return worst


def run_gradcheck(seed: int = 0, threshold: float = 1e-6) -> dict:
    """Run every check; returns the rows, the largest error per check and the verdict.

    Returns
    -------
    dict
        ``rows`` (one per problem: ``problem`` and the errors ``loss``, ``gradient``,
        ``hessp``, ``hessian``), ``softmax_jacobian``, ``max_errors`` (per check),
        ``threshold`` and ``passed``.
    """
    rng = np.random.default_rng(seed)
    rows = [{"problem": p.name, **check_problem(p, rng)} for p in PROBLEMS]
    max_errors = {
        key: max(row[key] for row in rows) for key in ("loss", "gradient", "hessp", "hessian")
    }
    max_errors["softmax_jacobian"] = check_softmax_jacobian(rng)
    return {
        "seed": seed,
        "step": STEP,
        "threshold": threshold,
        "rows": rows,
        "softmax_jacobian": max_errors["softmax_jacobian"],
        "max_errors": max_errors,
        "passed": bool(all(e <= threshold for e in max_errors.values())),
    }


def format_gradcheck(result: dict) -> str:
    """A table of the relative errors, the largest ones and the verdict."""
    lines = [
        "analytic derivatives vs five-point finite differences "
        f"(step {result['step']:g}, seed {result['seed']}); relative errors:",
        f"{'problem':56}{'gradient':>11}{'hess-vec':>11}{'hessian':>11}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['problem']:56}{row['gradient']:>11.2e}{row['hessp']:>11.2e}"
            f"{row['hessian']:>11.2e}"
        )
    lines.append(f"{'softmax Jacobian (2 to 6 classes)':56}{result['softmax_jacobian']:>11.2e}")
    worst = max(result["max_errors"], key=result["max_errors"].get)
    verdict = "PASSED" if result["passed"] else "FAILED"
    lines.append(
        f"largest relative error {result['max_errors'][worst]:.2e} ({worst}); threshold "
        f"{result['threshold']:.0e}: {verdict}"
    )
    return "\n".join(lines)
