"""Adam (Kingma & Ba, 2015) as an ``(init, update)`` pair, with a decaying step size.

The state is a plain dict of arrays and numbers (checkpointable as JSON + ``.npy``); ``update``
returns a new state and never mutates its input. The step size decays as
``lr_t = lr / (1 + t / decay_steps)`` (the driver sets ``decay_steps`` to one epoch).
"""

from __future__ import annotations

import numpy as np

__all__ = ["init", "update"]


def init(coef, *, learning_rate=0.002, beta1=0.9, beta2=0.999, eps=1e-8, decay_steps=1000) -> dict:
    """State for Adam from the coefficients ``coef`` of shape (n_coef,)."""
    n = np.size(coef)
    return {
        "solver": "adam",
        "coef": np.array(coef, dtype=np.float64),
        "m": np.zeros(n),
        "v": np.zeros(n),
        "t": 0,
        "learning_rate": float(learning_rate),
        "beta1": float(beta1),
        "beta2": float(beta2),
        "eps": float(eps),
        "decay_steps": float(decay_steps),
    }


def update(state: dict, grad: np.ndarray) -> dict:
    """One Adam step for the minibatch gradient ``grad`` of shape (n_coef,)."""
    t = state["t"] + 1
    b1, b2 = state["beta1"], state["beta2"]
    m = b1 * state["m"] + (1 - b1) * grad
    v = b2 * state["v"] + (1 - b2) * grad * grad
    lr = state["learning_rate"] / (1.0 + t / state["decay_steps"])
    step = lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + state["eps"])
    return {**state, "coef": state["coef"] - step, "m": m, "v": v, "t": t}
