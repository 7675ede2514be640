"""Checkpoints of solver state: atomic writes, safe reads (JSON and ``.npy``, never pickle).

A checkpoint file is a zip archive (stored, not compressed) with ``meta.json`` (format name
and version, a fingerprint of the problem, the solver's JSON-able state) and one ``.npy`` entry
per array of the state, written with ``allow_pickle=False`` and read back the same way. It is
written to a temporary file in the same directory, flushed and ``fsync``-ed, then moved over the
old one with ``os.replace``: a crash at any moment leaves either the previous checkpoint or the
new one, never a torn file.

:func:`solve_checkpointed` runs a resumable solver (L-BFGS, trust-region Newton-CG, exact
Newton, SGD, Adam) from the state in a checkpoint, if there is one for the same problem, and
writes a checkpoint every ``every`` iterations.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from ._solvers import blas_limits, choose_solver, full_solver, lbfgs, newton, newton_cg
from ._solvers._base import CountingOracle
from ._stochastic import STOCHASTIC_SOLVERS

__all__ = [
    "CheckpointError",
    "read_checkpoint",
    "resumable_solver",
    "solve_checkpointed",
    "write_checkpoint",
]

FORMAT = "softmaxreg-checkpoint"
VERSION = 1
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: Solvers whose whole state we own and can resume exactly.
RESUMABLE = {
    "lbfgs": lbfgs.minimize,
    "newton-cg": newton_cg.minimize,
    "newton": newton.minimize,
    **STOCHASTIC_SOLVERS,
}
#: The resumable solvers that reach the exact optimum (``"auto"`` may run any of them).
EXACT = ("lbfgs", "newton-cg", "newton")


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, tampered with, or belongs to another problem."""


def write_checkpoint(path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Atomically write ``meta`` (JSON-able) and numeric ``arrays`` to ``path``."""
    path = Path(path)
    for name in arrays:
        if not _NAME.match(name):
            raise ValueError(f"Invalid array name {name!r} for a checkpoint.")
    doc = {"format": FORMAT, "version": VERSION, **meta}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr("meta.json", json.dumps(doc))
                for name, arr in arrays.items():
                    with zf.open(f"{name}.npy", "w", force_zip64=True) as out:
                        np.lib.format.write_array(
                            out, np.ascontiguousarray(arr), allow_pickle=False
                        )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def read_checkpoint(path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read a checkpoint written by :func:`write_checkpoint`; returns ``(meta, arrays)``.

    Raises
    ------
    CheckpointError
        If the file is not a checkpoint, is corrupt (zip CRC checked), has an unknown format
        version, or holds anything but plain numeric arrays.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if "meta.json" not in names:
                raise CheckpointError(f"{path} is not a softmaxreg checkpoint (no meta.json).")
            meta = json.loads(zf.read("meta.json"))
            arrays = {}
            for entry in names:
                if entry == "meta.json":
                    continue
                stem = entry[:-4] if entry.endswith(".npy") else ""
                if not _NAME.match(stem):
                    raise CheckpointError(f"{path} has an unexpected entry {entry!r}.")
                with zf.open(entry) as fh:
                    arrays[stem] = np.lib.format.read_array(fh, allow_pickle=False)
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path} is not a readable softmaxreg checkpoint: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a softmaxreg checkpoint.")
    if meta.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {meta.get('version')!r}; this softmaxreg "
            f"reads version {VERSION}. Upgrade softmaxreg or start the fit afresh."
        )
    for name, arr in arrays.items():
        if arr.dtype.kind not in "fiub":
            raise CheckpointError(f"{path}: array {name!r} has non-numeric dtype {arr.dtype}.")
    return meta, arrays


def _split_state(state: dict) -> tuple[dict, dict]:
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    return rest, arrays


def _load_state(path, problem: dict, solver: str) -> dict | None:
    meta, arrays = read_checkpoint(path)
    if meta.get("problem") != problem:
        raise CheckpointError(
            f"The checkpoint {path} belongs to another problem "
            f"(saved {meta.get('problem')}, now {problem}). Delete it, pick another path, or "
            "pass resume=False to start afresh."
        )
    saved = meta.get("state", {}).get("solver")
    if saved != solver:
        raise CheckpointError(
            f"The checkpoint {path} was written by solver={saved!r}, not {solver!r}: a "
            f"solver resumes only its own state. Resume with solver={saved!r}, "
            "delete it, pick another path, or pass resume=False to start afresh."
        )
    return {**meta["state"], **arrays}


def _saved_exact_solver(path) -> str | None:
    """The solver that wrote the checkpoint at ``path``, if it is an exact resumable one."""
    try:
        solver = read_checkpoint(path)[0].get("state", {}).get("solver")
    except CheckpointError:
        return None  # _load_state reports it
    return solver if solver in EXACT else None


def resumable_solver(name, objective, path=None, resume=True) -> str:
    """The solver a checkpointed fit runs for ``name``.

    ``"auto"`` resumes the exact solver (:data:`EXACT`) of an existing checkpoint at ``path``
    (each reaches the same optimum); else it keeps the choice of
    :func:`~softmaxreg._solvers.choose_solver`, except subsampled Newton (its state is not
    resumable), replaced by :func:`~softmaxreg._solvers.full_solver` (the same optimum).
    """
    if name != "auto":
        return name
    if resume and path is not None and Path(path).exists():
        saved = _saved_exact_solver(path)
        if saved is not None:
            return saved
    name = choose_solver(objective)
    return name if name in RESUMABLE else full_solver(objective)


def solve_checkpointed(
    name,
    objective,
    coef0,
    *,
    tol,
    max_iter,
    callback=None,
    path,
    every=1,
    resume=True,
    problem=None,
):
    """Run a resumable solver, checkpointing to ``path`` every ``every`` iterations.

    Parameters
    ----------
    name : str
        ``"lbfgs"``, ``"newton-cg"``, ``"newton"`` (resumed after any accepted step),
        ``"sgd"`` or ``"adam"`` (resumed at epoch boundaries), or ``"auto"``
        (:func:`resumable_solver`).
    objective : Objective
    coef0 : ndarray of shape (n_coef,)
        Start, unless a checkpoint is resumed.
    path : str or Path
        Checkpoint file. With ``resume=True`` and an existing file, the fit continues from it
        (it must be for the same ``problem``); otherwise it is overwritten.
    every : int
        Write every ``every`` iterations, and always at the end.
    problem : dict
        JSON-able fingerprint of the problem (data shape, classes, penalty, ...).

    Returns
    -------
    SolverResult
    """
    name = resumable_solver(name, objective, path, resume)
    if name not in RESUMABLE:
        raise ValueError(
            f"solver={name!r} cannot resume from a checkpoint: checkpoints need a solver whose "
            f"state softmaxreg owns, one of {sorted(RESUMABLE)} or 'auto'. Use one of these "
            "with checkpoint= (the exact ones, and 'auto', reach the same optimum)."
        )
    every = int(every)
    if every < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {every!r}.")
    problem = json.loads(json.dumps(problem or {}))  # normalise (tuples -> lists)
    state0 = _load_state(path, problem, name) if resume and Path(path).exists() else None
    last = {}

    def save(state):
        last["state"] = state
        last["saved"] = len(state["history"]) % every == 0
        if last["saved"]:
            rest, arrays = _split_state(state)
            write_checkpoint(path, {"problem": problem, "state": rest}, arrays)

    # The BLAS threads of the fit without a checkpoint (``solve`` limits them for exact solvers)
    limits = nullcontext() if name in STOCHASTIC_SOLVERS else blas_limits(objective)
    with limits:
        result = RESUMABLE[name](
            CountingOracle(objective),
            coef0,
            tol=tol,
            max_iter=max_iter,
            callback=callback,
            resume=state0,
            checkpoint=save,
        )
    if last and not last["saved"]:  # the final state, whatever checkpoint_every
        rest, arrays = _split_state(last["state"])
        write_checkpoint(path, {"problem": problem, "state": rest}, arrays)
    return result
