"""``evaluate`` and ``summary`` read the columns the fit read besides the features: sample
weights, logit offsets and target columns (recorded in the model file), or those given."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, log_loss

from softmaxreg import SoftmaxRegression
from softmaxreg._cli import main

FEATURES = ["u", "v", "w"]
OTHERS = ["o_p", "o_q", "o_r", "A", "B", "C"]  # offset and count columns


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=FEATURES)
    logits = frame.to_numpy() @ rng.normal(size=(3, 3))
    frame["y"] = np.array(["p", "q", "r"])[np.argmax(logits + rng.gumbel(size=(n, 3)), axis=1)]
    frame["wt"] = rng.integers(1, 4, size=n).astype(float)
    for k, c in enumerate("pqr"):
        frame[f"o_{c}"] = rng.normal(size=n) * (k > 0)
    for k, c in enumerate("ABC"):
        frame[c] = rng.poisson(1.0 + k + frame["u"].clip(-1, 1), size=n) + (k == 0)
    path = tmp_path_factory.mktemp("cols") / "d.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _json(capsys, *argv):
    assert main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out)


def _fit(capsys, tmp_path, path, *options):
    model = tmp_path / "m.softmaxreg"
    report = _json(capsys, "-q", "fit", path, "--penalty", "none", "-o", model, "--json", *options)
    return model, report


def _weighted_fit(capsys, tmp_path, path):
    """The model file of a fit with ``--sample-weight wt``."""
    weighted = ["--target", "y", "--sample-weight", "wt"]
    return _fit(capsys, tmp_path, path, *weighted, "--exclude", *OTHERS)[0]


def test_summary_uses_the_fits_sample_weights(capsys, tmp_path, data):
    path, frame = data
    model = _weighted_fit(capsys, tmp_path, path)
    rows = _json(capsys, "summary", model, path, "--json")
    X, y, w = frame[FEATURES], frame["y"], frame["wt"].to_numpy()
    api = SoftmaxRegression(penalty=None).fit(X, y, sample_weight=w).inference(X, y, w)
    coef = np.array([r["coef"] for r in rows])
    np.testing.assert_allclose(coef, api.to_frame()["coef"].to_numpy(), rtol=1e-6, atol=1e-8)
    assert main(["summary", str(model), str(path), "--sample-weight", "nope"]) == 1
    assert "nope" in capsys.readouterr().err


def test_evaluate_weights_only_when_asked(capsys, tmp_path, data):
    path, frame = data
    model = _weighted_fit(capsys, tmp_path, path)
    plain = _json(capsys, "evaluate", model, path, "--json")
    weighted = _json(capsys, "evaluate", model, path, "--json", "--sample-weight", "wt")
    proba = (
        SoftmaxRegression(penalty=None)
        .fit(frame[FEATURES], frame["y"], sample_weight=frame["wt"])
        .predict_proba(frame[FEATURES])
    )
    pred = np.array(["p", "q", "r"])[proba.argmax(axis=1)]
    w = frame["wt"].to_numpy()
    assert not plain["weighted"] and weighted["weighted"]
    assert plain["accuracy"] == pytest.approx(accuracy_score(frame["y"], pred))
    assert weighted["accuracy"] == pytest.approx(accuracy_score(frame["y"], pred, sample_weight=w))
    assert weighted["log_loss"] == pytest.approx(
        log_loss(frame["y"], proba, sample_weight=w), rel=1e-6
    )
    assert np.sum(weighted["confusion_matrix"]) == pytest.approx(w.sum())


def test_evaluate_and_summary_use_the_fits_offsets(capsys, tmp_path, data):
    path, frame = data
    offsets = "o_p,o_q,o_r"
    model, report = _fit(
        capsys,
        tmp_path,
        path,
        "--target",
        "y",
        "--offset-columns",
        offsets,
        "--exclude",
        "wt",
        "A",
        "B",
        "C",
    )
    scores = _json(capsys, "evaluate", model, path, "--json")
    assert scores["accuracy"] == pytest.approx(report["train"]["accuracy"])
    assert scores["log_loss"] == pytest.approx(report["train"]["log_loss"], rel=1e-9)
    X, y, O = frame[FEATURES], frame["y"], frame[["o_p", "o_q", "o_r"]].to_numpy()
    api = SoftmaxRegression(penalty=None).fit(X, y, offset=O).inference(X, y, offset=O)
    rows = _json(capsys, "summary", model, path, "--json")
    np.testing.assert_allclose(
        [r["coef"] for r in rows], api.to_frame()["coef"].to_numpy(), rtol=1e-6, atol=1e-8
    )
    assert main(["evaluate", str(model), str(path), "--offset-columns", "o_p,nope,o_r"]) == 1
    assert "nope" in capsys.readouterr().err


def test_evaluate_a_model_fitted_on_target_columns(capsys, tmp_path, data):
    path, _ = data
    model, report = _fit(
        capsys,
        tmp_path,
        path,
        "--target-columns",
        "C,A,B",
        "--exclude",
        "y",
        "wt",
        "o_p",
        "o_q",
        "o_r",
    )
    scores = _json(capsys, "evaluate", model, path, "--json")
    for key in ("n_samples", "n_trials", "accuracy", "log_loss"):
        assert scores[key] == pytest.approx(report["train"][key])
    assert main(["evaluate", str(model), str(path)]) == 0
    assert "(per trial)" in capsys.readouterr().out


def test_unpenalised_fits_code_categories_against_their_first_level(capsys, tmp_path, data):
    """With --penalty none (and an intercept) a text column gets an indicator for each
    category but the first, so that `summary` runs (one indicator per category plus the
    intercept are collinear); penalised fits keep every indicator."""
    path, frame = data
    frame = frame.assign(color=np.array(["blue", "green", "red"])[np.arange(len(frame)) % 3])
    frame = frame.rename(columns={"y": "label"})
    path = tmp_path / "color.csv"
    frame.to_csv(path, index=False)
    keep = [*FEATURES, "color", "label"]
    drop = [c for c in frame.columns if c not in keep]
    model, _ = _fit(capsys, tmp_path, path, "--target", "label", "--exclude", *drop)
    rows = _json(capsys, "summary", model, path, "--json")
    assert main(["summary", str(model), str(path)]) == 0
    assert "Dep. Variable:                   label" in capsys.readouterr().out
    design = pd.get_dummies(frame[[*FEATURES, "color"]], columns=["color"], drop_first=True)
    design = design.astype(float)
    y = frame["label"]
    api = SoftmaxRegression(penalty=None).fit(design, y).inference(design, y)
    np.testing.assert_allclose(
        [r["coef"] for r in rows], api.to_frame()["coef"].to_numpy(), rtol=1e-6, atol=1e-8
    )
    assert main(["predict", str(model), str(path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(frame) + 1
    penalised = tmp_path / "l2.softmaxreg"
    report = _json(
        capsys,
        "-q",
        "fit",
        path,
        "--target",
        "label",
        "--exclude",
        *drop,
        "--json",
        "-o",
        penalised,
    )
    assert report["n_features"] == len(FEATURES) + 3
