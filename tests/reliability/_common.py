"""Helpers shared by the reliability tests."""

import numpy as np


def noisy(n=60, d=3, K=3, seed=0):
    """Gaussian features, labels drawn from a softmax model: never separable."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    logits = X @ rng.normal(size=(K, d)).T
    y = np.argmax(logits + rng.gumbel(size=(n, K)), axis=1)
    y[:K] = np.arange(K)  # every class present
    return X, y


def assert_clear(exc, *, kinds=(ValueError, TypeError)):
    """A clear error: a ValueError/TypeError (not an IndexError, KeyError, ZeroDivisionError
    or a NumPy internal error) whose message is a sentence, not a bare repr."""
    assert isinstance(exc, kinds), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert len(message.split()) >= 4, f"terse message: {message!r}"


def assert_probabilities(P, n, K):
    assert P.shape == (n, K)
    assert np.all(np.isfinite(P)) and np.all(P >= 0)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
