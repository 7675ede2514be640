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

Decoded-block cache (``cache=True`` or a directory): the first pass also writes the decoded
float blocks, class codes and weights to one raw binary file on local disk; later passes read
blocks back with ``readinto`` into one reused buffer. We read with plain file I/O instead of a
memory map on purpose: pages of a memory map count in the resident set of the process, so a
map of a 4 GB cache would grow RSS to the data size, while page-cache reads do not. The cache
pays off for CSV (parsing dominates a pass); for Parquet, decoding is already close to a copy
(see docs/scaling.md for the measurements).
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from numbers import Integral
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ._sources import Block, checked_class_weight, default_block_rows, sum_tuples

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
        cache=False,
        prefetch: int = 2,
    ):
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
        self._cache_request = cache
        self._cache = None
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
    def _decode(self, table, start) -> tuple:
        n = table.num_rows
        where = f"rows {start}..{start + n} of {self._name()}"
        X = np.empty((n, self.n_features), dtype=self.dtype, order="F")
        for j, name in enumerate(self.feature_names):
            X[:, j] = _column_numpy(table, name, where)
        if not np.isfinite(X).all():
            raise ValueError(f"The features have NaN or infinite values in {where}.")
        codes = self._encode(_column_numpy(table, self.target, where), where)
        return X, codes, self._weights_of(table, where).astype(self.dtype)

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

    def _block(self, X, codes, base) -> Block:
        return Block(X, codes, base * self.class_weight[codes].astype(self.dtype))

    def blocks(self) -> Iterator[Block]:
        """Decoded blocks of ``batch_rows`` rows, in file order, read ahead in a thread.

        A background thread reads and decodes up to ``prefetch`` blocks ahead of the
        consumer, so that file I/O and decoding (which release the GIL) overlap the kernel.
        """
        if self.prefetch < 1:
            yield from self._decoded_blocks()
            return
        yield from _read_ahead(self._decoded_blocks(), self.prefetch)

    def _decoded_blocks(self) -> Iterator[Block]:
        if self._cache is not None and self._cache.complete:
            for arrays in self._cache.blocks():
                yield self._block(*arrays)
            return
        cache = self._start_cache()
        cols = [*self.feature_names, self.target] + ([self.weight] if self.weight else [])
        start = 0
        for table in self._tables(cols, self.batch_rows):
            arrays = self._decode(table, start)
            start += table.num_rows
            if cache is not None:
                cache.append(*arrays)
            yield self._block(*arrays)
        if cache is not None:
            cache.finish(start)

    def _start_cache(self):
        if self._cache_request is False or self._cache_request is None:
            return None
        directory = None if self._cache_request is True else self._cache_request
        self._cache = _BlockCache(directory, self.n_features, self.dtype, self.batch_rows)
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

    def close(self) -> None:
        """Delete the decoded-block cache, if any."""
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._name()!s}, target={self.target!r}, "
            f"n_samples={self.n_samples}, n_features={self.n_features}, "
            f"n_classes={self.n_classes}, batch_rows={self.batch_rows})"
        )


class _Failure:
    def __init__(self, exc):
        self.exc = exc


def _read_ahead(items: Iterator, depth: int) -> Iterator:
    """Iterate ``items`` in a daemon thread, at most ``depth`` items ahead of the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # re-raised in the consumer
            put(_Failure(exc))
            return
        put(done)

    thread = threading.Thread(target=work, name="softmaxreg-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


class _BlockCache:
    """Decoded blocks in one raw file: per block X (F order), int32 codes, base weights."""

    def __init__(self, directory, n_features, dtype, batch_rows):
        self.dir = tempfile.mkdtemp(prefix="softmaxreg-cache-", dir=directory)
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.dir, True)
        self.file = open(os.path.join(self.dir, "blocks.bin"), "w+b")  # noqa: SIM115
        self.d, self.dtype, self.rows = n_features, np.dtype(dtype), batch_rows
        self.sizes: list[int] = []
        self.complete = False

    def append(self, X, codes, base) -> None:
        self.file.write(np.asfortranarray(X).tobytes(order="F"))
        self.file.write(codes.astype(np.int32).tobytes())
        self.file.write(np.ascontiguousarray(base, dtype=self.dtype).tobytes())
        self.sizes.append(X.shape[0])

    def finish(self, n_rows) -> None:
        self.file.flush()
        self.complete = sum(self.sizes) == n_rows

    def blocks(self) -> Iterator[tuple]:
        item = self.dtype.itemsize
        buf = np.empty(self.rows * (self.d * item + 4 + item), dtype=np.uint8)
        self.file.seek(0)
        for n in self.sizes:
            nx, nc = n * self.d * item, n * 4
            view = memoryview(buf)[: nx + nc + n * item]
            if self.file.readinto(view) != len(view):
                raise OSError(f"The block cache in {self.dir} is truncated.")
            # the buffer is reused: copy so that a block stays valid after the next read
            X = np.frombuffer(buf, self.dtype, n * self.d).reshape((n, self.d), order="F").copy()
            codes = np.frombuffer(buf, np.int32, n, nx).astype(np.intp)
            base = np.frombuffer(buf, self.dtype, n, nx + nc)
            yield X, codes, base

    def close(self) -> None:
        self.file.close()
        self._finalizer()


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
    cache : bool or str, default=False
        Keep the decoded blocks in a raw file on local disk (a temporary directory, or under
        the given directory) after the first pass, to make later passes cheaper.
    prefetch : int, default=2
        Blocks read and decoded ahead in a background thread (0: none). Memory is about
        ``prefetch + 2`` blocks plus one Parquet row group.

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
