"""The decoded-block cache file: direct I/O where the file system allows, buffered elsewhere."""

import errno
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import softmaxreg._stream_cache as cache_module
from softmaxreg import ParquetSource
from softmaxreg._objective import Objective
from softmaxreg._stream_cache import ALIGN, _BlockCache, _padded_view, aligned_empty, padded


@pytest.fixture(scope="module")
def parquet_path(tmp_path_factory):
    rng = np.random.default_rng(3)
    df = pd.DataFrame(rng.normal(size=(700, 5)), columns=[f"f{j}" for j in range(5)])
    df["y"] = rng.integers(0, 4, size=700)
    path = tmp_path_factory.mktemp("cache") / "data.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=128)
    return path


def _passes(path, batch_rows):
    """Loss and gradient from an uncached pass, the pass writing the cache and a cached one."""
    plain = ParquetSource(path, target="y", batch_rows=batch_rows, cache=False)
    coef = np.random.default_rng(0).normal(size=Objective(plain, l2=1.0).n_coef)
    ref = Objective(plain, l2=1.0).loss_grad(coef)
    with ParquetSource(path, target="y", batch_rows=batch_rows, cache=True) as src:
        obj = Objective(src, l2=1.0)
        first = obj.loss_grad(coef)
        assert src._cache.complete
        direct = src._cache.direct
        again = obj.loss_grad(coef)
    for loss, grad in (first, again):
        assert loss == ref[0] and np.array_equal(grad, ref[1])
    return direct


@pytest.mark.parametrize("batch_rows", [1, 37, 300, 10_000])
def test_cached_passes_are_bitwise_the_uncached_pass(parquet_path, batch_rows):
    """Records of every size (none a multiple of the alignment) round-trip exactly."""
    direct = _passes(parquet_path, batch_rows)
    probe = _BlockCache(parquet_path.parent, ALIGN)
    try:  # direct I/O is used exactly where the file system accepts it
        assert direct == probe.direct
    finally:
        probe.close()


def test_buffered_cache_where_direct_io_is_unavailable(parquet_path, monkeypatch):
    monkeypatch.setattr(cache_module, "_open_direct", lambda fd: None)
    assert _passes(parquet_path, 37) is False


def test_direct_io_refused_midway_falls_back_to_buffered(tmp_path):
    """A file system that opens with O_DIRECT but refuses the I/O (EINVAL) is not an error."""
    cache = _BlockCache(tmp_path, 3 * ALIGN)
    if not cache.direct:  # give it a descriptor to refuse
        cache._direct = cache.file.fileno()
    direct_fd, calls = cache._direct, []

    def refusing(op):
        def run(fd, *args):
            calls.append(fd)
            if fd == direct_fd:
                raise OSError(errno.EINVAL, "Invalid argument")
            return op(fd, *args)

        return run

    buf = aligned_empty(ALIGN + 100)
    buf[:] = np.arange(buf.size) % 251
    cache._io(refusing(os.pwrite), _padded_view(buf), ALIGN)
    assert not cache.direct and calls[0] == direct_fd and calls[-1] != direct_fd
    (back,) = cache.records([buf.size + ALIGN])  # one record: the gap, then buf
    assert np.array_equal(back[ALIGN:], buf)
    cache.close()
    if cache._direct_fd is not None:
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(cache._direct_fd)  # closed with the cache


def test_aligned_buffers():
    for n in (1, ALIGN - 1, ALIGN, ALIGN + 1, 10**6 + 3):
        buf = aligned_empty(n)
        view = _padded_view(buf)
        assert buf.size == n and buf.ctypes.data % ALIGN == 0
        assert len(view) == padded(n) and padded(n) % ALIGN == 0 and padded(n) - n < ALIGN
        view[n - 1 : n] = b"\x07"
        assert buf[-1] == 7  # the padded view starts where the buffer does


@pytest.mark.parametrize("weighted", [False, True])
def test_records_hold_compact_codes_and_weights_only_when_given(tmp_path, weighted):
    """A record is X, the weight column if there is one, then uint8 codes: 8 d + 1 bytes a row
    without weights (it was 8 d + 16), and blocks shaped like an in-memory fit's."""
    rng = np.random.default_rng(5)
    n, d = 500, 3
    df = pd.DataFrame(rng.normal(size=(n, d)), columns=["a", "b", "c"])
    df["y"] = rng.choice(["u", "v", "w"], size=n)
    df["s"] = rng.uniform(0.5, 2.0, size=n)
    path = tmp_path / "w.parquet"
    df.to_parquet(path)
    weight = "s" if weighted else None
    features = ["a", "b", "c"]
    kw = dict(target="y", features=features, weight=weight, batch_rows=64)
    with ParquetSource(path, cache=True, **kw) as src:
        assert src._record_bytes(10) == 10 * (8 * d + 8 * weighted + 1)
        src.set_class_weight([1.0, 2.0, 0.5])
        coef = rng.normal(size=Objective(src, l2=1.0).n_coef)
        first = Objective(src, l2=1.0).loss_grad(coef)
        blocks = list(src.blocks())  # from the cache
        plain = ParquetSource(path, cache=False, **kw)
        plain.set_class_weight([1.0, 2.0, 0.5])
        again = Objective(src, l2=1.0).loss_grad(coef)
        ref = Objective(plain, l2=1.0).loss_grad(coef)
    assert first[0] == again[0] == ref[0] and np.array_equal(first[1], again[1])
    assert np.array_equal(first[1], ref[1])
    codes = np.concatenate([b.targets for b in blocks])
    weights = np.concatenate([b.weights for b in blocks])
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(codes, np.searchsorted(["u", "v", "w"], df["y"]))
    base = df["s"].to_numpy() if weighted else np.ones(n)
    np.testing.assert_array_equal(weights, base * np.array([1.0, 2.0, 0.5])[codes])
