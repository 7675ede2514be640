"""Row blocks sized to the data, sub-blocked kernel temporaries, in-order threaded sums."""

import time
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from softmaxreg import _kernel as kernel
from softmaxreg import _objective as objective_module
from softmaxreg import _sources as sources
from softmaxreg._objective import Objective
from softmaxreg._sources import ArraySource, Block, array_block_rows, default_block_rows
from softmaxreg._targets import compact_codes


def _data(n, d, K, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.integers(0, K, n)
    y[:K] = np.arange(K)
    return X, y, np.ones(n, dtype=dtype)


def _shape_only(n, d, dtype=np.float64):
    """An (n, d) array with the given dtype that allocates one element (for block rules)."""
    return np.broadcast_to(np.zeros(1, dtype=dtype), (n, d))


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_data_get_equal_blocks_within_the_8_mib_cap(dtype, threads, monkeypatch):
    monkeypatch.setattr(sources, "MAP_THREADS", threads)
    for n, d, K in [(1_000_000, 100, 10), (250_000, 100, 10), (200_000, 64, 200), (100_000, 30, 4)]:
        X = _shape_only(n, d, dtype)
        rows = array_block_rows(X, K)
        cap = default_block_rows(d, K, np.dtype(dtype).itemsize)
        assert rows <= cap
        blocks = -(-n // rows)
        assert blocks * rows - n < blocks  # equal blocks, up to rounding
        fewest = -(-n // cap)
        assert fewest <= blocks < fewest + threads  # no more blocks than the cap asks for
        if 1 < blocks < 4 * threads:
            assert blocks % threads == 0  # few blocks: none left for one thread alone
    monkeypatch.setattr(sources, "MAP_THREADS", 2)  # 3 blocks of the float64 cap make 4
    assert array_block_rows(_shape_only(100_000, 30), 4) == 25_000


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_small_data_get_balanced_blocks_within_the_bounds(threads, monkeypatch):
    monkeypatch.setattr(sources, "MAP_THREADS", threads)
    for n, d, K in [(20_000, 100, 10), (4_000, 64, 200), (3_000, 100, 10), (50_000, 20, 30)]:
        X = _shape_only(n, d)
        rows = array_block_rows(X, K)
        cap = default_block_rows(d, K)
        assert d <= rows <= cap
        least = min(sources.MIN_BLOCK_WORK / sources._row_work(X, K), n / threads, cap)
        assert rows >= least / 2  # blocks are not cut below the overhead-paying size
        assert rows <= max(-(-n // sources.DATA_BLOCKS), least) * 1.5  # small data: small blocks
        blocks = -(-n // rows)
        assert blocks * rows - n < blocks  # equal blocks, up to rounding
        if 1 < blocks < 4 * threads:
            assert blocks % threads == 0


def test_tiny_data_get_one_positive_block():
    for n in (0, 1, 5):
        assert array_block_rows(_shape_only(n, 3), 3) >= max(n, 1)


def test_wide_and_sparse_blocks_keep_at_least_d_rows():
    X = sp.random(4_000, 7_071, density=50 / 7_071, format="csr", random_state=0)
    assert array_block_rows(X, 20) >= 2_000  # each block returns a (K, d) gradient
    assert array_block_rows(_shape_only(707, 707), 5) >= 707 // 2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_squared_dot_in_sub_blocks_equals_the_whole_product(dtype, monkeypatch):
    monkeypatch.setattr(kernel, "SUB_BLOCK_BYTES", 4096)  # many sub-blocks, a short last one
    X, _, _ = _data(1_003, 37, 3, dtype)
    QT = np.random.default_rng(1).random((5, 1_003)).astype(dtype)
    got = kernel.dot_squared(QT, X)
    ref = QT.astype(np.float64) @ np.square(X.astype(np.float64))
    assert got.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got, ref, rtol=rtol)


@pytest.mark.parametrize("d", [6, 20])  # the stacked and the per-pair construction
@pytest.mark.parametrize("intercept", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
def test_block_hessian_does_not_depend_on_the_sub_block_size(d, intercept, sparse):
    X, y, w = _data(301, d, 4)
    rng = np.random.default_rng(2)
    P = rng.random((301, 4))
    P /= P.sum(axis=1, keepdims=True)
    block = Block(sp.csr_matrix(X) if sparse else X, y, w * rng.random(301))
    assert kernel._pairs_wanted(3, d + intercept) == (d == 20)
    whole = kernel.block_hessian(block, P, intercept, max_cells=10**9)
    for cells in (1, 37, 1_000):  # one row at a time, uneven sub-blocks
        H = kernel.block_hessian(block, P, intercept, max_cells=cells)
        np.testing.assert_allclose(H, whole, rtol=1e-12, atol=1e-12 * np.abs(whole).max())
    c = block.weights.astype(np.float64)
    p = d + intercept
    pairs = kernel._hessian_pairs(block.X, P, c, p, 50)
    stacked = kernel._hessian_stacked(block.X, P, c, p, 50)
    np.testing.assert_allclose(pairs, stacked, rtol=1e-12, atol=1e-12 * np.abs(stacked).max())


def test_threaded_sum_in_block_order_with_blocks_finished_out_of_order(monkeypatch):
    monkeypatch.setattr(sources, "MAP_THREADS", 3)
    X, y, w = _data(200, 5, 3)
    src = ArraySource(X, y, w, 3, block_rows=7)  # 29 blocks
    delays = np.random.default_rng(3).random(29) * 2e-3

    def fn(block, i):
        time.sleep(delays[i])  # blocks finish out of order
        return (float(np.sum(block.X**3)), block.X.T @ block.X, None)

    serial = src.map_reduce(fn)
    threaded = src.map_reduce_threaded(fn)
    assert threaded[0] == serial[0] and threaded[2] is None
    assert np.array_equal(threaded[1], serial[1])


def test_hessian_diagonal_does_not_square_the_whole_block():
    X, y, w = _data(4_000, 200, 3)  # one 4,000-row block: X**2 would be 6.1 MiB
    obj = Objective(ArraySource(X, y, w, 3, block_rows=4_000), l2=1.0)
    coef = np.zeros(obj.n_coef)
    obj.loss_grad_hessp(coef)
    tracemalloc.start()
    try:
        obj.hessian_diagonal(coef)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * kernel.SUB_BLOCK_BYTES


@pytest.mark.parametrize("layout", ["dense", "csr", "soft", "float32-data-float64-weights"])
@pytest.mark.parametrize("start", [True, False])
def test_gradient_without_probabilities_is_bitwise_the_same(layout, start):
    """``probs=False`` (the gradient overwrites the probabilities) changes no bit of the loss
    and gradient, whatever the path: class-major dense, the W = 0 shortcut, CSR, count
    targets, and float32 data with float64 weights (where the product needs a new array)."""
    X, y, w = _data(500, 6, 4, np.float32 if layout.startswith("float32") else np.float64)
    targets = y
    if layout == "soft":
        targets = np.random.default_rng(1).integers(0, 3, (500, 4)).astype(X.dtype)
        targets[targets.sum(axis=1) == 0, 0] = 1
    if layout == "csr":
        X = sp.csr_matrix(np.where(np.abs(X) > 0.8, X, 0.0))
    if layout.endswith("float64-weights"):
        w = w.astype(np.float64) * 1.5
    block = Block(X, targets, w)
    rng = np.random.default_rng(2)
    W = np.zeros((4, 6)) if start else rng.normal(size=(4, 6))
    b = rng.normal(size=4)
    with_p = kernel.block_loss_grad(block, W.astype(X.dtype), b.astype(X.dtype))
    without = kernel.block_loss_grad(block, W.astype(X.dtype), b.astype(X.dtype), probs=False)
    assert without[3] is None and with_p[3].shape == (500, 4)
    assert without[0] == with_p[0]
    for a, c in zip(with_p[1:3], without[1:3], strict=True):
        np.testing.assert_array_equal(a, c)
        assert a.dtype == c.dtype


def _fitted(K, dtype=np.float64, n=600, d=8, seed=0):
    from softmaxreg import SoftmaxRegression

    X, y, _ = _data(n, d, K, dtype, seed)
    X *= 3.0  # logits of a few units: probabilities far from uniform
    return SoftmaxRegression(C=100.0).fit(X, y), X


def _reference_proba(model, X, offset=None):
    A = X.astype(np.float64) @ model.coef_.T.astype(np.float64) + model.intercept_
    if model.classes_.size == 2:
        A = np.hstack([np.zeros_like(A), A])
    if offset is not None:
        A = A + offset
    E = np.exp(A - A.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


@pytest.fixture
def small_predict_blocks(monkeypatch):
    """Force many row blocks on two threads in ``linear_softmax``."""
    from softmaxreg import _predict

    monkeypatch.setattr(_predict, "PREDICT_BLOCK_BYTES", 8 * 40 * 4)  # 40 rows for K = 4
    monkeypatch.setattr(_predict, "PREDICT_THREAD_ROWS", 1)
    monkeypatch.setattr(sources, "MAP_THREADS", 2)


@pytest.mark.parametrize("K", [2, 4, 20])
@pytest.mark.parametrize("form", ["dense", "fortran", "csr", "coo"])
def test_predict_proba_is_the_softmax_of_the_logits(K, form, small_predict_blocks):
    model, X = _fitted(K)
    Xf = {
        "dense": X,
        "fortran": np.asfortranarray(X),
        "csr": sp.csr_matrix(X),
        "coo": sp.coo_matrix(X),
    }[form]
    P = model.predict_proba(Xf)
    assert P.shape == (X.shape[0], K) and P.dtype == np.float64
    np.testing.assert_allclose(P, _reference_proba(model, X), rtol=0, atol=1e-15)


@pytest.mark.parametrize("K", [2, 4])
def test_predict_proba_with_an_offset(K, small_predict_blocks):
    model, X = _fitted(K)
    offset = np.random.default_rng(4).normal(size=(X.shape[0], K))
    P = model.predict_proba(X, offset=offset)
    np.testing.assert_allclose(P, _reference_proba(model, X, offset), rtol=0, atol=1e-15)
    if K == 2:  # the 1-D offset of the binary logit
        P1 = model.predict_proba(X, offset=offset[:, 1])
        ref = _reference_proba(model, X, np.column_stack([np.zeros(X.shape[0]), offset[:, 1]]))
        np.testing.assert_allclose(P1, ref, rtol=0, atol=1e-15)


@pytest.mark.parametrize("K", [2, 4])
def test_float32_predict_proba_stays_float32(K, small_predict_blocks):
    model, X = _fitted(K, np.float32)
    P = model.predict_proba(X)
    assert P.dtype == np.float32
    np.testing.assert_allclose(P, _reference_proba(model, X), rtol=0, atol=1e-6)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-6)


def test_predict_proba_does_not_depend_on_threads_or_blocks(monkeypatch):
    from threadpoolctl import threadpool_limits

    from softmaxreg import _predict

    model, X = _fitted(4, n=3_000)
    monkeypatch.setattr(_predict, "PREDICT_THREAD_ROWS", 1)
    results = []
    with threadpool_limits(1, user_api="blas"):
        for threads, block_bytes in [(1, 1 << 20), (2, 1 << 12), (3, 8 * 4 * 7)]:
            monkeypatch.setattr(sources, "MAP_THREADS", threads)
            monkeypatch.setattr(_predict, "PREDICT_BLOCK_BYTES", block_bytes)
            results.append(model.predict_proba(X))
    for P in results[1:]:
        assert np.array_equal(P, results[0])  # each row's arithmetic is the same


def test_predict_proba_overflow_in_a_thread_is_a_clear_error(small_predict_blocks):
    model, X = _fitted(4)
    model.coef_ = np.abs(model.coef_) * (1e4 / np.abs(model.coef_).max())
    X = X.copy()
    X[-1] = 1e305  # only the last block's logits overflow (8 terms of 1e309)
    with pytest.raises(ValueError, match="overflow float64.*Rescale"):
        model.predict_proba(X)


def test_compact_codes_take_the_smallest_unsigned_type():
    for K, dtype in [(2, np.uint8), (256, np.uint8), (257, np.uint16), (70_000, np.uint32)]:
        codes = compact_codes(np.array([0, K - 1], dtype=np.intp), K)
        assert codes.dtype == dtype and codes.tolist() == [0, K - 1]


def test_unweighted_fit_holds_no_row_of_ones_nor_wide_codes(monkeypatch):
    """Without sample weights the fit's weights are a broadcast view of one 1 and its class
    codes are uint8: the same coefficients as explicit float64 ones and intp codes, with two
    (n,) arrays fewer (100,000 x 30, K = 4: 8.8 -> 5.9 MiB peak, benchmarks/RESULTS.md)."""
    from softmaxreg import SoftmaxRegression

    sources_seen = []
    make = SoftmaxRegression._make_objective

    def spy(self, X, codes, sw, offset=None):
        objective = make(self, X, codes, sw, offset)
        sources_seen.append(objective.source)
        return objective

    monkeypatch.setattr(SoftmaxRegression, "_make_objective", spy)
    X, y, w = _data(3_000, 8, 5)
    plain = SoftmaxRegression(tol=1e-10).fit(X, y)
    weighted = SoftmaxRegression(tol=1e-10).fit(X, y, sample_weight=w)
    source = sources_seen[0]
    assert source.targets.dtype == np.uint8
    assert source.weights.strides == (0,) and not source.weights.flags.writeable
    assert sources_seen[1].weights.strides == (8,)
    np.testing.assert_allclose(plain.coef_, weighted.coef_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(plain.intercept_, weighted.intercept_, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, threaded_pass", [(300, False), (20_000, True)])
def test_small_passes_run_in_one_thread_and_hessians_on_the_threads(n, threaded_pass, monkeypatch):
    """A pass over small data pays more for the thread hand-off than it gains: it runs in the
    calling thread (bitwise the same sums, in block order); a full Hessian stays threaded."""
    monkeypatch.setattr(sources, "MAP_THREADS", 2)
    X, y, w = _data(n, 60, 3)
    src = ArraySource(X, y, w, 3, block_rows=-(-n // 2))
    assert (src.pass_work >= sources.MIN_THREADED_PASS_WORK) == threaded_pass
    calls = []
    threaded = src.map_reduce_threaded
    monkeypatch.setattr(src, "map_reduce_threaded", lambda fn: calls.append(1) or threaded(fn))
    obj = Objective(src, l2=1.0)
    coef = np.random.default_rng(0).normal(size=obj.n_coef) * 0.1
    f, g = obj.loss_grad(coef)
    assert bool(calls) == threaded_pass
    calls.clear()
    obj.hessian(coef)
    assert calls  # the heavy call always on the threads
    monkeypatch.setattr(objective_module, "MIN_THREADED_PASS_WORK", 0.0)
    f_threads, g_threads = obj.loss_grad(coef)
    assert f_threads == f and np.array_equal(g_threads, g)


def test_csr_row_blocks_and_their_transposes_share_the_arrays_of_x():
    """SciPy's constructor copies index/value arrays that view a much larger array; the blocks
    (and ``X.T`` of a block, and its float32 values) must not: one copy per block and pass."""
    X = sp.random(3_000, 400, density=0.02, format="csr", random_state=0)
    block = sources._csr_rows(X, slice(1_000, 1_300))
    T = sources.transposed(block)
    for M in (block, T):
        assert np.shares_memory(M.data, X.data) and np.shares_memory(M.indices, X.indices)
    single = objective_module._single(block)
    assert single.dtype == np.float32 and np.shares_memory(single.indices, X.indices)
    G = np.random.default_rng(0).normal(size=(300, 5))
    dense = X[1_000:1_300].toarray()
    assert np.array_equal(block.toarray(), dense) and T.format == "csc"
    np.testing.assert_allclose(T @ G, dense.T @ G, rtol=1e-12, atol=1e-12)
    assert np.array_equal(kernel._xt_dot(block, G), np.asarray(X[1_000:1_300].T @ G).T)


def test_trust_region_peak_memory_in_coefficient_vectors():
    """With many coefficients (sparse, d K = 200,000) the trust-region fit's peak is a
    bounded number of coefficient-sized vectors: no dense null-space basis, no previous
    step or rejected gradient kept through the next CG solve, no packing temporaries
    (20.6 vectors before, 16.6 after; measured with tracemalloc)."""
    from softmaxreg import SoftmaxRegression

    n, d, K = 3_000, 20_000, 10
    X = sp.random(n, d, density=20 / d, format="csr", random_state=0)
    y = np.random.default_rng(0).integers(0, K, n)
    model = SoftmaxRegression(solver="newton-cg", C=10.0)
    tracemalloc.start()
    try:
        model.fit(X, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / (d * K * 8) <= 18.0


def test_shared_blocks_of_unsorted_data_with_duplicates_are_not_taken_for_canonical():
    """A block of a CSR matrix with duplicate entries squares their sum, not each entry."""
    X = sp.csr_matrix((np.array([1.0, 2.0, 3.0]), np.array([2, 2, 0]), np.array([0, 2, 3])))
    X.has_canonical_format = False
    block = sources._csr_rows(X, slice(0, 1))
    assert not block.has_canonical_format
    np.testing.assert_array_equal(kernel.squared(block).toarray(), [[0.0, 0.0, 9.0]])
