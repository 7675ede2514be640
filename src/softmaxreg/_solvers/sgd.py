"""Minibatch stochastic gradient descent with momentum, as an ``(init, update)`` pair.

The state is a plain dict of arrays and numbers (checkpointable as JSON + ``.npy``); ``update``
returns a new state and never mutates its input. The step size decays as
``lr_t = lr / (1 + t / decay_steps)`` (t counts updates; the driver sets ``decay_steps`` to one
epoch), so that late epochs average out the gradient noise.
"""

from __future__ import annotations

import numpy as np

__all__ = ["init", "update"]


#: Step size for minibatches of 1024 rows (the driver scales it by sqrt(batch / 1024)).
LEARNING_RATE = 0.1


def init(coef, *, learning_rate=LEARNING_RATE, momentum=0.9, decay_steps=1000) -> dict:
    """State for SGD from the coefficients ``coef`` of shape (n_coef,)."""
    return {
        "solver": "sgd",
        "coef": np.array(coef, dtype=np.float64),
        "velocity": np.zeros(np.size(coef)),
        "t": 0,
        "learning_rate": float(learning_rate),
        "momentum": float(momentum),
        "decay_steps": float(decay_steps),
    }


def update(state: dict, grad: np.ndarray) -> dict:
    """One step along the minibatch gradient ``grad`` of shape (n_coef,)."""
    t = state["t"] + 1
    lr = state["learning_rate"] / (1.0 + t / state["decay_steps"])
    velocity = state["momentum"] * state["velocity"] - lr * grad
    return {**state, "coef": state["coef"] + velocity, "velocity": velocity, "t": t}
