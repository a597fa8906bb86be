"""Predict trials' final values: the layer below the pruner and the sampler.

* :mod:`._core`: rows, cross-validated fit and choice of input set, the refit schedule. No
  Optuna.
* :mod:`._gate`: whether a signal ranks the completed trials: the rank statistic, the paired
  bootstrap gate and the sampler's rank-correlation rule. No Optuna.
* :mod:`._inputs`: the registry of inputs (spectrum, learning curve, hyperparameters), each
  read from a trial at a step.
* :mod:`._reader`: which trials a predictor is fitted on, and their rows; the one rule that
  turns final values into targets (:func:`final_targets`).
* :mod:`._prior`: the shipped cross-task prior applied to Optuna trials (``TrialPrior``).
* :mod:`._prior_fit`: a prior bundle fitted on earlier studies (``fit_prior``).
* :mod:`._in_study`: the model fitted on a study's own trials (``InStudyModel``), for the
  pruner and the sampler alike; :mod:`._in_study_types` its small types.
* :mod:`._study_prior`: the prior within one study (``StudyPrior``: batched predictions, its
  gate, its rank correlation), for the pruner and the sampler alike.
* :mod:`._independence`: whether a study's sampler draws independently of earlier results.
* :mod:`._lru`: the bounded cache every layer above keeps its in-process results in.
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
    refit_size,
)
from optuna_lyap._prediction._gate import direction_sign, rank_correlation
from optuna_lyap._prediction._in_study import InStudyModel
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
    "InStudyModel",
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
    "direction_sign",
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
