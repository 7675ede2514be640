"""Streamed data sources: Parquet and CSV files read in row batches with pyarrow.

A streamed source implements the source protocol of ``_sources.py`` (``n_samples``,
``n_features``, ``n_classes``, ``dtype``, ``weight_sum``, ``is_local``, ``map_reduce``), so every
solver fits it exactly: each oracle call is one pass over the files, decoding one block of
``batch_rows`` rows at a time. Memory is bounded by the block size, not the data size.

The classes must be known before the first oracle call, so the constructor makes one cheap
first pass over the target (and weight) column only: the sorted class labels, their counts, their
weight sums and the number of rows.

Blocks have exactly ``batch_rows`` rows (the last one fewer) whatever the row groups, batches
or file boundaries, so a fit is deterministic for a given ``batch_rows``.

Decoded-block cache (``cache="auto"``, the default, ``True`` or a directory): the first pass
also writes each decoded block (float features in Fortran order, base weights if the data have
a weight column, class codes in their smallest type: one record per block, exactly the bytes the
kernel reads) to an unnamed temporary file
on local disk, pre-allocated with ``posix_fallocate`` (without it ext4 block allocation made
writing 7x dearer, measured); later passes read each record back with one positional read into
a fresh buffer, so a cached pass costs a read from disk instead of Parquet decoding or CSV
parsing. Records are written and read with direct I/O where the file system allows
(``_stream_cache._BlockCache``): the page cache is bypassed, so the first pass does not pay for
filling it (measured 2-3x dearer than the whole pass otherwise) and a cache larger than memory
does not churn it. We read instead of memory-mapping the whole file because mapped pages count
in the resident set of the process (a 4 GB cache would grow RSS to 4 GB). The file has no name
(Linux ``O_TMPFILE``): it disappears when the source is closed or collected, even after
``SIGKILL``. ``"auto"`` caches when the temporary directory keeps at least 1 GiB and 10% free
after the cache. Measurements and the decision are in docs/scaling.md.

Oracle passes (:meth:`_FileSource.map_reduce_threaded`) evaluate the kernel on a pool of
threads (NumPy and one-thread BLAS release the GIL) while a read-ahead thread decodes the next
blocks; block results are summed in block order, so the value does not depend on the threads.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from numbers import Integral
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ._sources import (
    MAP_THREADS,
    Block,
    _pool,
    checked_class_weight,
    default_block_rows,
    sum_tuples,
)
from ._stream_cache import (
    _BlockCache,
    _checked_cache,
    _read_ahead,
    _room_for,
    _writer,
    aligned_empty,
    padded,
)
from ._targets import compact_codes, unit_weights

__all__ = ["CSVSource", "ParquetSource", "iter_tables", "open_source"]

#: Parquet row groups up to this decoded size are read whole (several times faster than
#: batch iteration); larger ones are read in batches so that memory stays bounded.
MAX_ROW_GROUP_BYTES = 96 << 20


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.csv  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:  # pragma: no cover - pyarrow is in the io extra
        raise ImportError(
            "Streaming from files needs pyarrow: pip install 'softmaxreg[io]'."
        ) from exc
    return pa


def _list_files(path, suffixes) -> list[Path]:
    paths = [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(suffixes)
            )
            if not found:
                raise FileNotFoundError(f"No {'/'.join(suffixes)} files found under {p}.")
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"No such file or directory: {p}.")
    return files


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Rebatcher:
    """Regroups a stream of arrow record batches into tables of exactly ``rows`` rows."""

    def __init__(self, rows: int):
        self.rows = rows
        self.parts: list = []
        self.count = 0

    def push(self, batch) -> Iterator:
        pa = _pyarrow()
        if batch.num_rows == 0:
            return
        self.parts.append(batch)
        self.count += batch.num_rows
        while self.count >= self.rows:
            table = pa.Table.from_batches(self.parts)
            yield table.slice(0, self.rows)
            rest = table.slice(self.rows)
            self.parts = rest.to_batches() if rest.num_rows else []
            self.count = rest.num_rows

    def flush(self) -> Iterator:
        if self.count:
            yield _pyarrow().Table.from_batches(self.parts)
        self.parts, self.count = [], 0


def _column_numpy(table, name, where):
    col = table.column(name)
    if col.null_count:
        raise ValueError(
            f"Column {name!r} has missing values ({where}); remove or impute them first."
        )
    return col.to_numpy()


class _FileSource:
    """Common machinery of :class:`ParquetSource` and :class:`CSVSource`."""

    is_local = False  # per-block state (probabilities) would cost O(n K) memory: recompute it
    _suffixes: tuple[str, ...] = ()

    def __init__(
        self,
        path,
        *,
        target: str,
        features=None,
        weight: str | None = None,
        batch_rows: int | None = None,
        dtype=np.float64,
        classes=None,
        cache="auto",
        prefetch: int = 2,
    ):
        self._cache_request, self._cache = _checked_cache(cache), None
        self.files = _list_files(path, self._suffixes)
        self.target, self.weight = target, weight
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}.")
        names = self._column_names()
        duplicated = sorted({str(n) for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(
                f"{self.files[0]} has duplicate column names {duplicated}; rename them."
            )
        for col in [target] + ([weight] if weight else []):
            if col not in names:
                raise ValueError(f"Column {col!r} is not in {self.files[0]}; columns: {names}.")
        if features is None:
            features = [c for c in names if c not in (target, weight)]
        features = [str(c) for c in features]
        if target in features or (weight and weight in features):
            raise ValueError(f"The target/weight columns cannot also be features: {features}.")
        missing = [c for c in features if c not in names]
        if missing or not features:
            raise ValueError(f"Feature columns {missing or features} are not in the data.")
        self.feature_names = np.asarray(features, dtype=object)
        self.n_features = len(features)
        self._check_feature_types()
        self._first_pass(classes)
        self.n_classes = int(self.classes.size)
        if batch_rows is not None and not (isinstance(batch_rows, Integral) and batch_rows >= 1):
            raise ValueError(f"batch_rows must be a positive integer, got {batch_rows!r}.")
        self.batch_rows = int(
            batch_rows or default_block_rows(self.n_features, self.n_classes, self.dtype.itemsize)
        )
        self.class_weight = np.ones(self.n_classes)
        self.weight_sum = float(self.class_weight_sums.sum())
        self.prefetch = int(prefetch)

    # -- format-specific: schema and raw arrow batches -------------------------------------
    def _column_names(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_feature_types(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _batches(self, columns) -> Iterator:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- first pass: classes, counts, weight sums ------------------------------------------
    def _first_pass(self, classes) -> None:
        cols = [self.target] + ([self.weight] if self.weight else [])
        labels, wsums, n = [], [], 0
        for table in self._tables(cols, rows=1 << 20):
            where = f"rows {n}..{n + table.num_rows} of {self._name()}"
            y = _column_numpy(table, self.target, where)
            w = self._weights_of(table, where)
            uniq, inv = np.unique(y, return_inverse=True)
            labels.append(uniq)
            wsums.append((uniq, np.bincount(inv, minlength=uniq.size), np.bincount(inv, w)))
            n += table.num_rows
        if n == 0:
            raise ValueError(f"{self._name()} has no rows: there is nothing to fit.")
        found = np.unique(np.concatenate(labels))
        if classes is None:
            self.classes = found
        else:
            self.classes = np.unique(np.asarray(classes))
            unseen = np.setdiff1d(found, self.classes)
            if unseen.size:
                raise ValueError(f"The target has labels {unseen[:5]} not in classes.")
        self.n_samples = n
        self.class_counts = np.zeros(self.classes.size, dtype=np.int64)
        self.class_weight_sums = np.zeros(self.classes.size)
        for uniq, counts, sums in wsums:
            idx = np.searchsorted(self.classes, uniq)
            self.class_counts[idx] += counts
            self.class_weight_sums[idx] += sums

    def _weights_of(self, table, where) -> np.ndarray:
        if not self.weight:
            return np.ones(table.num_rows)
        try:
            w = _column_numpy(table, self.weight, where).astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Weight column {self.weight!r} is not numeric ({where}).") from exc
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"Weight column {self.weight!r} has negative or non-finite values.")
        return w

    def _name(self) -> str:
        return str(self.files[0]) if len(self.files) == 1 else f"{len(self.files)} files"

    def _tables(self, columns, rows) -> Iterator:
        rebatch = _Rebatcher(rows)
        for batch in self._batches(columns):
            yield from rebatch.push(batch)
        yield from rebatch.flush()

    # -- class weights ---------------------------------------------------------------------
    def set_class_weight(self, class_weight) -> None:
        """Multiply each class's sample weights by ``class_weight[k]`` (shape (n_classes,))."""
        self.class_weight = checked_class_weight(class_weight, self.n_classes)
        self.weight_sum = float(self.class_weight @ self.class_weight_sums)

    # -- blocks ----------------------------------------------------------------------------
    def _code_dtype(self) -> np.dtype:
        """The class codes' type: the smallest unsigned one (``uint8`` up to 256 classes)."""
        return compact_codes(np.zeros(0, dtype=np.intp), self.n_classes).dtype

    def _record_bytes(self, n: int) -> int:
        """Bytes of one block record: X (F order), the base weights (only with a weight
        column: else every row weighs one), then the class codes in their compact type."""
        per_row = (self.n_features + bool(self.weight)) * self.dtype.itemsize
        return n * (per_row + self._code_dtype().itemsize)

    def _views(self, buf: np.ndarray, n: int) -> tuple:
        """``(X, codes, base)`` viewing a record buffer of :meth:`_record_bytes` ``(n)``
        (``base`` is ``None`` without a weight column)."""
        nx = n * self.n_features * self.dtype.itemsize
        X = np.ndarray((n, self.n_features), self.dtype, buf, 0, order="F")
        base = np.ndarray((n,), self.dtype, buf, nx) if self.weight else None
        nw = 0 if base is None else base.nbytes
        codes = np.ndarray((n,), self._code_dtype(), buf, nx + nw)
        return X, codes, base

    def _decode(self, table, start) -> np.ndarray:
        """One block record, decoded straight from the arrow columns (no other copies)."""
        n = table.num_rows
        where = f"rows {start}..{start + n} of {self._name()}"
        buf = aligned_empty(self._record_bytes(n))
        X, codes, base = self._views(buf, n)
        for j, name in enumerate(self.feature_names):
            col = table.column(name)
            if col.null_count:
                raise ValueError(
                    f"Column {name!r} has missing values ({where}); remove or impute them first."
                )
            pos = 0
            for chunk in col.chunks:
                X[pos : pos + len(chunk), j] = chunk.to_numpy(zero_copy_only=False)
                pos += len(chunk)
        # a NaN or inf makes its column sum non-finite; overflow alone is checked in full
        with np.errstate(over="ignore", invalid="ignore"):
            sums_finite = np.isfinite(X.sum(axis=0)).all()
        if not sums_finite and not np.isfinite(X).all():
            raise ValueError(f"The features have NaN or infinite values in {where}.")
        codes[:] = self._encode(_column_numpy(table, self.target, where), where)
        if base is not None:
            base[:] = self._weights_of(table, where)
        return buf

    def _encode(self, y, where) -> np.ndarray:
        """Class codes of labels ``y``; small integer labels go through a lookup table."""
        c = self.classes
        if c.dtype.kind in "iu" and y.dtype.kind in "iu" and int(c[-1]) - int(c[0]) < 1 << 16:
            lut = np.full(int(c[-1]) - int(c[0]) + 1, -1, dtype=np.intp)
            lut[c - c[0]] = np.arange(c.size)
            shifted = y.astype(np.int64) - int(c[0])
            inside = (shifted >= 0) & (shifted < lut.size)
            codes = lut[np.where(inside, shifted, 0)]
            if inside.all() and (codes >= 0).all():
                return codes
        else:
            codes = np.minimum(np.searchsorted(c, y), c.size - 1)
            if np.array_equal(c[codes], y):
                return codes.astype(np.intp)
        raise ValueError(f"The target has labels that are not in the classes ({where}).")

    def _block(self, buf: np.ndarray) -> Block:
        n = buf.size // self._record_bytes(1)
        X, codes, base = self._views(buf, n)
        if base is None:
            base = unit_weights(n, self.dtype)
        if np.all(self.class_weight == 1.0):
            return Block(X, codes, base)  # multiplying by 1 would change nothing
        return Block(X, codes, base * self.class_weight[codes].astype(self.dtype))

    def blocks(self) -> Iterator[Block]:
        """Decoded blocks of ``batch_rows`` rows, in file order, read ahead in a thread.

        A background thread reads and decodes up to ``prefetch`` blocks ahead of the
        consumer, so that file I/O and decoding (which release the GIL) overlap the kernel.
        Every block owns its arrays: blocks stay valid after the iteration moves on.
        """
        if self.prefetch < 1:
            yield from map(self._block, self._records())
            return
        yield from map(self._block, _read_ahead(self._records(), self.prefetch))

    def _records(self) -> Iterator[np.ndarray]:
        cache = self._cache
        if cache is not None and cache.complete:
            yield from cache.records([self._record_bytes(n) for n in self._block_sizes()])
            return
        cache = self._start_cache()
        cols = [*self.feature_names, self.target] + ([self.weight] if self.weight else [])
        start, offset, writes = 0, 0, deque()
        try:
            for table in self._tables(cols, self.batch_rows):
                buf = self._decode(table, start)
                start += table.num_rows
                if cache is not None:  # written in a thread of its own, overlapping decoding
                    writes.append(_writer().submit(cache.write, buf, offset))
                    offset += padded(buf.size)
                    while len(writes) > 2 or (writes and writes[0].done()):
                        writes.popleft().result()
                yield buf
            while writes:
                writes.popleft().result()
            if cache is not None:
                cache.complete = start == self.n_samples
        finally:  # an abandoned pass: no write may outlive it (the file may be closed next)
            wait(writes)

    def _block_sizes(self) -> list[int]:
        full, last = divmod(self.n_samples, self.batch_rows)
        return [self.batch_rows] * full + ([last] if last else [])

    def _start_cache(self):
        """The cache to fill during this pass (``None``: no cache)."""
        request = self._cache_request
        if request is False or request is None:
            return None
        if self._cache is None:
            nbytes = sum(padded(self._record_bytes(n)) for n in self._block_sizes())
            directory = tempfile.gettempdir() if request in (True, "auto") else os.fspath(request)
            if request == "auto" and not _room_for(directory, nbytes):
                self._cache_request = False
                return None
            try:
                self._cache = _BlockCache(directory, nbytes)
            except OSError as exc:
                self._cache_request = False
                if request != "auto":
                    warnings.warn(
                        f"No decoded-block cache ({nbytes / 2**30:.1f} GiB in {directory}): "
                        f"{exc}. Every pass decodes the files.",
                        UserWarning,
                        stacklevel=2,
                    )
                return None
        return self._cache

    def map_reduce(self, fn: Callable[[Block, int], tuple]) -> tuple:
        """``sum(fn(block, i))`` over the blocks: one pass over the files (or the cache).

        While blocks are read ahead, BLAS gets one core fewer: the reader thread needs one,
        and on few cores spinning BLAS threads and the reader slow each other down (a 1M-row
        pass took 9-10 s with 2 BLAS threads on 2 cores, 6 s with 1; measured).
        """
        limit = max(1, _cpu_count() - 1) if self.prefetch else None
        with threadpool_limits(limits=limit, user_api="blas"):
            return sum_tuples(fn(block, i) for i, block in enumerate(self.blocks()))

    def map_reduce_threaded(self, fn: Callable[[Block, int], tuple]) -> tuple:
        """:meth:`map_reduce` with ``fn`` evaluated on :meth:`_kernel_threads` threads.

        For ``fn`` that write no shared state (the objective's oracle kernels). Blocks are
        decoded (or read from the cache) ahead in one thread and evaluated on a pool with
        one-thread BLAS; results are summed in block order, so the value is bitwise that of
        :meth:`map_reduce` and does not depend on the number of threads. At most
        ``prefetch + 2 * threads`` blocks are in memory.
        """
        threads = self._kernel_threads()
        if threads < 2 or self.n_samples <= self.batch_rows:
            return self.map_reduce(fn)
        err = np.geterr()

        def run(block, i):
            with np.errstate(**err):
                return fn(block, i)

        def results(pool):
            ahead: deque = deque()
            for i, block in enumerate(self.blocks()):
                ahead.append(pool.submit(run, block, i))
                del block  # the pool holds the only reference
                if len(ahead) >= 2 * threads:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()

        with threadpool_limits(limits=1, user_api="blas"):
            return sum_tuples(results(_pool(threads)))

    def _kernel_threads(self) -> int:
        """Kernel threads of a pass: the cores left by the read-ahead thread (and at most
        :data:`MAP_THREADS`). On 2 cores the kernel runs in the consuming thread: with a pool
        of 2 beside the decoding, the 3M x 50 uncached pass took 1.19 s (median of 5) against
        0.89 s, the first pass 1.23 s against 1.05 s, a cached pass 0.73 s against 0.63 s
        (docs/scaling.md)."""
        spare = _cpu_count() - 1 if self.prefetch else MAP_THREADS
        return max(1, min(MAP_THREADS, spare))

    def close(self) -> None:
        """Delete the decoded-block cache, if any."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._name()!s}, target={self.target!r}, "
            f"n_samples={self.n_samples}, n_features={self.n_features}, "
            f"n_classes={self.n_classes}, batch_rows={self.batch_rows})"
        )


class ParquetSource(_FileSource):
    """Rows of Parquet files (a file, a directory searched recursively, or a list of files).

    Parameters
    ----------
    path : str, Path or list of them
        Parquet file(s) or directories of ``*.parquet`` files (read in sorted order).
    target : str
        Column of class labels (any type: integers, strings, booleans).
    features : list of str, optional
        Feature columns (numeric or boolean); default all columns except ``target`` and
        ``weight``.
    weight : str, optional
        Column of non-negative sample weights.
    batch_rows : int, optional
        Rows per decoded block; by default about 8 MiB of features per block. Peak memory is a
        small multiple of one block.
    dtype : {float64, float32}, default=float64
        Dtype the features are decoded to (and fitted in).
    classes : array-like, optional
        All class labels; by default those found in the target column.
    cache : "auto", bool or path, default="auto"
        Keep the decoded blocks in an unnamed temporary file on local disk (in the temporary
        directory, or in the given directory) during the first pass, so that later passes
        read them back instead of decoding the files again (several times cheaper; see
        docs/scaling.md). ``"auto"``: when the disk keeps at least 1 GiB and 10% free after
        it. The file takes about ``n_samples * (8 * n_features + 1)`` bytes (float64, up to
        256 classes; 8 more per row with a weight column) and is deleted by :meth:`close` (or
        ``with`` the source), when the source is collected, or when the process ends, however
        it ends.
    prefetch : int, default=2
        Blocks read and decoded ahead in a background thread (0: none). Memory is about
        ``prefetch + 2 * MAP_THREADS`` blocks plus one Parquet row group at most.

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
    class_counts : ndarray of shape (n_classes,)
    class_weight_sums : ndarray of shape (n_classes,)
        Sample weight totals per class.
    n_samples, n_features, n_classes : int
    feature_names : ndarray of shape (n_features,)
    weight_sum : float
        ``sum_n s_n`` with class weights applied.

    Examples
    --------
    >>> import numpy as np, pandas as pd, tempfile, os
    >>> from softmaxreg import ParquetSource, SoftmaxRegression
    >>> path = os.path.join(tempfile.mkdtemp(), "d.parquet")
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    >>> df["y"] = np.where(df.a > 0, "pos", "neg")
    >>> df.to_parquet(path)
    >>> src = ParquetSource(path, target="y", batch_rows=64)
    >>> SoftmaxRegression().fit(src).classes_.tolist()
    ['neg', 'pos']
    """

    _suffixes = (".parquet", ".parq", ".pq")

    def _schema(self):
        pa = _pyarrow()
        try:
            return pa.parquet.read_schema(self.files[0])
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"{self.files[0]} is not a readable Parquet file: {exc}") from exc

    def _column_names(self) -> list[str]:
        return list(self._schema().names)

    def _check_feature_types(self) -> None:
        pa = _pyarrow()
        schema = self._schema()
        bad = [
            n
            for n in self.feature_names
            if not (
                pa.types.is_integer(t := schema.field(n).type)
                or pa.types.is_floating(t)
                or pa.types.is_boolean(t)
            )
        ]
        if bad:
            raise ValueError(f"Feature columns must be numeric; not numeric: {bad}.")

    def _batches(self, columns) -> Iterator:
        """Whole row groups (fast) when they are moderate, else 64k-row batches (bounded)."""
        pa = _pyarrow()
        for f in self.files:
            try:
                pf = pa.parquet.ParquetFile(f, pre_buffer=False, buffer_size=1 << 20)
                meta = pf.metadata
                for i in range(meta.num_row_groups):
                    if meta.row_group(i).num_rows * len(columns) * 8 <= MAX_ROW_GROUP_BYTES:
                        yield from pf.read_row_group(i, columns=list(columns)).to_batches()
                    else:
                        yield from pf.iter_batches(
                            batch_size=65536, row_groups=[i], columns=list(columns)
                        )
            except (pa.ArrowInvalid, OSError) as exc:
                raise ValueError(f"Cannot read {f} as Parquet: {exc}") from exc


class CSVSource(_FileSource):
    """Rows of CSV files (header row required), parsed in batches by pyarrow.

    Parameters are those of :class:`ParquetSource`, plus ``delimiter`` (default ``","``).
    Feature columns are parsed as floating point; a cell that is not a number is an error
    naming the file. Gzip/bz2 files (by extension) are decompressed on the fly.
    """

    _suffixes = (".csv", ".csv.gz", ".csv.bz2", ".tsv", ".txt")

    def __init__(self, path, *, delimiter: str = ",", **kwargs):
        self.delimiter = delimiter
        super().__init__(path, **kwargs)

    def _open(self, f, columns, column_types=None):
        pa = _pyarrow()
        read = pa.csv.ReadOptions(block_size=4 << 20)
        parse = pa.csv.ParseOptions(delimiter=self.delimiter)
        convert = pa.csv.ConvertOptions(
            include_columns=list(columns) if columns else None, column_types=column_types
        )
        try:
            return pa.csv.open_csv(
                f, read_options=read, parse_options=parse, convert_options=convert
            )
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"Cannot read {f} as CSV: {exc}") from exc

    def _column_names(self) -> list[str]:
        reader = self._open(self.files[0], None)
        return list(reader.schema.names)

    def _check_feature_types(self) -> None:
        pass  # features are parsed as float64; bad cells fail in _batches with the file name

    def _batches(self, columns) -> Iterator:
        pa = _pyarrow()
        types = {c: pa.float64() for c in columns if c in set(self.feature_names)}
        for f in self.files:
            reader = self._open(f, columns, types)
            try:
                yield from reader
            except (pa.ArrowInvalid, OSError) as exc:
                raise ValueError(f"Cannot parse {f}: {exc}") from exc


def _format_of(files) -> type:
    if all(f.name.lower().endswith(ParquetSource._suffixes) for f in files):
        return ParquetSource
    if all(f.name.lower().endswith(CSVSource._suffixes) for f in files):
        return CSVSource
    raise ValueError(
        f"Cannot tell the format of {[str(f) for f in files[:3]]} from the extension "
        "(.parquet or .csv): use ParquetSource or CSVSource."
    )


def iter_tables(path, columns, batch_rows: int, *, numeric=(), delimiter=",") -> Iterator:
    """Arrow tables of exactly ``batch_rows`` rows (the last fewer) of ``columns`` of files.

    In CSV files the ``numeric`` columns are parsed as float64, the others are inferred.
    """
    files = _list_files(path, ParquetSource._suffixes + CSVSource._suffixes)
    reader = _format_of(files).__new__(_format_of(files))
    reader.files, reader.delimiter = files, delimiter
    reader.feature_names = np.asarray(list(numeric), dtype=object)
    return reader._tables(list(columns), batch_rows)


def open_source(path, **kwargs):
    """A :class:`ParquetSource` or :class:`CSVSource` chosen by the file extension."""
    files = _list_files(path, ParquetSource._suffixes + CSVSource._suffixes)
    return _format_of(files)(files, **kwargs)
