"""Safe model files: a zip of JSON and ``.npy`` entries with a checksummed manifest; never pickle.

File layout (format version 1)
------------------------------
A zip archive whose entries are all *stored* (uncompressed, so no decompression bombs):

``manifest.json``
    ``{"format": "softmaxreg-model", "format_version": 1, "softmaxreg_version": ...,
    "entries": {name: {"sha256": ..., "size": ...}}}``: every other entry with its checksum.
``model.json``
    The estimator: constructor parameters, classes (with their original type), feature names,
    the solver record (without its arrays), fitted scalars, metadata, and a table of the arrays
    (entry name, dtype, shape).
``arrays/*.npy``
    ``coef_``, ``intercept_``, the solver's coefficients, other numeric fitted arrays and the
    fitted basis state; read with ``allow_pickle=False`` and checked against the table.

Loading never runs code from the file: no pickle, no ``eval``, object arrays refused, entry
names checked (no ``..``, absolute paths or symlinks), every entry's SHA-256 verified, shapes
checked against each other. Any problem raises :class:`ModelFileError` (a ``ValueError``).
Each format version keeps its own loader in ``_LOADERS``, so old files keep loading.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tokenize
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ._safezip import (
    _ARRAY_KINDS,
    _MANIFEST,
    ModelFileError,
    _dec,
    _enc,
    _json_bytes,
    _json_load,
    _open_archive,
    _typed,
    _Unencodable,
    _V1Reader,
    _write_archive,
    _Writer,
    atomic_write,
)

__all__ = ["FORMAT_VERSION", "ModelFileError", "atomic_write", "load_model", "save_model"]

FORMAT_NAME = "softmaxreg-model"
FORMAT_VERSION = 1
_MODEL = "model.json"
_CLASS_KINDS = "biufUO"
_ATTR_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}_$")
# Fitted attributes handled explicitly; any other public ``name_`` attribute is saved generically.
_KNOWN = {
    "classes_",
    "coef_",
    "intercept_",
    "n_iter_",
    "n_features_in_",
    "feature_names_in_",
    "result_",
    "basis_",
    "model_metadata_",
}
# What a damaged or hostile file can make the standard library or NumPy raise while reading.
_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    OverflowError,
    NotImplementedError,
    UnicodeDecodeError,
    RecursionError,
    SyntaxError,  # an .npy header that is not a Python literal (parsed by ast.literal_eval)
    tokenize.TokenError,  # ... or does not even tokenize
    AttributeError,  # a forged structure (e.g. a basis state) of the wrong JSON type
)


# -- saving --------------------------------------------------------------------------------
def _encode_classes(classes: np.ndarray) -> dict:
    classes = np.asarray(classes)
    if classes.dtype.kind not in _CLASS_KINDS:
        raise ModelFileError(f"Cannot save class labels of dtype {classes.dtype}.")
    if classes.dtype.kind == "O":
        values = []
        for c in classes.tolist():
            if isinstance(c, np.generic):
                c = c.item()
            if not isinstance(c, (str, int, float, bool)):
                raise ModelFileError(
                    f"Cannot save class label {c!r} of type {type(c).__name__}: model files "
                    "hold str, int, bool and float labels."
                )
            values.append(_enc(c))
        return {"dtype": "object", "values": values}
    return {"dtype": classes.dtype.str, "values": [_enc(c) for c in classes.tolist()]}


def _encode_params(model, writer: _Writer) -> tuple[dict, list]:
    params, skipped = {}, []
    for name, value in model.get_params(deep=False).items():
        try:
            if isinstance(value, np.ndarray) and value.dtype.kind in _ARRAY_KINDS:
                params[name] = {"$array": writer.array(f"param.{name}", value)}
            else:
                params[name] = _enc(value)
        except _Unencodable:
            # A transformer given as basis= is rebuilt from the fitted basis_ on loading.
            if not (name == "basis" and getattr(model, "basis_", None) is not None):
                skipped.append(name)
    return params, skipped


def _encode_result(result, writer: _Writer) -> dict | None:
    if result is None or not dataclasses.is_dataclass(result):
        return None
    fields = {}
    for field in dataclasses.fields(result):
        value = getattr(result, field.name)
        try:
            if isinstance(value, np.ndarray):
                fields[field.name] = {"$array": writer.array(f"result.{field.name}", value)}
            else:
                fields[field.name] = _enc(value)
        except _Unencodable:
            continue  # a solver-specific extra that is not plain data: not needed to predict
    return fields


def _encode_extras(model, writer: _Writer) -> tuple[dict, list]:
    """Other public fitted attributes (``name_``): numeric arrays or JSON values."""
    extras, skipped = {}, []
    for name, value in sorted(vars(model).items()):
        if name in _KNOWN or not _ATTR_RE.match(name):
            continue
        try:
            if isinstance(value, np.ndarray) and value.dtype.kind in _ARRAY_KINDS:
                extras[name] = {"$array": writer.array(f"attr.{name}", value)}
            else:
                extras[name] = _enc(value)
        except _Unencodable:
            skipped.append(name)
    return extras, skipped


def _encode_basis(basis, writer: _Writer) -> dict:
    try:
        from . import _basis
    except ImportError as exc:
        raise ModelFileError(
            "This model has a fitted basis (basis_), but this softmaxreg cannot save bases "
            "(softmaxreg._basis is missing)."
        ) from exc
    try:
        state, arrays = _basis.basis_to_state(basis)
    except NotImplementedError as exc:
        raise ModelFileError(f"Cannot save this model's basis: {exc}") from exc
    keys = {}
    for key, array in arrays.items():
        if not isinstance(key, str) or len(key) > 200:
            raise ModelFileError(f"Basis array name {key!r} is not a short string.")
        keys[key] = writer.array(f"basis.{key}", array)
    return {"state": _enc(state), "arrays": keys}


def _estimator_classes() -> dict:
    """The estimator classes a model file may hold, by name."""
    from ._estimator import SoftmaxRegression

    classes = {"SoftmaxRegression": SoftmaxRegression}
    try:
        from ._cv import SoftmaxRegressionCV
    except ImportError:
        return classes
    classes["SoftmaxRegressionCV"] = SoftmaxRegressionCV
    return classes


def _model_document(model, metadata, writer: _Writer) -> dict:
    import sklearn

    from . import __version__

    if _estimator_classes().get(type(model).__name__) is not type(model):
        raise ModelFileError(
            f"Cannot save a {type(model).__name__}: model files hold "
            f"{' and '.join(_estimator_classes())} estimators."
        )

    params, skipped_params = _encode_params(model, writer)
    extras, skipped_attrs = _encode_extras(model, writer)
    for name, what in [(n, "constructor parameter") for n in skipped_params] + [
        (n, "fitted attribute") for n in skipped_attrs
    ]:
        warnings.warn(
            f"The {what} {name!r} is not plain data and is not saved in the model file.",
            UserWarning,
            stacklevel=4,
        )
    names = getattr(model, "feature_names_in_", None)
    basis = getattr(model, "basis_", None)
    return {
        "estimator": type(model).__name__,
        "params": params,
        "classes": _encode_classes(model.classes_),
        "n_features_in": int(model.n_features_in_),
        "feature_names": None if names is None else [str(n) for n in names],
        "coef": writer.array("coef_", model.coef_),
        "intercept": writer.array("intercept_", model.intercept_),
        "n_iter": [int(i) for i in np.ravel(getattr(model, "n_iter_", []))],
        "result": _encode_result(getattr(model, "result_", None), writer),
        "extras": extras,
        "basis": None if basis is None else _encode_basis(basis, writer),
        "metadata": metadata,
        "not_saved": skipped_params + skipped_attrs,
        "created_with": {
            "softmaxreg": __version__,
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        },
    }


def _check_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict of JSON values, got {type(metadata).__name__}.")
    try:
        return json.loads(json.dumps(metadata, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"metadata must hold only JSON values (str, finite numbers, bool, None, lists and "
            f"dicts with string keys): {exc}"
        ) from exc


def save_model(model, path, *, metadata: dict | None = None) -> None:
    """Save a fitted :class:`SoftmaxRegression` to a safe, checksummed model file.

    The file is a zip of JSON and ``.npy`` entries (see the module docstring); it is written
    atomically, so a crash leaves any previous file at ``path`` intact.

    Parameters
    ----------
    model : SoftmaxRegression
        A fitted estimator.
    path : str or path-like
        Destination file (any extension; ``.smr`` is customary).
    metadata : dict, optional
        JSON values stored with the model and returned as ``model_metadata_`` by
        :func:`load_model`. Defaults to the model's own ``model_metadata_``, if any.

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn.datasets import load_iris
    >>> from softmaxreg import SoftmaxRegression, load_model, save_model
    >>> X, y = load_iris(return_X_y=True)
    >>> model = SoftmaxRegression().fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "iris.smr")
    >>> save_model(model, path, metadata={"dataset": "iris"})
    >>> loaded = load_model(path)
    >>> bool((loaded.predict_proba(X) == model.predict_proba(X)).all())
    True
    >>> loaded.model_metadata_
    {'dataset': 'iris'}
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(model)
    if metadata is None:
        metadata = getattr(model, "model_metadata_", None)
    metadata = _check_metadata(metadata)
    writer = _Writer()
    try:
        document = _model_document(model, metadata, writer)
    except _Unencodable as exc:
        raise ModelFileError(f"Cannot save this model: {exc}.") from exc
    document["arrays"] = writer.table
    entries = {_MODEL: _json_bytes(document), **writer.entries}
    _write_zip(path, entries)


def _write_zip(path, entries: dict[str, bytes]) -> None:
    from . import __version__

    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "softmaxreg_version": __version__,
    }
    _write_archive(path, header, entries)


# -- loading -------------------------------------------------------------------------------
def _check_manifest(manifest, path) -> dict:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{str(path)!r} is not a softmaxreg model file (unknown format).")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"Invalid format version {version!r} in the model file.")
    if version > FORMAT_VERSION:
        from . import __version__

        raise ModelFileError(
            f"This model file was made by a newer softmaxreg "
            f"({manifest.get('softmaxreg_version')!r}, format version {version}); this "
            f"softmaxreg {__version__} reads format versions up to {FORMAT_VERSION}. "
            "Upgrade softmaxreg to load it."
        )
    if version not in _LOADERS:
        raise ModelFileError(f"Unknown model file format version {version}.")
    entries = manifest.get("entries")
    if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
        raise ModelFileError("The model file's manifest has no valid entry table.")
    return manifest


def load_model(path):
    """Load a model saved by :func:`save_model`, verifying it; never runs code from the file.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    model : SoftmaxRegression
        The fitted estimator, with ``model_metadata_`` (a dict, ``{}`` if none was saved).
        Its ``predict_proba`` is bit-identical to the saved model's.

    Raises
    ------
    ModelFileError
        The file is damaged (checksum, truncation), tampered with (unsafe entries,
        inconsistent shapes), made by a newer softmaxreg, or not a model file at all.
    FileNotFoundError
        There is no file at ``path``.
    """
    data = Path(path).read_bytes()
    try:
        entries = _open_archive(data, path, _check_manifest)
        version = entries[_MANIFEST]["format_version"]
        return _LOADERS[version](entries)
    except ModelFileError:
        raise
    except _READ_ERRORS as exc:
        raise ModelFileError(
            f"{str(path)!r} is damaged or truncated and cannot be read as a softmaxreg model "
            f"file ({type(exc).__name__}: {exc})."
        ) from exc


# -- format version 1 ------------------------------------------------------------------------
def _decode_classes(spec) -> np.ndarray:
    spec = _typed(spec, dict, "classes")
    values = [_dec(v) for v in _typed(spec.get("values"), list, "classes.values")]
    if len(values) < 2:
        raise ModelFileError("The model file has fewer than two classes.")
    if spec.get("dtype") == "object":
        if not all(isinstance(v, (str, int, float, bool)) for v in values):
            raise ModelFileError("The model file's class labels are not str/int/float/bool.")
        classes = np.empty(len(values), dtype=object)
        classes[:] = values
        return classes
    dtype = np.dtype(_typed(spec.get("dtype"), str, "classes.dtype"))
    if dtype.kind not in _CLASS_KINDS.replace("O", ""):
        raise ModelFileError(f"Forbidden class label dtype {dtype} in the model file.")
    return np.array(values, dtype=dtype)


def _check_shapes(model) -> None:
    n_classes = model.classes_.size
    rows = 1 if n_classes == 2 else n_classes
    coef, intercept = model.coef_, model.intercept_
    if coef.ndim != 2 or coef.shape[0] != rows or intercept.shape != (rows,):
        raise ModelFileError(
            f"Inconsistent model file: {n_classes} classes need coef_ of shape ({rows}, d) and "
            f"intercept_ of shape ({rows},); got {coef.shape} and {intercept.shape}."
        )
    if coef.dtype.kind != "f" or intercept.dtype != coef.dtype:
        raise ModelFileError(f"Inconsistent model file: coef_ dtype {coef.dtype}.")
    if not (np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))):
        raise ModelFileError("Inconsistent model file: coef_ or intercept_ is not finite.")
    if getattr(model, "basis_", None) is None and coef.shape[1] != model.n_features_in_:
        raise ModelFileError(
            f"Inconsistent model file: coef_ has {coef.shape[1]} columns but the model has "
            f"{model.n_features_in_} features."
        )
    basis = getattr(model, "basis_", None)
    if basis is not None and getattr(basis, "n_features_in_", model.n_features_in_) != (
        model.n_features_in_
    ):
        raise ModelFileError(
            f"Inconsistent model file: the basis takes {basis.n_features_in_} features but the "
            f"model has {model.n_features_in_}."
        )
    names = getattr(model, "feature_names_in_", None)
    if names is not None and names.shape != (model.n_features_in_,):
        raise ModelFileError("Inconsistent model file: feature names do not match n_features_in_.")


def _load_result(spec, reader: _V1Reader):
    from ._solvers import SolverResult

    if spec is None:
        return None
    spec = _typed(spec, dict, "result")
    known = {f.name for f in dataclasses.fields(SolverResult)}
    return SolverResult(**{k: reader.value(v) for k, v in spec.items() if k in known})


def _load_basis(spec, reader: _V1Reader):
    spec = _typed(spec, dict, "basis")
    try:
        from . import _basis
    except ImportError as exc:
        raise ModelFileError(
            "This model file holds a fitted basis, but this softmaxreg has no basis support "
            "(softmaxreg._basis is missing); upgrade softmaxreg."
        ) from exc
    arrays = {k: reader.array(v) for k, v in _typed(spec["arrays"], dict, "basis.arrays").items()}
    return _basis.basis_from_state(_dec(spec["state"]), arrays)


def _load_v1(entries: dict):
    doc = _typed(_json_load(entries[_MODEL]), dict, "model.json")
    estimator = _estimator_classes().get(doc.get("estimator"))
    if estimator is None:
        raise ModelFileError(f"Unknown estimator {doc.get('estimator')!r} in the model file.")
    reader = _V1Reader(entries, doc.get("arrays"))
    model = estimator()
    valid = model.get_params(deep=False)
    params = _typed(doc.get("params"), dict, "params")
    model.set_params(**{k: reader.value(v) for k, v in params.items() if k in valid})
    model.classes_ = _decode_classes(doc.get("classes"))
    model.n_features_in_ = _typed(doc.get("n_features_in"), int, "n_features_in")
    if doc.get("feature_names") is not None:
        names = _typed(doc["feature_names"], list, "feature_names")
        if not all(isinstance(n, str) for n in names):
            raise ModelFileError("Feature names in the model file are not strings.")
        model.feature_names_in_ = np.array(names, dtype=object)
    model.coef_ = reader.array(doc.get("coef"))
    model.intercept_ = reader.array(doc.get("intercept"))
    model.n_iter_ = np.array(_typed(doc.get("n_iter"), list, "n_iter"), dtype=np.int64)
    model.result_ = _load_result(doc.get("result"), reader)
    for name, value in _typed(doc.get("extras", {}), dict, "extras").items():
        if not _ATTR_RE.match(name) or name in _KNOWN or hasattr(estimator, name):
            raise ModelFileError(f"Invalid fitted attribute name {name!r} in the model file.")
        setattr(model, name, reader.value(value))
    if doc.get("basis") is not None:
        model.basis_ = _load_basis(doc["basis"], reader)
        if "basis" in valid and "basis" not in params:  # basis= was a transformer
            from sklearn.base import clone

            model.basis = clone(model.basis_)
    metadata = doc.get("metadata")
    model.model_metadata_ = {} if metadata is None else _typed(metadata, dict, "metadata")
    _check_shapes(model)
    _check_basis(model)
    return model


def _check_basis(model) -> None:
    """A loaded basis must transform a row of zeros into ``coef_.shape[1]`` features; a
    forged basis state that cannot is refused here rather than failing at predict time."""
    basis = getattr(model, "basis_", None)
    if not (hasattr(basis, "transform") or hasattr(basis, "get_params")):
        return  # no basis (or a stand-in from a test double)
    try:
        with np.errstate(all="ignore"):
            Z = np.asarray(basis.transform(np.zeros((1, model.n_features_in_))))
    except Exception as exc:  # the package's own basis classes, on state from the file
        raise ModelFileError(
            f"The model file's basis cannot transform data ({type(exc).__name__}: {exc})."
        ) from exc
    width = Z.shape[1] if Z.ndim == 2 else -1
    if not np.all(np.isfinite(Z)):
        raise ModelFileError("Inconsistent model file: the basis gives non-finite features.")
    if width != model.coef_.shape[1]:
        raise ModelFileError(
            f"Inconsistent model file: the basis gives {width} features but coef_ has "
            f"{model.coef_.shape[1]} columns."
        )


_LOADERS = {1: _load_v1}
