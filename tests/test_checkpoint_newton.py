"""Checkpoints of trust-region Newton-CG and exact Newton: kill-and-resume ends bitwise where an
uninterrupted fit ends; ``auto`` keeps its (resumable) choice when a checkpoint is asked for."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from softmaxreg import ConvergenceWarning, ParquetSource, SoftmaxRegression
from softmaxreg._checkpoint import CheckpointError, read_checkpoint, solve_checkpointed
from softmaxreg._objective import Objective
from softmaxreg._solvers import choose_solver, solve
from softmaxreg._sources import ArraySource
from test_checkpoint import coef_of, problem, run_child

SOLVERS = ["newton-cg", "newton"]
KW = dict(tol=1e-10, max_iter=500)


def same_fit(a, b):
    """Bitwise the same coefficients, iterations and loss history."""
    np.testing.assert_array_equal(coef_of(a), coef_of(b))
    assert a.result_.n_iter == b.result_.n_iter
    assert [r["loss"] for r in a.result_.history] == [r["loss"] for r in b.result_.history]


@pytest.fixture(scope="module")
def uninterrupted():
    X, y = problem()
    return {s: SoftmaxRegression(solver=s, **KW).fit(X, y) for s in SOLVERS}


@pytest.mark.parametrize("solver", SOLVERS)
def test_resume_after_max_iter_is_bitwise(tmp_path, uninterrupted, solver):
    X, y = problem()
    whole = uninterrupted[solver]
    assert whole.result_.converged and whole.n_iter_[0] >= 5
    path = tmp_path / "c.ckpt"
    with pytest.warns(ConvergenceWarning):
        SoftmaxRegression(solver=solver, tol=1e-10, max_iter=3).fit(X, y, checkpoint=path)
    meta, arrays = read_checkpoint(path)
    assert meta["state"]["solver"] == solver and len(meta["state"]["history"]) == 3
    assert arrays["w"].shape == (whole.coef_.size + whole.intercept_.size,)
    resumed = SoftmaxRegression(solver=solver, **KW).fit(X, y, checkpoint=path, checkpoint_every=2)
    same_fit(resumed, whole)
    assert resumed.result_.message == whole.result_.message
    # the state written at the end (whatever checkpoint_every) resumes to the same result
    assert len(read_checkpoint(path)[0]["state"]["history"]) == whole.n_iter_[0]
    again = SoftmaxRegression(solver=solver, **KW).fit(X, y, checkpoint=path)
    same_fit(again, whole)


@pytest.mark.parametrize("solver", SOLVERS)
def test_resume_from_every_iteration_with_rejected_steps(tmp_path, solver):
    """From a far start TRON rejects steps (they count towards max_iter, not n_iter) and
    Newton backtracks; a run stopped after any number of outer iterations and resumed with a
    larger max_iter ends where the uninterrupted run with that max_iter does."""
    X, y = problem(n=200)
    objective = Objective(ArraySource(X, y, np.ones(y.size), 4), l2=1e-3)
    coef0 = 5.0 * np.random.default_rng(0).normal(size=objective.n_coef)
    whole = solve(solver, objective, coef0, tol=1e-10, max_iter=500)
    assert whole.converged
    assert whole.n_fun > whole.n_iter + 1  # rejected steps / backtracking happened
    for k in sorted({*range(1, 6), *range(6, whole.n_iter + 3, 4), whole.n_iter + 2}):
        ref = solve(solver, objective, coef0, tol=1e-10, max_iter=k + 2)
        path = tmp_path / f"{k}.ckpt"
        kw = dict(tol=1e-10, callback=None, path=path, problem={"k": 1})
        solve_checkpointed(solver, objective, coef0, max_iter=k, **kw)
        start = coef0 + 1.0 if path.exists() else coef0  # ignored when resuming
        res = solve_checkpointed(solver, objective, start, max_iter=k + 2, every=3, **kw)
        np.testing.assert_array_equal(res.coef, ref.coef)
        assert (res.n_iter, res.loss, res.message) == (ref.n_iter, ref.loss, ref.message)
        # evaluation counts: the uninterrupted run's plus the one pass that restores the state
        assert ref.n_grad <= res.n_grad <= ref.n_grad + 1
    assert ref.n_iter == whole.n_iter and ref.converged


@pytest.mark.parametrize("mode", ["after", "during"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_sigkill_and_resume_is_bitwise_identical(tmp_path, uninterrupted, solver, mode):
    kill_at = 3
    path = run_child(tmp_path, kill_at, mode, solver)
    meta, _ = read_checkpoint(path)  # the last complete checkpoint is intact
    assert meta["state"]["solver"] == solver
    assert len(meta["state"]["history"]) == (kill_at if mode == "after" else kill_at - 1)
    X, y = problem()
    resumed = SoftmaxRegression(solver=solver, **KW).fit(X, y, checkpoint=path)
    same_fit(resumed, uninterrupted[solver])


def test_checkpoint_of_another_solver_is_refused(tmp_path):
    X, y = problem()
    path = tmp_path / "c.ckpt"
    with pytest.warns(ConvergenceWarning):
        SoftmaxRegression(solver="newton-cg", tol=1e-10, max_iter=2).fit(X, y, checkpoint=path)
    for other in ("newton", "lbfgs", "sgd"):
        with pytest.raises(CheckpointError, match="written by solver='newton-cg', not '"):
            SoftmaxRegression(solver=other).fit(X, y, checkpoint=path)
    # 'auto' resumes the exact solver that wrote the checkpoint (the same optimum)
    assert choose_solver(Objective(ArraySource(X, y, np.ones(y.size), 4), l2=1.0)) == "newton"
    auto = SoftmaxRegression(solver="auto", **KW).fit(X, y, checkpoint=path)
    assert auto.result_.solver == "newton-cg"
    same_fit(auto, SoftmaxRegression(solver="newton-cg", **KW).fit(X, y))
    # ... but not a stochastic one
    with pytest.warns(ConvergenceWarning):
        SoftmaxRegression(solver="sgd", max_iter=1).fit(X, y, checkpoint=path, resume=False)
    with pytest.raises(CheckpointError, match="written by solver='sgd'"):
        SoftmaxRegression(solver="auto").fit(X, y, checkpoint=path)


def tall(sparse):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2400, 4)) * [0.5, 1.0, 2.0, 4.0]
    y = np.argmax(X @ rng.normal(size=(3, 4)).T + rng.gumbel(size=(2400, 3)), axis=1)
    return (sp.csr_matrix(X) if sparse else X), y


@pytest.mark.parametrize("sparse, full", [(False, "newton"), (True, "newton-cg")])
def test_auto_with_checkpoint_replaces_subsampled_newton(tmp_path, sparse, full):
    X, y = tall(sparse)
    plain = SoftmaxRegression(solver="auto", tol=1e-10).fit(X, y)
    assert plain.result_.solver == "subsampled-newton"  # not resumable
    path = tmp_path / "c.ckpt"
    model = SoftmaxRegression(solver="auto", tol=1e-10).fit(X, y, checkpoint=path)
    assert model.result_.solver == full and model.result_.converged
    assert read_checkpoint(path)[0]["state"]["solver"] == full
    rel = np.abs(coef_of(model) - coef_of(plain)).max() / np.abs(coef_of(plain)).max()
    assert rel < 1e-8


def test_streamed_newton_cg_resumes_bitwise(tmp_path):
    X, y = problem(n=300, d=4, k=3)
    table = pa.table({**{f"f{j}": X[:, j] for j in range(4)}, "label": y})
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=64)

    def source():
        return ParquetSource(tmp_path / "d.parquet", target="label", batch_rows=50)

    whole = SoftmaxRegression(solver="newton-cg", **KW).fit(source())
    assert whole.n_iter_[0] >= 4
    path = tmp_path / "c.ckpt"
    with pytest.warns(ConvergenceWarning):
        SoftmaxRegression(solver="newton-cg", tol=1e-10, max_iter=2).fit(source(), checkpoint=path)
    resumed = SoftmaxRegression(solver="newton-cg", **KW).fit(source(), checkpoint=path)
    same_fit(resumed, whole)
    in_memory = SoftmaxRegression(solver="newton-cg", **KW).fit(X, y)
    assert (
        np.abs(coef_of(resumed) - coef_of(in_memory)).max()
        < 1e-8 * np.abs(coef_of(in_memory)).max()
    )
