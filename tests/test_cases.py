"""Failure modes from public bug reports, in today's API.

Each test keeps the intent of one reported case (Optuna pruners under Hyperband and
ask-and-tell, warm-started studies, randomness under ``vmap``/``jvp``): the same study or
network, the same check, written with ``InStudyModel`` for the model's options and
``spectrum_kwargs`` for the spectrum's.
"""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution
from optuna.pruners import SuccessiveHalvingPruner

import optuna_lyap as ol

TINY = {"n_models": 1, "max_steps": 20}


@pytest.fixture(autouse=True)
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")


def _sha() -> SuccessiveHalvingPruner:
    return SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)  # rung 0 closes at step 1


def _rung0_mismatches(pruner: optuna.pruners.BasePruner, spectrum_step: int | None) -> list:
    rng = np.random.default_rng(0)
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(5):
            trial.report(x * (1 + 0.1 * step), step)
            if step == spectrum_step:
                ol.report_spectrum(trial, np.sort(rng.normal(-1 + x, 0.3, 8))[::-1], step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return 1.5 * x

    study.optimize(objective, n_trials=8)
    return [
        t.number
        for t in study.trials
        if (t.last_step or 0) >= 2
        and t.system_attrs.get("completed_rung_0") != t.intermediate_values[1]
    ]


def test_a_stateful_fallback_keeps_successive_halvings_rung_bookkeeping() -> None:
    # optuna/optuna#3088: trials that never enter SHA's prune() get no completed_rung_* keys.
    assert _rung0_mismatches(_sha(), None) == []
    plain = ol.LyapunovPruner(n_startup_trials=3, fallback=_sha())
    assert _rung0_mismatches(plain, None) == []
    rng = np.random.default_rng(0)
    spectra = [np.sort(rng.normal(-1, 0.3, 8))[::-1] for _ in range(10)]
    aelle = ol.AeLLE(n_models=1, max_steps=20, seed=0).fit(
        spectra, rng.normal(size=10), rng.normal(size=(10, 2))
    )
    modelled = ol.LyapunovPruner(
        n_startup_trials=100, fallback=_sha(), model=ol.InStudyModel(aelle=aelle)
    )
    assert _rung0_mismatches(modelled, 1) == []


def _report(trial: optuna.Trial, x: float, rng: np.random.Generator) -> None:
    for step in (0, 1):
        trial.report(x + 0.1 * step, step)
        ol.report_spectrum(trial, np.sort(rng.normal(-1 + x, 0.3, 8))[::-1], step)


def test_a_warm_started_study_still_gets_a_model_from_its_new_trials() -> None:
    # optuna/optuna#5354: trials added with add_trial (no curve, no spectrum) come first.
    rng = np.random.default_rng(0)
    dist = {"x": FloatDistribution(0.0, 1.0)}
    pruner = ol.LyapunovPruner(n_startup_trials=5, model=ol.InStudyModel(aelle_params=TINY))
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for i in range(100):
        x = (i % 50) / 50
        study.add_trial(optuna.trial.create_trial(params={"x": x}, distributions=dist, value=x))
    for _ in range(17):
        trial = study.ask(dist)
        _report(trial, float(rng.uniform()), rng)
        study.tell(trial, 1.2 * trial.params["x"])
    running = study.ask(dist)
    _report(running, 0.5, rng)
    frozen = next(t for t in study.get_trials() if t.number == running.number)
    record = pruner.predict(study, frozen, 1)
    assert record is not None
    assert record["n_train"] <= 17


def test_predict_takes_the_live_trial_of_an_ask_and_tell_loop() -> None:
    # optuna/optuna#3890: a live optuna.Trial where a FrozenTrial is expected.
    rng = np.random.default_rng(0)
    pruner = ol.LyapunovPruner(n_startup_trials=3, model=ol.InStudyModel(aelle_params=TINY))
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for _ in range(6):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        _report(trial, x, rng)
        study.tell(trial, x)
    live = study.ask()
    _report(live, live.suggest_float("x", 0.0, 1.0), rng)
    frozen = next(t for t in study.get_trials() if t.number == live.number)
    expected = pruner.predict(study, frozen, 1)
    got = pruner.predict(study, live, 1)
    assert expected is not None and got is not None
    assert got["predicted"] == expected["predicted"]
    with pytest.raises(TypeError, match="FrozenTrial"):
        pruner.predict(study, "trial 3", 1)  # type: ignore[arg-type]


class _DropoutCell(torch.nn.Module):
    """``step(state (B, H), x_t (B, I)) -> state``: tanh, dropout on the recurrent input."""

    def __init__(self, n_in: int, n_hidden: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(n_in + n_hidden, n_hidden)
        self.drop = torch.nn.Dropout(0.2)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(torch.cat([self.drop(h), x], dim=1)))


def test_a_custom_cell_in_training_mode_gives_the_deterministic_spectrum() -> None:
    # pytorch/pytorch#92283, pytorch/functorch#408: dropout under vmap / jvp.
    torch.manual_seed(0)
    cell = _DropoutCell(3, 6)
    probe, h0 = torch.randn(4, 30, 3), torch.zeros(4, 6)
    cell.eval()
    reference = ol.lyapunov_spectrum(cell, probe, h0=h0, seed=0).exponents
    cell.train()  # between epochs
    trial = optuna.create_study(direction="maximize").ask()
    monitor = ol.LyapunovMonitor(trial, probe, steps=(0,), spectrum_kwargs={"h0": h0})
    spectrum = monitor.step(cell, 0.1, 0)
    assert spectrum is not None
    torch.testing.assert_close(spectrum.exponents, reference)
