"""Micro-benchmark of the per-block kernel on C- and Fortran-ordered blocks.

Streamed blocks are Fortran-ordered (one column per decoded feature), in-memory blocks
C-ordered views of the user's array; the kernel picks its layout from the block's order.
This prints the CPU milliseconds (best of ``--repeats``, BLAS at one thread) of each kernel
function on the same data in both orders, next to the plain GEMM ``X @ W.T`` of that order
(the arithmetic floor of one product with ``X``: the loss needs one, the gradient, the
Hessian-vector product and the diagonal two).

    flock /tmp/bench.lock python benchmarks/kernel_bench.py --rows 65536 --features 50 --classes 10
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from softmaxreg._kernel import block_hess_diag, block_hessp, block_loss, block_loss_grad
from softmaxreg._sources import Block


def _best_ms(fn, repeats: int) -> float:
    fn()
    best = np.inf
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best * 1e3


def _times(X, y, w, W, b, V, vb, repeats: int) -> dict:
    """CPU ms of one plain GEMM and of each kernel function on the block ``X``."""
    blk = Block(X, y, w)
    P = block_loss_grad(blk, W, b)[3]
    Wt = np.ascontiguousarray(W.T)
    return {
        "GEMM X @ W.T": _best_ms(lambda: X @ Wt, repeats),
        "block_loss": _best_ms(lambda: block_loss(blk, W, b), repeats),
        "block_loss_grad": _best_ms(lambda: block_loss_grad(blk, W, b), repeats),
        "block_hessp": _best_ms(lambda: block_hessp(blk, P, V, vb), repeats),
        "block_hess_diag": _best_ms(lambda: block_hess_diag(blk, P, True), repeats),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=65536)
    ap.add_argument("--features", type=int, default=50)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    n, d, K = args.rows, args.features, args.classes
    rng = np.random.default_rng(0)
    XC = rng.standard_normal((n, d))
    y = rng.integers(0, K, n)
    w = np.ones(n)
    W = 0.1 * rng.standard_normal((K, d + 1))[:, :d]  # a strided view, as the objective passes
    b, V, vb = rng.standard_normal(K), rng.standard_normal((K, d)), rng.standard_normal(K)
    print(f"{n} x {d}, K={K}: CPU ms per block, best of {args.repeats}, BLAS 1 thread")
    with threadpool_limits(1):
        for order, X in (("C", XC), ("F", np.asfortranarray(XC))):
            times = _times(X, y, w, W, b, V, vb, args.repeats)
            print(order, "  ".join(f"{k} {v:.2f}" for k, v in times.items()))


if __name__ == "__main__":
    main()
