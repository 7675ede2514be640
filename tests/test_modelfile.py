"""Model files: bit-identical round trips, old files still load, and hostile files are refused.

A refused file raises ``ModelFileError`` (a ``ValueError``) and never runs code: the pickle and
object-array tests plant a payload that would create a marker file if it ever ran.
"""

import hashlib
import io
import json
import os
import pickle
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import softmaxreg
from softmaxreg import ModelFileError, SoftmaxRegression, load_model, save_model
from softmaxreg._modelfile import FORMAT_VERSION

DATA = Path(__file__).parent / "data"


def _blobs(n=60, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    codes = np.arange(n) % k
    centres = 2.0 * rng.standard_normal((k, d))
    return centres[codes] + rng.standard_normal((n, d)), codes


def _fit(kind):
    X, codes = _blobs()
    if kind == "int":
        return SoftmaxRegression().fit(X, codes), X
    if kind == "str":
        return SoftmaxRegression().fit(X, np.array(["a", "bb", "a long label"])[codes]), X
    if kind == "str-object":
        return SoftmaxRegression().fit(X, pd.Series(["x", "y", "z"])[codes].to_numpy(object)), X
    if kind == "bool":
        return SoftmaxRegression().fit(X, codes == 1), X
    if kind == "float-labels":
        return SoftmaxRegression().fit(X, codes * 2.0 - 1.0), X
    if kind == "binary-int":
        return SoftmaxRegression(C=0.3).fit(X, np.where(codes == 0, 7, -2)), X
    if kind == "sparse":
        Xs = sp.csr_matrix(np.where(np.abs(X) > 1, X, 0.0))
        return SoftmaxRegression(solver="lbfgs", max_iter=500).fit(Xs, codes), Xs
    if kind == "feature-names":
        frame = pd.DataFrame(X, columns=["f0", "weight (kg)", "naïve", "z"])
        return SoftmaxRegression().fit(frame, codes), frame
    if kind == "float32":
        return SoftmaxRegression().fit(X.astype(np.float32), codes), X.astype(np.float32)
    if kind == "unpenalised-no-intercept":
        return SoftmaxRegression(penalty=None, fit_intercept=False).fit(X, codes), X
    if kind == "class-weight":
        return SoftmaxRegression(class_weight={0: 2.0, 1: 1.0, 2: 0.5}).fit(X, codes), X
    raise AssertionError(kind)


KINDS = [
    "int",
    "str",
    "str-object",
    "bool",
    "float-labels",
    "binary-int",
    "sparse",
    "feature-names",
    "float32",
    "unpenalised-no-intercept",
    "class-weight",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved 3-class model with string labels and feature names, and its path."""
    model, X = _fit("feature-names")
    path = tmp_path_factory.mktemp("model") / "model.smr"
    save_model(model, path, metadata={"encoders": {"colour": ["red", "blue"]}})
    return model, X, path


# -- round trips ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_is_bit_identical(kind, tmp_path):
    model, X = _fit(kind)
    path = tmp_path / "m.smr"
    save_model(model, path)
    loaded = load_model(path)
    assert loaded.predict_proba(X).tobytes() == model.predict_proba(X).tobytes()
    assert loaded.predict_proba(X).dtype == model.predict_proba(X).dtype
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.classes_.dtype == model.classes_.dtype
    assert [type(c) for c in loaded.classes_] == [type(c) for c in model.classes_]
    assert loaded.classes_.tolist() == model.classes_.tolist()
    for name in ("coef_", "intercept_", "n_iter_"):
        got, want = getattr(loaded, name), getattr(model, name)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
    assert loaded.get_params() == model.get_params()
    assert loaded.n_features_in_ == model.n_features_in_
    if hasattr(model, "feature_names_in_"):
        assert list(loaded.feature_names_in_) == list(model.feature_names_in_)
    else:
        assert not hasattr(loaded, "feature_names_in_")
    assert loaded.model_metadata_ == {}
    result, original = loaded.result_, model.result_
    assert (result.converged, result.n_iter, result.solver) == (
        original.converged,
        original.n_iter,
        original.solver,
    )
    assert result.history == original.history
    np.testing.assert_array_equal(result.coef, original.coef)


def test_metadata_round_trip_and_resave(saved, tmp_path):
    model, X, path = saved
    loaded = load_model(path)
    assert loaded.model_metadata_ == {"encoders": {"colour": ["red", "blue"]}}
    again = tmp_path / "again.smr"
    save_model(loaded, again)  # keeps the metadata it was loaded with
    assert load_model(again).model_metadata_ == loaded.model_metadata_
    assert again.read_bytes() == path.read_bytes()  # same model, same bytes


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": float("nan")}, ["not", "a", "dict"]])
def test_metadata_must_be_json(bad, tmp_path):
    model, _ = _fit("int")
    with pytest.raises(TypeError, match="metadata"):
        save_model(model, tmp_path / "m.smr", metadata=bad)
    assert not (tmp_path / "m.smr").exists()


def test_unfitted_model_is_refused(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        save_model(SoftmaxRegression(), tmp_path / "m.smr")


def test_extra_fitted_attributes_are_kept(tmp_path):
    model, X = _fit("int")
    model.offset_scale_ = np.array([1.0, 2.0, 3.0])
    model.extra_info_ = {"k": (1, 2), 3: float("inf"), "none": None}
    save_model(model, tmp_path / "m.smr")
    loaded = load_model(tmp_path / "m.smr")
    np.testing.assert_array_equal(loaded.offset_scale_, model.offset_scale_)
    assert loaded.extra_info_ == model.extra_info_


def test_unsaveable_attribute_warns(tmp_path):
    model, _ = _fit("int")
    model.cache_ = object()
    with pytest.warns(UserWarning, match="cache_"):
        save_model(model, tmp_path / "m.smr")
    assert not hasattr(load_model(tmp_path / "m.smr"), "cache_")


def test_save_is_atomic(saved, tmp_path, monkeypatch):
    model, _, path = saved
    target = tmp_path / "m.smr"
    target.write_bytes(path.read_bytes())
    before = target.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(zipfile.ZipFile, "writestr", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(model, target)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.smr"]  # no temporary file left behind


def test_public_aliases():
    assert softmaxreg.save is save_model and softmaxreg.load is load_model
    assert issubclass(ModelFileError, ValueError)


# -- older files ---------------------------------------------------------------------------
def test_stored_v1_file_still_loads():
    """``tests/data/model_v1.smr`` was written by format version 1 (make_model_v1.py)."""
    with zipfile.ZipFile(DATA / "model_v1.smr") as zf:
        assert json.loads(zf.read("manifest.json"))["format_version"] == 1
    expected = json.loads((DATA / "model_v1_expected.json").read_text())
    model = load_model(DATA / "model_v1.smr")
    rows = pd.DataFrame(expected["rows"], columns=expected["columns"])
    assert model.predict_proba(rows).tolist() == expected["predict_proba"]
    assert model.predict(rows).tolist() == expected["predict"]
    assert model.classes_.tolist() == expected["classes"]
    assert model.model_metadata_ == {"source": "make_model_v1.py"}
    assert model.class_weight == {"cat": 2.0, "dog": 1.0, "emu": 1.0}


# -- tampering -----------------------------------------------------------------------------
def _entries(path):
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _rewrite(path, entries, *, fix_manifest=True, infos=None, compress=zipfile.ZIP_STORED):
    """Write ``entries`` as a zip, recomputing the manifest's checksums (a deliberate forger)."""
    entries = dict(entries)
    if fix_manifest:
        manifest = json.loads(entries["manifest.json"])
        manifest["entries"] = {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in entries.items()
            if name != "manifest.json"
        }
        entries["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w", compress) as zf:
        for name, data in entries.items():
            zf.writestr((infos or {}).get(name, name), data)


def _npy(array, allow_pickle=False):
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def test_forged_but_consistent_file_loads(saved, tmp_path):
    """The forging helper itself is faithful: an unmodified rewrite loads."""
    model, X, path = saved
    _rewrite(tmp_path / "m.smr", _entries(path))
    assert load_model(tmp_path / "m.smr").predict_proba(X).tobytes() == (
        model.predict_proba(X).tobytes()
    )


def test_flipped_byte_is_detected(saved, tmp_path):
    _, _, path = saved
    data = bytearray(path.read_bytes())
    offset = data.index(b"\x93NUMPY") + 200  # inside the first array's values
    data[offset] ^= 0x10
    (tmp_path / "m.smr").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="damaged|Checksum|CRC"):
        load_model(tmp_path / "m.smr")


def test_entry_checksum_mismatch_is_detected(saved, tmp_path):
    _, _, path = saved
    entries = _entries(path)
    coef = np.load(io.BytesIO(entries["arrays/coef_.npy"]))
    entries["arrays/coef_.npy"] = _npy(coef + 1.0)  # a valid zip, but not what was signed
    _rewrite(tmp_path / "m.smr", entries, fix_manifest=False)
    with pytest.raises(ModelFileError, match="Checksum mismatch for entry 'arrays/coef_.npy'"):
        load_model(tmp_path / "m.smr")


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_is_rejected(saved, tmp_path, fraction):
    _, _, path = saved
    data = path.read_bytes()
    (tmp_path / "m.smr").write_bytes(data[: int(fraction * len(data))])
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "m.smr")


def _edit_model_json(path, out, edit):
    entries = _entries(path)
    doc = json.loads(entries["model.json"])
    edit(doc, entries)
    entries["model.json"] = json.dumps(doc).encode()
    _rewrite(out, entries)


def test_wrong_coef_shape_is_rejected(saved, tmp_path):
    _, _, path = saved

    def edit(doc, entries):
        entries["arrays/coef_.npy"] = _npy(np.zeros((3, 5)))
        doc["arrays"]["coef_"]["shape"] = [3, 5]

    _edit_model_json(path, tmp_path / "m.smr", edit)
    with pytest.raises(ModelFileError, match="coef_ has 5 columns but the model has 4 features"):
        load_model(tmp_path / "m.smr")


def test_array_not_matching_its_declaration_is_rejected(saved, tmp_path):
    _, _, path = saved

    def edit(doc, entries):
        entries["arrays/intercept_.npy"] = _npy(np.zeros(2))

    _edit_model_json(path, tmp_path / "m.smr", edit)
    with pytest.raises(ModelFileError, match="intercept_.*declares"):
        load_model(tmp_path / "m.smr")


def test_wrong_number_of_classes_is_rejected(saved, tmp_path):
    _, _, path = saved

    def edit(doc, entries):
        doc["classes"]["values"] = doc["classes"]["values"][:2] + [3, 4]

    _edit_model_json(path, tmp_path / "m.smr", edit)
    with pytest.raises(ModelFileError, match="Inconsistent model file: 4 classes"):
        load_model(tmp_path / "m.smr")


@pytest.mark.parametrize(
    "version, match",
    [
        (FORMAT_VERSION + 1, "made by a newer softmaxreg"),
        (99, "made by a newer softmaxreg"),
        (0, "Invalid format version"),
        ("1", "Invalid format version"),
        (True, "Invalid format version"),
    ],
)
def test_format_version_is_checked(saved, tmp_path, version, match):
    _, _, path = saved
    entries = _entries(path)
    manifest = json.loads(entries["manifest.json"])
    manifest["format_version"] = version
    entries["manifest.json"] = json.dumps(manifest).encode()
    _rewrite(tmp_path / "m.smr", entries, fix_manifest=False)
    with pytest.raises(ModelFileError, match=match):
        load_model(tmp_path / "m.smr")


def _symlink_info(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777) << 16
    return info


@pytest.mark.parametrize(
    "name, infos, match",
    [
        ("../evil.npy", None, "Unsafe entry name"),
        ("arrays/../../evil.npy", None, "Unsafe entry name"),
        ("/etc/evil.npy", None, "Unsafe entry name"),
        ("C:\\evil.npy", None, "Unsafe entry name"),
        ("link.npy", {"link.npy": _symlink_info("link.npy")}, "link"),
    ],
)
def test_unsafe_entries_are_rejected(saved, tmp_path, name, infos, match):
    _, _, path = saved
    entries = _entries(path)
    entries[name] = b"/etc/passwd"
    _rewrite(tmp_path / "m.smr", entries, infos=infos)
    with pytest.raises(ModelFileError, match=match):
        load_model(tmp_path / "m.smr")


def test_unlisted_entry_is_rejected(saved, tmp_path):
    _, _, path = saved
    entries = _entries(path)
    _rewrite(tmp_path / "base.smr", entries)
    with zipfile.ZipFile(tmp_path / "base.smr", "a") as zf:
        zf.writestr("arrays/extra.npy", _npy(np.zeros(1)))
    with pytest.raises(ModelFileError, match="unexpected: \\['arrays/extra.npy'\\]"):
        load_model(tmp_path / "base.smr")


def test_compressed_entries_are_rejected(saved, tmp_path):
    _, _, path = saved
    _rewrite(tmp_path / "m.smr", _entries(path), compress=zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelFileError, match="compressed"):
        load_model(tmp_path / "m.smr")


class _Payload:
    """Unpickling this would create the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_renamed_to_model_file_is_rejected_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.smr"
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(path)
    assert not marker.exists()
    model, _ = _fit("int")  # and a pickled model, the classic case
    path.write_bytes(pickle.dumps(model, protocol=2))
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(path)


def test_object_array_entry_is_rejected_without_running(saved, tmp_path):
    marker = tmp_path / "pwned"
    _, _, path = saved

    def edit(doc, entries):
        payload = np.array([_Payload(marker), 1], dtype=object)
        entries["arrays/coef_.npy"] = _npy(payload, allow_pickle=True)
        doc["arrays"]["coef_"]["dtype"] = "|O"
        doc["arrays"]["coef_"]["shape"] = [2]

    _edit_model_json(path, tmp_path / "m.smr", edit)
    with pytest.raises(ModelFileError):
        load_model(tmp_path / "m.smr")
    assert not marker.exists()


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: d["params"].update(C={"$eval": "__import__('os')"}), "unknown tag"),
        (lambda d: d["extras"].update(classes_=[1, 2]), "Invalid fitted attribute"),
        (lambda d: d["extras"].update(predict_proba="x"), "Invalid fitted attribute"),
        (lambda d: d["classes"].update(dtype="|O8"), "Forbidden class label dtype"),
        (lambda d: d["classes"].update(values=[1]), "fewer than two classes"),
        (lambda d: d.update(estimator="os.system"), "Unknown estimator"),
        (lambda d: d.update(feature_names=[1, 2, 3, 4]), "not strings"),
        (lambda d: d.update(n_features_in="4"), "n_features_in"),
    ],
)
def test_hostile_model_json_is_rejected(saved, tmp_path, edit, match):
    _, _, path = saved
    _edit_model_json(path, tmp_path / "m.smr", lambda doc, entries: edit(doc))
    with pytest.raises(ModelFileError, match=match):
        load_model(tmp_path / "m.smr")


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "not a softmaxreg model file"),
        (b"hello, world", "not a softmaxreg model file"),
        (b"PK\x03\x04" + b"\x00" * 40, "damaged or truncated"),
    ],
)
def test_not_a_model_file(tmp_path, data, match):
    (tmp_path / "m.smr").write_bytes(data)
    with pytest.raises(ModelFileError, match=match):
        load_model(tmp_path / "m.smr")


def test_zip_without_manifest_or_with_bad_manifest(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.smr", "w") as zf:
        zf.writestr("model.json", "{}")
    with pytest.raises(ModelFileError, match="no manifest"):
        load_model(tmp_path / "a.smr")
    with zipfile.ZipFile(tmp_path / "b.smr", "w") as zf:
        zf.writestr("manifest.json", '{"format": "something-else"}')
    with pytest.raises(ModelFileError, match="unknown format"):
        load_model(tmp_path / "b.smr")
    with zipfile.ZipFile(tmp_path / "c.smr", "w") as zf:
        zf.writestr("manifest.json", "{not json")
    with pytest.raises(ModelFileError, match="damaged"):
        load_model(tmp_path / "c.smr")


def test_fuzz_flips_and_truncations(saved, tmp_path):
    """Random damage gives a ModelFileError or (for bytes zip ignores) the very same model."""
    model, X, path = saved
    data = path.read_bytes()
    want = model.predict_proba(X).tobytes()
    rng = np.random.default_rng(12345)
    target = tmp_path / "fuzz.smr"
    outcomes = {"rejected": 0, "identical": 0}
    for trial in range(300):
        mutated = bytearray(data)
        if trial % 3 == 0:
            mutated = mutated[: rng.integers(0, len(data))]
        else:
            for _ in range(1 + trial % 2):
                mutated[rng.integers(0, len(data))] ^= int(rng.integers(1, 256))
        target.write_bytes(bytes(mutated))
        try:
            loaded = load_model(target)
        except ModelFileError:
            outcomes["rejected"] += 1
            continue
        assert loaded.predict_proba(X).tobytes() == want, f"trial {trial}"
        assert loaded.classes_.tolist() == model.classes_.tolist()
        assert loaded.model_metadata_ == {"encoders": {"colour": ["red", "blue"]}}
        outcomes["identical"] += 1
    assert outcomes["rejected"] > 250  # nearly every byte is covered by a CRC or a checksum


# -- the basis contract (softmaxreg._basis, another module) --------------------------------
class _FakeBasis:
    def __init__(self, centres, gamma):
        self.centres, self.gamma = centres, gamma


def _fake_basis_module(calls):
    module = types.ModuleType("softmaxreg._basis")

    def basis_to_state(basis):
        calls.append("to_state")
        return {"kind": "rbf", "gamma": basis.gamma}, {"centres": basis.centres}

    def basis_from_state(state, arrays):
        calls.append("from_state")
        assert state["kind"] == "rbf"
        return _FakeBasis(arrays["centres"], state["gamma"])

    module.basis_to_state = basis_to_state
    module.basis_from_state = basis_from_state
    return module


def test_basis_is_saved_through_the_basis_module(tmp_path, monkeypatch):
    calls = []
    fake = _fake_basis_module(calls)
    monkeypatch.setitem(sys.modules, "softmaxreg._basis", fake)
    monkeypatch.setattr(softmaxreg, "_basis", fake, raising=False)
    model, _ = _fit("int")
    model.basis_ = _FakeBasis(np.arange(6.0).reshape(3, 2), 0.25)
    save_model(model, tmp_path / "m.smr")
    loaded = load_model(tmp_path / "m.smr")
    assert calls == ["to_state", "from_state"]
    assert loaded.basis_.gamma == 0.25
    np.testing.assert_array_equal(loaded.basis_.centres, model.basis_.centres)


def test_basis_without_basis_module_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "softmaxreg._basis", None)  # import fails
    monkeypatch.delattr(softmaxreg, "_basis", raising=False)
    model, _ = _fit("int")
    model.basis_ = _FakeBasis(np.zeros((1, 1)), 1.0)
    with pytest.raises(ModelFileError, match="basis"):
        save_model(model, tmp_path / "m.smr")
    assert not (tmp_path / "m.smr").exists()


@pytest.mark.parametrize("basis", ["rbf:5", "spline:4", "poly:2", "transformer"])
def test_real_basis_round_trip(tmp_path, basis):
    from sklearn.preprocessing import PolynomialFeatures

    X, codes = _blobs()
    spec = PolynomialFeatures(degree=2) if basis == "transformer" else basis
    model = SoftmaxRegression(basis=spec, max_iter=300).fit(X, codes)
    save_model(model, tmp_path / "m.smr")
    loaded = load_model(tmp_path / "m.smr")
    assert loaded.predict_proba(X).tobytes() == model.predict_proba(X).tobytes()
    assert type(loaded.basis_) is type(model.basis_)
    assert repr(loaded.get_params()["basis"]) == repr(model.get_params()["basis"])


def test_array_parameter_round_trip(tmp_path):
    X, codes = _blobs()
    if "penalty_factor" not in SoftmaxRegression().get_params():
        pytest.fail("SoftmaxRegression lost its penalty_factor parameter; update this test")
    model = SoftmaxRegression(penalty_factor=np.array([1.0, 2.0, 0.0, 0.5])).fit(X, codes)
    save_model(model, tmp_path / "m.smr")
    loaded = load_model(tmp_path / "m.smr")
    np.testing.assert_array_equal(loaded.penalty_factor, model.penalty_factor)
    assert loaded.predict_proba(X).tobytes() == model.predict_proba(X).tobytes()


def test_basis_input_width_is_checked(tmp_path):
    X, codes = _blobs()
    model = SoftmaxRegression(basis="poly:2").fit(X, codes)
    save_model(model, tmp_path / "m.smr")
    _edit_model_json(
        tmp_path / "m.smr", tmp_path / "bad.smr", lambda doc, e: doc.update(n_features_in=5)
    )
    with pytest.raises(ModelFileError, match="the basis takes 4 features but the model has 5"):
        load_model(tmp_path / "bad.smr")


def test_npy_header_claiming_a_huge_array_is_rejected_before_allocating(saved, tmp_path):
    _, _, path = saved

    def edit(doc, entries):
        blob = _npy(np.zeros((3, 4)))
        header = blob[: blob.index(b"\n") + 1].replace(b"(3, 4)", b"(3, 400000000000)")
        entries["arrays/coef_.npy"] = header + blob[len(header) :]
        doc["arrays"]["coef_"]["shape"] = [3, 400000000000]

    _edit_model_json(path, tmp_path / "m.smr", edit)
    with pytest.raises(ModelFileError, match="claims shape"):
        load_model(tmp_path / "m.smr")


def test_cv_estimator_round_trip(tmp_path):
    X, codes = _blobs()
    model = softmaxreg.SoftmaxRegressionCV(Cs=3, cv=3).fit(X, codes)
    save_model(model, tmp_path / "m.smr")
    loaded = load_model(tmp_path / "m.smr")
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    assert loaded.C_ == model.C_
    np.testing.assert_array_equal(loaded.scores_, model.scores_)
    assert loaded.predict_proba(X).tobytes() == model.predict_proba(X).tobytes()


def test_unknown_estimator_class_is_refused_at_save(tmp_path):
    class Custom(SoftmaxRegression):
        pass

    X, codes = _blobs()
    with pytest.raises(ModelFileError, match="Cannot save a Custom"):
        save_model(Custom().fit(X, codes), tmp_path / "m.smr")
    assert not (tmp_path / "m.smr").exists()
