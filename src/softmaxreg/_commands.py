"""The commands of the ``softmaxreg`` tool (the parser is in ``_cli.py``).

Each ``cmd_NAME(args)`` reads files, calls the public API (``SoftmaxRegression``,
``save_model``/``load_model``, the plots, ``export_onnx``) and prints results on stdout and
logs on stderr; it returns the exit status. The work is in small functions (:func:`fit_data`,
:func:`predictions`) shared with ``softmaxreg demo``.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import _cli
from ._cli_targets import offset_for_model, target_scores
from ._estimator import SoftmaxRegression
from ._io import DataError, DataSpec, load_for_model, load_training, read_frame
from ._modelfile import atomic_write, load_model, save_model
from ._report import (
    align_labels,
    certificate,
    evaluation_metrics,
    format_evaluation,
    format_fit_report,
    format_trial_scores,
)

__all__ = ["fit_data", "load_cli_model", "predictions"]

#: The key of the model file's metadata under which ``fit`` stores the :class:`DataSpec`.
SPEC_KEY = "data_spec"
MODEL_SUFFIX = ".softmaxreg"


def _log(args, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message, file=sys.stderr)


def _jsonable(obj):
    """``obj`` with NaN and infinities as ``None`` (JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def _json(obj) -> None:
    print(json.dumps(_jsonable(obj), indent=2, allow_nan=False))


# -- fit -------------------------------------------------------------------------------------
def _take(value, rows):
    if hasattr(value, "iloc"):
        return value.iloc[rows].reset_index(drop=True)
    return value[rows]


def _split(data, extra: dict, test_size, seed):
    """Row indices of the training and held-out parts (stratified when every class allows)."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(data.y))
    try:
        return train_test_split(rows, test_size=test_size, random_state=seed, stratify=data.y)
    except ValueError:
        try:  # a class too small to stratify: a plain random split
            return train_test_split(rows, test_size=test_size, random_state=seed)
        except ValueError as exc:
            raise DataError(f"cannot hold out {test_size} of {rows.size} rows: {exc}") from None


def _scores(model, X, y, offset=None) -> dict:
    if offset is not None or np.ndim(y) == 2:  # per trial, with the offset (issue 9)
        return target_scores(model, X, y, offset)
    m = evaluation_metrics(model, X, y)
    return {"n_samples": m["n_samples"], "accuracy": m["accuracy"], "log_loss": m["log_loss"]}


def fit_data(args, data, *, test_size=None, seed=0):
    """Fit ``SoftmaxRegression`` to loaded data; the model and the fit report (a dict).

    With ``test_size`` the model is fitted on a stratified part of the rows and the report
    also scores the held-out rest.
    """
    extra = _cli.fit_kwargs(args, data)
    X, y, test = data.X, data.y, None
    if test_size is not None:
        train_rows, test_rows = _split(data, extra, test_size, seed)
        X, y = _take(data.X, train_rows), data.y[train_rows]
        extra = {k: _take(v, train_rows) for k, v in extra.items()}
        offset = getattr(data, "offset", None)
        test = (_take(data.X, test_rows), data.y[test_rows])
        test += (None if offset is None else offset[test_rows],)
    model = SoftmaxRegression(**_cli.estimator_kwargs(args))
    start = time.perf_counter()
    classes = getattr(data, "classes", None)
    if getattr(args, "checkpoint", None):  # --checkpoint PATH [--resume]
        extra = {**extra, "checkpoint": args.checkpoint, "resume": bool(args.resume)}
    model.fit(X, y, **extra, **({} if classes is None else {"classes": classes}))
    elapsed = time.perf_counter() - start
    report = {
        "classes": [c.item() if isinstance(c, np.generic) else c for c in model.classes_],
        "n_features": int(model.n_features_in_),
        "certificate": certificate(model),
        "fit_time_s": elapsed,
        "train": _scores(model, X, y, extra.get("offset")),
        "test": None if test is None else _scores(model, *test),
    }
    return model, report


def _default_model_path(data_path) -> Path:
    name = Path(data_path).name
    for suffix in (".gz", ".csv", ".txt", ".parquet", ".pq", ".libsvm", ".svm", ".svmlight"):
        name = name.removesuffix(suffix)
    return Path(name + MODEL_SUFFIX)


def cmd_fit(args) -> int:
    from ._io import detect_format
    from ._stream_cli import fit_streamed, wants_streaming

    if wants_streaming(args, detect_format(args.data, args.format)):
        _log(args, f"{args.data} exceeds the memory budget: fitting it streamed, exactly")
        model, report, spec = fit_streamed(args, _cli.estimator_kwargs(args))
    else:
        data = load_training(
            args.data,
            target=args.target,
            fmt=args.format,
            features=args.features,
            exclude=args.exclude,
            sample_weight=args.sample_weight,
            target_columns=args.target_columns,
            offset_columns=args.offset_columns,
            impute=args.impute,
            categorical=args.categorical,
            # unpenalised with an intercept: one indicator per category would be collinear
            reference_coding=args.penalty == "none" and not args.no_intercept,
            index_base=args.index_base if args.index_base == "auto" else int(args.index_base),
        )
        _log(args, f"read {args.data}: {len(data.y)} rows, {data.X.shape[1]} features")
        model, report = fit_data(args, data, test_size=args.test_size, seed=args.seed)
        spec = data.spec
    out = Path(args.output) if args.output else _default_model_path(args.data)
    report["model"] = str(out)
    # the columns besides the features, for evaluate and summary (target columns in their
    # order, for predict's offsets)
    for key in ("target_columns", "offset_columns", "sample_weight"):
        if getattr(args, key, None):
            report[key] = getattr(args, key)
    save_model(model, out, metadata={SPEC_KEY: spec.to_dict(), "fit_report": report})
    _json(report) if args.json else print(format_fit_report(report))
    _log(args, f"wrote the model to {out}")
    return 0


# -- predict ---------------------------------------------------------------------------------
def load_cli_model(path):
    """A model file and the :class:`DataSpec` that encodes data files for it."""
    if not Path(path).is_file():
        raise DataError(f"{str(path)!r}: no such model file")
    model = load_model(path)
    meta = getattr(model, "model_metadata_", None) or {}
    if SPEC_KEY in meta:
        return model, DataSpec.from_dict(meta[SPEC_KEY])
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise DataError(
            f"{path} has no description of its input columns (it was fitted in Python on an "
            "array): fit it on a pandas DataFrame, or with `softmaxreg fit`"
        )
    columns = [{"name": str(n), "kind": "numeric", "fill": None} for n in names]
    return model, DataSpec("table", None, columns)


def predictions(model, X, *, proba=False, ids=None, id_name=None, offset=None):
    """The prediction table: ``[id], prediction[, proba_<class>...]``, rows in input order."""
    import pandas as pd

    frame = pd.DataFrame()
    if ids is not None:
        frame[id_name] = ids.reset_index(drop=True)
    frame["prediction"] = model.predict(X, offset=offset)
    if proba:
        P = model.predict_proba(X, offset=offset)
        for k, c in enumerate(model.classes_):
            frame[f"proba_{c}"] = P[:, k]
    return frame


def write_table(frame, path) -> None:
    """Write a table atomically as CSV (``.csv``, ``.csv.gz``) or Parquet (``.parquet``)."""
    name = Path(path).name.lower()
    if name.endswith((".parquet", ".pq")):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        payload = buffer.getvalue()
    elif name.endswith((".csv", ".txt", ".csv.gz", ".txt.gz")):
        payload = frame.to_csv(index=False, lineterminator="\n").encode("utf-8")
        if name.endswith(".gz"):
            payload = gzip.compress(payload, mtime=0)
    else:
        raise DataError(
            f"cannot tell the output format of {str(path)!r}: end it in .csv, .csv.gz or .parquet"
        )
    with atomic_write(path, "wb") as f:
        f.write(payload)


def cmd_predict(args) -> int:
    model, spec = load_cli_model(args.model)
    from ._io import detect_format
    from ._stream_cli import predict_streamed, wants_streaming

    if (
        spec.format == "table"
        and not args.offset_columns
        and wants_streaming(args, detect_format(args.data, args.format))
    ):
        n = predict_streamed(args, model, spec)  # in batches: the file exceeds the budget
        if args.output:
            _log(args, f"wrote {n} predictions to {args.output}")
        return 0
    data = load_for_model(
        args.data, spec, fmt=args.format, id_col=args.id, offset_columns=args.offset_columns
    )
    offset = offset_for_model(model, data.offset)
    frame = predictions(
        model, data.X, proba=args.proba, ids=data.ids, id_name=args.id, offset=offset
    )
    if args.output:
        write_table(frame, args.output)
        _log(args, f"wrote {len(frame)} predictions to {args.output}")
    else:
        sys.stdout.write(frame.to_csv(index=False, lineterminator="\n"))
    return 0


# -- evaluate, summary -----------------------------------------------------------------------
def _labelled(args, *, fit_weights: bool):
    """The model and the labelled data, with the columns the fit read besides the features
    (recorded in the model file): its target columns and offsets unless given here, and,
    with ``fit_weights``, its sample-weight column unless ``--sample-weight`` names another."""
    model, spec = load_cli_model(args.model)
    fit = (getattr(model, "model_metadata_", None) or {}).get("fit_report") or {}
    target_columns = args.target_columns or (None if args.target else fit.get("target_columns"))
    weight = args.sample_weight or (fit.get("sample_weight") if fit_weights else None)
    data = load_for_model(
        args.data,
        spec,
        fmt=args.format,
        target=args.target,
        need_target=not target_columns,
        offset_columns=args.offset_columns or fit.get("offset_columns"),
        sample_weight=weight,
        target_columns=target_columns,
    )
    if data.y is None:
        raise DataError(f"{args.data} has no target column; name it with --target")
    if not target_columns:
        data.offset = offset_for_model(model, data.offset)
    return model, data


def cmd_evaluate(args) -> int:
    model, data = _labelled(args, fit_weights=False)
    if np.ndim(data.y) == 2:  # target columns: scores per trial (weights scale each row)
        Y = data.y if data.sample_weight is None else data.y * data.sample_weight[:, None]
        metrics = target_scores(model, data.X, Y, data.offset)
        _json(metrics) if args.json else print(format_trial_scores(metrics))
        return 0
    metrics = evaluation_metrics(
        model, data.X, data.y, sample_weight=data.sample_weight, offset=data.offset
    )
    _json(metrics) if args.json else print(format_evaluation(metrics))
    return 0


def cmd_summary(args) -> int:
    model, data = _labelled(args, fit_weights=True)
    if not hasattr(model, "inference"):
        raise DataError(
            "`summary` needs SoftmaxRegression.inference, which this version "
            "of softmaxreg does not have"
        )
    kwargs = {"cov_type": args.cov_type}
    if args.reference_class is not None:
        classes = [str(c) for c in model.classes_.tolist()]
        if args.reference_class not in classes:
            raise DataError(f"--reference-class must be one of {classes}")
        kwargs["reference_class"] = model.classes_[classes.index(args.reference_class)]
    y = data.y if np.ndim(data.y) == 2 else align_labels(data.y, model.classes_)
    results = model.inference(
        data.X, y, sample_weight=data.sample_weight, offset=data.offset, **kwargs
    )
    if args.json:
        _json(_records(results.to_frame()))
    else:
        print(results.summary(yname=str(args.target or data.spec.target or "y")))
    return 0


_COLUMN_KEYS = {"coef": "coef", "std err": "std_err", "z": "z", "P>|z|": "p_value"}


def _records(table) -> list:
    """The coefficient table as JSON records with snake_case keys and full precision."""
    keys = []
    for name in table.columns:
        name = str(name)
        if name in _COLUMN_KEYS:
            keys.append(_COLUMN_KEYS[name])
        elif name.startswith("["):
            keys.append("ci_lower")
        elif name.endswith("]"):
            keys.append("ci_upper")
        else:
            keys.append("_".join(name.lower().split()))
    flat = table.reset_index()
    index_names = [str(n) for n in flat.columns[: flat.shape[1] - len(keys)]]
    out = []
    for row in flat.itertuples(index=False):
        labels = [v.item() if isinstance(v, np.generic) else v for v in row[: len(index_names)]]
        values = [float(v) for v in row[len(index_names) :]]
        out.append(dict(zip(index_names + keys, labels + values, strict=True)))
    return out


# -- plot, export ----------------------------------------------------------------------------
def draw(model, kind, X=None, y=None, features=(0, 1)):
    """The Axes of one diagnostic plot (the public ``plot_*`` functions)."""
    import softmaxreg as sr

    if kind == "coef":
        return sr.plot_coef(model, ax=_coef_axes(model))
    if kind == "loss":
        return sr.plot_loss(model)
    y = align_labels(y, model.classes_)
    if kind == "boundary":
        return sr.plot_boundary(model, X, y, features=features)
    return getattr(sr, f"plot_{kind}")(model, X, y)


def _coef_axes(model):
    """Axes tall enough for the (rotated) feature names under the coefficient heat map."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = getattr(model, "feature_names_in_", None)
    longest = max((len(str(n)) for n in names), default=4) if names is not None else 4
    n_rows, n_features = np.shape(model.coef_)
    fig = Figure(
        figsize=(max(6.4, 0.3 * n_features + 2), 2.0 + 0.4 * n_rows + 0.09 * min(longest, 40)),
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    return fig.add_subplot()


def _boundary_features(args):
    if not args.features:
        return (0, 1)
    return tuple(int(f) if f.lstrip("-").isdigit() else f for f in args.features)


def cmd_plot(args) -> int:
    import softmaxreg as sr

    model, spec = load_cli_model(args.model)
    X = y = None
    if args.data is not None and args.kind not in ("loss", "coef"):
        data = load_for_model(
            args.data, spec, fmt=args.format, target=args.target, need_target=True
        )
        X, y = data.X, data.y
    ax = draw(model, args.kind, X, y, features=_boundary_features(args))
    sr.save_figure(ax.figure, args.output)
    _log(args, f"wrote the {args.kind} plot to {args.output}")
    return 0


def cmd_export(args) -> int:
    from ._onnx import export_onnx

    model, spec = load_cli_model(args.model)
    sample = None
    if args.sample is not None:
        sample = load_for_model(args.sample, spec, fmt=args.format).X
    export_onnx(model, args.onnx, sample=sample)
    _log(args, f"wrote {args.onnx} (checked against the model with onnxruntime)")
    return 0


# -- demo, gradcheck -------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from ._demo import run_demo

    return run_demo(args)


def cmd_gradcheck(args) -> int:
    from ._gradcheck import format_gradcheck, run_gradcheck

    result = run_gradcheck(seed=args.seed, threshold=args.threshold)
    _json(result) if args.json else print(format_gradcheck(result))
    return 0 if result["passed"] else 1


def _read_bundled(name: str):
    """A bundled data set (``softmaxreg/data/NAME``) as a DataFrame."""
    from importlib.resources import as_file, files

    with as_file(files("softmaxreg") / "data" / name) as path:
        return read_frame(path, "csv")
