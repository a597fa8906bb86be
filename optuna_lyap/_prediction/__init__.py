"""Predict trials' final values: the layer below the pruner and the sampler.

* :mod:`._core`: rows, cross-validated fit and choice of input set, rank correlation, the refit
  schedule. No Optuna.
* :mod:`._inputs`: the registry of inputs (spectrum, learning curve, hyperparameters), each
  read from a trial at a step.
* :mod:`._reader`: which trials a predictor is fitted on, and their rows; the one rule that
  turns final values into targets (:func:`final_targets`).
* :mod:`._prior`: the shipped cross-task prior applied to Optuna trials (``TrialPrior``).
* :mod:`._prior_fit`: a prior bundle fitted on earlier studies (``fit_prior``).
* :mod:`._store`: one fit per study and training set, shared by every worker through the
  storage.
"""

from __future__ import annotations

from optuna_lyap._prediction._core import (
    SPECTRUM,
    Candidate,
    FitSettings,
    FittedPredictor,
    Rows,
    fit_predictor,
    input_sets,
    rank_correlation,
    refit_size,
)
from optuna_lyap._prediction._inputs import (
    INPUTS,
    CurveInput,
    Input,
    ParamEncoder,
    ParamsInput,
    ReadContext,
    SpectrumInput,
    curve_features,
    pretrained_inputs,
)
from optuna_lyap._prediction._prior import PriorPrediction, TrialPrior, network_of
from optuna_lyap._prediction._prior_fit import fit_prior
from optuna_lyap._prediction._reader import (
    can_label,
    configuration_key,
    final_targets,
    fit_aelle,
    param_encoder,
    query_rows,
    read_rows,
    training_set,
    trial_targets,
    unlabelled_trials,
)
from optuna_lyap._prediction._store import PredictorCache

__all__ = [
    "INPUTS",
    "SPECTRUM",
    "Candidate",
    "CurveInput",
    "FitSettings",
    "FittedPredictor",
    "Input",
    "ParamEncoder",
    "ParamsInput",
    "PredictorCache",
    "PriorPrediction",
    "ReadContext",
    "Rows",
    "SpectrumInput",
    "TrialPrior",
    "can_label",
    "configuration_key",
    "curve_features",
    "final_targets",
    "fit_aelle",
    "fit_predictor",
    "fit_prior",
    "input_sets",
    "network_of",
    "param_encoder",
    "pretrained_inputs",
    "query_rows",
    "rank_correlation",
    "read_rows",
    "refit_size",
    "training_set",
    "trial_targets",
    "unlabelled_trials",
]
