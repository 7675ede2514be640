"""What every solver shares: the result record, the evaluation counter and the stopping test."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["CountingOracle", "SolverResult", "Stopping", "every_feature_penalised"]


@dataclass
class SolverResult:
    """The outcome of a solver run (one record type for every solver).

    Attributes
    ----------
    coef : ndarray of shape (n_coef,)
        Final coefficients (see the Conventions of ``softmaxreg._objective``).
    converged : bool
        ``True`` only if the gradient certificate ``grad_norm <= gtol`` holds at ``coef``.
    message : str
        Why the solver stopped.
    loss : float
        Objective value at ``coef`` (mean form).
    grad_norm : float
        Max-norm of the gradient at ``coef`` in standardised units (see :class:`Stopping`).
    gtol : float
        The gradient threshold that certifies convergence.
    n_iter, n_fun, n_grad, n_hessp : int
        Iterations and evaluations of the loss, the gradient and Hessian(-vector) products.
    history : list of dict
        One row per iteration: ``iter``, ``loss``, ``grad_norm``, ``step``, ``time``.
    solver : str
        Registry name of the solver.
    """

    coef: np.ndarray
    converged: bool
    message: str
    loss: float
    grad_norm: float
    gtol: float
    n_iter: int
    n_fun: int
    n_grad: int
    n_hessp: int
    history: list = field(default_factory=list)
    solver: str = ""

    def __repr__(self) -> str:
        status = "converged" if self.converged else "NOT converged"
        measured = (
            f"loss={self.loss:.10g}, |grad|_inf={self.grad_norm:.3g} (gtol {self.gtol:.3g})"
            if np.isfinite(self.gtol)
            else "loss and gradient not evaluated"  # partial_fit: minibatch steps only
        )
        return (
            f"SolverResult({self.solver!r}, {status}: {self.message}; {measured}, "
            f"n_iter={self.n_iter}, "
            f"evaluations: fun={self.n_fun} grad={self.n_grad} hessp={self.n_hessp})"
        )


def every_feature_penalised(objective) -> bool:
    """Whether every feature's coefficients carry an L2 penalty (the loss strongly convex in
    them); ``False`` for objectives without a ``penalty``."""
    penalty = getattr(objective, "penalty", None)
    d = getattr(objective, "n_features", 0)
    return penalty is not None and d > 0 and bool(np.all(np.asarray(penalty)[:d] > 0))


class CountingOracle:
    """Wraps an objective and counts its evaluations; Hessian-vector products are counted too."""

    def __init__(self, objective):
        self.objective = objective
        self.n_fun = self.n_grad = self.n_hessp = 0

    def __getattr__(self, name):
        return getattr(self.objective, name)

    def loss(self, coef):
        self.n_fun += 1
        return self.objective.loss(coef)

    def loss_grad(self, coef):
        self.n_fun += 1
        self.n_grad += 1
        return self.objective.loss_grad(coef)

    def _counted(self, hessp: Callable) -> Callable:
        def counted(v):
            self.n_hessp += 1
            return hessp(v)

        return counted

    def _with_hessp(self, evaluate, coef):
        self.n_fun += 1
        self.n_grad += 1
        f, g, hessp = evaluate(coef)
        return f, g, self._counted(hessp)

    def loss_grad_hessp(self, coef):
        return self._with_hessp(self.objective.loss_grad_hessp, coef)

    def loss_grad_approx_hessp(self, coef):
        """``loss_grad_hessp`` with the objective's fastest Hessian-vector products (exact
        value and gradient); the exact ones where the objective offers nothing else."""
        objective = self.objective
        evaluate = getattr(objective, "loss_grad_approx_hessp", objective.loss_grad_hessp)
        return self._with_hessp(evaluate, coef)

    def hessian(self, coef):
        self.n_fun += 1
        self.n_grad += 1
        self.n_hessp += 1
        return self.objective.hessian(coef)


class Stopping:
    """The convergence certificate and the per-iteration history.

    Converged means ``max |g / scale| <= gtol`` with ``scale = oracle.gradient_scale()``
    (the gradient in the units of standardised features; mean-form objective, so neither the
    units of the features nor the number or weights of the samples change the test) and
    ``gtol = tol``, floored at ``100 * eps(float32)`` for float32 data, the accuracy it allows.
    The reported ``grad_norm`` is this scaled max-norm.
    """

    def __init__(self, oracle, tol, g0, dtype, callback=None):
        if not np.all(np.isfinite(g0)):  # else gtol = inf would certify anything
            raise ValueError(
                f"The gradient at the starting point overflows {np.dtype(dtype).name}: the "
                "feature values (or sample weights) are too large for this precision. "
                "Rescale or standardise the features (e.g. sklearn's StandardScaler)."
            )
        floor = 100 * np.finfo(np.float32).eps if np.dtype(dtype) == np.float32 else 0.0
        self.gtol = max(tol, floor)
        scale = getattr(oracle, "gradient_scale", None)
        self.scale = scale() if callable(scale) else 1.0
        self.oracle = oracle
        self.callback = callback
        self.history: list[dict] = []
        self._t0 = time.perf_counter()

    @classmethod
    def resumed(cls, oracle, tol, g, callback, state) -> Stopping:
        """The record of a checkpointed run: its history, its evaluation counts added to
        ``oracle``'s, so a resumed run reports what an uninterrupted one would. The threshold
        is this call's ``tol`` (a resumed fit may ask for more accuracy or less); with the
        checkpointed run's ``tol`` it continues that run bitwise."""
        stop = cls(oracle, tol, g, oracle.dtype, callback)
        stop.history = [dict(row) for row in state["history"]]
        counts = state.get("counts", [0, 0, 0])
        for name, c in zip(("n_fun", "n_grad", "n_hessp"), counts, strict=True):
            if hasattr(oracle, name):
                setattr(oracle, name, getattr(oracle, name) + int(c))
        return stop

    def state(self) -> dict:
        """The record's part of a solver's resumable state (read back by :meth:`resumed`)."""
        counts = [getattr(self.oracle, name, 0) for name in ("n_fun", "n_grad", "n_hessp")]
        return {"gtol": self.gtol, "history": list(self.history), "counts": counts}

    def norm(self, g) -> float:
        """The certificate's gradient norm: ``max |g / scale|``."""
        return float(np.max(np.abs(g / self.scale), initial=0.0))

    def done(self, g) -> bool:
        return self.norm(g) <= self.gtol

    def record(self, coef, loss, g, step) -> bool:
        """Append a history row and call the callback; returns True if the callback asks to stop."""
        row = {
            "iter": len(self.history) + 1,
            "loss": float(loss),
            "grad_norm": self.norm(g),
            "step": float(step),
            "time": time.perf_counter() - self._t0,
        }
        self.history.append(row)
        return bool(self.callback is not None and self.callback(coef, row) is True)

    def result(self, name, coef, loss, g, message, converged=None) -> SolverResult:
        gnorm = self.norm(g)
        return SolverResult(
            coef=coef,
            converged=self.done(g) if converged is None else converged,
            message=message,
            loss=float(loss),
            grad_norm=gnorm,
            gtol=self.gtol,
            n_iter=len(self.history),
            n_fun=self.oracle.n_fun,
            n_grad=self.oracle.n_grad,
            n_hessp=self.oracle.n_hessp,
            history=self.history,
            solver=name,
        )
