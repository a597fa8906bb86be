"""A worker process of a shared study: ``python -m tests.pruners_tests._worker KIND LOCATION NAME
N_TRIALS SEED``. Trials report fake spectra whose level encodes their final value."""

from __future__ import annotations

import sys

import numpy as np
import optuna
import torch

from optuna_lyap.pruners import LyapunovPruner, report_spectrum
from tests.pruners_tests.storages import open_storage
from tests.pruners_tests.synthetic import chance, spectrum_for

# Even smaller than the in-process tests' models: these runs check coordination, not accuracy.
TINY_AELLE = {"n_models": 1, "max_steps": 60, "hidden_dim": 8, "head_hidden_dim": 0}


def make_pruner() -> LyapunovPruner:
    # Successive halving keeps half at each rung, so that some trials complete and train models.
    return LyapunovPruner(
        n_startup_trials=3,
        reduction_factor=2,
        n_warmup_steps=1,
        use_curve=False,
        cv_folds=2,
        aelle_params=TINY_AELLE,
    )


def objective(trial: optuna.Trial) -> float:
    quality = trial.suggest_float("quality", 0.0, 1.0)
    rng = np.random.default_rng(trial.number)
    for step in range(2):
        report_spectrum(trial, spectrum_for(quality, rng=rng), step)
        trial.report(chance(rng), step)
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
    kind, location, name, n, seed = sys.argv[1:]
    main(kind, location, name, int(n), int(seed))
