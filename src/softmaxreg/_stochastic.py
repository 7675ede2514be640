r"""The driver of the stochastic solvers: minibatches, minibatch gradients, epochs.

The optimisers themselves (``sgd.py``, ``adam.py``) are ``(init, update)`` pairs of pure
functions on a state dict; this module feeds them minibatch gradients.

Minibatch objective
    For a minibatch ``B`` with weight total :math:`S_B`, the gradient of
    :math:`f_B(W) = \frac{1}{S_B}\sum_{n\in B} s_n CE_n + \frac{1}{2S}\sum \lambda_i W_{ki}^2`
    is an unbiased estimate of the gradient of the mean-form objective ``f`` (see the
    Conventions of ``softmaxreg._objective``). It is an :class:`Objective` over the minibatch
    with penalty strengths ``lambda * S_B / S``: the same kernel as every exact solver.
Minibatches
    In-memory sources are shuffled globally each epoch; streamed sources are read in file
    order and shuffled within each block (shuffle the files if they are sorted by class).
    Epoch ``e`` uses the generator ``default_rng([seed, e])``, so runs are reproducible and
    resumable at epoch boundaries.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ._objective import Objective
from ._solvers import adam, sgd
from ._solvers._base import Stopping
from ._sources import ArraySource, Block

__all__ = [
    "OPTIMIZERS",
    "STOCHASTIC_SOLVERS",
    "batch_objective",
    "minibatches",
    "minimize_adam",
    "minimize_sgd",
    "run_epoch",
]

OPTIMIZERS = {"sgd": (sgd.init, sgd.update), "adam": (adam.init, adam.update)}
#: Minibatch rows per optimiser (with the step sizes of ``sgd.init``/``adam.init``, tuned on
#: standardised features: within 1e-3 of the optimal loss in at most 5 epochs).
BATCH_SIZE = {"sgd": 1024, "adam": 1024}
#: The step size decays as ``lr / (1 + t / decay_steps)`` with ``decay_steps`` this fraction
#: of an epoch (tuned on the tall benchmark problem, 1e6 x 100, 10 classes: SGD reaches a
#: relative loss gap of 9e-4 after 2 epochs and 3e-4 after 5; Adam 9.5e-4 after 1, 2e-4 after 5).
DECAY_EPOCHS = {"sgd": 0.25, "adam": 1.0}
#: ... and at least this many steps: on small data an epoch is a few steps (iris: 10 batches of
#: 16), and a horizon of a fraction of an epoch decayed the step before the iterates had
#: moved (standardised iris and wine after 300 epochs: relative loss gaps 1.4-2.2 for SGD and
#: 3.0-6.9 for Adam; with these floors 0.02-0.05 and 0.05-0.3). On the tall problem (977 steps an
#: epoch) the horizons are unchanged within 2%.
MIN_DECAY_STEPS = {"sgd": 250, "adam": 1000}


def minibatches(source, batch_size: int, rng: np.random.Generator) -> Iterator[Block]:
    """Shuffled minibatches of at most ``batch_size`` rows of a source (one epoch)."""
    if isinstance(source, ArraySource):
        perm = rng.permutation(source.n_samples)
        for start in range(0, source.n_samples, batch_size):
            idx = np.sort(perm[start : start + batch_size])
            off = None if source.offset is None else source.offset[idx]
            yield Block(source.X[idx], source.targets[idx], source.weights[idx], off)
        return
    if not hasattr(source, "blocks"):
        raise ValueError(
            f"The stochastic solvers need a source that yields local blocks; "
            f"{type(source).__name__} does not. Use solver='lbfgs' or 'newton-cg'."
        )
    for block in source.blocks():
        perm = rng.permutation(block.X.shape[0])
        for start in range(0, perm.size, batch_size):
            idx = np.sort(perm[start : start + batch_size])
            off = None if block.offset is None else block.offset[idx]
            yield Block(block.X[idx], block.targets[idx], block.weights[idx], off)


def batch_objective(block: Block, n_classes, penalty, fit_intercept, reference, total):
    """The minibatch objective ``f_B`` (module docstring); ``None`` if its weights are zero."""
    src = ArraySource(
        block.X,
        block.targets,
        block.weights,
        n_classes,
        offset=block.offset,
        block_rows=max(block.X.shape[0], 1),
    )
    if not src.weight_sum > 0:
        return None
    d = src.n_features
    return Objective(
        src,
        l2=np.asarray(penalty)[:d] * (src.weight_sum / total),
        fit_intercept=fit_intercept,
        reference=reference,
    )


def run_epoch(update, state: dict, objective, batches, total: float) -> dict:
    """Update ``state`` with one gradient step per minibatch of ``batches``."""
    for block in batches:
        sub = batch_objective(
            block,
            objective.n_classes,
            objective.penalty,
            objective.fit_intercept,
            objective.reference,
            total,
        )
        if sub is None:
            continue
        f, g = sub.loss_grad(state["coef"])
        if not np.isfinite(f):
            raise FloatingPointError(
                "The stochastic solver diverged (non-finite minibatch loss): standardise the "
                "features or use a smaller learning rate."
            )
        state = update(state, g)
    return state


def _steps_per_epoch(source, batch_size) -> int:
    return max(1, -(-int(source.n_samples) // batch_size))


def _resume(init, resume, oracle, tol, callback):
    """Optimiser state, loss, gradient and stopping record from a checkpointed state."""
    keys = init(np.zeros(1)).keys()
    state = {
        k: (np.array(resume[k]) if isinstance(resume[k], np.ndarray) else resume[k]) for k in keys
    }
    g = np.array(resume["g"], dtype=np.float64)
    stop = Stopping.resumed(oracle, tol, g, callback, resume)
    return state, float(resume["f"]), g, stop


def minimize_stochastic(
    name,
    oracle,
    coef0,
    *,
    tol,
    max_iter,
    callback=None,
    batch_size=None,
    seed=0,
    options=None,
    resume=None,
    checkpoint=None,
):
    """Run ``max_iter`` epochs of SGD or Adam; after each, one exact pass for the certificate.

    Returns a :class:`SolverResult` whose history has one row per epoch (exact loss and
    gradient norm at the end of the epoch). ``checkpoint(state)`` is called after each epoch
    with a flat dict (optimiser state, loss, gradient, history); passing such a state back
    as ``resume`` continues bitwise identically (epoch ``e`` always uses the same shuffle).
    """
    init, update = OPTIMIZERS[name]
    objective = getattr(oracle, "objective", oracle)
    source = objective.source
    if batch_size is None:  # about 1000 steps per epoch on small data
        batch_size = int(np.clip(source.n_samples // 1000, 16, BATCH_SIZE[name]))
    steps = _steps_per_epoch(source, batch_size)
    if resume is None:
        defaults = {"decay_steps": max(MIN_DECAY_STEPS[name], steps * DECAY_EPOCHS[name])}
        if name == "sgd":  # smaller batches, noisier steps: scale the step by sqrt(batch)
            defaults["learning_rate"] = sgd.LEARNING_RATE * np.sqrt(batch_size / BATCH_SIZE[name])
        state = init(coef0, **{**defaults, **(options or {})})
        f, g = oracle.loss_grad(state["coef"])
        stop = Stopping(oracle, tol, g, oracle.dtype, callback)
    else:
        state, f, g, stop = _resume(init, resume, oracle, tol, callback)
    coef = state["coef"]
    message = f"reached max_iter={max_iter} epochs"
    for epoch in range(len(stop.history), max_iter):
        if stop.done(g):
            message = "gradient norm below gtol"
            break
        rng = np.random.default_rng([seed, epoch])
        batches = minibatches(source, batch_size, rng)
        state = run_epoch(update, state, objective, batches, objective.scale)
        coef = state["coef"]
        f, g = oracle.loss_grad(coef)
        stopped = stop.record(coef, f, g, steps)
        if checkpoint is not None:
            checkpoint({**state, "f": float(f), "g": g, **stop.state()})
        if stopped:
            message = "stopped by callback"
            break
    else:
        if stop.done(g):
            message = "gradient norm below gtol"
    return stop.result(name, coef, f, g, message)


def minimize_sgd(oracle, coef0, *, tol, max_iter, callback=None, **kw):
    """SGD with momentum over shuffled minibatches (one epoch per iteration)."""
    return minimize_stochastic(
        "sgd", oracle, coef0, tol=tol, max_iter=max_iter, callback=callback, **kw
    )


def minimize_adam(oracle, coef0, *, tol, max_iter, callback=None, **kw):
    """Adam over shuffled minibatches (one epoch per iteration)."""
    return minimize_stochastic(
        "adam", oracle, coef0, tol=tol, max_iter=max_iter, callback=callback, **kw
    )


#: The minibatch solvers, kept apart from the exact registry ``SOLVERS`` (they do not reach
#: the gradient certificate in a few epochs): ``SoftmaxRegression(solver="sgd"|"adam")``.
STOCHASTIC_SOLVERS = {"sgd": minimize_sgd, "adam": minimize_adam}
