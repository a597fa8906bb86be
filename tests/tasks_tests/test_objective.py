from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest
import torch

import optuna_lyap
from optuna_lyap.tasks import SequenceTask, get_task, make_objective, trial_seed


def test_the_public_names_the_objective_relies_on_are_exported() -> None:
    # These tests once skipped themselves when the names were missing, which would have turned
    # a regression of the package face into a silent skip.
    assert {"LyapunovMonitor", "load_spectra"} <= set(optuna_lyap.__all__)
    assert callable(optuna_lyap.LyapunovMonitor) and callable(optuna_lyap.load_spectra)


def _task(**kwargs: Any) -> SequenceTask:
    return get_task(
        "copy", delay=3, n_train=64, n_val=32, hidden_size_range=(4, 8), n_epochs=3, **kwargs
    )


def test_objective_reports_every_epoch_and_stores_chosen_spectra() -> None:
    task = _task()
    study = optuna.create_study(
        direction=task.direction, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(make_objective(task, spectrum_steps=(0, 2), seed=1), n_trials=2)
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert sorted(trial.intermediate_values) == [0, 1, 2, 3]
        assert trial.value == trial.intermediate_values[3]
        assert trial.user_attrs["epochs_trained"] == 3
        spectra = optuna_lyap.load_spectra(trial)
        assert sorted(spectra) == [0, 2]
        dim = trial.params["hidden_size"] * (2 if trial.params["cell"] == "lstm" else 1)
        assert spectra[0].shape == (dim,) and np.isfinite(spectra[0]).all()


def test_objective_is_reproducible_for_a_seed() -> None:
    task = _task(cells=("gru",))

    def run(seed: int) -> list[float]:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
        study.optimize(make_objective(task, n_epochs=1, spectrum_steps=(), seed=seed), n_trials=2)
        return [v for t in study.trials for v in t.intermediate_values.values()]

    assert run(5) == run(5)
    assert run(5) != run(6)
    assert trial_seed(5, 0) != trial_seed(5, 1) != trial_seed(6, 0)


def test_first_value_is_the_untrained_network() -> None:
    task = _task(cells=("rnn",))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(make_objective(task, n_epochs=0, seed=2), n_trials=1)
    trial = study.trials[0]
    model = task.build_model(trial.params, seed=trial_seed(2, 0))
    assert trial.value == task.evaluate(model)
    assert trial.user_attrs["epochs_trained"] == 0


def test_pruned_trials_keep_their_epoch_count() -> None:
    task = _task()
    study = optuna.create_study(
        direction=task.direction,
        sampler=optuna.samplers.RandomSampler(seed=0),
        # An accuracy is always below 2: the first step after the warm-up prunes.
        pruner=optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=1),
    )
    study.optimize(make_objective(task, spectrum_steps=(0,)), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["epochs_trained"] == 1


def test_negative_epochs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"n_epochs=-1"):
        make_objective(_task(), n_epochs=-1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_objective_trains_on_cuda() -> None:
    task = _task()
    study = optuna.create_study(
        direction=task.direction, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(make_objective(task, n_epochs=1, device="cuda", seed=0), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert sorted(optuna_lyap.load_spectra(trial)) == [0, 1]
    model = task.build_model(trial.params, seed=trial_seed(0, 0)).to("cuda")
    assert task.probe_inputs(model, n=2).device.type == "cuda"
    assert task.evaluate(model) == trial.intermediate_values[0]


class PruneFromStep(optuna.pruners.BasePruner):
    """Prunes every trial from ``step`` on: at the last epoch if ``step`` is the last one."""

    def __init__(self, step: int) -> None:
        self.step = step

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.last_step is not None and trial.last_step >= self.step


@pytest.mark.parametrize("n_epochs", [0, 2])
def test_the_last_epoch_is_never_pruned(n_epochs: int) -> None:
    # Pruning after the last epoch throws away a final value whose whole budget is spent.
    task = _task(cells=("rnn",))
    study = optuna.create_study(direction=task.direction, pruner=PruneFromStep(n_epochs))
    study.optimize(make_objective(task, n_epochs=n_epochs, spectrum_steps=(0,)), n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value == trial.intermediate_values[n_epochs]
    assert trial.user_attrs["epochs_trained"] == n_epochs


def test_a_step_before_the_last_is_still_pruned() -> None:
    task = _task(cells=("rnn",))
    study = optuna.create_study(direction=task.direction, pruner=PruneFromStep(1))
    study.optimize(make_objective(task, n_epochs=2, spectrum_steps=(0,)), n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    assert study.trials[0].user_attrs["epochs_trained"] == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_epochs": 1.5}, "n_epochs=1.5"),
        ({"spectrum_steps": (0.7,)}, "spectrum_steps"),
        ({"spectrum_steps": 1}, "spectrum_steps"),
        ({"k": 0}, "k=0"),
    ],
)
def test_bad_arguments_fail_before_the_first_trial(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(optuna_lyap.InvalidParameterError, match=match):
        make_objective(_task(), **kwargs)
