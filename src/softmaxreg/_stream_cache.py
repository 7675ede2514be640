"""Plumbing of the streamed sources: read-ahead thread, decoded-block cache file, its writer.

See ``_stream.py`` (the sources) and docs/scaling.md (measurements and the cache decision).
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np


@lru_cache(maxsize=1)
def _writer() -> ThreadPoolExecutor:
    """The thread that writes decoded blocks to the cache (writing costs a copy per byte)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="softmaxreg-cache")


def _checked_cache(cache):
    if cache is None or isinstance(cache, bool) or cache == "auto":
        return cache
    if isinstance(cache, (str, os.PathLike)):
        if not Path(cache).is_dir():
            raise ValueError(f"cache={cache!r}: no such directory; create it or use cache=True.")
        return os.fspath(cache)
    raise ValueError(f'cache must be "auto", True, False or a directory, got {cache!r}.')


def _room_for(directory, nbytes: int) -> bool:
    """Whether ``directory`` keeps at least 1 GiB and 10% of its disk free after ``nbytes``."""
    try:
        usage = shutil.disk_usage(directory)
    except OSError:
        return False
    return usage.free - nbytes >= max(1 << 30, usage.total // 10)


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
    """Block records in one unnamed, pre-allocated temporary file (positional reads/writes).

    Record ``i`` starts at the sum of the sizes of records ``0..i-1``; the content of a record
    is a function of the data only, so passes that write it again write the same bytes.
    """

    def __init__(self, directory, nbytes: int):
        if not (hasattr(os, "pwrite") and hasattr(os, "preadv")):
            raise OSError("positional file reads/writes are not available on this platform")
        self.file = tempfile.TemporaryFile(dir=directory, prefix="softmaxreg-cache-")
        self.nbytes = nbytes
        self._finalizer = weakref.finalize(self, self.file.close)
        try:
            if nbytes and hasattr(os, "posix_fallocate"):  # not on macOS: plain writes
                os.posix_fallocate(self.file.fileno(), 0, nbytes)
        except OSError:
            self.close()
            raise
        self.complete = False

    def write(self, buf: np.ndarray, offset: int) -> None:
        view = memoryview(buf).cast("B")
        while view:
            written = os.pwrite(self.file.fileno(), view, offset)
            view, offset = view[written:], offset + written

    def records(self, sizes: list[int]) -> Iterator[np.ndarray]:
        """A fresh buffer per record, filled with one positional read."""
        fd, offset = self.file.fileno(), 0
        for size in sizes:
            buf = np.empty(size, dtype=np.uint8)
            view = memoryview(buf)
            while view:
                got = os.preadv(fd, [view], offset)
                if got <= 0:
                    raise OSError("The decoded-block cache file is truncated.")
                view, offset = view[got:], offset + got
            yield buf

    def close(self) -> None:
        self.complete = False
        self._finalizer()
