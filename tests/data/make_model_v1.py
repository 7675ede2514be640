"""Regenerate ``model_v1.smr`` and ``model_v1_expected.json`` (model file format version 1).

Run once with the softmaxreg that writes format version 1 (``python tests/data/make_model_v1.py``);
the files are committed so that later versions of softmaxreg are tested on loading them.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from softmaxreg import SoftmaxRegression, save_model

HERE = Path(__file__).parent


def main():
    rng = np.random.default_rng(20261127)
    centres = np.array([[2.0, 0.0, 0.0], [-1.0, 1.5, 0.0], [-1.0, -1.5, 0.5]])
    codes = rng.integers(0, 3, size=90)
    X = pd.DataFrame(
        centres[codes] + rng.standard_normal((90, 3)), columns=["alpha", "beta", "gamma"]
    )
    y = np.array(["cat", "dog", "emu"])[codes]
    model = SoftmaxRegression(C=0.5, class_weight={"cat": 2.0, "dog": 1.0, "emu": 1.0}).fit(X, y)
    save_model(model, HERE / "model_v1.smr", metadata={"source": "make_model_v1.py"})
    rows = X.iloc[:12]
    expected = {
        "columns": list(rows.columns),
        "rows": rows.to_numpy().tolist(),
        "predict_proba": model.predict_proba(rows).tolist(),
        "predict": model.predict(rows).tolist(),
        "classes": model.classes_.tolist(),
    }
    (HERE / "model_v1_expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
