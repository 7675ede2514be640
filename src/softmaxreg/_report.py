"""Evaluation metrics and the fit report of the command-line tool (plain dicts, then text).

Everything here is computed from the public estimator API (``predict_proba``, ``classes_``,
``result_``) with scikit-learn's metrics, so the CLI adds no mathematics of its own; the two
metrics written out here (the multiclass Brier score and the expected calibration error) are
checked against scikit-learn / a direct loop in the tests.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
)

from ._io import DataError

__all__ = [
    "align_labels",
    "brier_score",
    "certificate",
    "evaluation_metrics",
    "expected_calibration_error",
    "format_evaluation",
    "format_fit_report",
]


def _plain(v):
    """A JSON-friendly Python scalar for a NumPy label or number."""
    return v.item() if isinstance(v, np.generic) else v


def align_labels(y, classes) -> np.ndarray:
    """``y`` in the type of the model's ``classes_``; labels never seen in training are an error."""
    y = np.asarray(y)
    if classes.dtype.kind in "OUS" and y.dtype.kind not in "OUS":
        y = np.array([str(v) for v in y.tolist()], dtype=object)
    elif classes.dtype.kind in "biuf" and y.dtype.kind in "OUS":
        try:
            y = np.array([float(v) for v in y.tolist()]).astype(classes.dtype)
        except ValueError:
            pass
    unseen = sorted({str(v) for v in y.tolist()} - {str(c) for c in classes.tolist()})
    if unseen:
        raise DataError(
            f"the target holds label(s) the model was not trained on: {unseen[:10]}; "
            f"its classes are {[str(c) for c in classes.tolist()]}"
        )
    return y


def brier_score(y, proba, classes, sample_weight=None) -> float:
    """Multiclass Brier score: the (weighted) mean over rows of ``sum_k (p_nk - [y_n = k])^2``
    (0 is perfect)."""
    onehot = (np.asarray(y)[:, None] == np.asarray(classes)[None, :]).astype(float)
    return float(np.average(np.sum((proba - onehot) ** 2, axis=1), weights=sample_weight))


def expected_calibration_error(y, proba, classes, n_bins: int = 10, sample_weight=None) -> float:
    """Top-label expected calibration error with ``n_bins`` equal-width confidence bins.

    ``sum_b (n_b / n) |accuracy_b - confidence_b|`` over the bins of the largest probability
    (with sample weights: weight totals for ``n_b`` and ``n``, weighted means in each bin).
    """
    w = np.ones(len(proba)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    confidence = proba.max(axis=1)
    correct = np.asarray(classes)[proba.argmax(axis=1)] == np.asarray(y)
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        rows = bins == b
        if w[rows].sum() > 0:
            accuracy = np.average(correct[rows], weights=w[rows])
            gap = abs(accuracy - np.average(confidence[rows], weights=w[rows]))
            ece += w[rows].sum() / w.sum() * gap
    return float(ece)


def evaluation_metrics(model, X, y, *, n_bins: int = 10, sample_weight=None, offset=None) -> dict:
    """All the metrics of ``softmaxreg evaluate`` as a JSON-friendly dict (snake_case keys):
    the probabilities with the logit ``offset`` if any, every metric weighted by
    ``sample_weight`` if given (supports: weight totals)."""
    classes = model.classes_
    y = align_labels(y, classes)
    proba = model.predict_proba(X, offset=offset)
    pred = classes[np.argmax(proba, axis=1)]
    labels = list(classes)
    sw = sample_weight
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=labels, zero_division=0, sample_weight=sw
    )
    per_class = {
        str(c): {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(support[k]) if sw is None else float(support[k]),
        }
        for k, c in enumerate(classes.tolist())
    }
    return {
        "n_samples": int(len(y)),
        "weighted": sw is not None,
        "classes": [_plain(c) for c in classes.tolist()],
        "accuracy": float(accuracy_score(y, pred, sample_weight=sw)),
        "log_loss": float(log_loss(y, proba, labels=labels, sample_weight=sw)),
        "brier": brier_score(y, proba, classes, sw),
        "calibration_error": expected_calibration_error(y, proba, classes, n_bins, sw),
        "calibration_bins": n_bins,
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y, pred, labels=labels, sample_weight=sw).tolist(),
    }


def certificate(model) -> dict:
    """The optimality certificate of a fit, from ``model.result_``."""
    r = model.result_
    return {
        "converged": bool(r.converged),
        "grad_norm": float(r.grad_norm),
        "gtol": float(r.gtol),
        "n_iter": int(r.n_iter),
        "solver": str(r.solver),
        "message": str(r.message),
        "loss": float(r.loss),
    }


def format_certificate(c: dict) -> str:
    verdict = "converged" if c["converged"] else "NOT converged"
    relation = "<=" if c["grad_norm"] <= c["gtol"] else ">"
    measure = "optimality residual" if "residual" in c["message"] else "max |gradient|"
    return (
        f"{verdict}: {measure} {c['grad_norm']:.3e} {relation} gtol {c['gtol']:.3e} "
        f"after {c['n_iter']} iteration(s) of {c['solver']} ({c['message']})"
    )


def format_fit_report(report: dict) -> str:
    """The text of ``softmaxreg fit``'s report (the same facts as its ``--json``)."""
    lines = [
        f"classes       {', '.join(str(c) for c in report['classes'])}",
        f"features      {report['n_features']}",
        f"certificate   {format_certificate(report['certificate'])}",
        f"objective     {report['certificate']['loss']:.10g} (penalised mean cross-entropy)",
        f"fit time      {report['fit_time_s']:.3f} s",
        f"{'':14}{'rows':>8}  {'accuracy':>9}  {'log-loss':>9}",
    ]
    for name in ("train", "test"):
        part = report.get(name)
        if part is not None:
            label = "training" if name == "train" else "held-out"
            lines.append(
                f"{label:14}{part['n_samples']:>8}  {part['accuracy']:>9.4f}  "
                f"{part['log_loss']:>9.4f}"
            )
    if report.get("model"):
        lines.append(f"model         {report['model']}")
    return "\n".join(lines)


def format_trial_scores(m: dict) -> str:
    """The text of ``softmaxreg evaluate`` on target columns: the scores per trial."""
    return "\n".join(
        [
            f"rows               {m['n_samples']}",
            f"trials             {m['n_trials']:g}",
            f"accuracy           {m['accuracy']:.4f} (per trial)",
            f"log-loss           {m['log_loss']:.4f} (per trial)",
        ]
    )


def format_evaluation(m: dict) -> str:
    """The text of ``softmaxreg evaluate`` (the same facts as its ``--json``)."""
    lines = [
        f"rows               {m['n_samples']}"
        + (" (metrics weighted)" if m.get("weighted") else ""),
        f"accuracy           {m['accuracy']:.4f}",
        f"log-loss           {m['log_loss']:.4f}",
        f"Brier score        {m['brier']:.4f}",
        f"calibration error  {m['calibration_error']:.4f} "
        f"(top-label ECE, {m['calibration_bins']} bins)",
        "",
        f"{'class':>16}  {'precision':>9}  {'recall':>9}  {'F1':>9}  {'support':>8}",
    ]
    for name, c in m["per_class"].items():
        lines.append(
            f"{name:>16}  {c['precision']:>9.4f}  {c['recall']:>9.4f}  {c['f1']:>9.4f}  "
            f"{c['support']:>8g}"
        )
    names = [str(c) for c in m["classes"]]
    width = max(8, *(len(n) for n in names)) + 1
    lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
    lines.append(" " * 16 + "".join(f"{n:>{width}}" for n in names))
    for name, row in zip(names, m["confusion_matrix"], strict=True):
        lines.append(f"{name:>16}" + "".join(f"{v:>{width}g}" for v in row))
    return "\n".join(lines)
