"""Checkpoints: atomic files, safe reads, and kill-and-resume ending at the same coefficients."""

import json
import signal
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from softmaxreg import ConvergenceWarning, SoftmaxRegression
from softmaxreg._checkpoint import CheckpointError, read_checkpoint, write_checkpoint


def problem(n=400, d=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.linspace(0.2, 5, d)  # badly scaled: many iterations
    W = rng.normal(size=(k, d))
    y = np.argmax(X @ W.T / 3 + rng.gumbel(size=(n, k)), axis=1)
    return X, y


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_checkpoint import problem
    import softmaxreg._checkpoint as ck
    from softmaxreg import SoftmaxRegression

    kill_at, mode, path, solver = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    calls = [0]
    real_write, real_array = ck.write_checkpoint, np.lib.format.write_array

    def write(*args, **kw):
        calls[0] += 1
        real_write(*args, **kw)
        if mode == "after" and calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def torn_array(fh, arr, **kw):  # die half-way through writing an array
        if mode == "during" and calls[0] == kill_at:
            fh.write(b"\\x93NUMPY partial")
            os.kill(os.getpid(), signal.SIGKILL)
        return real_array(fh, arr, **kw)

    ck.write_checkpoint = write
    np.lib.format.write_array = torn_array
    X, y = problem()
    SoftmaxRegression(solver=solver, tol=1e-10, max_iter=500).fit(X, y, checkpoint=path)
    print("finished without being killed")
    """
)


def run_child(tmp_path, kill_at, mode, solver="lbfgs"):
    """Fit ``problem()`` in a subprocess that SIGKILLs itself at checkpoint write ``kill_at``
    (``mode``: just after it, or half-way through it); returns the checkpoint's path."""
    path = tmp_path / "fit.ckpt"
    code = CHILD.format(tests=str(__import__("pathlib").Path(__file__).parent))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(kill_at), mode, str(path), solver],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    return path


def coef_of(model):
    return np.hstack([model.coef_, model.intercept_[:, None]])


@pytest.fixture(scope="module")
def uninterrupted():
    X, y = problem()
    model = SoftmaxRegression(solver="lbfgs", tol=1e-10, max_iter=500).fit(X, y)
    assert model.n_iter_[0] > 12
    return model


@pytest.mark.parametrize("mode", ["after", "during"])
def test_sigkill_and_resume_is_bitwise_identical(tmp_path, uninterrupted, mode):
    kill_at = 7
    path = run_child(tmp_path, kill_at, mode)
    meta, arrays = read_checkpoint(path)  # the last complete checkpoint is intact
    done = len(meta["state"]["history"])
    assert done == (kill_at if mode == "after" else kill_at - 1)
    X, y = problem()
    resumed = SoftmaxRegression(solver="lbfgs", tol=1e-10, max_iter=500).fit(X, y, checkpoint=path)
    np.testing.assert_array_equal(coef_of(resumed), coef_of(uninterrupted))
    assert resumed.n_iter_[0] == uninterrupted.n_iter_[0]
    assert [r["loss"] for r in resumed.result_.history] == [
        r["loss"] for r in uninterrupted.result_.history
    ]


def test_resume_in_process_after_max_iter(tmp_path, uninterrupted):
    X, y = problem()
    path = tmp_path / "c.ckpt"
    with pytest.warns(ConvergenceWarning):
        SoftmaxRegression(solver="lbfgs", tol=1e-10, max_iter=4).fit(X, y, checkpoint=path)
    assert len(read_checkpoint(path)[0]["state"]["history"]) == 4
    model = SoftmaxRegression(solver="lbfgs", tol=1e-10, max_iter=500)
    model.fit(X, y, checkpoint=path, checkpoint_every=3)
    np.testing.assert_array_equal(coef_of(model), coef_of(uninterrupted))
    # resuming a finished checkpoint returns the same result without iterating
    again = SoftmaxRegression(solver="lbfgs", tol=1e-10, max_iter=500).fit(X, y, checkpoint=path)
    np.testing.assert_array_equal(coef_of(again), coef_of(uninterrupted))


def test_checkpoint_of_another_problem_is_refused(tmp_path):
    X, y = problem()
    path = tmp_path / "c.ckpt"
    with pytest.warns(ConvergenceWarning):
        SoftmaxRegression(solver="lbfgs", max_iter=2).fit(X, y, checkpoint=path)
    with pytest.raises(CheckpointError, match="another problem"):
        SoftmaxRegression(solver="lbfgs", C=0.1).fit(X, y, checkpoint=path)
    fresh = SoftmaxRegression(solver="lbfgs", C=0.1).fit(X, y, checkpoint=path, resume=False)
    assert read_checkpoint(path)[0]["problem"]["C"] == 0.1
    np.testing.assert_array_equal(
        coef_of(fresh), coef_of(SoftmaxRegression(solver="lbfgs", C=0.1).fit(X, y))
    )


def test_checkpoint_needs_a_resumable_solver(tmp_path):
    X, y = problem()
    with pytest.raises(ValueError, match="subsampled-newton.*lbfgs"):
        SoftmaxRegression(solver="subsampled-newton").fit(X, y, checkpoint=tmp_path / "c")
    with pytest.raises(ValueError, match="checkpoint_every"):
        SoftmaxRegression(solver="lbfgs").fit(X, y, checkpoint=tmp_path / "c", checkpoint_every=0)


def test_file_round_trip_and_tampering(tmp_path):
    path = tmp_path / "x.ckpt"
    arrays = {"x": np.arange(5.0), "S": np.ones((2, 5))}
    write_checkpoint(path, {"state": {"f": 0.1 + 0.2}}, arrays)
    meta, back = read_checkpoint(path)
    assert meta["state"]["f"] == 0.1 + 0.2  # floats round-trip exactly
    for k, v in arrays.items():
        np.testing.assert_array_equal(back[k], v)
    assert not list(tmp_path.glob(".*.tmp"))

    raw = path.read_bytes()
    (tmp_path / "trunc").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "trunc")
    flipped = bytearray(raw)
    flipped[raw.index(b"NUMPY") + 80] ^= 0xFF  # inside array data: zip CRC catches it
    (tmp_path / "flip").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "flip")

    def zip_with(name, payload, meta=None):
        p = tmp_path / name
        with zipfile.ZipFile(p, "w") as zf:
            zf.writestr(
                "meta.json", json.dumps(meta or {"format": "softmaxreg-checkpoint", "version": 1})
            )
            for entry, data in payload.items():
                zf.writestr(entry, data)
        return p

    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError):
        read_checkpoint(zip_with("pickle", {"x.npy": buf.getvalue()}))
    with pytest.raises(CheckpointError, match="unexpected entry"):
        read_checkpoint(zip_with("slip", {"../evil.npy": b""}))
    with pytest.raises(CheckpointError, match="version 99"):
        read_checkpoint(zip_with("v99", {}, {"format": "softmaxreg-checkpoint", "version": 99}))
    (tmp_path / "pickle.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "pickle.pkl")


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_stochastic_solvers_resume_bitwise(tmp_path, solver):
    X, y = problem(n=3000)
    kw = dict(solver=solver, max_iter=4)
    with pytest.warns(ConvergenceWarning):
        whole = SoftmaxRegression(**kw).fit(X, y)
    path = tmp_path / "s.ckpt"
    with pytest.warns(ConvergenceWarning):
        SoftmaxRegression(solver=solver, max_iter=2).fit(X, y, checkpoint=path)
    assert len(read_checkpoint(path)[0]["state"]["history"]) == 2
    with pytest.warns(ConvergenceWarning):
        resumed = SoftmaxRegression(**kw).fit(X, y, checkpoint=path)
    np.testing.assert_array_equal(coef_of(resumed), coef_of(whole))
    assert resumed.result_.n_iter == 4


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg", "newton"])
def test_resumed_fit_stops_at_its_own_tol(tmp_path, solver):
    """A finished checkpoint resumed with a tighter ``tol`` goes on to that accuracy."""
    X, y = problem()
    path = tmp_path / "c.ckpt"
    loose = SoftmaxRegression(solver=solver, tol=1e-3).fit(X, y, checkpoint=path)
    tight = SoftmaxRegression(solver=solver, tol=1e-9).fit(X, y, checkpoint=path)
    assert loose.result_.grad_norm > 1e-9 >= tight.result_.grad_norm
    assert tight.result_.converged and tight.result_.gtol == 1e-9
    done = loose.result_.history
    assert len(tight.result_.history) > len(done) and tight.result_.history[: len(done)] == done
    direct = SoftmaxRegression(solver=solver, tol=1e-9).fit(X, y)
    np.testing.assert_allclose(coef_of(tight), coef_of(direct), rtol=0, atol=1e-7)
