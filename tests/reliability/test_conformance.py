"""Conformance (RELIABILITY.md items 15-16), beyond tests/test_sklearn_compat.py.

Item 16 (oldest and newest scikit-learn): the declared lower bound must be at least the
version that introduced the scikit-learn APIs the package calls, and the installed (newest)
version must satisfy the declared bounds. The oldest supported version itself is checked by
hand in a throwaway environment (docs/reliability.md, "Oldest scikit-learn"), not in CI.
"""

import re
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]

#: scikit-learn APIs the package uses, and the release that introduced each.
SKLEARN_APIS = {
    "sklearn.utils.validation.validate_data": "1.6",
    "BaseEstimator.__sklearn_tags__": "1.6",
    "_check_sample_weight(ensure_non_negative=...)": "1.6",
}


def _lower_bounds():
    """The ``>=`` bounds of ``[project] dependencies`` (a regex: tomllib needs Python 3.11)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"(?ms)^dependencies = \[(.*?)^\]", text).group(1)
    return {
        name.lower(): Version(low)
        for name, low in re.findall(r'"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][0-9.]*)', block)
    }


def test_declared_scikit_learn_lower_bound_covers_the_apis_used():
    lower = _lower_bounds()["scikit-learn"]
    needed = max(Version(v) for v in SKLEARN_APIS.values())
    assert lower >= needed, f"pyproject says scikit-learn>={lower}; the code needs {needed}"


def test_the_apis_listed_are_the_ones_used():
    """The table above is kept honest: each API is really called by the package."""
    source = "\n".join(p.read_text() for p in (ROOT / "src" / "softmaxreg").rglob("*.py"))
    assert "validate_data(" in source
    assert "__sklearn_tags__" in source
    assert "ensure_non_negative=True" in source


@pytest.mark.parametrize("package", ["numpy", "scipy", "scikit-learn"])
def test_installed_versions_satisfy_the_declared_bounds(package):
    assert Version(version(package)) >= _lower_bounds()[package]


def test_reliability_doc_names_existing_tests():
    """docs/reliability.md maps every item to tests by node id: each must exist."""
    doc = (ROOT / "docs" / "reliability.md").read_text()
    items = re.findall(r"(?m)^\| (\d+) \|", doc)
    assert sorted(map(int, items)) == list(range(1, 31))  # all 30 items, once each
    ids = set(re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?", doc))
    assert len(ids) > 50
    for path, name in ids:
        source = (ROOT / path).read_text()
        assert not name or re.search(rf"(?m)^def {name}\(", source), f"{path}::{name}"
