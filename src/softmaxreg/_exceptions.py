"""Warnings raised by softmaxreg (``ConvergenceWarning`` is scikit-learn's, so its filters work)."""

from sklearn.exceptions import ConvergenceWarning

__all__ = ["ConvergenceWarning", "SeparationWarning", "SingularHessianWarning"]


class SingularHessianWarning(UserWarning):
    """The Hessian is singular: the solution is not unique along some directions."""


class SeparationWarning(UserWarning):
    """The classes are (quasi-)completely separated: unpenalised coefficients diverge."""
