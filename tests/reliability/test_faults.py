"""Faults (RELIABILITY.md item 26): a process killed while writing any output leaves the
previous file intact.

Each output the command line writes (model, predictions, plot, ONNX graph) is rewritten by a
real ``softmaxreg`` process that SIGKILLs itself either half-way through writing the new file
or just before moving it into place. The previous file must be byte-identical afterwards, and
still load. Checkpoints are covered the same way by tests/test_checkpoint.py
(``test_sigkill_and_resume_is_bitwise_identical``). One driver process imports the package
once and forks a writer per case.
"""

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import softmaxreg
from softmaxreg._cli import main

DRIVER = textwrap.dedent(
    """
    import json, os, signal, sys

    import matplotlib, onnx, pandas, sklearn  # imported once, before forking
    from softmaxreg._cli import main

    real_fdopen, real_replace = os.fdopen, os.replace

    def from_atomic_write():
        return sys._getframe(2).f_code.co_name == "atomic_write"

    class Torn:
        \"\"\"A file that dies half-way through its first write.\"\"\"

        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: max(1, len(data) // 2)])
            self.f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    def run(mode, argv):
        def fdopen(*args, **kwargs):
            f = real_fdopen(*args, **kwargs)
            return Torn(f) if mode == "during" and from_atomic_write() else f

        def replace(src, dst):
            if mode == "before-replace" and from_atomic_write():
                os.kill(os.getpid(), signal.SIGKILL)
            return real_replace(src, dst)

        os.fdopen, os.replace = fdopen, replace
        os._exit(main(argv))

    statuses = []
    for mode, argv in json.loads(sys.argv[1]):
        pid = os.fork()
        if pid == 0:
            run(mode, argv)
        statuses.append(os.waitpid(pid, 0)[1])
    print(json.dumps([os.WIFSIGNALED(s) and os.WTERMSIG(s) for s in statuses]))
    """
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 2)), columns=["a", "b"])
    frame["y"] = np.array(["p", "q", "r"])[np.arange(60) % 3]
    frame.to_csv(d / "data.csv", index=False)
    frame.assign(a=frame.a * 3).to_csv(d / "other.csv", index=False)  # a different fit
    assert main(["fit", str(d / "data.csv"), "--target", "y", "-o", str(d / "m.smr"), "-q"]) == 0
    return d


def _outputs(d):
    """name -> (output path, command line that rewrites it)."""
    return {
        "model": ("out.smr", ["fit", d / "other.csv", "--target", "y", "-o", "{out}", "-q"]),
        "predictions": ("out.csv", ["predict", d / "m.smr", d / "other.csv", "-o", "{out}"]),
        "plot": (
            "out.png",
            ["plot", d / "m.smr", d / "other.csv", "--kind", "confusion", "-o", "{out}"],
        ),
        "onnx": ("out.onnx", ["export", d / "m.smr", "--onnx", "{out}"]),
    }


def _previous(name, d, path):
    """Write a valid previous version of the output (what the kill must not damage)."""
    if name == "model":
        assert main(["fit", str(d / "data.csv"), "--target", "y", "-o", str(path), "-q"]) == 0
    elif name == "predictions":
        path.write_text("prediction\np\n")
    elif name == "plot":
        path.write_bytes(b"\x89PNG previous image")
    else:
        path.write_bytes(b"previous onnx graph")
    return path.read_bytes()


MODES = ["during", "before-replace"]


def test_killed_writers_leave_the_previous_file(files, tmp_path):
    d = files
    cases = []
    for name, (filename, argv) in _outputs(d).items():
        for mode in MODES:
            work = tmp_path / f"{name}-{mode}"
            work.mkdir()
            out = work / filename
            before = _previous(name, d, out)
            cases.append(
                (name, mode, out, before, [str(a).replace("{out}", str(out)) for a in argv])
            )
    plan = json.dumps([(mode, argv) for _, mode, _, _, argv in cases])
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, plan], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    signals = json.loads(proc.stdout.splitlines()[-1])
    for (name, mode, out, before, _), sig in zip(cases, signals, strict=True):
        assert sig == signal.SIGKILL, (name, mode, proc.stderr)  # killed inside atomic_write
        assert out.read_bytes() == before, (name, mode)  # the previous file, intact
        others = sorted(p.name for p in out.parent.iterdir() if p != out)
        # at most the orphaned temporary file, hidden and named after the output
        assert all(p.startswith(f".{out.name}.") and p.endswith(".tmp") for p in others), others
        if name == "model":
            softmaxreg.load_model(out)  # and it still loads


@pytest.mark.parametrize("name", ["model", "predictions", "plot", "onnx"])
def test_an_uninterrupted_write_replaces_the_file(files, tmp_path, name, capsys):
    """The control: without the kill the same command does replace the previous file, and
    leaves no temporary file behind."""
    d = files
    filename, argv = _outputs(d)[name]
    out = tmp_path / filename
    before = _previous(name, d, out)
    assert main([str(a).replace("{out}", str(out)) for a in argv]) == 0, capsys.readouterr().err
    assert out.read_bytes() != before
    assert [p.name for p in tmp_path.iterdir()] == [filename]


def test_failed_write_cleans_up_and_keeps_the_previous_file(files, tmp_path, capsys):
    """An exception (not a kill) during the write: temporary file removed, previous kept."""
    from softmaxreg._modelfile import atomic_write

    out = tmp_path / "x.bin"
    out.write_bytes(b"previous")
    with pytest.raises(RuntimeError), atomic_write(out) as f:
        f.write(b"partial")
        raise RuntimeError("disk full")
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]
