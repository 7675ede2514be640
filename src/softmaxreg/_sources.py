"""Data sources: where the row blocks of the objective come from.

A source yields :class:`Block` objects and sums a per-block function over them
(:meth:`ArraySource.map_reduce`). Every source feeds the same kernel (``_kernel.py``), so every
solver works on every source. Streamed files and Dask partitions implement the same protocol:

``n_samples``, ``n_features``, ``n_classes``, ``dtype``, ``weight_sum``, ``is_local``
    problem facts (``is_local`` means blocks are evaluated in this process, so per-block state
    such as probabilities may be cached between oracle calls);
``map_reduce(fn)``
    ``sum(fn(block, index) for each block)`` of a tuple of floats/arrays.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

__all__ = [
    "ArraySource",
    "Block",
    "array_block_rows",
    "checked_class_weight",
    "default_block_rows",
    "for_each_block",
    "sum_tuples",
]


@dataclass(frozen=True)
class Block:
    """A block of rows.

    Attributes
    ----------
    X : ndarray or scipy.sparse.csr_matrix of shape (n_b, d)
        Features (the basis expansion ``phi`` already applied, without the bias column).
    targets : ndarray of shape (n_b,) of int, or (n_b, K) of float
        Class codes (one-of-K targets) or non-negative target rows.
    weights : ndarray of shape (n_b,)
        Sample weights ``s_n`` (class weights already folded in), in the dtype of ``X``.
    offset : ndarray of shape (n_b, K) or None
        Fixed per-class terms added to the logits.
    """

    X: np.ndarray | sp.csr_matrix
    targets: np.ndarray
    weights: np.ndarray
    offset: np.ndarray | None = None

    @property
    def totals(self) -> np.ndarray | None:
        """Row totals ``m_n = sum_k t_nk`` for target rows; ``None`` for class codes (m = 1)."""
        return None if self.targets.ndim == 1 else self.targets.sum(axis=1)


def default_block_rows(n_features: int, n_classes: int, itemsize: int = 8) -> int:
    """Rows per block so that the per-block temporaries stay near 8 MiB."""
    width = max(n_features, 4 * n_classes, 1)
    return int(np.clip((8 << 20) // (itemsize * width), 256, 65536))


def sum_tuples(parts) -> tuple:
    """Element-wise sum of an iterable of equal-length tuples (``None`` entries stay ``None``)."""
    total = None
    for part in parts:
        total = _accumulate(total, part)
    if total is None:
        raise ValueError("The data source yielded no blocks: there are no samples to fit.")
    return tuple(total)


def _accumulate(total: list | None, part: tuple) -> list:
    """``total + part`` element-wise in float64 (the running sum of :func:`sum_tuples`)."""
    if total is None:
        return [None if p is None else np.array(p, dtype=np.float64, copy=True) for p in part]
    for i, p in enumerate(part):
        if p is not None:
            total[i] += p
    return total


def sharing(fmt: str, data, indices, indptr, shape):
    """A CSR (``fmt="csr"``) or CSC matrix on the given arrays, copying none of them.

    SciPy's constructor, even with ``copy=False``, copies value and index arrays that view
    a much larger array (its ``prune``): every row block of every pass, and every ``X.T`` of
    a block, copied its share of ``X`` (on the sparse benchmark 3.5 MB and 0.18 ms a block,
    7 MiB of a fit's peak). The arrays must be a valid matrix of that format and ``shape``
    with one index dtype, as slices of a checked matrix are.
    """
    matrix = (sp.csr_matrix if fmt == "csr" else sp.csc_matrix)(shape, dtype=data.dtype)
    matrix.data, matrix.indices, matrix.indptr = data, indices, indptr
    for flag in ("_has_sorted_indices", "_has_canonical_format"):  # the empty matrix's, if set
        matrix.__dict__.pop(flag, None)
    return matrix


def transposed(X):
    """``X.T`` of a CSR matrix: the CSC matrix on the same arrays (no copies)."""
    return sharing("csc", X.data, X.indices, X.indptr, X.shape[::-1])


def _csr_rows(X, rows: slice):
    """Rows ``rows`` of the CSR matrix ``X`` sharing its arrays: SciPy's ``X[rows]`` copies
    them (on sparse 4,000 x 7,071, K = 20, that copy was a third of the fit's time)."""
    start, stop, _ = rows.indices(X.shape[0])
    if start == 0 and stop == X.shape[0]:
        return X
    ptr = X.indptr[start : stop + 1]
    lo, hi = ptr[0], ptr[-1]
    shape = (stop - start, X.shape[1])
    return sharing("csr", X.data[lo:hi], X.indices[lo:hi], ptr - lo, shape)


class ArraySource:
    """In-memory dense or CSR data, sliced into row blocks (no copies of ``X``).

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n_samples, n_features)
        Validated, finite, float32 or float64 features.
    targets : ndarray of shape (n_samples,) of int or (n_samples, n_classes) of float
    weights : ndarray of shape (n_samples,)
    n_classes : int
    offset : ndarray of shape (n_samples, n_classes), optional
    block_rows : int, optional
        Rows per block; by default :func:`default_block_rows`.
    """

    is_local = True

    def __init__(self, X, targets, weights, n_classes, offset=None, block_rows=None):
        self.X = X.tocsr() if sp.issparse(X) else X
        self.targets = targets
        self.weights = np.asarray(weights, dtype=X.dtype)
        self.offset = offset
        self.n_classes = int(n_classes)
        self.n_samples, self.n_features = X.shape
        self.dtype = X.dtype
        self.block_rows = block_rows or array_block_rows(self.X, self.n_classes)
        self.pass_work = self.n_samples * _row_work(self.X, self.n_classes)
        totals = 1.0 if targets.ndim == 1 else targets.sum(axis=1)
        self.weight_sum = float(np.sum(self.weights * totals, dtype=np.float64))

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.X)

    def block(self, start: int) -> Block:
        """The block of rows ``start : start + block_rows`` (views of dense data)."""
        rows = slice(start, start + self.block_rows)
        return Block(
            _csr_rows(self.X, rows) if self.is_sparse else self.X[rows],
            self.targets[rows],
            self.weights[rows],
            None if self.offset is None else self.offset[rows],
        )

    def blocks(self) -> Iterator[Block]:
        for start in range(0, self.n_samples, self.block_rows):
            yield self.block(start)

    def map_reduce(self, fn: Callable[[Block, int], tuple]) -> tuple:
        return sum_tuples(fn(block, i) for i, block in enumerate(self.blocks()))

    def take(self, rows: np.ndarray) -> ArraySource:
        """A source holding a copy of the given rows (sorted indices), for subsampling."""
        return ArraySource(
            self.X[rows],
            self.targets[rows],
            self.weights[rows],
            self.n_classes,
            offset=None if self.offset is None else self.offset[rows],
        )

    def map_reduce_threaded(self, fn: Callable[[Block, int], tuple]) -> tuple:
        """:meth:`map_reduce` with blocks evaluated on :data:`MAP_THREADS` threads.

        For ``fn`` that only write per-block state (the objective's oracle kernels); the
        threads take blocks in turn (:func:`for_each_block`). The per-block results are added
        to the running sum in block order as soon as their predecessors are in (only the
        results of blocks finished out of order wait, not one gradient per block), so the
        value is bitwise that of :meth:`map_reduce`.
        """
        n_blocks = -(-self.n_samples // self.block_rows)
        if MAP_THREADS < 2 or n_blocks < 2:
            return self.map_reduce(fn)
        pending, state = {}, {"added": 0, "total": None}

        def deposit(i, result):  # under the lock: add every result whose predecessors are in
            pending[i] = result
            while state["added"] in pending:
                state["total"] = _accumulate(state["total"], pending.pop(state["added"]))
                state["added"] += 1

        for_each_block(n_blocks, lambda i: fn(self.block(i * self.block_rows), i), deposit)
        return tuple(state["total"])


def for_each_block(n_blocks: int, fn: Callable[[int], object], deposit=None) -> None:
    """``fn(i)`` for ``i`` in ``range(n_blocks)`` on :data:`MAP_THREADS` threads.

    The calling thread and ``MAP_THREADS - 1`` pool threads take the next block in turn (at
    most ``MAP_THREADS`` blocks in flight: bounded memory), each under the caller's
    ``np.errstate``; ``deposit(i, result)``, if given, is called under a lock. A block's
    exception stops the others from starting and is re-raised.
    """
    threads = min(MAP_THREADS, n_blocks)
    if threads < 2:
        for i in range(n_blocks):
            result = fn(i)
            if deposit is not None:
                deposit(i, result)
        return
    err, lock = np.geterr(), threading.Lock()
    state = {"next": 0, "failed": False}

    def work():
        with np.errstate(**err):
            while True:
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if i >= n_blocks or state["failed"]:
                    return
                try:
                    result = fn(i)
                except BaseException:
                    state["failed"] = True
                    raise
                if deposit is not None:
                    with lock:
                        deposit(i, result)

    helpers = [_pool(MAP_THREADS - 1).submit(work) for _ in range(threads - 1)]
    try:
        work()
    finally:
        for h in helpers:
            h.result()  # waits, and re-raises a helper's exception


def array_block_rows(X, n_classes: int) -> int:
    """Rows per block of in-memory data: :func:`default_block_rows` (the ~8 MiB cap), at
    most ``n / DATA_BLOCKS`` rows but at least :data:`MIN_BLOCK_WORK` of work and ``d`` rows,
    then split over the threads (:func:`_threaded_block_rows`).

    The data-size bound keeps the temporaries of the ``MAP_THREADS`` blocks in flight, a few
    (K, rows) arrays each, a small fraction of one (n, K) array (scikit-learn's L-BFGS holds a
    few), so small data do not pay up to 8 MiB of temporaries per thread; data over
    ``DATA_BLOCKS`` times the cap keep it. Blocks keep at least ``d`` rows because each one
    returns (K, d) gradients: below that (wide or sparse data) more blocks would cost more
    memory and time, not less.
    """
    n, d = X.shape
    work = _row_work(X, n_classes)
    # A CSR block's temporaries are (rows, K): its width is not n_features.
    rows = default_block_rows(0 if sp.issparse(X) else d, n_classes, X.dtype.itemsize)
    least = MIN_BLOCK_WORK / (work * X.dtype.itemsize / 8)  # float32 flops cost ~half
    target = max(-(-n // DATA_BLOCKS), int(np.ceil(least)), d, 1)
    if target < rows:
        rows = _balanced(n, target, rows)
    else:  # large data: blocks of at most the cap
        rows = _even(n, rows)
    return _threaded_block_rows(n, rows, work)


def _balanced(n: int, rows: int, cap: int) -> int:
    """About ``rows`` (at most ``cap``) rows per block, evened out: equal blocks, and when
    there are few, a multiple of :data:`MAP_THREADS` of them (a last short block leaves
    threads idle)."""
    blocks = max(n // rows, 1)
    if MAP_THREADS < blocks < 4 * MAP_THREADS:
        fewer = blocks - blocks % MAP_THREADS
        blocks = fewer if -(-n // fewer) <= cap else fewer + MAP_THREADS
    return max(min(-(-n // blocks), cap), 1)


def _even(n: int, cap: int) -> int:
    """Rows per block for data over the cap: ``ceil(n / cap)`` equal blocks, a multiple of
    :data:`MAP_THREADS` of them when there are few (one block is left to
    :func:`_threaded_block_rows`). 100,000 x 30 (K = 4) took three blocks of
    34,952 rows, one thread doing two; four of 25,000 hold 3/4 of the per-thread temporaries
    and make a pass 8% faster (6.6 -> 6.1 ms, median of 5, BLAS at one thread)."""
    blocks = max(-(-n // cap), 1)
    if 1 < blocks < 4 * MAP_THREADS:
        blocks = -(-blocks // MAP_THREADS) * MAP_THREADS
    return max(-(-n // blocks), 1)


def _row_work(X, n_classes: int) -> float:
    """Floating-point work of one row in one pass, ~ ``2 K (nnz per row or d) + 4 K``."""
    per_row = X.nnz / max(X.shape[0], 1) if sp.issparse(X) else X.shape[1]
    return 2.0 * n_classes * per_row + 4.0 * n_classes


def _threaded_block_rows(n_samples: int, rows: int, row_work: float) -> int:
    """Rows per block: ``rows``, lowered so that data that fit in one block still give each of
    the :data:`MAP_THREADS` threads a block, when a block's work pays for the hand-off."""
    if MAP_THREADS < 2 or n_samples <= 1:
        return rows
    share = -(-n_samples // MAP_THREADS)
    if share >= rows or share * row_work < MIN_THREAD_WORK:
        return rows
    return share


#: Threads over row blocks for the oracle's passes (NumPy and BLAS release the GIL; the
#: solvers hold BLAS itself at one thread, so this is the one parallel layer).
MAP_THREADS = min(4, os.cpu_count() or 1)

#: Floating-point operations of one pass below which a block is not worth handing to another
#: thread: the hand-off costs ~0.1 ms of CPU per pass. Splitting one-block data in two made
#: the fits 1.1-2x faster in wall time on 2 idle cores (wide, sparse, badly_scaled,
#: separable at --quick sizes; even on digits) and costs 20-40% more CPU time
#: (benchmarks/RESULTS.md).
MIN_THREAD_WORK = 5e5

#: Floating-point operations of one pass (all blocks) below which the objective's passes
#: run in the calling thread even when the data are cut into blocks for threads (those
#: blocks still pay for a full Hessian's far larger work). Per Hessian-vector product on
#: digits (1,797 x 64, K = 10: 2.4e6 flops), two threads took 421 us against 228-303 us in
#: one; the trust-region fit 43.7 -> 32.8 ms. Passes of 5e6 flops and more (707 x 707, K = 5;
#: 4,000 x 7,071 sparse, K = 20) stay threaded: there two threads were as fast or faster.
MIN_THREADED_PASS_WORK = 4e6

#: In-memory data are cut into at least this many blocks (down to :data:`MIN_BLOCK_WORK`).
DATA_BLOCKS = 8

#: Floating-point operations (float64; float32 ones count half) of one block's pass below
#: which blocks are not cut smaller: each block costs ~50 us of Python, NumPy and thread
#: hand-off overhead per pass. Measured on tall at --quick size (20,000 x 100, K=10, BLAS at
#: one thread, 2 threads): 2,500-row blocks made each pass 5-10% (float64) and 15-30%
#: (float32) slower than 10,000-row ones, 5,000-row float64 blocks were as fast.
MIN_BLOCK_WORK = 1e7


@lru_cache(maxsize=4)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="softmaxreg")


def checked_class_weight(class_weight, n_classes: int) -> np.ndarray:
    """Class weights of shape (n_classes,) as float64, checked non-negative and finite."""
    cw = np.asarray(class_weight, dtype=np.float64)
    if cw.shape != (n_classes,) or np.any(cw < 0) or not np.all(np.isfinite(cw)):
        raise ValueError("class_weight must be non-negative and finite, one per class.")
    return cw
