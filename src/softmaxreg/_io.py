"""Reading data files for the command-line tool: CSV (also gzip), Parquet and LIBSVM/svmlight.

A :class:`DataSpec` records how a training file became a feature matrix — the format, the
target column, every feature column with its kind (numeric, or categorical with its
categories, one-hot encoded) and the imputed fill values — as a JSON-only dict that is stored
in the model file's metadata. At predict time the same spec encodes a new file: columns are
matched by name (their order in the file does not matter), missing columns are an error, and
categories never seen in training become an all-zero indicator with a warning.

LIBSVM index base
    LIBSVM files are one-based by convention, but zero-based files exist and a file cannot say
    which it is. The rule: ``index_base="auto"`` takes 0 if the training file uses index 0
    and 1 otherwise; the base and the number of features are stored in the spec and reused,
    never re-guessed, for every later file (a new file's own smallest index would shift
    every feature by one if it were guessed again).

Every problem with a file raises :class:`DataError` with a one-line message that names the
file, the column or row, and what to do.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "DataSpec",
    "UnseenCategoryWarning",
    "detect_format",
    "load_for_model",
    "load_training",
    "read_frame",
    "read_libsvm",
]

SPEC_VERSION = 1
_LIBSVM_EXTS = (".libsvm", ".svm", ".svmlight")
_PARQUET_EXTS = (".parquet", ".pq")
#: A string column whose values are numbers at least this often is taken as numeric data with
#: a bad cell, not as categories.
_NUMERIC_MAJORITY = 0.5


class DataError(ValueError):
    """A data file cannot be used as it is; the message says where and what to do."""


class UnseenCategoryWarning(UserWarning):
    """A categorical column holds a value not seen in training (encoded as all zeros)."""


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _require_pandas():
    try:
        import pandas as pd
        import pyarrow  # noqa: F401
    except ImportError as exc:  # pragma: no cover - the io extra is installed in CI
        raise DataError(
            f"reading data files needs pandas and pyarrow ({exc}); "
            "install them with: pip install 'softmaxreg[io]'"
        ) from None
    return pd


# -- readers -------------------------------------------------------------------------------
def detect_format(path, fmt: str | None = None) -> str:
    """The file format, ``"csv"``, ``"parquet"`` or ``"libsvm"``, from ``fmt`` or the extension.

    ``.csv``, ``.parquet``/``.pq`` and ``.libsvm``/``.svm``/``.svmlight`` (CSV and LIBSVM
    optionally ``.gz``) are recognised; ``.txt`` is not, as both CSV and LIBSVM files use it.
    """
    if fmt is not None:
        if fmt not in ("csv", "parquet", "libsvm"):
            raise DataError(f"unknown format {fmt!r}; use csv, parquet or libsvm")
        return fmt
    if Path(path).is_dir():  # a directory of data files: their common format
        names = [f.name.lower() for f in Path(path).rglob("*") if f.is_file()]
        found = {
            fmt for fmt in ("csv", "parquet") if any(n.endswith(_suffixes(fmt)) for n in names)
        }
        if len(found) == 1:
            return found.pop()
        raise DataError(
            f"cannot tell the format of the files in the directory {str(path)!r} "
            f"({sorted(found) or 'no data files'}); pass --format csv or parquet"
        )
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(_PARQUET_EXTS):
        return "parquet"
    if name.endswith(_LIBSVM_EXTS):
        return "libsvm"
    raise DataError(
        f"cannot tell the format of {str(path)!r} from its extension; "
        "pass --format csv, parquet or libsvm"
    )


def _suffixes(fmt: str) -> tuple[str, ...]:
    """The file names a directory's ``fmt`` files end with: those the streamed sources take,
    so that a directory holds the same rows in memory and streamed."""
    from ._stream import CSVSource, ParquetSource

    return (ParquetSource if fmt == "parquet" else CSVSource)._suffixes


def _directory_files(path: Path, fmt: str) -> list[Path]:
    """The ``fmt`` files under the directory ``path``, searched recursively, in sorted order
    (the streamed sources' own listing)."""
    from ._stream import _list_files

    try:
        return _list_files(path, _suffixes(fmt))
    except FileNotFoundError as exc:
        raise DataError(str(exc)) from None


def _check_exists(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{str(path)!r}: no such file")
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a directory, not a data file")
    if path.stat().st_size == 0:
        raise DataError(f"{str(path)!r} is empty")
    return path


def read_frame(path, fmt: str = "csv"):
    """Read a CSV (plain or gzip) or Parquet file, or a directory of them, into a DataFrame.

    Ragged rows, truncated or corrupt files and empty files raise :class:`DataError`; a UTF-8
    byte-order mark is skipped; empty cells and ``NA``/``NaN``/``null`` are missing values.
    The files of a directory (searched recursively, in sorted order) must have the same
    columns; their rows are concatenated.
    """
    pd = _require_pandas()
    if Path(path).is_dir():
        files = _directory_files(Path(path), fmt)
        frames = [_read_file(f, fmt, pd) for f in files]
        for f, frame in zip(files[1:], frames[1:], strict=True):
            if list(frame.columns) != list(frames[0].columns):
                raise DataError(
                    f"{str(f)!r} has the columns {list(frame.columns)[:20]}, unlike "
                    f"{str(files[0])!r} ({list(frames[0].columns)[:20]}): the files of a "
                    "directory must have the same columns"
                )
        return pd.concat(frames, ignore_index=True)
    return _read_file(path, fmt, pd)


def _read_file(path, fmt: str, pd):
    """:func:`read_frame` of one file."""
    path = _check_exists(path)
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path) if fmt == "parquet" else _read_csv(path, pacsv)
    except DataError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"cannot read {str(path)!r} as {fmt.upper()}: {_one_line(exc)}") from None
    try:
        names = table.column_names
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{str(path)!r}: the header is not UTF-8 text ({_one_line(exc)}); save the file "
            "as UTF-8"
        ) from None
    if fmt == "csv":  # pyarrow reads cells that are not UTF-8 as binary columns
        binary = [f.name for f in table.schema if pa.types.is_binary(f.type)]
        if binary:
            raise DataError(
                f"{str(path)!r}: column(s) {binary} hold text that is not UTF-8; save the file "
                "as UTF-8"
            )
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataError(f"{str(path)!r}: duplicate column names {duplicated}")
    if table.num_rows == 0:
        raise DataError(f"{str(path)!r} has a header but no data rows")
    frame = table.to_pandas()
    if not isinstance(frame, pd.DataFrame):  # pragma: no cover - defensive
        raise DataError(f"{str(path)!r} did not read as a table")
    return frame


def _read_csv(path, pacsv, use_threads=True):
    """pyarrow's CSV reader; a row with the wrong number of fields is a :class:`DataError`
    naming its line (found by a second, serial read, only when there is such a row)."""
    ragged = []

    def on_bad_row(row):
        ragged.append(row)
        return "skip"

    # pyarrow decodes a bad row's text before calling the handler; a row that is not UTF-8
    # fails there, and Python would print that as "Exception ignored in ..." with a traceback.
    undecodable, hook = [], sys.unraisablehook
    sys.unraisablehook = lambda unraisable: undecodable.append(unraisable.exc_value)
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=use_threads),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_bad_row),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
    except Exception:
        if not undecodable:
            raise
        table = None
    finally:
        sys.unraisablehook = hook
    if undecodable:
        raise DataError(
            f"{str(path)!r} has a malformed row that is not UTF-8 text "
            f"({_one_line(undecodable[0])}); save the file as UTF-8 and check its rows"
        )
    if ragged:
        row = ragged[0]
        if row.number is None and use_threads:
            return _read_csv(path, pacsv, use_threads=False)
        where = f"line {row.number}" if row.number is not None else "a row"
        raise DataError(
            f"{str(path)!r}: {where} has {row.actual_columns} field(s) but the header has "
            f"{row.expected_columns}: {row.text[:80]!r}"
        )
    return table


def read_libsvm(path, *, index_base="auto", n_features: int | None = None):
    """Read a LIBSVM/svmlight file (optionally gzip) with an explicit index base.

    Parameters
    ----------
    path : str or Path
    index_base : {0, 1, "auto"}
        ``"auto"``: 0 if the file contains feature index 0, else 1 (see the module docstring).
    n_features : int, optional
        The number of features to read into (that of the training file at predict time);
        indices beyond it are an error.

    Returns
    -------
    X : scipy.sparse.csr_matrix of shape (n_samples, n_features), float64
    y : ndarray of shape (n_samples,)
        Labels, as integers when they are all whole numbers.
    index_base : int
    """
    from sklearn.datasets import load_svmlight_file

    path = _check_exists(path)
    if index_base not in (0, 1, "auto"):
        raise DataError(f"index base must be 0, 1 or auto, got {index_base!r}")
    try:
        X, y = load_svmlight_file(str(path), zero_based=True, dtype=np.float64)
    except (ValueError, OSError, EOFError, RuntimeError) as exc:
        raise DataError(f"cannot read {str(path)!r} as LIBSVM: {_one_line(exc)}") from None
    X = X.tocsr()
    used = X.indices
    smallest = int(used.min()) if used.size else None
    if index_base == "auto":
        index_base = 0 if smallest == 0 else 1
    if index_base == 1:
        if smallest == 0:
            raise DataError(
                f"{str(path)!r} uses feature index 0 but the model reads one-based LIBSVM "
                "indices; re-fit with --index-base 0 if the files are zero-based"
            )
        X = X[:, 1:] if X.shape[1] > 0 else X
    width = X.shape[1]
    if n_features is not None:
        if width > n_features:
            raise DataError(
                f"{str(path)!r} has feature index {width - 1 + index_base} but the model "
                f"has {n_features} features (index base {index_base})"
            )
        X = _pad_columns(X, n_features)
    if not np.all(np.isfinite(X.data)):
        raise DataError(f"{str(path)!r} contains NaN or infinite feature values")
    return X.tocsr(), _whole_labels(y), int(index_base)


def _pad_columns(X, n_columns):
    import scipy.sparse as sp

    if X.shape[1] == n_columns:
        return X
    return sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_columns))


def _whole_labels(y):
    y = np.asarray(y)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)
    return y


# -- columns -------------------------------------------------------------------------------
def _column_kind(series, name, path) -> str:
    """``"numeric"`` or ``"categorical"`` for a column; a mostly-numeric text column is an error."""
    pd = _require_pandas()
    if series.isna().all():
        raise DataError(
            f"{path}: column {name!r} is empty in every row; leave it out with --exclude"
        )
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if isinstance(series.dtype, pd.CategoricalDtype):
        return "categorical"  # typed as categories in the file (Parquet)
    if pd.api.types.is_string_dtype(series):
        values = series.dropna()
        numbers = pd.to_numeric(values, errors="coerce")
        n_num = int(numbers.notna().sum())
        if _NUMERIC_MAJORITY * values.size <= n_num < values.size:
            bad = values[numbers.isna()]
            raise DataError(
                f"{path}: column {name!r} holds numbers but data row {_row(bad.index[0])} has "
                f"the non-numeric value {str(bad.iloc[0])!r}; fix the cell, or pass "
                f"--categorical {name} to treat the column as categories"
            )
        return "categorical"
    raise DataError(
        f"{path}: column {name!r} has the unsupported type {series.dtype}; "
        "leave it out with --exclude or --features"
    )


def _row(index) -> int:
    return int(index) + 1


def _as_category_strings(series):
    """Category values as strings (whole floats written as integers), missing kept as None."""
    pd = _require_pandas()
    out = []
    for v in series.tolist():
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            out.append(None)
        elif isinstance(v, float) and v.is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v))
    return out


def _numeric_values(series, name, path) -> np.ndarray:
    pd = _require_pandas()
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64").to_numpy()
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: column {name!r} must be numeric but data row {i + 1} has the value "
            f"{str(series.iloc[i])!r}"
        )
    values = values.astype("float64").to_numpy()
    if np.isinf(values).any():
        i = int(np.flatnonzero(np.isinf(values))[0])
        raise DataError(f"{path}: column {name!r} has an infinite value in data row {i + 1}")
    return values


@dataclass
class DataSpec:
    """How a data file becomes a feature matrix; stored in the model file as JSON.

    Attributes
    ----------
    format : {"table", "libsvm"}
    target : str or None
        The target column of the training file.
    columns : list of dict
        One entry per feature column, in training order: ``name``, ``kind``
        (``"numeric"``/``"categorical"``), ``categories`` (categorical only) and ``fill``
        (the imputed value, or ``None``).
    index_base, n_features : int or None
        LIBSVM only (see the module docstring).
    """

    format: str = "table"
    target: str | None = None
    columns: list = field(default_factory=list)
    index_base: int | None = None
    n_features: int | None = None

    def to_dict(self) -> dict:
        return {
            "version": SPEC_VERSION,
            "format": self.format,
            "target": self.target,
            "columns": self.columns,
            "index_base": self.index_base,
            "n_features": self.n_features,
        }

    @classmethod
    def from_dict(cls, d) -> DataSpec:
        if not isinstance(d, dict) or d.get("version") != SPEC_VERSION:
            raise DataError(
                "the model file has no data description this version of the softmaxreg "
                "command can read (was it saved from Python rather than by `softmaxreg fit`?)"
            )
        return cls(d["format"], d["target"], d["columns"], d["index_base"], d["n_features"])

    @property
    def feature_names(self) -> list[str]:
        """The names of the encoded features (``name=category`` for indicators)."""
        if self.format == "libsvm":
            return [f"x{i + self.index_base}" for i in range(self.n_features)]
        names = []
        for col in self.columns:
            if col["kind"] == "numeric":
                names.append(col["name"])
            else:
                names.extend(f"{col['name']}={c}" for c in _indicated(col))
        return names

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls, frame, names, *, target, impute=None, categorical=(), path="data", reference=False
    ):
        """Learn the column kinds, categories and fill values from the training frame.

        With ``reference`` each categorical column's first category is its reference level:
        no indicator of its own (the rows of that level have all-zero indicators), so that
        with an intercept the columns are not collinear (the unpenalised fit's coding).
        """
        columns = []
        for name in names:
            series = frame[name]
            kind = "categorical" if name in categorical else _column_kind(series, name, path)
            col = {"name": name, "kind": kind, "fill": None}
            if kind == "categorical":
                values = [v for v in _as_category_strings(series) if v is not None]
                col["categories"] = sorted(set(values))
                if reference and col["categories"]:
                    col["reference"] = col["categories"][0]
                if impute is not None and len(values) < len(series):
                    col["fill"] = max(col["categories"], key=values.count)
            elif impute is not None:
                x = _numeric_values(series, name, path)
                finite = x[~np.isnan(x)]
                if finite.size == 0:
                    raise DataError(f"{path}: column {name!r} has no values to impute from")
                col["fill"] = float(np.mean(finite) if impute == "mean" else np.median(finite))
            columns.append(col)
        spec = cls("table", target, columns)
        names_out = spec.feature_names
        if len(set(names_out)) != len(names_out):
            raise DataError(f"{path}: the encoded feature names clash: {names_out}")
        return spec

    # -- encoding ------------------------------------------------------------------------
    def encode(self, frame, path="data"):
        """The feature DataFrame (float64, columns :attr:`feature_names`) of a table.

        Raises :class:`DataError` for missing columns or values; warns with
        :class:`UnseenCategoryWarning` for categories not seen in training.
        """
        pd = _require_pandas()
        absent = [c["name"] for c in self.columns if c["name"] not in frame.columns]
        if absent:
            raise DataError(f"{path} lacks the feature column(s) the model needs: {absent}")
        blocks, missing = [], {}
        for col in self.columns:
            block, n_missing = self._encode_column(frame[col["name"]], col, path)
            blocks.append(block)
            if n_missing:
                missing[col["name"]] = n_missing
        if missing:
            raise DataError(
                f"{path} has missing values (column: count) {missing}; fill them in, or pass "
                "--impute mean|median when fitting"
            )
        X = np.hstack(blocks) if blocks else np.empty((len(frame), 0))
        return pd.DataFrame(X, columns=self.feature_names)

    def _encode_column(self, series, col, path):
        if col["kind"] == "numeric":
            x = _numeric_values(series, col["name"], path)
            nan = np.isnan(x)
            if col["fill"] is not None:
                x = np.where(nan, col["fill"], x)
                nan = np.zeros_like(nan)
            return x[:, None], int(nan.sum())
        values = _as_category_strings(series)
        if col["fill"] is not None:
            values = [col["fill"] if v is None else v for v in values]
        index = {c: j for j, c in enumerate(_indicated(col))}
        out = np.zeros((len(values), len(index)))
        unseen: dict[str, int] = {}
        for i, v in enumerate(values):
            j = index.get(v)
            if j is not None:
                out[i, j] = 1.0
            elif v is not None and v != col.get("reference"):
                unseen[v] = unseen.get(v, 0) + 1
        if unseen:
            shown = dict(list(unseen.items())[:5])
            warnings.warn(
                f"{path}: column {col['name']!r} has {sum(unseen.values())} value(s) not seen "
                f"in training {shown}; they are encoded as all-zero indicators",
                UnseenCategoryWarning,
                stacklevel=3,
            )
        return out, values.count(None)


def _indicated(col) -> list[str]:
    """The categories of a categorical column that have an indicator (all but the reference)."""
    return [c for c in col["categories"] if c != col.get("reference")]


# -- the two entry points used by the CLI -----------------------------------------------------
@dataclass
class Loaded:
    """A file read for the model: features, and the target, weights and ids when asked."""

    X: object
    y: np.ndarray | None = None
    sample_weight: np.ndarray | None = None
    ids: object = None
    spec: DataSpec | None = None
    offset: np.ndarray | None = None  # --offset-columns (issue 9)
    classes: np.ndarray | None = None  # --target-columns names, sorted


def _labels(frame, target, path) -> np.ndarray:
    series = frame[target]
    n_missing = int(series.isna().sum())
    if n_missing:
        raise DataError(f"{path}: the target column {target!r} has {n_missing} missing value(s)")
    y = series.to_numpy()
    if y.dtype.kind == "O":
        y = np.array([str(v) for v in y], dtype=object)
    return _whole_labels(y)


def _need_column(frame, name, what, path):
    if name not in frame.columns:
        shown = list(frame.columns)[:20]
        raise DataError(f"{path} has no {what} column {name!r}; its columns are {shown}")


def load_training(
    path,
    *,
    target: str | None,
    fmt=None,
    features=None,
    exclude=(),
    sample_weight=None,
    impute=None,
    categorical=(),
    index_base="auto",
    target_columns=None,
    offset_columns=None,
    reference_coding=False,
) -> Loaded:
    """Read a training file: encoded features, target, sample weights and the :class:`DataSpec`
    (with ``reference_coding``, categories coded against their first level: see
    :meth:`DataSpec.from_frame`)."""
    fmt = detect_format(path, fmt)
    if fmt == "libsvm" and (target_columns or offset_columns):
        raise DataError("--target-columns and --offset-columns need a CSV or Parquet file")
    if fmt == "libsvm":
        X, y, base = read_libsvm(path, index_base=index_base)
        return Loaded(X, y, None, None, DataSpec("libsvm", None, [], base, X.shape[1]))
    if target is None and not target_columns:
        raise DataError("--target is required for CSV and Parquet files")
    frame = read_frame(path, fmt)
    path = str(path)
    if target is not None:
        _need_column(frame, target, "target", path)
    if sample_weight is not None:
        _need_column(frame, sample_weight, "sample-weight", path)
    for name in [*(features or ()), *exclude, *categorical]:
        _need_column(frame, name, "feature", path)
    extra = [*(target_columns or ()), *(offset_columns or ())]
    skip = {target, sample_weight, *exclude, *extra}
    names = list(features) if features else [c for c in frame.columns if c not in skip]
    if target in names:
        raise DataError(f"the target column {target!r} cannot also be a feature")
    if any(c in names for c in extra):
        taken = next(c for c in extra if c in names)
        raise DataError(f"the target/offset column {taken!r} cannot also be a feature")
    if not names:
        raise DataError(f"{path} has no feature columns besides the target")
    spec = DataSpec.from_frame(
        frame,
        names,
        target=target,
        impute=impute,
        categorical=set(categorical),
        path=path,
        reference=reference_coding,
    )
    X = spec.encode(frame, path)
    from ._cli_targets import targets_and_offset

    y = None if target is None else _labels(frame, target, path)
    y, offset, classes = targets_and_offset(frame, y, target_columns, offset_columns, path)
    sw = None
    if sample_weight is not None:
        sw = _checked_weights(frame[sample_weight], sample_weight, path)
    return Loaded(X, y, sw, None, spec, offset, classes)


def _checked_weights(series, name, path) -> np.ndarray:
    sw = _numeric_values(series, name, path)
    if np.isnan(sw).any() or (sw < 0).any():
        raise DataError(f"{path}: sample weights must be non-negative numbers, no gaps")
    return sw


def load_for_model(
    path,
    spec: DataSpec,
    *,
    fmt=None,
    target=None,
    need_target=False,
    id_col=None,
    offset_columns=None,
    sample_weight=None,
    target_columns=None,
):
    """Read a file to predict or evaluate with a fitted model described by ``spec``.

    ``target`` defaults to the training target column; with ``need_target`` its absence is an
    error, otherwise ``y`` is ``None`` when the file has no such column. With
    ``target_columns`` the target is their (n, K) matrix, its columns and the offset's in
    sorted class order (as in training); ``sample_weight`` names a weight column.
    """
    fmt = detect_format(path, fmt)
    if (fmt == "libsvm") != (spec.format == "libsvm"):
        raise DataError(
            f"the model was fitted on {spec.format} data but {str(path)!r} is {fmt}; "
            "use a file of the same kind"
        )
    if fmt == "libsvm":
        if id_col is not None or offset_columns or sample_weight or target_columns:
            raise DataError(
                "--id, --sample-weight, --target-columns and --offset-columns need a CSV or "
                "Parquet file (no columns)"
            )
        X, y, _ = read_libsvm(path, index_base=spec.index_base, n_features=spec.n_features)
        return Loaded(X, y, None, None, spec)
    frame = read_frame(path, fmt)
    path = str(path)
    target = target or spec.target
    y = None
    labels = not target_columns  # else the target is the matrix of the target columns
    if labels and target is not None and target in frame.columns:
        y = _labels(frame, target, path)
    elif labels and need_target:
        if target is None:
            raise DataError("the model file does not name its label column: pass --target COL")
        _need_column(frame, target, "target", path)
    ids = None
    if id_col is not None:
        _need_column(frame, id_col, "id", path)
        ids = frame[id_col]
    from ._cli_targets import read_offset, targets_and_offset

    if target_columns:
        y, offset, _ = targets_and_offset(frame, None, target_columns, offset_columns, path)
    else:
        offset = read_offset(frame, offset_columns, path)
    sw = None
    if sample_weight is not None:
        _need_column(frame, sample_weight, "sample-weight", path)
        sw = _checked_weights(frame[sample_weight], sample_weight, path)
    return Loaded(spec.encode(frame, path), y, sw, ids, spec, offset)
