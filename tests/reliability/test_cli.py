"""The command line under hostile input (RELIABILITY.md items 19, 20, 29, 30), beyond
tests/test_cli.py.

Hypothesis writes CSV files with quotes, BOMs, mixed types, huge numbers, empty lines, ragged
rows, CRLF and non-UTF-8 bytes; ``softmaxreg fit`` (then ``predict`` and ``evaluate``) must
either succeed with a correct result or exit 1 with exactly one line on stderr, never a
traceback or an "internal error". The "ci" hypothesis profile (tests/conftest.py) is
deterministic; ``HYPOTHESIS_PROFILE=long`` runs 2000 examples per property.
"""

import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import softmaxreg
from softmaxreg._cli import main


def run_main(*argv):
    """``main(argv)`` with captured stdout/stderr (usable inside hypothesis examples)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def assert_clean_failure(code, out, err):
    assert code == 1, (code, err)
    lines = err.splitlines()
    errors = [line for line in lines if not line.startswith("softmaxreg: warning: ")]
    assert len(errors) == 1 and errors[0].startswith("softmaxreg: error: "), err
    assert "internal error" not in err and "Traceback" not in err, err


# -- hostile CSV files -------------------------------------------------------------------------
NUMBERS = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(repr),
    st.sampled_from(
        [
            "1e308",
            "-1e308",
            "1e309",
            "-1e400",
            "9" * 400,
            "0x1F",
            "1_000",
            "+3",
            ".5",
            "5.",
            "nan",
            "NaN",
            "inf",
            "-Infinity",
            "1e-320",
            "00012",
            " 7 ",
            "1,5",
        ]
    ),
)
TEXT = st.one_of(
    st.sampled_from(["a", "b", "", "NA", "null", "true", "False", "é", "日本", "x y"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
)


def _quote(cell: str) -> str:
    if any(c in cell for c in ',"\n\r') or (cell and cell[0] == " "):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def _column(draw, kind, n_rows):
    if kind == "numbers":
        return [draw(st.floats(-1e6, 1e6, allow_nan=False).map(repr)) for _ in range(n_rows)]
    if kind == "categories":
        return [draw(st.sampled_from(["a", "b", "é", "x y", '"q"', "日本"])) for _ in range(n_rows)]
    if kind == "hostile numbers":
        return [draw(NUMBERS) for _ in range(n_rows)]
    return [draw(st.one_of(NUMBERS, TEXT)) for _ in range(n_rows)]  # mixed


@st.composite
def hostile_csv(draw):
    """CSV bytes: mostly well-formed columns, each file with some hostile features."""
    pool = ["a", "b c", 'q"uote', "é", "", "x,y", "n", " lead", "y2"]
    names = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
    if draw(st.integers(0, 9)) == 0:
        names.append(names[0])  # duplicated column name
    n_rows = draw(st.integers(0, 14))
    kinds = ["numbers", "numbers", "categories", "hostile numbers", "mixed"]
    columns = [_column(draw, draw(st.sampled_from(kinds)), n_rows) for _ in names]
    one_class = draw(st.integers(0, 9)) == 0
    labels = draw(
        st.lists(
            st.sampled_from(["u", "v", "w", "1", "1.0", "2", "", "u ", "True"]),
            min_size=1 if one_class else 2,
            max_size=1 if one_class else 3,
            unique=True,
        )
    )
    ragged = draw(st.integers(0, 6)) == 0
    rows = []
    for i in range(n_rows):
        cells = [col[i] for col in columns] + [labels[i % len(labels)]]
        if ragged and draw(st.integers(0, 3)) == 0:
            cells = cells[:-1] if draw(st.booleans()) else [*cells, "extra"]
        rows.append(",".join(_quote(c) for c in cells))
        if draw(st.integers(0, 12)) == 0:
            rows.append("")  # empty line
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join([",".join(_quote(h) for h in [*names, "y"]), *rows]) + newline
    data = text.encode("utf-8")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data  # BOM
    if draw(st.integers(0, 6)) == 0:  # non-UTF-8 bytes somewhere
        at = draw(st.integers(0, len(data)))
        bad = draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3\x28", b"\x00"]))
        data = data[:at] + bad + data[at:]
    return data


@given(hostile_csv())
@example(b"a,y\n\xff")  # found: a ragged non-UTF-8 row printed an "Exception ignored" traceback
@example(b"a,\xe9y\n1,u\n2,v\n")  # found: a non-UTF-8 header gave a message without the file
@example(b"a,y\n1,u\n\xe9,v\n2,u\n")  # found: a non-UTF-8 cell was "unsupported type object"
def test_fit_predict_evaluate_on_hostile_csv(data):
    with tempfile.TemporaryDirectory() as d:
        path, model = Path(d) / "data.csv", Path(d) / "m.smr"
        path.write_bytes(data)
        code, out, err = run_main("fit", path, "--target", "y", "-o", model, "--json", "-q")
        if code != 0:
            assert_clean_failure(code, out, err)
            assert not model.exists()  # nothing half-written
            return
        report = json.loads(out)
        fitted = softmaxreg.load_model(model)
        assert 2 <= len(fitted.classes_) == len(report["classes"])
        assert np.all(np.isfinite(fitted.coef_))
        code, out, err = run_main("predict", model, path, "--proba")
        if code != 0:
            assert_clean_failure(code, out, err)
            return
        table = pd.read_csv(io.StringIO(out))
        assert len(table) == report["train"]["n_samples"]  # one prediction per data row
        P = table.filter(like="proba_").to_numpy()
        assert np.all(np.isfinite(P))
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-9)
        code, out, err = run_main("evaluate", model, path, "--json")
        if code != 0:
            assert_clean_failure(code, out, err)
        else:
            assert json.loads(out)["n_samples"] == len(table)


@given(st.binary(max_size=300), st.sampled_from(["csv", "csv.gz", "parquet", "svm"]))
def test_random_bytes_are_a_clean_error_for_every_format(data, ext):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"data.{ext}"
        path.write_bytes(data)
        argv = ["fit", path, "-o", Path(d) / "m.smr", "-q"]
        code, out, err = run_main(*argv, *([] if ext == "svm" else ["--target", "y"]))
        if code != 0:
            assert_clean_failure(code, out, err)


# -- item 19 through the CLI: columns that differ at predict time ------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("trained")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=["a", "b", "c"])
    frame["colour"] = np.array(["red", "green"])[np.arange(40) % 2]
    frame["y"] = np.array(["p", "q", "r"])[np.arange(40) % 3]
    frame.to_csv(d / "train.csv", index=False)
    code, _, err = run_main("fit", d / "train.csv", "--target", "y", "-o", d / "m.smr", "-q")
    assert code == 0, err
    return d, frame


PREDICT_FILES = {
    "missing column": lambda f: f.drop(columns=["b"]),
    "renamed column": lambda f: f.rename(columns={"a": "A"}),
    "text in a numeric column": lambda f: f.assign(a=["x"] * len(f)),
    "missing value": lambda f: f.assign(c=[np.nan] + [1.0] * (len(f) - 1)),
    "infinite value": lambda f: f.assign(c=[np.inf] + [1.0] * (len(f) - 1)),
    "header only": lambda f: f.iloc[:0],
}


@pytest.mark.parametrize("case", PREDICT_FILES)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_predict_time_columns_that_differ_are_a_clean_error(trained, tmp_path, case, command):
    d, frame = trained
    PREDICT_FILES[case](frame).to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run_main(command, d / "m.smr", tmp_path / "new.csv")
    assert_clean_failure(code, out, err)
    assert out == ""


def test_reordered_and_extra_columns_predict_the_same_as_the_api(trained, tmp_path):
    """Item 30 with columns in another order plus an extra one: the CLI matches by name."""
    d, frame = trained
    shuffled = frame[["y", "c", "colour", "a", "b"]].assign(extra="ignored")
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    code, out, err = run_main("predict", d / "m.smr", tmp_path / "new.csv", "--proba")
    assert code == 0, err
    got = pd.read_csv(io.StringIO(out))
    model = softmaxreg.load_model(d / "m.smr")
    X = pd.get_dummies(frame[["a", "b", "c", "colour"]], dtype=float)
    X = (
        X[["a", "b", "c", "colour=green", "colour=red"]]
        if "colour=green" in X
        else X.rename(columns=lambda c: c.replace("colour_", "colour="))[
            ["a", "b", "c", "colour=green", "colour=red"]
        ]
    )
    np.testing.assert_array_equal(got.prediction.to_numpy(), model.predict(X))
    np.testing.assert_allclose(
        got.filter(like="proba_").to_numpy(), model.predict_proba(X), rtol=1e-12
    )
    api = softmaxreg.SoftmaxRegression().fit(X, frame.y)  # the same fit in Python
    np.testing.assert_allclose(model.coef_, api.coef_, rtol=1e-10, atol=1e-12)


def test_libsvm_with_a_feature_index_beyond_the_model_is_a_clean_error(tmp_path):
    (tmp_path / "train.svm").write_text("1 1:0.5 2:1\n2 1:-1 2:0.3\n1 1:0.2\n2 2:-0.7\n")
    code, _, err = run_main("fit", tmp_path / "train.svm", "-o", tmp_path / "m.smr", "-q")
    assert code == 0, err
    (tmp_path / "new.svm").write_text("1 1:0.5 7:1\n")
    assert_clean_failure(*run_main("predict", tmp_path / "m.smr", tmp_path / "new.svm"))
    (tmp_path / "zero.svm").write_text("1 0:0.5 1:1\n")  # zero-based file, one-based model
    assert_clean_failure(*run_main("predict", tmp_path / "m.smr", tmp_path / "zero.svm"))


# -- item 29: conventions ------------------------------------------------------------------
COMMANDS = ["fit", "predict", "evaluate", "summary", "plot", "export", "demo", "gradcheck"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("extra", [["--no-such-option"], ["--format", "xls"]])
def test_usage_errors_exit_2_for_every_command(command, extra):
    code, out, err = run_main(command, *extra)
    assert code == 2 and out == ""
    assert "usage:" in err and "Traceback" not in err


def _no_constant(name):
    raise AssertionError(f"{name} in JSON output")


def test_json_outputs_parse_and_hold_no_nan(trained, tmp_path):
    d, _ = trained
    outputs = {
        "fit": run_main(
            "fit", d / "train.csv", "--target", "y", "-o", tmp_path / "m.smr", "--json"
        ),
        "evaluate": run_main("evaluate", d / "m.smr", d / "train.csv", "--json"),
        "gradcheck": run_main("gradcheck", "--json"),
    }
    for name, (code, out, err) in outputs.items():
        assert code == 0, (name, err)
        json.loads(out, parse_constant=_no_constant)


def test_no_progress_and_results_only_on_stdout_when_not_a_terminal(trained, tmp_path):
    """Real processes with pipes (not terminals): no progress lines, results on stdout."""
    d, _ = trained
    cmd = [sys.executable, "-m", "softmaxreg"]
    fit = subprocess.run(
        [
            *cmd,
            "fit",
            str(d / "train.csv"),
            "--target",
            "y",
            "-o",
            str(tmp_path / "m.smr"),
            "--json",
            "--solver",
            "lbfgs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fit.returncode == 0, fit.stderr
    json.loads(fit.stdout)
    assert "iter " not in fit.stderr and "\r" not in fit.stderr
    bad = subprocess.run(
        [*cmd, "predict", str(tmp_path / "m.smr"), str(tmp_path / "nope.csv")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


# -- the same hostile files through the streamed reader of the Python API ---------------------
@given(hostile_csv(), st.sampled_from([1, 3, 64]))
@example(b"a,b c,a,y\n0.0,0.0,0.0,u\n\n0.0,0.0,0.0,v\n\n", 1)  # found: raw KeyError
@example(b'a,y\n0,u\n\n0,v\n\n"\n",u\n\n', 1)
@example(b"a,y\n0.0,1.0\n\n0.0,2\n\n", 1)
@example(b"a,y\n0.0,u\n\n440061.0,v\n\n23.5,w\n\n438773.0,u\n\n", 1)
@pytest.mark.filterwarnings("ignore::softmaxreg.SingularHessianWarning")
@pytest.mark.filterwarnings("ignore::softmaxreg.ConvergenceWarning")  # tol=1e-10 near the limit
def test_streamed_csv_source_on_hostile_csv(data, batch_rows):
    """``fit(CSVSource(...))`` is a clear ValueError, or the fit the in-memory reader gives."""
    from softmaxreg._io import DataError, load_training

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "data.csv"
        path.write_bytes(data)
        try:
            source = softmaxreg.CSVSource(path, target="y", batch_rows=batch_rows)
            streamed = softmaxreg.SoftmaxRegression(tol=1e-10).fit(source)
        except (ValueError, TypeError) as exc:  # DataError, ValueError: a clear message
            assert len(str(exc).split()) >= 4, repr(exc)  # (a cell's newline may be quoted)
            return
        try:
            data_in_memory = load_training(path, target="y")
        except DataError:
            return  # the in-memory reader is stricter (e.g. text in a numeric column)
        X = data_in_memory.X.to_numpy()
        if list(data_in_memory.X.columns) != list(streamed.feature_names_in_):
            return  # categories were one-hot encoded in memory: not the same design
        try:
            model = softmaxreg.SoftmaxRegression(tol=1e-10).fit(X, data_in_memory.y)
        except ValueError:
            return  # e.g. features too large: refused in memory, exact in the streamed fit
        # the same labels (the in-memory reader writes whole floats as integers: 1.0 == 1)
        assert model.classes_.tolist() == streamed.classes_.tolist()
        # the same minimum (the loss is well conditioned at the optimum; on nearly separated
        # rows the probabilities themselves move by ~1e-6 within the certificate)
        both = streamed.result_.converged and model.result_.converged  # else a warning said so
        rel = 1e-7 if both else 1e-5
        assert streamed.result_.loss == pytest.approx(model.result_.loss, rel=rel, abs=1e-9)
        P = streamed.predict_proba(data_in_memory.X)  # same column names as the source
        np.testing.assert_allclose(P, model.predict_proba(X), atol=1e-4 if both else 1e-3)
