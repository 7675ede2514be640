"""Plumbing of the streamed sources: read-ahead thread, decoded-block cache file, its writer.

See ``_stream.py`` (the sources) and docs/scaling.md (measurements and the cache decision).
"""

from __future__ import annotations

import errno
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

#: Alignment of direct I/O: buffers, offsets and lengths in multiples of it (the logical
#: block size of disks is 512 or 4096 bytes).
ALIGN = 4096


def padded(nbytes: int) -> int:
    """``nbytes`` rounded up to a multiple of :data:`ALIGN`."""
    return -(-nbytes // ALIGN) * ALIGN


def aligned_empty(nbytes: int) -> np.ndarray:
    """An uninitialised uint8 buffer of ``nbytes`` that starts on an :data:`ALIGN` boundary
    and owns :func:`padded` ``(nbytes)`` bytes from there (the room direct I/O writes into)."""
    raw = np.empty(padded(nbytes) + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + nbytes]


def _padded_view(buf: np.ndarray) -> memoryview:
    """The bytes of an :func:`aligned_empty` buffer, padded to a multiple of :data:`ALIGN`."""
    raw = buf.base
    start = buf.ctypes.data - raw.ctypes.data
    return memoryview(raw[start : start + padded(buf.size)])


def _open_direct(fd: int) -> int | None:
    """A second descriptor of the open file ``fd`` with ``O_DIRECT`` (None where unsupported:
    not Linux, or a file system without direct I/O such as older tmpfs)."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(f"/proc/self/fd/{fd}", os.O_RDWR | flag)
    except OSError:
        return None


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

    Record ``i`` starts at the sum of the :func:`padded` sizes of records ``0..i-1``; the
    content of a record is a function of the data only, so passes that write it again write
    the same bytes. Where the file system allows, records are written and read with direct
    I/O (``O_DIRECT``), bypassing the page cache: filling the page cache with a new file cost
    1.9-2.6 s of CPU per GB on the measured virtual machine (0.6-0.9 s of wall time and
    little CPU with direct I/O), and a cache larger than memory would only churn through it
    (docs/scaling.md). Elsewhere buffered positional reads and writes are used.
    """

    def __init__(self, directory, nbytes: int):
        if not (hasattr(os, "pwrite") and hasattr(os, "preadv")):
            raise OSError("positional file reads/writes are not available on this platform")
        self.file = tempfile.TemporaryFile(dir=directory, prefix="softmaxreg-cache-")
        self.nbytes = nbytes
        self._direct_fd = _open_direct(self.file.fileno())  # closed with the file
        self._direct = self._direct_fd
        self._finalizer = weakref.finalize(self, _close_all, self.file, self._direct_fd)
        try:
            if nbytes and hasattr(os, "posix_fallocate"):  # not on macOS: plain writes
                os.posix_fallocate(self.file.fileno(), 0, nbytes)
        except OSError:
            self.close()
            raise
        self.complete = False

    @property
    def direct(self) -> bool:
        """Whether records go through direct I/O."""
        return self._direct is not None

    def _io(self, op, view: memoryview, offset: int) -> None:
        """Repeat the positional ``op`` until ``view`` is done; direct I/O falls back to
        buffered I/O for good if the file system refuses it (``EINVAL``)."""
        while view:
            fd = self.file.fileno() if self._direct is None else self._direct
            try:
                done = op(fd, view, offset)
            except OSError as exc:
                if self._direct is None or exc.errno != errno.EINVAL:
                    raise
                self._direct = None
                continue
            if done <= 0:
                raise OSError("The decoded-block cache file is truncated.")
            view, offset = view[done:], offset + done

    def write(self, buf: np.ndarray, offset: int) -> None:
        """Write an :func:`aligned_empty` record buffer at ``offset`` (a multiple of ALIGN)."""
        view = _padded_view(buf) if self.direct else memoryview(buf).cast("B")
        self._io(os.pwrite, view, offset)

    def records(self, sizes: list[int]) -> Iterator[np.ndarray]:
        """A fresh aligned buffer per record, filled with positional reads."""
        offset = 0
        for size in sizes:
            buf = aligned_empty(size)
            view = _padded_view(buf) if self.direct else memoryview(buf)
            self._io(lambda fd, v, off: os.preadv(fd, [v], off), view, offset)
            offset += padded(size)
            yield buf

    def close(self) -> None:
        self.complete = False
        self._finalizer()


def _close_all(file, direct: int | None) -> None:
    if direct is not None:
        os.close(direct)
    file.close()
