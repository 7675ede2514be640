"""``softmaxreg demo``: the whole workflow on the bundled wine data set, in a few seconds.

It splits the data (stratified, 70/30, seed 0), writes both parts as CSV, fits on the
training part exactly as ``softmaxreg fit`` does, reports the optimality certificate and the
held-out accuracy and log-loss, writes the model file, the held-out predictions and metrics
and the five diagnostic plots, and prints what it wrote where and the commands that redo each
step.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from . import _cli
from ._commands import (
    SPEC_KEY,
    _read_bundled,
    draw,
    fit_data,
    predictions,
    write_table,
)
from ._io import load_for_model, load_training
from ._modelfile import atomic_write, save_model
from ._report import evaluation_metrics, format_certificate

__all__ = ["run_demo"]

DATASET = "wine.csv"
TARGET = "cultivar"
TEST_SIZE = 0.3
TOL = "1e-8"  # a tight certificate: exact Newton gets there in a couple more iterations
BOUNDARY_FEATURES = ("flavanoids", "color_intensity")
PLOTS = {
    "confusion": "confusion matrix of the held-out rows",
    "boundary": "decision regions on flavanoids x colour intensity (others at their median)",
    "loss": "objective and gradient norm per solver iteration",
    "calibration": "reliability diagram of the held-out rows",
    "coef": "the coefficients per class and feature",
}


def _split_files(out: Path, seed: int = 0):
    from sklearn.model_selection import train_test_split

    frame = _read_bundled(DATASET)
    train, test = train_test_split(
        frame, test_size=TEST_SIZE, random_state=seed, stratify=frame[TARGET]
    )
    paths = out / "wine_train.csv", out / "wine_test.csv"
    for part, path in zip((train, test), paths, strict=True):
        write_table(part.reset_index(drop=True), path)
    return len(frame), paths


def _plots(out: Path, model, test) -> list:
    import softmaxreg as sr

    written = []
    for kind, what in PLOTS.items():
        path = out / f"{kind}.png"
        ax = draw(model, kind, test.X, test.y, features=BOUNDARY_FEATURES)
        sr.save_figure(ax.figure, path)
        written.append((path, what))
    return written


def _print_summary(n_rows, report, metrics, written, commands) -> None:
    cert = report["certificate"]
    train = report["train"]
    lines = [
        f"softmaxreg demo: the wine data set ({n_rows} wines, {report['n_features']} chemical "
        f"measurements, {len(report['classes'])} cultivars), bundled with softmaxreg",
        f"fitted on {train['n_samples']} rows; {metrics['n_samples']} held out "
        f"(stratified, seed 0)",
        "",
        f"certificate  {format_certificate(cert)}",
        f"held-out     accuracy {metrics['accuracy']:.4f}   log-loss {metrics['log_loss']:.4f}"
        f"   Brier {metrics['brier']:.4f}   calibration error {metrics['calibration_error']:.4f}",
        f"training     accuracy {train['accuracy']:.4f}   log-loss {train['log_loss']:.4f}",
        f"fit time     {report['fit_time_s']:.3f} s",
        "",
        "wrote:",
    ]
    width = max(len(str(p)) for p, _ in written)
    lines += [f"  {str(p):{width}}  {what}" for p, what in written]
    lines += ["", "the same steps with the command line:"]
    lines += [f"  {c}" for c in commands]
    print("\n".join(lines))


def run_demo(args) -> int:
    """Run the demo into ``args.output``; returns the exit status."""
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    n_rows, (train_path, test_path) = _split_files(out)
    model_path = out / "wine.softmaxreg"
    fit_args = _cli.build_parser().parse_args(
        ["fit", str(train_path), "--target", TARGET, "-o", str(model_path), "--tol", TOL, "--quiet"]
    )
    data = load_training(train_path, target=TARGET)
    model, report = fit_data(fit_args, data)
    report["model"] = str(model_path)
    save_model(model, model_path, metadata={SPEC_KEY: data.spec.to_dict(), "fit_report": report})
    test = load_for_model(test_path, data.spec, need_target=True)
    metrics = evaluation_metrics(model, test.X, test.y)
    metrics_path, predictions_path = out / "metrics.json", out / "predictions.csv"
    with atomic_write(metrics_path, "w") as f:
        json.dump(metrics, f, indent=2, allow_nan=False)
    write_table(predictions(model, test.X, proba=True), predictions_path)
    written = [
        (train_path, f"the training rows ({1 - TEST_SIZE:.0%})"),
        (test_path, f"the held-out rows ({TEST_SIZE:.0%})"),
        (model_path, "the model file (zip of JSON and .npy, checksummed; no pickle)"),
        (predictions_path, "held-out predictions with one probability column per class"),
        (metrics_path, "held-out metrics, as `softmaxreg evaluate --json` prints them"),
    ]
    written += _plots(out, model, test)
    m, t = model_path, test_path
    commands = [
        f"softmaxreg fit {train_path} --target {TARGET} --tol {TOL} -o {m}",
        f"softmaxreg evaluate {m} {t}",
        f"softmaxreg predict {m} {t} --proba -o {predictions_path}",
        f"softmaxreg plot {m} {t} --kind confusion -o {out / 'confusion.png'}",
        f"softmaxreg export {m} --onnx {out / 'wine.onnx'}",
    ]
    _print_summary(n_rows, report, metrics, written, commands)
    if not report["certificate"]["converged"]:
        print("softmaxreg demo: the fit did not converge", file=sys.stderr)
        return 1
    return 0
