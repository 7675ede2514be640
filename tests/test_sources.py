"""In-memory row blocks and the threaded map-reduce of the oracle's passes."""

import numpy as np
import pytest
import scipy.sparse as sp

import softmaxreg._sources as sources
from softmaxreg._kernel import block_loss_grad
from softmaxreg._objective import Objective
from softmaxreg._sources import ArraySource


def _source(sparse, block_rows, n=103, d=7, K=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[rng.random((n, d)) < 0.5] = 0.0
    y = rng.integers(0, K, size=n)
    w = rng.uniform(0.5, 2.0, size=n)
    return ArraySource(sp.csr_matrix(X) if sparse else X, y, w, K, block_rows=block_rows)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_threaded_map_reduce_is_bitwise_the_serial_sum(sparse, monkeypatch):
    monkeypatch.setattr(sources, "MAP_THREADS", 2)
    src = _source(sparse, block_rows=10)  # 11 blocks, the last one short
    rng = np.random.default_rng(1)
    W, b = rng.normal(size=(4, 7)), rng.normal(size=4)

    def fn(blk, i):
        loss, gW, gb, _ = block_loss_grad(blk, W, b)
        return loss, gW, gb, float(i)

    serial, threaded = src.map_reduce(fn), src.map_reduce_threaded(fn)
    assert serial[3] == threaded[3] == sum(range(11))
    for a, c in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a, c)


def test_threaded_map_reduce_reraises_a_block_error(monkeypatch):
    monkeypatch.setattr(sources, "MAP_THREADS", 2)
    src = _source(False, block_rows=10)

    def fn(blk, i):
        if i == 7:
            raise ValueError("block 7 failed")
        return (float(i),)

    with pytest.raises(ValueError, match="block 7 failed"):
        src.map_reduce_threaded(fn)


def test_threaded_block_rows_split_only_data_worth_a_thread(monkeypatch):
    monkeypatch.setattr(sources, "MAP_THREADS", 2)
    work = sources.MIN_THREAD_WORK
    # one 8 MiB block holds all rows: split in two when each half is worth a thread
    assert sources._threaded_block_rows(10_000, 16_384, work / 1000) == 5_000
    assert sources._threaded_block_rows(10_000, 16_384, work / 10_000) == 16_384
    assert sources._threaded_block_rows(100_000, 16_384, work) == 16_384  # already many blocks
    monkeypatch.setattr(sources, "MAP_THREADS", 1)
    assert sources._threaded_block_rows(10_000, 16_384, work) == 16_384


def test_objective_on_split_blocks_matches_one_block(monkeypatch):
    monkeypatch.setattr(sources, "MAP_THREADS", 2)
    one, split = _source(False, block_rows=1000), _source(False, block_rows=17)
    coef = np.random.default_rng(2).normal(size=4 * 8)
    a, b = Objective(one, l2=0.5), Objective(split, l2=0.5)
    np.testing.assert_allclose(a.loss_grad(coef)[1], b.loss_grad(coef)[1], rtol=1e-12)
    np.testing.assert_allclose(a.hessian(coef)[2], b.hessian(coef)[2], rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("block_rows", [1, 7, 50, 99, 100, 1000])
def test_sparse_blocks_are_the_rows_of_x(block_rows):
    """CSR row blocks (views of the matrix's arrays) hold exactly the rows of ``X``."""
    dense = sp.random(100, 30, density=0.2, random_state=0).toarray()
    dense[5] = 0  # an empty row
    X = sp.csr_matrix(dense)
    src = ArraySource(X, np.zeros(100, int), np.ones(100), 2, block_rows=block_rows)
    blocks = list(src.blocks())
    assert len(blocks) == -(-100 // block_rows)
    stacked = sp.vstack([b.X for b in blocks]).tocsr()
    assert stacked.shape == X.shape and (stacked != X).nnz == 0
    assert all(sp.issparse(b.X) and b.X.format == "csr" for b in blocks)
    if block_rows >= 100:
        assert blocks[0].X is src.X  # the whole matrix: no copy at all
