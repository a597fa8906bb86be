"""AeLLE and the prior across tasks: predict a trial's final value (no Optuna imports below here).

:class:`AeLLE` is the spectrum autoencoder with a performance head; :class:`CrossTaskPrior`,
its features (:class:`NetworkDescription`) and :class:`PriorBundle` (several priors in one
file, :func:`load_shipped_prior` the one the package ships) predict a trial's final quantile
within its study from inputs that mean the same on any task.
"""

from __future__ import annotations

from optuna_lyap.aelle._bundle import PriorBundle, load_shipped_prior
from optuna_lyap.aelle._cross_task import CrossTaskPrior
from optuna_lyap.aelle._estimator import AeLLE
from optuna_lyap.aelle._features import NetworkDescription

__all__ = [
    "AeLLE",
    "CrossTaskPrior",
    "NetworkDescription",
    "PriorBundle",
    "load_shipped_prior",
]
