"""softmaxreg: exact, fast multinomial logistic (softmax) regression.

The public API: the estimator, the softmax numerics, the solver registry and the warnings.
"""

from ._estimator import SoftmaxRegression
from ._exceptions import ConvergenceWarning, SeparationWarning, SingularHessianWarning
from ._softmax import log_softmax, logsumexp, softmax, softmax_jacobian
from ._solvers import SOLVERS, SolverResult

__version__ = "0.1.0"

__all__ = [
    "SOLVERS",
    "ConvergenceWarning",
    "SeparationWarning",
    "SingularHessianWarning",
    "SoftmaxRegression",
    "SolverResult",
    "__version__",
    "log_softmax",
    "logsumexp",
    "softmax",
    "softmax_jacobian",
]
