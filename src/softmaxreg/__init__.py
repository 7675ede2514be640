"""softmaxreg: exact, fast multinomial logistic (softmax) regression.

The public API: the estimator, the softmax numerics, the solver registry and the warnings.
"""

from ._basis import RBFFeatures
from ._cv import SoftmaxRegressionCV
from ._estimator import SoftmaxRegression
from ._exceptions import ConvergenceWarning, SeparationWarning, SingularHessianWarning
from ._inference import InferenceResults, MarginalEffects
from ._modelfile import ModelFileError, load_model, save_model
from ._onnx import ONNXExportError, export_onnx
from ._plots import (
    plot_boundary,
    plot_calibration,
    plot_coef,
    plot_confusion,
    plot_loss,
    save_figure,
)
from ._softmax import log_softmax, logsumexp, softmax, softmax_jacobian
from ._solvers import SOLVERS, SolverResult
from ._stream import CSVSource, ParquetSource, open_source
from ._stream_predict import predict_file

__version__ = "0.1.0"

#: The names the issue uses: ``softmaxreg.save(model, path)``, ``softmaxreg.load(path)``.
save, load = save_model, load_model

__all__ = [
    "SOLVERS",
    "CSVSource",
    "ParquetSource",
    "open_source",
    "predict_file",
    "ConvergenceWarning",
    "InferenceResults",
    "MarginalEffects",
    "ModelFileError",
    "ONNXExportError",
    "SeparationWarning",
    "SingularHessianWarning",
    "SoftmaxRegression",
    "SoftmaxRegressionCV",
    "RBFFeatures",
    "SolverResult",
    "__version__",
    "export_onnx",
    "load",
    "load_model",
    "log_softmax",
    "logsumexp",
    "plot_boundary",
    "plot_calibration",
    "plot_coef",
    "plot_confusion",
    "plot_loss",
    "save_figure",
    "save",
    "save_model",
    "softmax",
    "softmax_jacobian",
]
