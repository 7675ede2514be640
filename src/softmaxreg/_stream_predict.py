"""Streaming prediction: predictions for a Parquet/CSV file larger than memory, in batches."""

from __future__ import annotations

import gzip
import os
from functools import partial
from pathlib import Path

import numpy as np

from ._stream import _pyarrow, iter_tables

__all__ = ["predict_file"]


class _CSVWriter:
    """CSV (gzip for ``.gz``) written batch by batch as the in-memory ``predict`` writes it
    (pandas): the same file whether or not the input was streamed."""

    def __init__(self, path: Path, schema=None, *, gz: bool = False):
        self.file = gzip.open(path, "wt", newline="") if gz else open(path, "w", newline="")
        self.header = True

    def write_table(self, table) -> None:
        frame = table.to_pandas()
        frame.to_csv(self.file, index=False, header=self.header, lineterminator="\n")
        self.header = False

    def close(self) -> None:
        self.file.close()


def _writer_class(out: Path):
    name = out.name.lower()
    if name.endswith((".parquet", ".pq", ".parq")):
        return _pyarrow().parquet.ParquetWriter
    if name.endswith((".csv", ".txt", ".csv.gz", ".txt.gz")):
        return partial(_CSVWriter, gz=name.endswith(".gz"))
    raise ValueError(f"Cannot tell the output format of {out}: use .parquet, .csv or .csv.gz.")


def predict_file(
    model,
    path,
    out,
    *,
    proba: bool = False,
    features=None,
    keep=(),
    batch_rows: int = 65536,
    delimiter: str = ",",
) -> int:
    """Write predictions for the rows of Parquet/CSV ``path`` to ``out``, one batch at a time.

    Memory is bounded by ``batch_rows``, not by the size of the input. The output is written
    to a temporary file next to ``out`` and moved into place at the end, so a crash leaves no
    partial file.

    Parameters
    ----------
    model : SoftmaxRegression
        A fitted model.
    path : str or Path
        Input Parquet file/directory or CSV file(s).
    out : str or Path
        Output file, ``.parquet``, ``.csv`` or ``.csv.gz``: the ``keep`` columns, then
        ``prediction`` (the class label), then ``proba_<label>`` per class if ``proba``.
    proba : bool, default=False
        Also write the class probabilities.
    features : list of str, optional
        Feature columns in model order; default ``model.feature_names_in_``.
    keep : sequence of str
        Input columns copied to the output (e.g. an id column).
    batch_rows : int, default=65536

    Returns
    -------
    int
        Number of rows written.
    """
    pa = _pyarrow()
    if features is None:
        if not hasattr(model, "feature_names_in_"):
            raise ValueError(
                "The model was fitted without feature names: pass features=[column, ...]."
            )
        features = list(model.feature_names_in_)
    features, keep = [str(f) for f in features], [str(k) for k in keep]
    out = Path(out)
    writer_class = _writer_class(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    labels = [str(c) for c in model.classes_.tolist()]
    writer, n = None, 0
    try:
        for table in iter_tables(
            path, [*keep, *features], batch_rows, numeric=features, delimiter=delimiter
        ):
            X = table.select(features).to_pandas()
            if not hasattr(model, "feature_names_in_"):  # fitted on an array: no names
                X = X.to_numpy(dtype=np.float64)
            P = model.predict_proba(X)
            cols = {k: table.column(k) for k in keep}
            cols["prediction"] = pa.array(model.classes_[np.argmax(P, axis=1)].tolist())
            if proba:
                cols.update({f"proba_{c}": pa.array(P[:, k]) for k, c in enumerate(labels)})
            batch = pa.table(cols)
            if writer is None:
                writer = writer_class(tmp, batch.schema)
            writer.write_table(batch)
            n += table.num_rows
        if writer is None:
            raise ValueError(f"{path} has no rows to predict.")
        writer.close()
        writer = None
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return n
