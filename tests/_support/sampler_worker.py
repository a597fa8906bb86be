"""A sampler worker of a shared study: ``python -m tests._support.sampler_worker KIND LOCATION
NAME N_TRIALS SEED``. Trials with a large gain are pruned with a predicted final value."""

from __future__ import annotations

import logging
import sys

import optuna
import torch
from optuna.samplers import TPESampler

from optuna_lyap import InStudyModel
from optuna_lyap.samplers import LyapunovSampler
from tests._support.gain_rnn import PROBE, gain_rnn, objective, value_of
from tests._support.storages import open_storage
from tests._support.workers import TINY_AELLE


def pruning_objective(trial: optuna.Trial) -> float:
    value = objective(trial)
    g = trial.params["g"]
    if g > 3.0:
        trial.set_user_attr("lyap_predicted", value_of(g))
        raise optuna.TrialPruned("Trial was pruned at step 0.")
    return value


def main(kind: str, location: str, study_name: str, n_trials: int, seed: int) -> None:
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(stream=sys.stdout, format="%(message)s")
    logging.getLogger("optuna_lyap._prediction").setLevel(logging.DEBUG)
    sampler = LyapunovSampler(
        TPESampler(seed=seed, n_startup_trials=3),
        model_factory=gain_rnn,
        probe_inputs=PROBE,
        n_startup_trials=4,
        n_candidates=3,
        model=InStudyModel(inputs=("spectrum",), aelle_params=TINY_AELLE, cv_folds=2),
        min_rank_corr=-1.0,
        seed=0,
        prior=None,  # the study's own model, fitted once and shared, is what this checks
    )
    study = optuna.load_study(study_name=study_name, storage=open_storage(kind, location))
    study.sampler = sampler
    study.optimize(pruning_objective, n_trials=n_trials)


if __name__ == "__main__":
    kind, location, name, n, seed = sys.argv[1:]
    main(kind, location, name, int(n), int(seed))
