"""The command line's streaming path: fit and predict files larger than a memory budget.

``softmaxreg fit DATA`` streams (an exact fit over row blocks, see ``_stream.py``) when the
in-memory form of a CSV/Parquet file would exceed ``--memory-budget`` (default: half of the
memory available when the command starts); ``softmaxreg predict`` then writes predictions in
batches. Only numeric feature columns can be streamed (``--categorical``/``--impute`` need
the whole column, so they ask for a larger budget).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = [
    "default_memory_budget",
    "fit_streamed",
    "parse_size",
    "predict_streamed",
    "wants_streaming",
]

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
#: In-memory bytes of a table per stored byte: Parquet is expanded from its uncompressed size
#: (pandas frame + float matrix), CSV text from the file size (numbers as text are ~2x doubles,
#: but the frame, the matrix and the parser's buffers coexist).
_EXPANSION = {"parquet": 2.5, "csv": 1.5}


def parse_size(text: str) -> int:
    """Bytes of a size such as ``512MB``, ``4GB``, ``1.5G`` or ``1000000``."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?B)?\s*", str(text).upper())
    if not m:
        raise ValueError(f"cannot read the size {text!r}: write e.g. 512MB, 4GB or 1.5G")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def default_memory_budget() -> int:
    """Half of the memory available now (``psutil``), or 2 GiB if it cannot be told."""
    try:
        import psutil

        return int(psutil.virtual_memory().available // 2)
    except Exception:  # pragma: no cover - psutil is optional
        return 2 << 30


def in_memory_bytes(path, fmt: str) -> int:
    """Estimated bytes to hold ``path`` in memory as a frame and a feature matrix."""
    from ._stream import CSVSource, ParquetSource, _list_files, _pyarrow

    if fmt == "parquet":
        pq = _pyarrow().parquet
        total = 0
        for f in _list_files(path, ParquetSource._suffixes):
            meta = pq.ParquetFile(f).metadata
            total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        return int(total * _EXPANSION["parquet"])
    files = _list_files(path, CSVSource._suffixes)
    size = sum(f.stat().st_size * (4 if f.name.endswith((".gz", ".bz2")) else 1) for f in files)
    return int(size * _EXPANSION["csv"])


def wants_streaming(args, fmt: str) -> bool:
    """Whether ``args.data`` should be streamed under ``args.memory_budget``."""
    if fmt not in ("csv", "parquet"):
        return False
    budget = getattr(args, "memory_budget", None)
    budget = parse_size(budget) if budget else default_memory_budget()
    try:
        return in_memory_bytes(args.data, fmt) > budget
    except (OSError, ValueError):  # unreadable: the in-memory reader reports it clearly
        return False


def _batch_rows(args, n_features: int) -> int:
    """Rows per block: a small share of the budget, within [4096, 262144]."""
    budget = parse_size(args.memory_budget) if args.memory_budget else default_memory_budget()
    return int(np.clip(budget // 64 // (8 * max(n_features, 1)), 4096, 1 << 18))


def fit_streamed(args, estimator_kwargs: dict):
    """Fit on a streamed source; returns ``(model, report, spec)`` like the in-memory path."""
    from . import SoftmaxRegression
    from ._io import DataError, DataSpec
    from ._report import certificate
    from ._stream import open_source

    extras = ("target_columns", "offset_columns")
    if (
        args.categorical
        or args.impute
        or args.test_size is not None
        or any(getattr(args, name, None) for name in extras)
    ):
        raise DataError(
            f"{args.data} is larger than the memory budget, so it is streamed, and "
            "--categorical, --impute, --test-size, --target-columns and --offset-columns need "
            "it in memory: raise --memory-budget "
            "or prepare the file (numeric columns, no missing values)"
        )
    if args.target is None:
        raise DataError("--target is required for CSV and Parquet files")
    kwargs = dict(target=args.target, weight=args.sample_weight, features=args.features)
    probe = open_source(args.data, batch_rows=1 << 16, **kwargs)
    features = [str(f) for f in probe.feature_names if f not in set(args.exclude or ())]
    source = open_source(
        args.data, batch_rows=_batch_rows(args, len(features)), **{**kwargs, "features": features}
    )
    model = SoftmaxRegression(**estimator_kwargs)
    start = time.perf_counter()
    with source:  # deletes the decoded-block cache, if any, after the fit
        model.fit(source, checkpoint=args.checkpoint, resume=bool(args.resume))
    report = {
        "classes": [c.item() if isinstance(c, np.generic) else c for c in model.classes_],
        "n_features": int(model.n_features_in_),
        "certificate": certificate(model),
        "fit_time_s": time.perf_counter() - start,
        "train": None,
        "test": None,
        "streamed": {"rows": int(source.n_samples), "batch_rows": int(source.batch_rows)},
    }
    columns = [{"name": f, "kind": "numeric", "fill": None} for f in features]
    return model, report, DataSpec("table", args.target, columns)


def predict_streamed(args, model, spec) -> int:
    """Write predictions for ``args.data`` in batches (to ``args.output`` or stdout)."""
    from ._io import DataError
    from ._stream_predict import predict_file

    if any(c.get("kind") != "numeric" or c.get("fill") is not None for c in spec.columns):
        raise DataError(
            f"{args.data} is larger than the memory budget, so it is streamed, but the model "
            "encodes categorical or imputed columns: raise --memory-budget"
        )
    features = [c["name"] for c in spec.columns]
    keep = [args.id] if args.id else []
    if args.output:
        return predict_file(
            model, args.data, args.output, proba=args.proba, features=features, keep=keep
        )
    fd, name = tempfile.mkstemp(prefix="softmaxreg-predict-", suffix=".csv")
    os.close(fd)
    tmp = Path(name)
    try:
        n = predict_file(model, args.data, tmp, proba=args.proba, features=features, keep=keep)
        with open(tmp, "rb") as fh:
            while chunk := fh.read(1 << 20):
                sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    finally:
        tmp.unlink(missing_ok=True)
    return n
