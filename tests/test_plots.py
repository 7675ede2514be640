"""Plots: each produces a valid, non-empty PNG and SVG, and draws what the model says."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes

from softmaxreg import (
    SoftmaxRegression,
    plot_boundary,
    plot_calibration,
    plot_coef,
    plot_confusion,
    plot_loss,
    save_figure,
)


def _blobs(k=3, n=90, d=3, seed=2, spread=0.6):
    """``k`` well-separated clusters on features 0 and 1 (centres on a circle)."""
    rng = np.random.default_rng(seed)
    codes = np.arange(n) % k
    angle = 2 * np.pi * codes / k
    X = spread * rng.standard_normal((n, d))
    X[:, 0] += 4 * np.cos(angle)
    X[:, 1] += 4 * np.sin(angle)
    return X, codes


@pytest.fixture(scope="module")
def fitted():
    X, codes = _blobs()
    y = np.array(["red", "green", "blue"])[codes]
    frame = pd.DataFrame(X, columns=["width", "height", "noise"])
    return SoftmaxRegression(C=1.0).fit(frame, y), frame, y


def _check_png(path):
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert np.ptp(image[..., :3]) > 0  # not a blank image


def _check_svg(path):
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    assert len(path.read_bytes()) > 1000


@pytest.mark.parametrize("kind", ["confusion", "boundary", "loss", "calibration", "coef"])
def test_plots_write_valid_png_and_svg(fitted, tmp_path, kind):
    model, X, y = fitted
    ax = {
        "confusion": lambda: plot_confusion(model, X, y),
        "boundary": lambda: plot_boundary(model, X, y, features=("width", "height")),
        "loss": lambda: plot_loss(model),
        "calibration": lambda: plot_calibration(model, X, y),
        "coef": lambda: plot_coef(model),
    }[kind]()
    assert isinstance(ax, Axes)
    save_figure(ax.figure, tmp_path / f"{kind}.png")
    save_figure(ax, tmp_path / f"{kind}.svg")  # an Axes is accepted too
    _check_png(tmp_path / f"{kind}.png")
    _check_svg(tmp_path / f"{kind}.svg")
    assert sorted(os.listdir(tmp_path)) == [f"{kind}.png", f"{kind}.svg"]


@pytest.mark.parametrize("k", [2, 3, 4])
def test_boundary_has_one_region_per_class(tmp_path, k):
    X, codes = _blobs(k=k, n=40 * k)
    model = SoftmaxRegression().fit(X, codes + 100)
    ax = plot_boundary(model, X, codes + 100, features=(0, 1), resolution=80)
    regions = np.asarray(ax.images[0].get_array())
    assert regions.shape == (80, 80)
    assert sorted(np.unique(regions).tolist()) == list(range(k))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [str(c + 100) for c in range(k)]
    # Each region is the model's prediction at that grid point (other features at the median).
    extent = ax.images[0].get_extent()
    point = np.median(X, axis=0)
    point[0], point[1] = extent[0], extent[2]  # the lower-left corner: regions[0, 0]
    assert model.predict(point[None, :])[0] == model.classes_[regions[0, 0]]


def test_boundary_holds_other_features_at_mean_or_median(fitted):
    model, X, y = fitted
    a = plot_boundary(model, X, y, features=(1, 0), hold="mean", resolution=30)
    assert a.get_xlabel() == "height" and a.get_ylabel() == "width"
    with pytest.raises(ValueError, match="hold"):
        plot_boundary(model, X, y, hold="mode")
    with pytest.raises(ValueError, match="Unknown feature 'depth'"):
        plot_boundary(model, X, y, features=("width", "depth"))
    with pytest.raises(ValueError, match="two different"):
        plot_boundary(model, X, y, features=(0, 0))


def test_confusion_counts_match():
    X, codes = _blobs(spread=4.0)  # overlapping classes: some mistakes
    y = np.array(["red", "green", "blue"])[codes]
    model = SoftmaxRegression().fit(X, y)
    ax = plot_confusion(model, X, y)
    counts = np.array([int(t.get_text()) for t in ax.texts]).reshape(3, 3)
    expected = np.zeros((3, 3), dtype=int)
    index = {c: i for i, c in enumerate(model.classes_)}
    for t, p in zip(y, model.predict(X), strict=True):
        expected[index[t], index[p]] += 1
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() == len(y) and np.trace(counts) < len(y)


def test_calibration_has_one_curve_per_class(fitted):
    model, X, y = fitted
    ax = plot_calibration(model, X, y, n_bins=5)
    assert len(ax.lines) == 1 + model.classes_.size
    for line in ax.lines[1:]:
        frac = np.asarray(line.get_ydata())
        assert np.all((frac >= 0) & (frac <= 1))


def test_loss_plots_every_iteration(fitted):
    model, _, _ = fitted
    ax = plot_loss(model)
    history = model.result_.history
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [row["loss"] for row in history])
    assert ax.get_yscale() == "log"
    twin = [a for a in ax.figure.axes if a is not ax][0]
    assert len(twin.lines[0].get_ydata()) == len(history) and twin.get_yscale() == "log"


def test_binary_coef_and_given_axes(tmp_path):
    X, codes = _blobs(k=2, n=60)
    model = SoftmaxRegression().fit(X, codes == 1)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    assert plot_coef(model, ax=ax) is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == ["True vs False"]


def test_bad_inputs_are_clear_errors(fitted, tmp_path):
    model, X, y = fitted
    with pytest.raises(ValueError, match="labels the model was not fitted on: 'purple'"):
        plot_confusion(model, X, np.where(y == "red", "purple", y))
    with pytest.raises(ValueError, match="image format"):
        save_figure(plot_coef(model), tmp_path / "coef.jpg")
    with pytest.raises(TypeError, match="Figure or Axes"):
        save_figure("not a figure", tmp_path / "x.png")
    assert os.listdir(tmp_path) == []


def test_import_does_not_load_matplotlib_or_onnx():
    code = (
        "import sys, softmaxreg; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib'; "
        "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules, 'onnx'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_coef_plot_names_basis_columns():
    X, codes = _blobs(d=2)
    model = SoftmaxRegression(basis="poly:2").fit(X, codes)
    labels = [t.get_text() for t in plot_coef(model).get_xticklabels()]
    assert len(labels) == model.coef_.shape[1] == 5
    assert "x0^2" in labels and "x0 x1" in labels
