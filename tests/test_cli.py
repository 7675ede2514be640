"""The ``softmaxreg`` command end to end, on real files.

Most tests call ``main(argv)`` in this process (fast); a few run the installed console script
and ``python -m softmaxreg`` as real processes.
"""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import dump_svmlight_file, load_iris
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss

import softmaxreg
from softmaxreg._cli import main

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def iris_files(tmp_path_factory):
    """Iris with string labels and an id column, as CSV, gzip CSV and Parquet."""
    d = tmp_path_factory.mktemp("iris")
    X, y = load_iris(return_X_y=True)
    frame = pd.DataFrame(X, columns=FEATURES)
    frame.insert(0, "id", [f"r{i:03d}" for i in range(len(y))])
    frame["species"] = np.array(["setosa", "versicolor", "virginica"])[y]
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame.to_csv(d / "iris.csv", index=False)
    frame.to_csv(d / "iris.csv.gz", index=False)
    frame.to_parquet(d / "iris.parquet", index=False)
    return d, frame


def run(capsys, *argv):
    """``main(argv)``: the exit status, stdout and stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def fitted(iris_files, tmp_path_factory):
    d, _ = iris_files
    model = tmp_path_factory.mktemp("model") / "iris.softmaxreg"
    assert (
        main(
            [
                "fit",
                str(d / "iris.csv"),
                "--target",
                "species",
                "--exclude",
                "id",
                "-o",
                str(model),
                "--quiet",
            ]
        )
        == 0
    )
    return model


# -- fit ------------------------------------------------------------------------------------
def test_fit_report_and_model_file(capsys, iris_files, tmp_path):
    d, frame = iris_files
    model_path = tmp_path / "m.softmaxreg"
    code, out, err = run(
        capsys,
        "fit",
        d / "iris.parquet",
        "--target",
        "species",
        "--exclude",
        "id",
        "--test-size",
        "0.3",
        "--json",
        "-o",
        model_path,
    )
    assert code == 0, err
    report = json.loads(out)
    assert "iter " not in err  # stderr is not a terminal: no progress lines
    model = softmaxreg.load_model(model_path)
    r = model.result_
    assert report["certificate"] == {
        "converged": True,
        "grad_norm": r.grad_norm,
        "gtol": r.gtol,
        "n_iter": r.n_iter,
        "solver": r.solver,
        "message": r.message,
        "loss": r.loss,
    }
    assert r.grad_norm <= r.gtol
    assert report["train"]["n_samples"] == 105 and report["test"]["n_samples"] == 45
    assert report["classes"] == ["setosa", "versicolor", "virginica"]
    assert 0.8 < report["test"]["accuracy"] <= 1.0 and report["test"]["log_loss"] > 0
    # the same fit through the Python API on the same file and the same rows
    from sklearn.model_selection import train_test_split

    train, _ = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame.species)
    api = softmaxreg.SoftmaxRegression().fit(train[FEATURES], train.species)
    np.testing.assert_allclose(model.coef_, api.coef_, rtol=1e-10, atol=1e-12)
    assert list(model.feature_names_in_) == FEATURES


def test_fit_text_report_and_default_output(capsys, iris_files, tmp_path, monkeypatch):
    d, _ = iris_files
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(
        capsys,
        "fit",
        d / "iris.csv.gz",
        "--target",
        "species",
        "--features",
        *FEATURES,
        "--C",
        "0.5",
        "--solver",
        "lbfgs",
    )
    assert code == 0
    assert "certificate   converged" in out and "training" in out
    assert "iter    1" in err  # progress on a terminal, on stderr
    assert (tmp_path / "iris.softmaxreg").exists()
    assert softmaxreg.load_model(tmp_path / "iris.softmaxreg").C == 0.5


def test_fit_options_reach_the_estimator(capsys, tmp_path):
    rng = np.random.default_rng(2)
    n = 80
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["w"] = rng.integers(0, 4, size=n).astype(float)
    frame["y"] = np.where(frame.a + 0.5 * rng.normal(size=n) > 0, 1, 0) + (frame.b > 1)
    frame.to_parquet(tmp_path / "d.parquet")
    code, _, err = run(
        capsys,
        "-q",
        "fit",
        tmp_path / "d.parquet",
        "--target",
        "y",
        "--sample-weight",
        "w",
        "--C",
        "0.3",
        "--class-weight",
        "balanced",
        "--tol",
        "1e-10",
        "--solver",
        "newton-cg",
        "-o",
        tmp_path / "m.softmaxreg",
    )
    assert code == 0 and err == ""
    model = softmaxreg.load_model(tmp_path / "m.softmaxreg")
    api = softmaxreg.SoftmaxRegression(
        C=0.3, class_weight="balanced", tol=1e-10, solver="newton-cg"
    ).fit(frame[["a", "b"]], frame.y, sample_weight=frame.w)
    np.testing.assert_allclose(model.coef_, api.coef_, rtol=1e-12, atol=1e-14)
    assert list(model.classes_) == [0, 1, 2] and model.classes_.dtype.kind == "i"


# -- predict --------------------------------------------------------------------------------
def test_predict_equals_the_python_api(capsys, iris_files, fitted, tmp_path):
    d, frame = iris_files
    model = softmaxreg.load_model(fitted)
    proba = model.predict_proba(frame[FEATURES])
    labels = model.predict(frame[FEATURES])
    # CSV on stdout, rows in input order
    code, out, _ = run(capsys, "predict", fitted, d / "iris.csv", "--proba", "--id", "id")
    assert code == 0
    from io import StringIO

    got = pd.read_csv(StringIO(out))
    assert list(got.columns) == ["id", "prediction", *[f"proba_{c}" for c in model.classes_]]
    assert list(got.id) == list(frame.id)
    assert list(got.prediction) == list(labels)
    np.testing.assert_array_equal(got.iloc[:, 2:].to_numpy(), proba)
    # Parquet file: bit-identical
    code, _, err = run(
        capsys, "predict", fitted, d / "iris.parquet", "--proba", "-o", tmp_path / "p.parquet"
    )
    assert code == 0 and "wrote 150 predictions" in err
    got = pd.read_parquet(tmp_path / "p.parquet")
    np.testing.assert_array_equal(got.iloc[:, 1:].to_numpy(), proba)
    # labels only, gzip CSV
    code, _, _ = run(capsys, "predict", fitted, d / "iris.csv", "-o", tmp_path / "p.csv.gz")
    assert code == 0
    assert list(pd.read_csv(tmp_path / "p.csv.gz").columns) == ["prediction"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_a_failed_write_leaves_the_previous_predictions(
    capsys, iris_files, fitted, tmp_path, monkeypatch
):
    d, _ = iris_files
    out = tmp_path / "p.csv"
    assert run(capsys, "predict", fitted, d / "iris.csv", "-o", out)[0] == 0
    before = out.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    code, _, err = run(capsys, "predict", fitted, d / "iris.csv", "--proba", "-o", out)
    assert code == 1 and "No space left" in err and err.count("\n") == 1
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]  # no temporary file left


def test_predict_with_reordered_columns_and_unseen_categories(capsys, tmp_path):
    rng = np.random.default_rng(0)
    n = 90
    frame = pd.DataFrame({"x": rng.normal(size=n), "shop": rng.choice(["a", "b", "c"], n)})
    frame["y"] = np.where(frame.x + (frame.shop == "a") > 0.5, "yes", "no")
    frame.to_csv(tmp_path / "train.csv", index=False)
    assert (
        main(
            [
                "fit",
                str(tmp_path / "train.csv"),
                "--target",
                "y",
                "-q",
                "-o",
                str(tmp_path / "m.softmaxreg"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    new = frame[["shop", "x"]].head(4).copy()
    new.loc[2, "shop"] = "zz"
    new.to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run(
        capsys, "predict", tmp_path / "m.softmaxreg", tmp_path / "new.csv", "--proba"
    )
    assert code == 0
    assert err.startswith("softmaxreg: warning: ") and "'zz': 1" in err
    model = softmaxreg.load_model(tmp_path / "m.softmaxreg")
    enc = pd.DataFrame(
        {
            "x": new.x,
            "shop=a": (new.shop == "a") * 1.0,
            "shop=b": (new.shop == "b") * 1.0,
            "shop=c": (new.shop == "c") * 1.0,
        }
    )
    got = pd.read_csv(__import__("io").StringIO(out))
    np.testing.assert_array_equal(got.iloc[:, 1:].to_numpy(), model.predict_proba(enc))


def test_models_saved_from_python(capsys, iris_files, tmp_path):
    d, frame = iris_files
    model = softmaxreg.SoftmaxRegression().fit(frame[FEATURES], frame.species)
    softmaxreg.save_model(model, tmp_path / "api.softmaxreg")
    code, out, _ = run(capsys, "predict", tmp_path / "api.softmaxreg", d / "iris.csv")
    assert code == 0 and out.splitlines()[1:] == list(model.predict(frame[FEATURES]))
    code, _, err = run(capsys, "evaluate", tmp_path / "api.softmaxreg", d / "iris.csv")
    assert code == 1 and "--target" in err
    code, out, _ = run(
        capsys,
        "evaluate",
        tmp_path / "api.softmaxreg",
        d / "iris.csv",
        "--target",
        "species",
        "--json",
    )
    assert code == 0 and json.loads(out)["accuracy"] == model.score(frame[FEATURES], frame.species)
    array_model = softmaxreg.SoftmaxRegression().fit(frame[FEATURES].to_numpy(), frame.species)
    softmaxreg.save_model(array_model, tmp_path / "array.softmaxreg")
    code, _, err = run(capsys, "predict", tmp_path / "array.softmaxreg", d / "iris.csv")
    assert code == 1 and "no description of its input columns" in err


# -- evaluate -------------------------------------------------------------------------------
def test_evaluate_json_against_scikit_learn(capsys, iris_files, fitted):
    d, frame = iris_files
    code, out, _ = run(capsys, "evaluate", fitted, d / "iris.csv", "--json")
    assert code == 0
    m = json.loads(out)
    model = softmaxreg.load_model(fitted)
    P = model.predict_proba(frame[FEATURES])
    y = frame.species.to_numpy()
    assert m["accuracy"] == pytest.approx(accuracy_score(y, model.predict(frame[FEATURES])))
    assert m["log_loss"] == pytest.approx(log_loss(y, P, labels=model.classes_), rel=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, P, labels=model.classes_), rel=1e-12)
    # top-label ECE, written out independently
    conf, hit = P.max(axis=1), model.classes_[P.argmax(axis=1)] == y
    edges = np.linspace(0, 1, 11)
    ece = sum(
        np.mean(sel) * abs(hit[sel].mean() - conf[sel].mean())
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        if (sel := (conf >= lo) & ((conf < hi) | (hi == 1.0))).any()
    )
    assert m["calibration_error"] == pytest.approx(ece, rel=1e-12)
    assert np.sum(m["confusion_matrix"]) == 150
    assert set(m["per_class"]) == {"setosa", "versicolor", "virginica"}
    code, out, _ = run(capsys, "evaluate", fitted, d / "iris.csv")
    assert code == 0 and "confusion matrix" in out and f"{m['accuracy']:.4f}" in out


def test_evaluate_with_labels_the_model_never_saw(capsys, iris_files, fitted, tmp_path):
    _, frame = iris_files
    bad = frame.head(5).assign(species=["setosa", "dog", "setosa", "cat", "setosa"])
    bad.to_csv(tmp_path / "bad.csv", index=False)
    code, _, err = run(capsys, "evaluate", fitted, tmp_path / "bad.csv")
    assert code == 1 and "['cat', 'dog']" in err and err.count("\n") == 1


# -- summary, plot, export ------------------------------------------------------------------
def test_summary_equals_the_python_api(capsys, iris_files, fitted, tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(300, 2)), columns=["u", "v"])
    logits = X.to_numpy() @ np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]])
    y = np.array(["p", "q", "r"])[np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)]
    X.assign(y=y).to_csv(tmp_path / "d.csv", index=False)
    model_path = tmp_path / "mle.softmaxreg"
    assert (
        main(
            [
                "fit",
                str(tmp_path / "d.csv"),
                "--target",
                "y",
                "--penalty",
                "none",
                "-o",
                str(model_path),
                "-q",
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, out, err = run(capsys, "summary", model_path, tmp_path / "d.csv")
    assert code == 0, err
    api = softmaxreg.SoftmaxRegression(penalty=None).fit(X, y).inference(X, y)
    assert out.strip() == api.summary().strip()
    code, out, _ = run(
        capsys,
        "summary",
        model_path,
        tmp_path / "d.csv",
        "--json",
        "--cov-type",
        "HC1",
        "--reference-class",
        "q",
    )
    assert code == 0
    records = json.loads(out)
    api = (
        softmaxreg.SoftmaxRegression(penalty=None)
        .fit(X, y)
        .inference(X, y, cov_type="HC1", reference_class="q")
        .to_frame()
    )
    assert [(r["class"], r["term"]) for r in records] == list(api.index)
    np.testing.assert_allclose([r["std_err"] for r in records], api.iloc[:, 1], rtol=1e-9)
    assert set(records[0]) == {
        "class",
        "term",
        "coef",
        "std_err",
        "z",
        "p_value",
        "ci_lower",
        "ci_upper",
    }
    # a penalised model: a clear one-line refusal
    d, _ = iris_files
    code, _, err = run(capsys, "summary", fitted, d / "iris.csv")
    assert code == 1 and "penalty" in err and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["confusion", "boundary", "loss", "calibration", "coef"])
def test_plot(capsys, iris_files, fitted, tmp_path, kind):
    d, _ = iris_files
    path = tmp_path / f"{kind}.png"
    extra = ["--features", "petal_length", "3"] if kind == "boundary" else []
    code, _, err = run(capsys, "plot", fitted, d / "iris.csv", "--kind", kind, "-o", path, *extra)
    assert code == 0, err
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_export_onnx(capsys, iris_files, fitted, tmp_path):
    d, frame = iris_files
    out = tmp_path / "iris.onnx"
    code, _, err = run(capsys, "export", fitted, "--onnx", out, "--sample", d / "iris.csv")
    assert code == 0, err
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    rows = frame[FEATURES].to_numpy(np.float32)
    _, proba = session.run(["label", "probabilities"], {"input": rows})
    model = softmaxreg.load_model(fitted)
    np.testing.assert_allclose(proba, model.predict_proba(frame[FEATURES]), atol=1e-5)


# -- LIBSVM ---------------------------------------------------------------------------------
def test_libsvm_end_to_end(capsys, tmp_path):
    X, y = load_iris(return_X_y=True)
    dump_svmlight_file(X, y + 1, str(tmp_path / "iris.svm"), zero_based=False)
    code, _, err = run(
        capsys, "fit", tmp_path / "iris.svm", "-o", tmp_path / "m.softmaxreg", "--json"
    )
    assert code == 0, err
    code, out, _ = run(
        capsys, "predict", tmp_path / "m.softmaxreg", tmp_path / "iris.svm", "--proba"
    )
    assert code == 0
    got = pd.read_csv(__import__("io").StringIO(out))
    from sklearn.datasets import load_svmlight_file

    Xs, ys = load_svmlight_file(str(tmp_path / "iris.svm"), zero_based=False)
    api = softmaxreg.SoftmaxRegression().fit(Xs, ys.astype(int))  # the same sparse data
    assert list(got.prediction) == list(api.predict(Xs))
    np.testing.assert_allclose(got.iloc[:, 1:].to_numpy(), api.predict_proba(Xs), rtol=1e-12)
    code, out, _ = run(
        capsys, "evaluate", tmp_path / "m.softmaxreg", tmp_path / "iris.svm", "--json"
    )
    assert code == 0 and json.loads(out)["classes"] == [1, 2, 3]


# -- errors ---------------------------------------------------------------------------------
BAD_FILES = {
    "ragged.csv": b"a,b,species\n1,2,x\n3,4,5,y\n",
    "nonnumeric.csv": b"a,b,species\n1,2,x\n3,oops,y\n5,6,x\n",
    "empty.csv": b"",
    "header.csv": b"a,b,species\n",
    "notarget.csv": b"a,b,kind\n1,2,x\n3,4,y\n",
    "truncated.csv.gz": None,
    "corrupt.parquet": b"PAR1 this is not really parquet PAR1",
    "missing.csv": b"a,b,species\n1,,x\n3,4,y\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_data_files_give_one_line_and_status_1(capsys, tmp_path, name):
    import gzip

    payload = BAD_FILES[name]
    if payload is None:
        full = gzip.compress(b"a,b,species\n" + b"1,2,x\n3,4,y\n" * 2000)
        payload = full[: len(full) // 2]
    (tmp_path / name).write_bytes(payload)
    code, out, err = run(
        capsys, "fit", tmp_path / name, "--target", "species", "-o", tmp_path / "m.softmaxreg"
    )
    assert code == 1
    assert out == ""
    assert err.startswith("softmaxreg: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and name in err  # the message names the file
    assert not (tmp_path / "m.softmaxreg").exists()


def test_bom_and_gzip_csv_fit_the_same_model(capsys, tmp_path):
    text = "a,b,species\n1,2,x\n3,1,y\n2,2,x\n0,4,y\n5,1,x\n1,1,y\n"
    (tmp_path / "bom.csv").write_bytes(("\ufeff" + text).encode())
    (tmp_path / "plain.csv").write_text(text)
    for name in ("bom.csv", "plain.csv"):
        code, out, err = run(
            capsys,
            "fit",
            tmp_path / name,
            "--target",
            "species",
            "--json",
            "-o",
            tmp_path / f"{name}.softmaxreg",
        )
        assert code == 0, err
    a, b = (softmaxreg.load_model(tmp_path / f"{n}.softmaxreg") for n in ("bom.csv", "plain.csv"))
    assert list(a.feature_names_in_) == ["a", "b"]
    np.testing.assert_array_equal(a.coef_, b.coef_)


def test_tampered_model_file(capsys, iris_files, fitted, tmp_path):
    d, _ = iris_files
    raw = bytearray(fitted.read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    (tmp_path / "bad.softmaxreg").write_bytes(bytes(raw))
    (tmp_path / "half.softmaxreg").write_bytes(fitted.read_bytes()[:200])
    for name in ("bad.softmaxreg", "half.softmaxreg"):
        code, out, err = run(capsys, "predict", tmp_path / name, d / "iris.csv")
        assert code == 1 and out == "" and err.count("\n") == 1 and "Traceback" not in err


def test_debug_shows_the_traceback(capsys, tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    code, _, err = run(capsys, "fit", tmp_path / "e.csv", "--target", "y", "--debug")
    assert code == 1 and "Traceback" in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["fit"],
        ["fit", "data.csv"],  # CSV needs --target
        ["fit", "data.csv", "--target", "y", "--test-size", "1.5"],
        ["fit", "data.csv", "--target", "y", "--penalty", "lasso"],
        ["plot", "m.softmaxreg", "--kind", "confusion", "-o", "c.png"],
        ["plot", "m.softmaxreg", "d.csv", "--kind", "pie", "-o", "c.png"],
        ["export", "m.softmaxreg"],
    ],
)
def test_usage_errors_exit_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and "error" in err


@pytest.mark.parametrize(
    "command", ["fit", "predict", "evaluate", "summary", "plot", "export", "demo", "gradcheck"]
)
def test_help_has_examples(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and "examples:" in out and f"softmaxreg {command}" in out


def test_predict_output_extension_is_checked_before_writing(capsys, iris_files, fitted, tmp_path):
    d, _ = iris_files
    code, _, err = run(capsys, "predict", fitted, d / "iris.csv", "-o", tmp_path / "p.xlsx")
    assert code == 1 and ".parquet" in err and list(tmp_path.iterdir()) == []


# -- gradcheck and demo ---------------------------------------------------------------------
def test_gradcheck(capsys):
    code, out, _ = run(capsys, "gradcheck", "--json")
    result = json.loads(out)
    assert code == 0 and result["passed"]
    assert max(result["max_errors"].values()) < 1e-6
    assert len(result["rows"]) >= 5
    code, out, _ = run(capsys, "gradcheck", "--threshold", "1e-30")
    assert code == 1 and "FAILED" in out


def test_gradcheck_detects_a_wrong_derivative(monkeypatch):
    from softmaxreg import _gradcheck

    real = _gradcheck.Objective.loss_grad_hessp

    def wrong(self, coef):
        f, g, hessp = real(self, coef)
        return f, g * (1 + 1e-4), hessp

    monkeypatch.setattr(_gradcheck.Objective, "loss_grad_hessp", wrong)
    result = _gradcheck.run_gradcheck()
    assert not result["passed"] and result["max_errors"]["gradient"] > 1e-5


def test_demo_and_the_installed_command(tmp_path):
    exe = shutil.which("softmaxreg", path=os.path.dirname(sys.executable))
    assert exe is not None, "the softmaxreg console script is not installed"
    out_dir = tmp_path / "demo"
    proc = subprocess.run(
        [exe, "demo", "-o", str(out_dir)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for name in (
        "wine.softmaxreg",
        "predictions.csv",
        "metrics.json",
        "confusion.png",
        "boundary.png",
        "loss.png",
        "calibration.png",
        "coef.png",
    ):
        assert (out_dir / name).stat().st_size > 0
        assert str(out_dir / name) in proc.stdout
    assert "certificate  converged" in proc.stdout
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.9 and f"accuracy {metrics['accuracy']:.4f}" in proc.stdout
    assert (out_dir / "coef.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # python -m softmaxreg with the demo's own files: CLI equals the Python API
    pred = subprocess.run(
        [
            sys.executable,
            "-m",
            "softmaxreg",
            "predict",
            str(out_dir / "wine.softmaxreg"),
            str(out_dir / "wine_test.csv"),
            "--proba",
            "-o",
            str(out_dir / "p.parquet"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pred.returncode == 0, pred.stderr
    model = softmaxreg.load_model(out_dir / "wine.softmaxreg")
    test = pd.read_csv(out_dir / "wine_test.csv")
    got = pd.read_parquet(out_dir / "p.parquet")
    features = list(model.feature_names_in_)
    np.testing.assert_array_equal(got.iloc[:, 1:].to_numpy(), model.predict_proba(test[features]))


@pytest.mark.parametrize(
    "options",
    [
        ["--C", "-1"],
        ["--tol", "-1"],
        ["--max-iter", "0"],
        ["--l1-ratio", "2"],
        ["--penalty", "elasticnet"],
        ["--basis", "bogus"],
        ["--penalty", "l1", "--solver", "newton"],
        ["--solver", "fista"],
    ],
)
def test_bad_option_values_are_usage_errors_before_any_data_is_read(capsys, tmp_path, options):
    """Exit 2 with one line, even though the data file does not exist (it is never read)."""
    code, out, err = run(capsys, "fit", tmp_path / "absent.csv", "--target", "y", *options)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "absent.csv" not in err


def test_l1_fit_with_a_proximal_solver_from_the_command_line(capsys, iris_files, tmp_path):
    d, _ = iris_files
    model = tmp_path / "l1.softmaxreg"
    argv = ["fit", d / "iris.csv", "--target", "species", "--exclude", "id", "-o", model]
    code, out, _ = run(capsys, *argv, "--penalty", "l1", "--solver", "prox-newton", "--json")
    assert code == 0 and json.loads(out)["certificate"]["solver"] == "prox-newton"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_directory_of_files_is_their_rows_in_memory(capsys, iris_files, tmp_path, suffix):
    """fit/evaluate/predict read a directory of CSV or Parquet files (sorted, recursively)
    as the concatenation of their rows when it fits in memory, as the streamed path does."""
    d, frame = iris_files
    parts = tmp_path / "parts"
    (parts / "sub").mkdir(parents=True)
    for i, rows in enumerate((slice(0, 60), slice(60, 150))):
        path = (parts if i == 0 else parts / "sub") / f"p{i}{suffix}"
        piece = frame.iloc[rows]
        piece.to_csv(path, index=False) if suffix == ".csv" else piece.to_parquet(path)
    whole, joined = tmp_path / "whole.softmaxreg", tmp_path / "joined.softmaxreg"
    common = ["--target", "species", "--exclude", "id", "--json"]
    assert run(capsys, "fit", d / "iris.csv", *common, "-o", whole)[0] == 0
    code, out, _ = run(capsys, "fit", parts, *common, "-o", joined)
    assert code == 0 and json.loads(out)["train"]["n_samples"] == 150
    a, b = softmaxreg.load_model(whole), softmaxreg.load_model(joined)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-10, atol=1e-12)
    code, out, _ = run(capsys, "evaluate", joined, parts, "--json")
    assert code == 0 and json.loads(out)["n_samples"] == 150
    code, out, _ = run(capsys, "predict", joined, parts)
    assert code == 0 and len(out.splitlines()) == 151
    frame.iloc[:5].drop(columns="id").to_csv(parts / "sub" / "z.csv", index=False)
    code, _, err = run(capsys, "evaluate", joined, parts)
    assert code == 1 and len(err.strip().splitlines()) == 1
    if suffix == ".csv":  # a file with other columns is named
        assert "z.csv" in err and "same columns" in err
    else:  # CSV beside Parquet: the format is ambiguous
        assert "--format" in err


def test_usage_and_file_errors_found_before_the_fit(capsys, iris_files, fitted, tmp_path):
    d, _ = iris_files
    X, y = load_iris(return_X_y=True)
    dump_svmlight_file(X, y, str(tmp_path / "iris.libsvm"))
    code, _, err = run(capsys, "fit", tmp_path / "iris.libsvm", "--target", "y")
    assert code == 2 and "LIBSVM" in err
    out = tmp_path / "absent" / "m.softmaxreg"
    code, _, err = run(capsys, "fit", d / "iris.csv", "--target", "species", "-o", out)
    assert code == 2 and "no directory" in err and not out.parent.exists()
    code, _, err = run(capsys, "predict", fitted, d / "iris.csv", "-o", out)
    assert code == 2 and "no directory" in err
    code, _, err = run(capsys, "predict", tmp_path / "none.softmaxreg", d / "iris.csv")
    assert code == 1 and err.strip().endswith("no such model file")
