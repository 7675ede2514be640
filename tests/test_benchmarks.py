"""Smoke test of the benchmark package: the runner end to end on a tiny problem (no timing)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import problems, report, run  # noqa: E402
from benchmarks.adapters import ADAPTERS, Fitted  # noqa: E402
from benchmarks.measure import objective  # noqa: E402


def test_objective_matches_softmaxreg():
    from softmaxreg import SoftmaxRegression

    X, y = problems.planted_sparse(300, 40, 5, 3, seed=1)
    m = SoftmaxRegression(C=0.5, tol=1e-10).fit(X, y)
    f = objective(X, y, 0.5, Fitted(m.coef_, m.intercept_, 0))
    assert f == pytest.approx(m.result_.loss, rel=1e-10)


def test_runner_end_to_end(tmp_path, monkeypatch):
    X, y = problems.planted_sparse(400, 30, 6, 3, seed=0)
    tiny = problems.Problem("tiny", "tiny planted", lambda scale: (X.toarray(), y), C=1.0)
    monkeypatch.setitem(problems.PROBLEMS, "tiny", tiny)
    names = ["softmaxreg:auto", "softmaxreg:lbfgs", "sklearn:lbfgs"]
    results = run.main(
        [
            "--problems",
            "tiny",
            "--solvers",
            *names,
            "--repeats",
            "1",
            "--budget",
            "5",
            "--out",
            str(tmp_path),
        ]
    )
    rec = results["problems"][0]
    assert [r["solver"] for r in rec["rows"]] == names
    for r in rec["rows"]:
        assert r["default_subopt"] >= 0 and np.isfinite(r["default_loss"])
        assert set(r["reached"]) == {"0.001", "1e-06"}
        assert r["peak_mib"] > 0
    assert rec["fstar"] <= rec["fstar_reference"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["problems"][0]["problem"] == "tiny"
    md = (tmp_path / "results.md").read_text()
    assert "| tiny |" in md and "softmaxreg:auto" in md
    assert (tmp_path / "tiny.png").stat().st_size > 0


def test_default_fit_over_budget_is_timed_once_without_memory(tmp_path, monkeypatch):
    X, y = problems.planted_sparse(300, 20, 5, 3, seed=2)
    tiny = problems.Problem("tiny", "tiny planted", lambda scale: (X.toarray(), y), C=1.0)
    calls = []
    real = run.time_fit

    def counted(*args, **kw):
        calls.append(kw["repeats"])
        return real(*args, **kw)

    monkeypatch.setattr(run, "time_fit", counted)
    adapters = {"sklearn:lbfgs": ADAPTERS["sklearn:lbfgs"]}
    rec = run.run_problem(tiny, 1.0, adapters, repeats=3, budget=0.0, sweeps=False, log=str)
    (row,) = rec["rows"]
    assert calls == [1] and row["peak_mib"] is None and row["default_seconds"] > 0
    assert "not measured" in "\n".join(report._problem_table(rec))


def test_adapters_share_a_signature():
    X, y = problems.planted_sparse(200, 20, 5, 3, seed=2)
    for name in ["softmaxreg:newton", "sklearn:newton-cg"]:
        fitted = ADAPTERS[name].fit(X, y, C=1.0, tol=1e-8, max_iter=200)
        assert fitted.coef.shape == (3, 20) and fitted.intercept.shape == (3,)


def test_scaling_runs_and_plots(tmp_path, monkeypatch):
    from benchmarks import scaling

    monkeypatch.setattr(
        scaling, "_sizes", lambda base_n: {"n": [(200, 8, 3), (400, 8, 3)], "d": [], "K": []}
    )
    result = scaling.main(["--base-n", "200", "--repeats", "1", "--out", str(tmp_path)])
    assert [r["n"] for r in result["n"]] == [200, 400]
    assert all(r[s] > 0 for r in result["n"] for s in scaling.SOLVERS)
    assert (tmp_path / "scaling.png").stat().st_size > 0


def test_merge_combines_runs(tmp_path):
    env = run.environment()
    for i, name in enumerate(["a", "b"]):
        rec = {
            "problem": name,
            "description": name,
            "n": 10,
            "d": 2,
            "K": 3,
            "C": 1.0,
            "dtype": "float64",
            "pass_seconds": 1e-3,
            "fstar": 1.0,
            "rows": [],
        }
        d = tmp_path / str(i)
        d.mkdir()
        (d / "results.json").write_text(
            json.dumps(
                {
                    "command": f"run {name}",
                    "scale": 1.0,
                    "repeats": 1,
                    "budget": 1.0,
                    "environment": env,
                    "problems": [rec],
                }
            )
        )
    merged = run.main(
        [
            "--merge",
            str(tmp_path / "0/results.json"),
            str(tmp_path / "1/results.json"),
            "--out",
            str(tmp_path / "m"),
        ]
    )
    assert [r["problem"] for r in merged["problems"]] == ["a", "b"]
    assert "| b |" in (tmp_path / "m" / "results.md").read_text()


def test_pass_counts_reach_both_levels():
    from benchmarks.passes import passes

    X, y = problems.planted_sparse(300, 20, 5, 3, seed=3)
    tiny = problems.Problem("tiny", "tiny", lambda scale: (X.toarray(), y))
    out = passes(tiny, 1.0, solvers=("newton-cg",))
    hits = out["newton-cg"]
    assert hits[1e-3] is not None and hits[1e-6] is not None and hits[1e-3] <= hits[1e-6]
