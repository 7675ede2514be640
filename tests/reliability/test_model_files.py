"""Model files and security (RELIABILITY.md items 22-24), beyond tests/test_modelfile.py.

The fuzz of :mod:`tests.reliability.fuzz_modelfile` at a small fixed-seed budget, the
no-pickle rule enforced on the source, and damaged files through the command line.
"""

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from softmaxreg import SoftmaxRegression, load_model, save_model
from softmaxreg._cli import main

from . import fuzz_modelfile

SRC = Path(__file__).resolve().parents[2] / "src" / "softmaxreg"
CI_CASES = 700  # 100 per mutation kind; `python -m tests.reliability.fuzz_modelfile` for more


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return fuzz_modelfile.build_corpus(tmp_path_factory.mktemp("corpus"))


def test_fuzz_fixed_seed(corpus, tmp_path):
    counts = fuzz_modelfile.run(CI_CASES, seed=0, corpus=corpus, directory=tmp_path)
    assert sum(counts.values()) == CI_CASES
    by_kind = {
        k: sum(n for (kind, _), n in counts.items() if kind == k) for k in fuzz_modelfile.KINDS
    }
    assert min(by_kind.values()) == CI_CASES // len(fuzz_modelfile.KINDS)
    assert counts["entry", "rejected"] == by_kind["entry"]  # every hostile entry refused
    # the forger's cases reach the deep validation: some load, some are refused there
    assert counts["json", "rejected"] > 0 and counts["json", "forged-loads"] > 0
    assert counts["npy", "rejected"] > 0


def test_fuzz_catches_a_loader_that_lets_parse_errors_escape(corpus, tmp_path, monkeypatch):
    """The fuzz is not vacuous: without the .npy header parse errors (SyntaxError, TokenError)
    among the read errors, the loader raised a raw TokenError (found by this fuzz)."""
    import tokenize

    from softmaxreg import _modelfile

    lax = tuple(e for e in _modelfile._READ_ERRORS if e not in (SyntaxError, tokenize.TokenError))
    monkeypatch.setattr(_modelfile, "_READ_ERRORS", lax)
    with pytest.raises(fuzz_modelfile.FuzzFailure, match="TokenError|SyntaxError"):
        fuzz_modelfile.run(CI_CASES, seed=0, corpus=corpus, directory=tmp_path)


def test_no_pickle_eval_or_exec_in_the_package():
    """Item 23: no pickle loading anywhere (ruff's S301 and S307 are also selected)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                banned = ("pickle", "cPickle", "dill", "marshal", "shelve")
                if any(n.split(".")[0] in banned for n in names) or (
                    getattr(node, "module", None) == "joblib" and "load" in names
                ):
                    offenders.append(f"{path.name}:{node.lineno} imports {names}")
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name in ("eval", "exec", "__import__"):
                    offenders.append(f"{path.name}:{node.lineno} calls {name}")
                for kw in node.keywords:
                    if kw.arg == "allow_pickle" and not (
                        isinstance(kw.value, ast.Constant) and kw.value.value is False
                    ):
                        offenders.append(f"{path.name}:{node.lineno} allow_pickle")
    assert not offenders, offenders


def test_ruff_selects_the_pickle_rules():
    pyproject = (SRC.parents[1] / "pyproject.toml").read_text()
    assert '"S301"' in pyproject and '"S307"' in pyproject
    ruff = Path(sys.executable).parent / "ruff"
    if ruff.exists():
        proc = subprocess.run(
            [str(ruff), "check", "--select", "S301,S307", "--no-cache", str(SRC)],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    lines = ["a,b,y"] + [f"{a},{b},{'uv'[i % 2]}" for i, (a, b) in enumerate(X)]
    (d / "train.csv").write_text("\n".join(lines) + "\n")
    assert main(["fit", str(d / "train.csv"), "--target", "y", "-o", str(d / "m.smr"), "-q"]) == 0
    return d


@pytest.mark.parametrize("kind", fuzz_modelfile.KINDS)
def test_damaged_model_file_through_the_cli(cli_model, tmp_path, capsys, kind):
    """Every damaged file is exit status 1 with one line on stderr, or the same predictions."""
    data = (cli_model / "m.smr").read_bytes()
    capsys.readouterr()
    assert main(["predict", str(cli_model / "m.smr"), str(cli_model / "train.csv")]) == 0
    want = capsys.readouterr().out
    rng = np.random.default_rng(3)
    statuses = set()
    for _ in range(6):
        if kind in fuzz_modelfile.BYTE_KINDS:
            blob = fuzz_modelfile._byte_mutation(kind, rng, data, data)
        elif kind == "entry":
            blob = fuzz_modelfile._hostile_entry(rng, data)
        else:
            blob = fuzz_modelfile._forged(kind, rng, data)
        (tmp_path / "bad.smr").write_bytes(blob)
        code = main(["predict", str(tmp_path / "bad.smr"), str(cli_model / "train.csv")])
        out, err = capsys.readouterr()
        statuses.add(code)
        if code == 0:
            assert kind not in ("entry",) and (out == want or kind in fuzz_modelfile.FORGED_KINDS)
            continue
        assert code == 1, err
        assert err.startswith("softmaxreg: error: ") and err.count("\n") == 1, err
        assert "internal error" not in err and "Traceback" not in err
    assert statuses <= {0, 1}


def test_model_files_are_never_executed_on_save_or_load_of_every_label_kind(tmp_path):
    """Round trip of the label kinds of item 18 through a file, bit-identical (item 22)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 2))
    codes = np.arange(30) % 3
    for labels in (
        np.array(["a", "b" * 300, "c"]),
        np.array([True, False, True]),
        np.array([-3, 0, 2**40]),
        np.array([-1.0, 0.0, 2.0]),
        np.array(["1", 1, 2.5], dtype=object),
    ):
        y = labels[codes] if labels.dtype != bool else codes == 1
        model = SoftmaxRegression().fit(X, y)
        save_model(model, tmp_path / "m.smr")
        loaded = load_model(tmp_path / "m.smr")
        assert [(type(c), c) for c in loaded.classes_.tolist()] == [
            (type(c), c) for c in model.classes_.tolist()
        ]
        assert loaded.predict_proba(X).tobytes() == model.predict_proba(X).tobytes()
        assert loaded.predict(X).tolist() == model.predict(X).tolist()
        with zipfile.ZipFile(tmp_path / "m.smr") as zf:
            assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
            json.loads(zf.read("manifest.json"))
