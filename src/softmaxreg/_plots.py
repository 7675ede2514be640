"""Plots of a fitted model: confusion matrix, decision regions, convergence, calibration, weights.

Every function draws on the ``ax`` it is given, or on a new figure with an Agg canvas (never
pyplot, so no display is needed and no global state changes), and returns the Axes; its figure
is ``ax.figure``. :func:`save_figure` writes PNG, SVG or PDF atomically. matplotlib is imported
only inside these functions, so ``import softmaxreg`` works without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._modelfile import atomic_write

__all__ = [
    "plot_boundary",
    "plot_calibration",
    "plot_coef",
    "plot_confusion",
    "plot_loss",
    "save_figure",
]

_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def _axes(ax, figsize=(6.4, 4.8)):
    """``ax``, or the Axes of a new Agg-backed figure."""
    if ax is not None:
        return ax
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig.add_subplot()


def _colors(n: int):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"]
    return [cmap(i if n <= 20 else i / max(n - 1, 1)) for i in range(n)]


def _class_codes(model, labels) -> np.ndarray:
    """Index into ``classes_`` of each label; a clear error for labels the model never saw."""
    index = {c: i for i, c in enumerate(model.classes_.tolist())}
    values = np.asarray(labels).tolist()
    unseen = sorted({repr(v) for v in values if v not in index})
    if unseen:
        raise ValueError(
            f"y has labels the model was not fitted on: {', '.join(unseen[:5])}"
            f"{' ...' if len(unseen) > 5 else ''} (the model's classes: "
            f"{model.classes_.tolist()})."
        )
    return np.array([index[v] for v in values], dtype=np.intp)


def _feature_names(model) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return [f"x{i}" for i in range(model.n_features_in_)]
    return [str(n) for n in names]


def _coef_names(model) -> list[str]:
    """Names of the columns of ``coef_``: basis outputs when there is a basis, else inputs."""
    if getattr(model, "basis_", None) is not None:
        from ._basis import coef_feature_names

        return [str(n) for n in coef_feature_names(model)]
    return _feature_names(model)


def plot_confusion(model, X, y, ax=None):
    """Confusion matrix of ``model.predict(X)`` against ``y``, with counts in each cell.

    Parameters
    ----------
    model : SoftmaxRegression
        A fitted estimator.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
        True labels, all among ``model.classes_``.
    ax : matplotlib Axes, optional

    Returns
    -------
    ax : matplotlib Axes
        Rows are true classes, columns predicted classes (``classes_`` order).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from softmaxreg import SoftmaxRegression, plot_confusion
    >>> X, y = load_iris(return_X_y=True)
    >>> model = SoftmaxRegression().fit(X, y)
    >>> ax = plot_confusion(model, X, y)
    >>> ax.get_xlabel()
    'predicted class'
    """
    from sklearn.metrics import confusion_matrix

    truth = _class_codes(model, y)
    pred = _class_codes(model, model.predict(X))
    k = model.classes_.size
    cm = confusion_matrix(truth, pred, labels=np.arange(k))
    ax = _axes(ax)
    ax.imshow(cm, cmap="Blues", interpolation="nearest")
    for (i, j), count in np.ndenumerate(cm):
        color = "white" if count > cm.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=color)
    labels = [str(c) for c in model.classes_.tolist()]
    ax.set_xticks(range(k), labels, rotation=45 if k > 4 else 0)
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"Confusion matrix (accuracy {accuracy:.3f}, n = {cm.sum()})")
    return ax


def _dense(X) -> np.ndarray:
    if hasattr(X, "toarray"):
        X = X.toarray()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}.")
    return X


def _feature_index(model, feature) -> int:
    names = _feature_names(model)
    if isinstance(feature, str):
        if feature not in names:
            raise ValueError(f"Unknown feature {feature!r}; the model's features: {names}.")
        return names.index(feature)
    if isinstance(feature, (int, np.integer)) and -len(names) <= feature < len(names):
        return int(feature) % len(names)
    raise ValueError(f"features must be two column indices or names; got {feature!r}.")


def _as_model_input(model, rows: np.ndarray):
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return rows
    import pandas as pd

    return pd.DataFrame(rows, columns=names)


def plot_boundary(model, X, y, features=(0, 1), ax=None, *, resolution: int = 200, hold="median"):
    """Decision regions on two features, the other features held at their median (or mean).

    Parameters
    ----------
    model : SoftmaxRegression
        A fitted estimator.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Data whose range sets the plotted window; drawn as points coloured by ``y``.
    y : array-like of shape (n_samples,)
    features : pair of int or str, default=(0, 1)
        The two features on the axes (column indices or feature names).
    ax : matplotlib Axes, optional
    resolution : int, default=200
        Grid points per axis.
    hold : {"median", "mean"}, default="median"
        The value of the other features.

    Returns
    -------
    ax : matplotlib Axes
        ``ax.images[0]`` holds the predicted class index (into ``classes_``) on the grid.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from softmaxreg import SoftmaxRegression, plot_boundary
    >>> X, y = load_iris(return_X_y=True)
    >>> model = SoftmaxRegression().fit(X, y)
    >>> ax = plot_boundary(model, X, y, features=(2, 3), resolution=50)
    >>> sorted(set(ax.images[0].get_array().ravel().tolist()))
    [0, 1, 2]
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D

    Xd = _dense(X)
    if Xd.shape[1] != model.n_features_in_:
        raise ValueError(f"X has {Xd.shape[1]} features; the model has {model.n_features_in_}.")
    if hold not in ("median", "mean"):
        raise ValueError(f"hold must be 'median' or 'mean', got {hold!r}.")
    if len(features) != 2:
        raise ValueError(f"features must name exactly two features, got {features!r}.")
    i, j = (_feature_index(model, f) for f in features)
    if i == j:
        raise ValueError("features must be two different features.")
    truth = _class_codes(model, y)
    lo, hi = Xd[:, [i, j]].min(axis=0), Xd[:, [i, j]].max(axis=0)
    pad = 0.05 * np.where(hi > lo, hi - lo, 1.0)
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    xx, yy = np.meshgrid(gx, gy)
    grid = np.tile(np.median(Xd, axis=0) if hold == "median" else Xd.mean(axis=0), (xx.size, 1))
    grid[:, i], grid[:, j] = xx.ravel(), yy.ravel()
    regions = _class_codes(model, model.predict(_as_model_input(model, grid)))
    k = model.classes_.size
    colors = _colors(k)
    ax = _axes(ax)
    ax.imshow(
        regions.reshape(xx.shape),
        origin="lower",
        extent=(gx[0], gx[-1], gy[0], gy[-1]),
        cmap=ListedColormap(colors),
        vmin=-0.5,
        vmax=k - 0.5,
        alpha=0.35,
        aspect="auto",
        interpolation="nearest",
    )
    ax.scatter(Xd[:, i], Xd[:, j], c=[colors[t] for t in truth], s=14, edgecolors="k", lw=0.3)
    handles = [
        Line2D([], [], marker="o", ls="", color=colors[c], markeredgecolor="k", label=str(lab))
        for c, lab in enumerate(model.classes_.tolist())
    ]
    ax.legend(handles=handles, title="class", loc="best", fontsize="small")
    names = _feature_names(model)
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    others = f", other features at their {hold}" if model.n_features_in_ > 2 else ""
    ax.set_title(f"Decision regions{others}")
    return ax


def plot_loss(model, ax=None):
    """Loss and gradient norm (max-norm) per solver iteration, on log scales.

    Parameters
    ----------
    model : SoftmaxRegression
        A fitted estimator whose ``result_.history`` has one row per iteration.
    ax : matplotlib Axes, optional
        Holds the loss; a twin Axes on the right holds the gradient norm and the threshold
        ``gtol`` that certifies convergence.

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from softmaxreg import SoftmaxRegression, plot_loss
    >>> X, y = load_iris(return_X_y=True)
    >>> model = SoftmaxRegression().fit(X, y)
    >>> ax = plot_loss(model)
    >>> ax.get_yscale()
    'log'
    """
    result = getattr(model, "result_", None)
    if result is None or not getattr(result, "history", None):
        raise ValueError("The model has no solver history (result_.history) to plot.")
    history = result.history
    iters = np.array([row["iter"] for row in history])
    loss = np.array([row["loss"] for row in history], dtype=float)
    gnorm = np.array([row["grad_norm"] for row in history], dtype=float)
    ax = _axes(ax)
    ax.plot(iters, loss, "o-", color="C0", ms=3, label="loss")
    ax.set_yscale("log" if np.all(loss > 0) else "linear")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (mean penalised cross-entropy)", color="C0")
    twin = ax.twinx()
    twin.plot(iters, gnorm, "s-", color="C3", ms=3, label="|gradient|")
    twin.axhline(result.gtol, color="C3", ls=":", lw=1, label="gtol")
    twin.set_yscale("log" if np.all(gnorm > 0) else "symlog")
    twin.set_ylabel("max |gradient|", color="C3")
    status = "converged" if result.converged else "NOT converged"
    ax.set_title(f"{result.solver}: {status} after {result.n_iter} iterations")
    lines = ax.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    ax.legend(lines[0] + extra[0], lines[1] + extra[1], loc="upper right", fontsize="small")
    return ax


def plot_calibration(model, X, y, ax=None, *, n_bins: int = 10):
    """Reliability diagram: observed frequency against predicted probability, one class vs rest.

    Parameters
    ----------
    model : SoftmaxRegression
        A fitted estimator.
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    ax : matplotlib Axes, optional
    n_bins : int, default=10
        Equal-width probability bins; empty bins are skipped.

    Returns
    -------
    ax : matplotlib Axes
        One line per class (``ax.lines[1:]``; ``ax.lines[0]`` is the diagonal).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from softmaxreg import SoftmaxRegression, plot_calibration
    >>> X, y = load_iris(return_X_y=True)
    >>> model = SoftmaxRegression().fit(X, y)
    >>> ax = plot_calibration(model, X, y)
    >>> len(ax.lines)
    4
    """
    from sklearn.calibration import calibration_curve

    truth = _class_codes(model, y)
    proba = model.predict_proba(X)
    ax = _axes(ax)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    colors = _colors(model.classes_.size)
    for k, label in enumerate(model.classes_.tolist()):
        frac, mean = calibration_curve(truth == k, proba[:, k], n_bins=n_bins, strategy="uniform")
        ax.plot(mean, frac, "o-", ms=3, color=colors[k], label=str(label))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title("Calibration (one class vs rest)")
    ax.legend(title="class", fontsize="small", loc="upper left")
    return ax


def plot_coef(model, ax=None):
    """The coefficient matrix as a heat map (classes by features), centred at zero.

    Parameters
    ----------
    model : SoftmaxRegression
        A fitted estimator. For two classes the single row is ``classes_[1]`` against
        ``classes_[0]``.
    ax : matplotlib Axes, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    coef = np.asarray(model.coef_, dtype=float)
    ax = _axes(ax, figsize=(max(6.4, 0.3 * coef.shape[1] + 2), max(2.5, 0.4 * coef.shape[0] + 1.5)))
    limit = float(np.max(np.abs(coef), initial=0.0)) or 1.0
    image = ax.imshow(coef, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.figure.colorbar(image, ax=ax, label="coefficient")
    classes = [str(c) for c in model.classes_.tolist()]
    rows = [f"{classes[1]} vs {classes[0]}"] if coef.shape[0] == 1 else classes
    ax.set_yticks(range(len(rows)), rows)
    if coef.shape[1] <= 50:
        ax.set_xticks(range(coef.shape[1]), _coef_names(model), rotation=90)
    ax.set_xlabel("feature")
    ax.set_title("Coefficients")
    return ax


def save_figure(fig, path, *, dpi: int = 150) -> None:
    """Write a figure (or an Axes' figure) as PNG, SVG or PDF, chosen by the extension.

    The file is written to a temporary file next to ``path`` and moved into place, so a crash
    leaves any previous file intact.

    Parameters
    ----------
    fig : matplotlib Figure or Axes
    path : str or path-like
        Ends in ``.png``, ``.svg`` or ``.pdf``.
    dpi : int, default=150
        Resolution of PNG output.

    Examples
    --------
    >>> import os, tempfile
    >>> from sklearn.datasets import load_iris
    >>> from softmaxreg import SoftmaxRegression, plot_coef, save_figure
    >>> X, y = load_iris(return_X_y=True)
    >>> path = os.path.join(tempfile.mkdtemp(), "coef.svg")
    >>> save_figure(plot_coef(SoftmaxRegression().fit(X, y)), path)
    >>> os.path.getsize(path) > 0
    True
    """
    if not hasattr(fig, "savefig"):
        fig = getattr(fig, "figure", None)  # an Axes: its figure
    if not hasattr(fig, "savefig"):
        raise TypeError(f"save_figure needs a matplotlib Figure or Axes, got {type(fig).__name__}.")
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(
            f"Cannot tell the image format of {str(path)!r}: use a .png, .svg or .pdf extension."
        )
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=_FORMATS[suffix], dpi=dpi)
