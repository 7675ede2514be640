r"""Non-smooth penalties (L1, elastic net, grouped lasso) and their proximal operators.

The estimator's objective is split into a smooth part, the :class:`~softmaxreg._objective.Objective`
(cross-entropy plus the ridge part of the penalty), and a non-smooth part :math:`h` handled by the
proximal solver (``softmaxreg._solvers.proximal``). In the sum form of the Conventions
(``softmaxreg._objective``), with per-feature penalty factors :math:`v_i \ge 0`:

``penalty="l1"``
    :math:`h(W) = \frac1C \sum_k \sum_i v_i |W_{ki}|`.
``penalty="elasticnet"``
    :math:`\frac{\rho}{C} \sum_{k,i} v_i |W_{ki}|` plus the ridge term
    :math:`\frac{1-\rho}{2C} \sum_{k,i} v_i W_{ki}^2` in the smooth part (:math:`\rho` =
    ``l1_ratio``). This is exactly scikit-learn's ``saga`` objective: it minimises
    :math:`\frac1n\sum_n s_n CE_n + \frac{\alpha}{2n}\|W\|^2 + \frac{\beta}{n}\|W\|_1` with
    :math:`\alpha = (1-\rho)/C`, :math:`\beta = \rho/C` (``_logistic.py``/``_sag.py``), whose
    minimiser is the same.
``penalty="group"``
    :math:`\frac{\rho}{C} \sum_i v_i \|W_{:,i}\|_2` (a feature is in or out for every class,
    glmnet's ``type.multinomial="grouped"``) plus the same ridge term with ``1 - rho``;
    ``l1_ratio=None`` means ``rho = 1``.

Intercepts are never penalised. The objects below work in the *mean* form: strengths are the sum
form divided by the objective's ``scale`` ``S``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NonSmoothPenalty", "split_penalty", "PENALTIES"]

#: Penalties accepted by the estimator; the last three need the proximal solver.
PENALTIES = ("l2", None, "l1", "elasticnet", "group")


def split_penalty(penalty, C, l1_ratio, penalty_factor, n_features):
    """Split a penalty specification into its ridge and non-smooth strengths (sum form).

    Parameters
    ----------
    penalty : {"l2", None, "l1", "elasticnet", "group"}
    C : float
        Inverse penalty strength, as in scikit-learn.
    l1_ratio : float or None
        Mixing parameter ``rho`` in [0, 1] (required for ``"elasticnet"``; ``"group"`` defaults
        to 1).
    penalty_factor : array-like of shape (n_features,) or None
        Non-negative per-feature multipliers of the penalty (glmnet's ``penalty.factor``);
        ``0`` leaves a feature unpenalised.
    n_features : int
        Number of features the model sees (after the basis map).

    Returns
    -------
    l2 : ndarray of shape (n_features,)
        Ridge strengths ``lambda_i`` for :class:`~softmaxreg._objective.Objective`.
    l1 : ndarray of shape (n_features,)
        Non-smooth strengths (all zero for ``"l2"`` and ``None``).
    kind : {"l1", "group"} or None
        Which proximal operator the non-smooth part needs.
    """
    v = _penalty_factor(penalty_factor, n_features)
    zero = np.zeros(n_features)
    if penalty is None:
        return zero, zero, None
    if penalty == "l2":
        return v / C, zero, None
    if penalty == "l1":
        return zero, v / C, "l1"
    rho = check_l1_ratio(penalty, l1_ratio)
    kind = "group" if penalty == "group" else "l1"
    return (1.0 - rho) * v / C, rho * v / C, (kind if rho > 0 else None)


def check_l1_ratio(penalty, l1_ratio):
    if l1_ratio is None:
        if penalty == "group":
            return 1.0
        raise ValueError("penalty='elasticnet' needs l1_ratio, a number in [0, 1].")
    if isinstance(l1_ratio, bool) or not np.isscalar(l1_ratio) or not 0 <= l1_ratio <= 1:
        raise ValueError(f"l1_ratio must be a number in [0, 1], got {l1_ratio!r}.")
    return float(l1_ratio)


def _penalty_factor(penalty_factor, n_features):
    if penalty_factor is None:
        return np.ones(n_features)
    try:
        v = np.asarray(penalty_factor, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("penalty_factor must be an array of non-negative numbers.") from exc
    if v.shape != (n_features,):
        raise ValueError(
            f"penalty_factor must have one entry per feature the model sees ({n_features}, "
            f"after the basis map), got shape {v.shape}."
        )
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("penalty_factor must hold finite, non-negative numbers.")
    return v


class NonSmoothPenalty:
    r"""The non-smooth part :math:`h` of the objective, in mean form, with its prox.

    Parameters
    ----------
    kind : {"l1", "group"}
        Element-wise L1 norm, or the sum of the column norms :math:`\|W_{:,i}\|_2` over classes.
    strength : ndarray of shape (n_features,)
        Sum-form strengths per feature (the intercept column is never penalised).
    coef_shape : tuple (R, p)
        The objective's coefficient matrix shape (see the Conventions).
    scale : float
        The objective's ``S``; strengths are divided by it (mean form).
    """

    def __init__(self, kind, strength, coef_shape, scale):
        if kind not in ("l1", "group"):
            raise ValueError(f"Unknown non-smooth penalty {kind!r}.")
        self.kind = kind
        self.coef_shape = tuple(coef_shape)
        s = np.zeros(self.coef_shape[1])
        s[: len(strength)] = np.asarray(strength, dtype=np.float64) / scale
        self.strength = s  # per column, intercept column 0

    def _matrix(self, coef):
        return np.asarray(coef, dtype=np.float64).reshape(self.coef_shape)

    def value(self, coef: np.ndarray) -> float:
        """:math:`h(coef)` (mean form)."""
        W = self._matrix(coef)
        if self.kind == "l1":
            return float(np.sum(np.abs(W) @ self.strength))
        return float(np.linalg.norm(W, axis=0) @ self.strength)

    def prox(self, coef: np.ndarray, step: float) -> np.ndarray:
        r""":math:`\operatorname{prox}_{t h}(coef) = \arg\min_u h(u) + \|u - coef\|^2 / (2t)`."""
        W = self._matrix(coef)
        tau = step * self.strength
        if self.kind == "l1":
            return (np.sign(W) * np.maximum(np.abs(W) - tau, 0.0)).ravel()
        norms = np.linalg.norm(W, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            shrink = np.where(norms > tau, 1.0 - tau / norms, 0.0)
        return (W * shrink).ravel()

    def residual(self, coef: np.ndarray, grad: np.ndarray) -> np.ndarray:
        r"""The minimum-norm element of :math:`\nabla f(coef) + \partial h(coef)`.

        Zero exactly at a minimiser of ``f + h``; its max-norm is the solver's optimality
        certificate (it plays the role the gradient plays for smooth problems).
        """
        W, G, s = self._matrix(coef), self._matrix(grad), self.strength
        if self.kind == "l1":
            at_zero = np.sign(G) * np.maximum(np.abs(G) - s, 0.0)
            return np.where(W != 0, G + s * np.sign(W), at_zero).ravel()
        wn = np.linalg.norm(W, axis=0)
        gn = np.linalg.norm(G, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            active = G + s * np.where(wn > 0, W / wn, 0.0)
            at_zero = G * np.where(gn > s, 1.0 - s / gn, 0.0)
        return np.where(wn > 0, active, at_zero).ravel()
