"""A pruner worker of a shared study: ``python -m tests._support.pruner_worker KIND LOCATION
NAME N_TRIALS SEED``. Trials report fake spectra whose level encodes their final value; every
predictor the worker fits or loads is logged (see ``workers.fits_and_loads``)."""

from __future__ import annotations

import logging
import sys

import numpy as np
import optuna
import torch

from optuna_lyap import InStudyModel
from optuna_lyap.pruners import LyapunovPruner, report_spectrum
from tests._support.storages import open_storage
from tests._support.synthetic import chance, spectrum_for
from tests._support.workers import TINY_AELLE


def make_pruner() -> LyapunovPruner:
    # Successive halving keeps half at each rung, so that some trials complete and train models.
    return LyapunovPruner(
        reduction_factor=2,
        n_warmup_steps=1,
        model=InStudyModel(
            inputs=("spectrum",), cv_folds=2, aelle_params=TINY_AELLE, n_startup_trials=3
        ),
        # With 3 labels at most 89% of resamples can favour any model (in the rest one
        # configuration is drawn thrice): under the default 0.9 no training set would be
        # fitted, and the workers would share no fits.
        gate=0.5,
    )


def objective(trial: optuna.Trial) -> float:
    quality = trial.suggest_float("quality", 0.0, 1.0)
    rng = np.random.default_rng(trial.number)
    for step in range(2):
        report_spectrum(trial, spectrum_for(quality, rng=rng), step)
        # A curve that ranks the trials backwards (plus noise), so that a model can out-rank it
        # whatever the trials: every training set can pass the low gate below and is fitted.
        trial.report(1.0 - quality + 0.01 * (chance(rng) - 0.5), step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"Trial was pruned at step {step}.")
    return quality


def main(kind: str, location: str, study_name: str, n_trials: int, seed: int) -> None:
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(
        study_name=study_name,
        storage=open_storage(kind, location),
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=make_pruner(),
    )
    study.optimize(objective, n_trials=n_trials)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, format="%(message)s")
    logging.getLogger("optuna_lyap._prediction").setLevel(logging.DEBUG)
    kind, location, name, n, seed = sys.argv[1:]
    main(kind, location, name, int(n), int(seed))
