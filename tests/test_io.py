"""Data file readers of the CLI: formats, encoding of columns, and every kind of bad file."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import dump_svmlight_file

from softmaxreg._io import (
    DataError,
    DataSpec,
    UnseenCategoryWarning,
    detect_format,
    load_for_model,
    load_training,
    read_frame,
    read_libsvm,
)


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 30
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "n": rng.integers(0, 5, size=n),
            "color": rng.choice(["red", "green", "blue"], size=n),
            "flag": rng.integers(0, 2, size=n).astype(bool),
            "y": rng.choice(["a", "b", "c"], size=n),
        }
    )


def write(path, text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(data)
    return path


# -- formats ---------------------------------------------------------------------------------
def test_detect_format():
    assert detect_format("a.csv") == "csv"
    assert detect_format("a.CSV.gz") == "csv"
    assert detect_format("a.parquet") == "parquet"
    assert detect_format("a.svm.gz") == "libsvm"
    assert detect_format("a.weird", "parquet") == "parquet"
    for ambiguous in ("a.weird", "a.txt"):  # .txt: CSV and LIBSVM files both use it
        with pytest.raises(DataError, match="--format"):
            detect_format(ambiguous)


def test_csv_gzip_and_parquet_read_the_same(tmp_path, frame):
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_csv(tmp_path / "d.csv.gz", index=False)
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    loaded = [load_training(tmp_path / f, target="y") for f in ("d.csv", "d.csv.gz", "d.parquet")]
    for other in loaded[1:]:
        np.testing.assert_array_equal(other.X.to_numpy(), loaded[0].X.to_numpy())
        np.testing.assert_array_equal(other.y, loaded[0].y)
        assert other.spec.to_dict() == loaded[0].spec.to_dict()


def test_encoding_of_columns(tmp_path, frame):
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = load_training(tmp_path / "d.csv", target="y")
    spec = data.spec
    kinds = {c["name"]: c["kind"] for c in spec.columns}
    assert kinds == {"x1": "numeric", "n": "numeric", "color": "categorical", "flag": "numeric"}
    assert list(data.X.columns) == ["x1", "n", "color=blue", "color=green", "color=red", "flag"]
    onehot = data.X[["color=blue", "color=green", "color=red"]].to_numpy()
    np.testing.assert_array_equal(onehot.sum(axis=1), 1.0)
    np.testing.assert_array_equal(onehot.argmax(axis=1), pd.Categorical(frame.color).codes)
    np.testing.assert_array_equal(data.X["flag"], frame.flag.astype(float))
    np.testing.assert_allclose(data.X["x1"], frame.x1, rtol=1e-15)
    assert list(data.y) == list(frame.y)
    # the spec is JSON only and round-trips
    again = DataSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec


def test_feature_selection_and_forced_categories(tmp_path, frame):
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = load_training(tmp_path / "d.csv", target="y", features=["n", "x1"], categorical=["n"])
    assert [c["name"] for c in data.spec.columns] == ["n", "x1"]
    assert data.spec.columns[0]["categories"] == sorted({str(v) for v in frame.n})
    data = load_training(tmp_path / "d.csv", target="y", exclude=["color", "flag"])
    assert list(data.X.columns) == ["x1", "n"]
    with pytest.raises(DataError, match="no feature column 'zz'"):
        load_training(tmp_path / "d.csv", target="y", features=["zz"])


def test_bom_is_skipped(tmp_path):
    path = write(tmp_path / "bom.csv", "\ufeffa,b,y\n1,2,u\n3,4,v\n")
    data = load_training(path, target="y")
    assert list(data.X.columns) == ["a", "b"]


def test_integral_float_labels_become_integers(tmp_path):
    path = write(tmp_path / "d.csv", "a,y\n1,1.0\n2,2.0\n3,1.0\n")
    assert load_training(path, target="y").y.dtype == np.int64


# -- bad files -------------------------------------------------------------------------------
BAD_CSV = {
    "ragged, too many fields": ("a,b,y\n1,2,u\n3,4,5,v\n", "line 3 has 4 field.*header has 3"),
    "ragged, too few fields": ("a,b,y\n1,2,u\n3,v\n", "line 3 has 2 field.*header has 3"),
    "non-numeric cell": ("a,b,y\n1,2,u\n3,x,v\n5,6,u\n", "column 'b'.*data row 2.*'x'"),
    "empty file": ("", "is empty"),
    "header only": ("a,b,y\n", "no data rows"),
    "duplicate columns": ("a,a,y\n1,2,u\n", "duplicate column"),
    "dates": ("a,d,y\n1,2020-01-01,u\n2,2020-01-02,v\n", "unsupported type"),
    "missing values": ("a,b,y\n1,,u\n,4,v\n3,,u\n", r"\{'a': 1, 'b': 2\}"),
    "missing label": ("a,y\n1,u\n2,\n", "target column 'y' has 1 missing"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
def test_bad_csv_files(tmp_path, case):
    text, message = BAD_CSV[case]
    path = write(tmp_path / "bad.csv", text)
    with pytest.raises(DataError, match=message) as info:
        load_training(path, target="y")
    assert "\n" not in str(info.value)


def test_truncated_gzip_and_corrupt_parquet(tmp_path, frame):
    data = gzip.compress(frame.to_csv(index=False).encode() * 50)
    path = write(tmp_path / "t.csv.gz", data[: len(data) // 2])
    with pytest.raises(DataError, match="cannot read"):
        load_training(path, target="y")
    frame.to_parquet(tmp_path / "ok.parquet")
    raw = (tmp_path / "ok.parquet").read_bytes()
    damaged = {
        "truncated.parquet": raw[: len(raw) // 2],
        "zeroed_head.parquet": b"\x00" * 40 + raw[40:],
        "bad_footer_length.parquet": raw[:-8] + (10**6).to_bytes(4, "little") + b"PAR1",
        "junk.parquet": b"not parquet at all",
    }
    for name, payload in damaged.items():
        with pytest.raises(DataError, match="cannot read"):
            read_frame(write(tmp_path / name, payload), "parquet")
    with pytest.raises(DataError, match="no such file"):
        read_frame(tmp_path / "absent.csv")


def test_parquet_types(tmp_path):
    frame = pd.DataFrame(
        {
            "cat": pd.Categorical(["1", "2", "1", "2"]),  # typed as categories: kept so
            "digits": ["7", "8", "7", "9"],  # text in the file, all numbers: categories
            "i": pd.array([1, None, 3, 4], dtype="Int64"),
            "b": pd.array([True, None, False, True], dtype="boolean"),
            "y": [0, 1, 0, 1],
        }
    )
    frame.to_parquet(tmp_path / "d.parquet")
    with pytest.raises(DataError, match=r"\{'i': 1, 'b': 1\}"):
        load_training(tmp_path / "d.parquet", target="y")
    data = load_training(tmp_path / "d.parquet", target="y", impute="median")
    assert list(data.X.columns) == ["cat=1", "cat=2", "digits=7", "digits=8", "digits=9", "i", "b"]
    assert data.X["i"].tolist() == [1.0, 3.0, 3.0, 4.0]
    assert data.X["b"].tolist() == [1.0, 1.0, 0.0, 1.0]


def test_impute(tmp_path):
    path = write(tmp_path / "d.csv", "a,c,y\n1,r,u\n,g,v\n4,,u\n10,r,v\n")
    mean = load_training(path, target="y", impute="mean")
    assert mean.X["a"].tolist() == [1.0, 5.0, 4.0, 10.0]
    median = load_training(path, target="y", impute="median")
    assert median.X["a"].tolist() == [1.0, 4.0, 4.0, 10.0]
    assert median.X["c=r"].tolist() == [1.0, 0.0, 1.0, 1.0]  # the most frequent category


# -- predicting with a spec -------------------------------------------------------------------
def test_predict_time_columns(tmp_path, frame):
    frame.to_csv(tmp_path / "train.csv", index=False)
    spec = load_training(tmp_path / "train.csv", target="y").spec
    reordered = frame[["flag", "y", "color", "x1", "n"]].assign(extra=1.0)
    reordered.to_csv(tmp_path / "reordered.csv", index=False)
    a = load_for_model(tmp_path / "train.csv", spec)
    b = load_for_model(tmp_path / "reordered.csv", spec)
    pd.testing.assert_frame_equal(a.X, b.X)  # columns are matched by name
    frame.drop(columns=["x1", "y"]).to_csv(tmp_path / "missing.csv", index=False)
    with pytest.raises(DataError, match=r"feature column\(s\) the model needs: \['x1'\]"):
        load_for_model(tmp_path / "missing.csv", spec)
    assert (
        load_for_model(
            tmp_path / "missing.csv",
            spec.__class__(
                **{**spec.__dict__, "columns": [c for c in spec.columns if c["name"] != "x1"]}
            ),
        ).y
        is None
    )


def test_unseen_category_is_all_zero_with_a_warning(tmp_path, frame):
    frame.to_csv(tmp_path / "train.csv", index=False)
    spec = load_training(tmp_path / "train.csv", target="y").spec
    new = frame.head(3).copy()
    new.loc[1, "color"] = "purple"
    new.to_csv(tmp_path / "new.csv", index=False)
    with pytest.warns(UnseenCategoryWarning, match="'purple': 1"):
        X = load_for_model(tmp_path / "new.csv", spec).X
    assert X.loc[1, ["color=blue", "color=green", "color=red"]].tolist() == [0.0, 0.0, 0.0]
    assert X.loc[0, ["color=blue", "color=green", "color=red"]].sum() == 1.0


def test_numeric_column_with_text_at_predict_time(tmp_path, frame):
    frame.to_csv(tmp_path / "train.csv", index=False)
    spec = load_training(tmp_path / "train.csv", target="y").spec
    bad = frame.astype({"x1": object})
    bad.loc[4, "x1"] = "oops"
    bad.loc[5, "x1"] = "oops"
    bad.loc[6, "x1"] = "oops"
    bad.iloc[:6].to_csv(tmp_path / "bad.csv", index=False)  # mostly text: read as strings
    with pytest.raises(DataError, match="column 'x1' must be numeric but data row 5"):
        load_for_model(tmp_path / "bad.csv", spec)


# -- LIBSVM ----------------------------------------------------------------------------------
def _svm(path, X, y, zero_based):
    dump_svmlight_file(X, y, str(path), zero_based=zero_based)
    return path


def test_libsvm_index_base(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.integers(1, 9, size=(12, 4)) / 4.0  # exact in the text format
    X[:, 0] = 0.0  # the first feature never appears: a zero-based file looks one-based
    y = np.arange(12) % 3
    one = _svm(tmp_path / "one.svm", X, y, zero_based=False)
    zero = _svm(tmp_path / "zero.svm", X, y, zero_based=True)
    X1, y1, base1 = read_libsvm(one)
    assert base1 == 1 and X1.shape == (12, 4)
    np.testing.assert_array_equal(X1.toarray(), X)
    assert y1.dtype == np.int64 and list(y1) == list(y)
    # explicit zero base keeps the empty first column; auto would shift the features
    X0, _, base0 = read_libsvm(zero, index_base=0)
    assert base0 == 0
    np.testing.assert_array_equal(X0.toarray(), X)
    Xa, _, base_auto = read_libsvm(zero)
    assert base_auto == 1 and Xa.shape[1] == 3  # the documented auto rule, then reused:
    X[:, 3] = 0.0  # a later file that lacks the last feature still has 4 columns
    later = _svm(tmp_path / "later.svm", X, y, zero_based=False)
    np.testing.assert_array_equal(read_libsvm(later, index_base=1, n_features=4)[0].toarray(), X)
    with pytest.raises(DataError, match="index 0"):
        read_libsvm(zero_with_index0(tmp_path), index_base=1)
    with pytest.raises(DataError, match="has 2 features"):
        read_libsvm(one, index_base=1, n_features=2)


def zero_with_index0(tmp_path):
    return write(tmp_path / "z.svm", "1 0:1.5 2:3\n0 1:2\n")


def test_libsvm_bad_files(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_libsvm(write(tmp_path / "bad.svm", "1 1:2 3:x\n"))
    with pytest.raises(DataError, match="is empty"):
        read_libsvm(write(tmp_path / "empty.svm", ""))
    spec = load_training(write(tmp_path / "ok.svm", "1 1:2\n0 2:1\n"), target=None).spec
    assert spec.to_dict()["index_base"] == 1 and spec.n_features == 2
    with pytest.raises(DataError, match="fitted on libsvm data"):
        load_for_model(write(tmp_path / "x.csv", "a,b\n1,2\n"), spec)
