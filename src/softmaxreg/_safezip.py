"""The safe container under model files: a stored zip with a checksummed manifest.

Everything here is independent of what a model holds: atomic writes; strict JSON with tagged
values (tuples, non-string dict keys, non-finite floats); ``.npy`` entries written with
``allow_pickle=False`` and read back by checking the header before allocating anything; numeric
arrays kept as entries through a table of (entry name, dtype, shape); and the zip itself, every
entry stored (never compressed), its name checked (no ``..``, absolute paths or symlinks) and its
SHA-256 verified against the manifest. Any problem raises :class:`ModelFileError`.
:mod:`softmaxreg._modelfile` builds the model file format on top of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import zipfile
from pathlib import Path

import numpy as np

_MANIFEST = "manifest.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same model always gives the same bytes
_ARRAY_KINDS = "biuf"  # bool, signed and unsigned integers, floats: never objects
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")


class ModelFileError(ValueError):
    """A model file is damaged, tampered with, of an unknown version or not a model file."""

    __module__ = "softmaxreg._modelfile"  # where it has always lived (and is still importable)


# -- atomic writes ---------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_write(path, mode: str = "wb"):
    """Open a temporary file next to ``path``; on success move it over ``path`` (``os.replace``).

    On any exception the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or path-like
        The destination.
    mode : {"wb", "w"}
        Binary or text (UTF-8) mode.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(
            f"Cannot write {str(path)!r}: directory {str(directory)!r} does not exist."
        )
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- tagged JSON values ------------------------------------------------------------------------
class _Unencodable(TypeError):
    pass


def _enc(value):
    """A JSON value for ``value``; tuples, non-string dict keys and non-finite floats are tagged."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biufU":
        value = value.item()
        return _enc(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, list):
        return [_enc(v) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [_enc(v) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _enc(v) for k, v in value.items()}
        return {"$dict": [[_enc(k), _enc(v)] for k, v in value.items()]}
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 1:
        return {"$objects": [_enc(v) for v in value.tolist()]}
    raise _Unencodable(f"{type(value).__name__} is not JSON-encodable")


def _dec(value):
    """Inverse of :func:`_enc`; raises ``ValueError`` on anything it did not write."""
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, list):
        return [_dec(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1 and "$float" in value:
            if value["$float"] not in ("nan", "inf", "-inf"):
                raise ValueError(f"bad tagged float {value['$float']!r}")
            return float(value["$float"])
        if len(value) == 1 and "$tuple" in value:
            return tuple(_dec(v) for v in _typed(value["$tuple"], list, "$tuple"))
        if len(value) == 1 and "$objects" in value:
            items = [_dec(v) for v in _typed(value["$objects"], list, "$objects")]
            array = np.empty(len(items), dtype=object)
            array[:] = items
            return array
        if len(value) == 1 and "$dict" in value:
            return {_hashable(_dec(k)): _dec(v) for k, v in _typed(value["$dict"], list, "$dict")}
        if any(k.startswith("$") for k in value):
            raise ValueError(f"unknown tag in {sorted(value)!r}")
        return {k: _dec(v) for k, v in value.items()}
    raise ValueError(f"unexpected JSON value of type {type(value).__name__}")


def _hashable(key):
    if isinstance(key, (list, dict)):
        raise ValueError("a dict key in the file is not hashable")
    return key


def _typed(value, kind, what):
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{what} should be of type {kind.__name__}, got {type(value).__name__}")
    return value


def _json_bytes(obj) -> bytes:
    return json.dumps(obj, allow_nan=False, sort_keys=True, indent=1).encode("utf-8")


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _json_load(data: bytes):
    return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)


# -- .npy entries and the array table ------------------------------------------------------
def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _read_npy(blob: bytes, key) -> np.ndarray:
    """An ``.npy`` entry as an array, checking its header before allocating anything.

    ``np.load`` would allocate the shape the header claims before noticing the data is short;
    here the claimed size must equal the bytes present, and object dtypes are refused.
    """
    fp = io.BytesIO(blob)
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise ModelFileError(f"Array {key!r} has an unsupported .npy version {version}.")
    if dtype.kind not in _ARRAY_KINDS or dtype.hasobject or dtype.fields is not None:
        raise ModelFileError(f"Array {key!r} has a forbidden dtype {dtype}.")
    count = 1
    for n in shape:
        count *= int(n)
    offset = fp.tell()
    if count * dtype.itemsize != len(blob) - offset:
        raise ModelFileError(
            f"Array {key!r} claims shape {shape} but holds {len(blob) - offset} bytes of data."
        )
    flat = np.frombuffer(blob, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")


class _Writer:
    """Collects the entries of a model file and the array table of ``model.json``."""

    def __init__(self):
        self.entries: dict[str, bytes] = {}
        self.table: dict[str, dict] = {}

    def array(self, key: str, array) -> str:
        array = np.asarray(array)
        if array.dtype.kind not in _ARRAY_KINDS:
            raise _Unencodable(f"array {key!r} has dtype {array.dtype}, not a numeric dtype")
        # Plain keys name their entry; others (e.g. "basis/0/attr.mean_") get a numbered one.
        plain = _NAME_RE.match(key) and f"arrays/{key}.npy" not in self.entries
        name = f"arrays/{key}.npy" if plain else f"arrays/{len(self.entries):04d}.npy"
        self.entries[name] = _npy_bytes(array)
        self.table[key] = {"entry": name, "dtype": array.dtype.str, "shape": list(array.shape)}
        return key


class _V1Reader:
    """Reads the arrays of a version-1 file through its array table, checking each one."""

    def __init__(self, entries: dict, table):
        self.entries = entries
        self.table = _typed(table, dict, "arrays")

    def array(self, key) -> np.ndarray:
        spec = _typed(self.table.get(key), dict, f"array table entry {key!r}")
        blob = self.entries.get(spec.get("entry"))
        if not isinstance(blob, bytes) or not spec["entry"].endswith(".npy"):
            raise ModelFileError(f"Array {key!r} is missing from the model file.")
        array = _read_npy(blob, key)
        if array.dtype.str != spec.get("dtype") or list(array.shape) != spec.get("shape"):
            raise ModelFileError(
                f"Array {key!r} has dtype {array.dtype.str} and shape {list(array.shape)}, "
                f"but the model file declares {spec.get('dtype')} and {spec.get('shape')}."
            )
        return array

    def value(self, encoded):
        if isinstance(encoded, dict) and set(encoded) == {"$array"}:
            return self.array(encoded["$array"])
        return _dec(encoded)


# -- the zip archive -------------------------------------------------------------------------
def _write_archive(path, header: dict, entries: dict[str, bytes]) -> None:
    """Write ``entries`` atomically as a stored zip, after a manifest of ``header`` and the
    entries' checksums."""
    manifest = {
        **header,
        "entries": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in entries.items()
        },
    }
    with atomic_write(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        for name, data in [(_MANIFEST, _json_bytes(manifest)), *entries.items()]:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, data)


def _check_member(info: zipfile.ZipInfo, seen: set) -> None:
    name = info.filename
    parts = name.split("/")
    if (
        not name
        or name.startswith(("/", "\\"))
        or "\\" in name
        or ":" in name
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise ModelFileError(f"Unsafe entry name {name!r} in the model file (path traversal).")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode) or info.is_dir():
        raise ModelFileError(f"Entry {name!r} in the model file is a link or a directory.")
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        raise ModelFileError(f"Entry {name!r} is compressed or encrypted; model files are not.")
    if name in seen:
        raise ModelFileError(f"Entry {name!r} appears twice in the model file.")
    seen.add(name)


def _not_a_model(data: bytes, path) -> ModelFileError:
    if data[:1] == b"\x80" or data[:1] in (b"(", b"c", b"]", b"}"):
        return ModelFileError(
            f"{str(path)!r} looks like a Python pickle, not a softmaxreg model file; softmaxreg "
            "never loads pickles (they can run arbitrary code)."
        )
    return ModelFileError(f"{str(path)!r} is not a softmaxreg model file (not a zip archive).")


def _open_archive(data: bytes, path, check_manifest) -> dict[str, bytes]:
    """The verified entries of a model file (manifest checked by ``check_manifest(manifest,
    path)``, checksums verified)."""
    if not data.startswith(b"PK\x03\x04"):
        raise _not_a_model(data, path)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        seen: set = set()
        for info in infos:
            _check_member(info, seen)
        if _MANIFEST not in seen:
            raise ModelFileError(f"{str(path)!r} has no manifest: not a softmaxreg model file.")
        manifest = check_manifest(_json_load(zf.read(_MANIFEST)), path)
        listed = set(manifest["entries"])
        if seen != listed | {_MANIFEST}:
            extra, missing = sorted(seen - listed - {_MANIFEST}), sorted(listed - seen)
            raise ModelFileError(
                f"The model file's entries do not match its manifest (unexpected: {extra}, "
                f"missing: {missing})."
            )
        entries = {}
        for name, expected in manifest["entries"].items():
            blob = zf.read(name)
            if hashlib.sha256(blob).hexdigest() != expected.get("sha256"):
                raise ModelFileError(f"Checksum mismatch for entry {name!r}: the file is damaged.")
            entries[name] = blob
    entries[_MANIFEST] = manifest
    return entries
