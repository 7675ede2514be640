"""Fuzz the model-file loader: every damaged or hostile file is a clean error or the same model.

Mutations of real model files (several estimators and label types):

``flip``, ``truncate``, ``splice``, ``chunk``
    Byte-level damage (random flips, truncation, the head of one file joined to the tail of
    another, a chunk inserted or deleted). Must give ``ModelFileError`` or a model whose
    probabilities are bit-identical to the original's.
``json``, ``npy``, ``manifest``
    A deliberate forger: ``model.json``, an ``.npy`` entry or the manifest is changed
    structurally (types swapped, keys dropped, hostile values, tags, deep nesting, huge
    shapes) and the checksums are recomputed, so that only the loader's own validation stands
    in the way. Must give ``ModelFileError``, or a model that predicts finite probabilities
    summing to one (or refuses the data with a ``ValueError``).
``entry``
    A zip entry with ``..``, an absolute or drive path, a symlink or a directory, listed in
    a valid manifest. Must give ``ModelFileError``; nothing is ever written outside.

Any other exception, a hang (each load runs under a 10 s alarm) or a NaN is a failure.

The CI test (``test_model_files.py``) runs a small fixed-seed budget. A long run::

    python -m tests.reliability.fuzz_modelfile --cases 20000 --seed 1

prints the counts per mutation and outcome and exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import signal
import sys
import tempfile
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

BYTE_KINDS = ("flip", "truncate", "splice", "chunk")
FORGED_KINDS = ("json", "npy", "manifest")
KINDS = (*BYTE_KINDS, *FORGED_KINDS, "entry")
HOSTILE_NAMES = (
    "../evil.npy",
    "arrays/../../evil.npy",
    "/tmp/evil.npy",
    "C:evil.npy",
    "arrays\\..\\evil.npy",
    "arrays//x.npy",
    "./model.json",
)
HOSTILE_VALUES = (
    None,
    True,
    -1,
    0,
    2**70,
    1e308,
    -0.0,
    "",
    "x",
    "../../etc/passwd",
    "A" * 5000,
    [],
    {},
    [1, 2],
    [[1, 2], [3]],
    {"$float": "nan"},
    {"$float": "__import__('os')"},
    {"$tuple": 5},
    {"$objects": [1, [2]]},
    {"$dict": [[[1], 2]]},
    {"$array": "coef_"},
    {"$array": "missing"},
    {"$eval": "1"},
    {"dtype": "|O", "values": [1, 2]},
    {"dtype": "<f8", "values": ["a", "b"]},
    {"dtype": "<U1", "values": ["a", "b"]},
    {"entry": "arrays/coef_.npy", "dtype": "<f8", "shape": [10**12, 10**12]},
    {"entry": "../x.npy", "dtype": "<f8", "shape": [1]},
)


class FuzzFailure(AssertionError):
    """A case that is neither a clean error nor an acceptable model."""


# -- the corpus: real model files ------------------------------------------------------------
def build_corpus(directory) -> list[dict]:
    """Fit and save small models of several kinds; each with data to predict on."""
    import pandas as pd
    import scipy.sparse as sp

    from softmaxreg import SoftmaxRegression, SoftmaxRegressionCV, save_model

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.arange(40) % 3
    frame = pd.DataFrame(X, columns=["a", "b c", "naïve"])
    cases = {
        "int": (SoftmaxRegression(), X, y),
        "str-names": (SoftmaxRegression(C=0.5), frame, np.array(["x", "yy", "zzz"])[y]),
        "binary-bool": (SoftmaxRegression(penalty=None), X, y == 1),
        "mixed-labels": (SoftmaxRegression(), X, np.array([1, "a", 2.5], dtype=object)[y]),
        "float32-sparse": (SoftmaxRegression(), sp.csr_matrix(X.astype(np.float32)), y),
        "rbf-basis": (SoftmaxRegression(basis="rbf:4"), X, y),
        "cv": (SoftmaxRegressionCV(Cs=2, cv=2), X, y),
    }
    corpus = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (model, data, labels) in cases.items():
            model.fit(data, labels)
            path = Path(directory) / f"{name}.smr"
            save_model(model, path, metadata={"name": name})
            corpus.append(
                {
                    "name": name,
                    "bytes": path.read_bytes(),
                    "X": data,
                    "proba": model.predict_proba(data).tobytes(),
                    "classes": [(type(c), c) for c in model.classes_.tolist()],
                }
            )
    return corpus


# -- zip helpers -------------------------------------------------------------------------------
def _entries(data: bytes) -> dict:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _rezip(entries: dict, infos: dict | None = None, fix_manifest=True) -> bytes:
    entries = dict(entries)
    if fix_manifest:
        manifest = json.loads(entries["manifest.json"])
        manifest["entries"] = {
            n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
            for n, d in entries.items()
            if n != "manifest.json"
        }
        entries["manifest.json"] = json.dumps(manifest).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name, blob in entries.items():
            zf.writestr((infos or {}).get(name, name), blob)
    return buffer.getvalue()


# -- mutations ---------------------------------------------------------------------------------
def _byte_mutation(kind, rng, data: bytes, other: bytes) -> bytes:
    if kind == "flip":
        out = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            out[int(rng.integers(len(out)))] ^= int(rng.integers(1, 256))
        return bytes(out)
    if kind == "truncate":
        return data[: int(rng.integers(0, len(data)))]
    if kind == "splice":
        i, j = int(rng.integers(0, len(data))), int(rng.integers(0, len(other)))
        return data[:i] + other[j:]
    i = int(rng.integers(0, len(data)))
    if rng.random() < 0.5:
        return (
            data[:i]
            + bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
            + data[i:]
        )
    return data[:i] + data[i + int(rng.integers(1, 64)) :]


def _json_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _json_paths(v, (*path, i))


def _mutate_json(rng, doc):
    doc = copy.deepcopy(doc)
    paths = list(_json_paths(doc))[1:]
    if not paths:
        return doc
    path = paths[int(rng.integers(len(paths)))]
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    op = rng.random()
    if op < 0.2 and isinstance(parent, dict):
        del parent[path[-1]]
    elif op < 0.3:
        parent[path[-1]] = f"__DEEP__{int(rng.integers(50, 3000))}"  # see _dumps
    else:
        parent[path[-1]] = copy.deepcopy(HOSTILE_VALUES[int(rng.integers(len(HOSTILE_VALUES)))])
    return doc


def _dumps(doc) -> bytes:
    """JSON text of ``doc`` where each ``"__DEEP__N"`` is N nested lists (too deep to build
    as Python objects)."""
    text = json.dumps(doc)
    while '"__DEEP__' in text:
        start = text.index('"__DEEP__')
        end = text.index('"', start + 1)
        depth = int(text[start + 9 : end])
        text = text[:start] + "[" * depth + "]" * depth + text[end + 1 :]
    return text.encode()


def _mutate_npy(rng, blob: bytes) -> bytes:
    if rng.random() < 0.5:  # a header of another shape, dtype or order
        a = np.lib.format.read_array(io.BytesIO(blob))
        choice = int(rng.integers(5))
        if choice == 0:
            a = a.astype(rng.choice(["<f4", ">f8", "<i8", "|b1", "<c16", "<U3"]))
        elif choice == 1:
            a = a.reshape(-1)
        elif choice == 2:
            a = np.full(a.shape, rng.choice([np.nan, np.inf, -np.inf, 1e308]))
        elif choice == 3:
            a = np.asfortranarray(np.atleast_2d(a))
        else:
            a = np.zeros((int(rng.integers(0, 4)),) * int(rng.integers(0, 3)))
        buffer = io.BytesIO()
        np.save(buffer, a, allow_pickle=False)
        return buffer.getvalue()
    out = bytearray(blob)  # damage inside the .npy, checksum recomputed
    for _ in range(int(rng.integers(1, 4))):
        out[int(rng.integers(len(out)))] ^= int(rng.integers(1, 256))
    return bytes(out)


def _forged(kind, rng, data: bytes) -> bytes:
    entries = _entries(data)
    if kind == "json":
        doc = json.loads(entries["model.json"])
        entries["model.json"] = _dumps(_mutate_json(rng, doc))
        return _rezip(entries)
    if kind == "npy":
        names = sorted(n for n in entries if n.endswith(".npy"))
        name = names[int(rng.integers(len(names)))]
        entries[name] = _mutate_npy(rng, entries[name])
        _forged.last = name
        return _rezip(entries)
    manifest = json.loads(entries["manifest.json"])
    _rezip_entries = dict(entries)
    _rezip_entries["manifest.json"] = _dumps(_mutate_json(rng, manifest))
    return _rezip(_rezip_entries, fix_manifest=False)


def _hostile_entry(rng, data: bytes) -> bytes:
    entries = _entries(data)
    choice = int(rng.integers(len(HOSTILE_NAMES) + 2))
    infos = {}
    if choice < len(HOSTILE_NAMES):
        name = HOSTILE_NAMES[choice]
    else:
        name = "arrays/link.npy" if choice == len(HOSTILE_NAMES) else "arrays/sub/"
        info = zipfile.ZipInfo(name)
        mode = 0o120777 if name.endswith(".npy") else 0o40755
        info.external_attr = mode << 16
        infos[name] = info
    entries[name] = b"/etc/passwd"
    return _rezip(entries, infos)


# -- running ---------------------------------------------------------------------------------
def _alarm(signum, frame):
    raise TimeoutError("loading took more than 10 s")


def check_case(kind, blob: bytes, source: dict, others: list, path: Path) -> str:
    """Load ``blob``; the outcome name, or :class:`FuzzFailure`."""
    from softmaxreg import ModelFileError, load_model

    path.write_bytes(blob)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        model = load_model(path)
    except ModelFileError as exc:
        if "\n" in str(exc) or len(str(exc)) < 20:
            raise FuzzFailure(f"{kind}: unclear error {exc!r}") from exc
        return "rejected"
    except Exception as exc:
        raise FuzzFailure(f"{kind}: {type(exc).__name__}: {exc}") from exc
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    if kind == "entry":
        raise FuzzFailure("a hostile zip entry was accepted")
    if kind in BYTE_KINDS:
        for candidate in [source, *others]:
            if model.predict_proba(candidate["X"]).tobytes() == candidate["proba"]:
                if [(type(c), c) for c in model.classes_.tolist()] != candidate["classes"]:
                    raise FuzzFailure(f"{kind}: classes changed")
                return "identical"
        raise FuzzFailure(f"{kind}: the damaged file loaded as a different model")
    return _forged_outcome(kind, model, source)


def _forged_outcome(kind, model, source) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            P = model.predict_proba(source["X"])
        except ValueError:
            return "forged-refuses-data"
        except Exception as exc:
            raise FuzzFailure(f"{kind}: predict_proba raised {type(exc).__name__}: {exc}") from exc
    if not (np.all(np.isfinite(P)) and np.allclose(P.sum(axis=1), 1.0)):
        raise FuzzFailure(
            f"{kind}: a forged file ({source['name']}, {getattr(_forged, 'last', '')}) predicts "
            "non-finite probabilities"
        )
    return "forged-loads"


def run(n_cases: int, seed: int = 0, corpus=None, directory=None) -> Counter:
    """Run ``n_cases`` mutations (cycling through :data:`KINDS`); counts per (kind, outcome)."""
    directory = Path(directory or tempfile.mkdtemp(prefix="smr-fuzz-"))
    corpus = corpus or build_corpus(directory)
    rng = np.random.default_rng(seed)
    counts: Counter = Counter()
    target = directory / "fuzzed.smr"
    for case in range(n_cases):
        kind = KINDS[case % len(KINDS)]
        source = corpus[int(rng.integers(len(corpus)))]
        other = corpus[int(rng.integers(len(corpus)))]
        if kind in BYTE_KINDS:
            blob = _byte_mutation(kind, rng, source["bytes"], other["bytes"])
        elif kind == "entry":
            blob = _hostile_entry(rng, source["bytes"])
        else:
            blob = _forged(kind, rng, source["bytes"])
        others = [other] if kind == "splice" else []
        counts[kind, check_case(kind, blob, source, others, target)] += 1
    escaped = [p for p in (directory.parent / "evil.npy", Path("/tmp/evil.npy")) if p.exists()]
    if escaped:
        raise FuzzFailure(f"files written outside the model: {escaped}")
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        counts = run(args.cases, args.seed)
    except FuzzFailure as exc:
        print(f"FAILURE: {exc}", file=sys.stderr)
        return 1
    for (kind, outcome), n in sorted(counts.items()):
        print(f"{kind:10s} {outcome:22s} {n}")
    print(f"total {sum(counts.values())} cases, 0 failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
