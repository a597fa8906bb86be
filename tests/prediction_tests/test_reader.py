"""Trials become rows; the refit schedule counts only trials that can become rows."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from optuna_lyap import InStudyModel, LyapunovPruner, report_configuration, report_spectrum
from optuna_lyap._prediction import (
    ReadContext,
    configuration_key,
    query_rows,
    read_rows,
    training_set,
    unlabelled_trials,
)
from tests._support.synthetic import add_completed

DIST = {"x": FloatDistribution(0.0, 1.0)}


def test_trials_of_one_configuration_share_a_group() -> None:
    study = optuna.create_study()
    for x in (0.25, 0.5, 0.25):  # configuration 0.25 trained twice
        study.enqueue_trial({"x": x})

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.report(x, 0)
        return x

    study.optimize(objective, n_trials=3)
    for _ in range(2):  # no params: each trial is a configuration of its own
        study.tell(study.ask(), 1.0)
    keys = [configuration_key(t) for t in study.get_trials()]
    assert keys[0] == keys[2] != keys[1]
    assert keys[3:] == ["trial 3", "trial 4"]
    rows = read_rows(study.get_trials(), ("curve",), ReadContext(0, study.direction))
    assert rows.numbers == [0, 1, 2] and rows.groups == keys[:3]


def test_a_named_configuration_replaces_the_params() -> None:
    study = optuna.create_study()
    for x, name in ((0.1, "a"), (0.2, "a"), (0.1, "b")):  # snapped to a table: 0.1, 0.2 -> a
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        report_configuration(trial, name)
        study.tell(trial, x)
    keys = [configuration_key(t) for t in study.get_trials()]
    assert keys[0] == keys[1] != keys[2]
    report_configuration(optuna.trial.FixedTrial({}), "a")  # outside a study: nothing
    for bad in ("", 3, None):
        with pytest.raises(ValueError, match="non-empty string"):
            report_configuration(study.ask(), bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=rf"but got key={bad!r}\."):  # one error type for both
            report_configuration(study.ask(), bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="running optuna.Trial"):
        report_configuration(study.trials[0], "a")  # type: ignore[arg-type]


def test_read_rows_skips_missing_data_and_bounds_infinite_targets() -> None:
    study = optuna.create_study(direction="minimize")
    add_completed(study, [0.2, 0.8, 0.5], spectrum_steps=(1,))
    trial = study.ask()  # a value but no spectrum: left out when spectra are read
    trial.report(0.5, 1)
    study.tell(trial, 0.3)
    trial = study.ask()  # a diverged loss
    report_spectrum(trial, [0.0], 1)
    trial.report(0.5, 1)
    study.tell(trial, math.inf)

    trials = study.get_trials()
    d = study.direction
    names = ("spectrum", "curve")
    assert len(read_rows(trials, names, ReadContext(2, d, spectrum_step=0))) == 0
    rows = read_rows(trials, names, ReadContext(2, d, spectrum_step=2))
    assert rows.numbers == [0, 1, 2, 4]
    assert rows.targets[-1] == pytest.approx(0.8)  # inf -> the worst finite loss
    assert rows.raw.tolist() == rows.columns["curve"][:, 0].tolist()
    no_spectra = read_rows(trials, names, ReadContext(2, d))
    assert no_spectra.numbers == [0, 1, 2, 3, 4] and no_spectra.spectra is None


def test_unlabelled_rows_carry_only_spectra_at_the_exact_step() -> None:
    study = optuna.create_study(direction="maximize")
    add_completed(study, [0.1, 0.9], spectrum_steps=(0,))
    add_completed(study, [0.5], spectrum_steps=(1,))
    context = ReadContext(1, study.direction, spectrum_step=1, exact_spectrum_step=True)
    rows = read_rows(study.trials, ("spectrum", "curve"), context, labelled=False)
    assert rows.numbers == [2]
    assert np.isnan(rows.targets).all() and np.isnan(rows.columns["curve"]).all()
    assert len(rows.spectra) == 1


def test_query_rows_need_every_input_of_the_set() -> None:
    study = optuna.create_study(direction="maximize")
    add_completed(study, [0.1], spectrum_steps=(1,))
    trial = study.trials[0]
    rows = query_rows([trial], ("spectrum", "curve"), ReadContext(1, study.direction, 1))
    assert rows is not None and np.isnan(rows.targets).all()
    assert query_rows([trial], ("spectrum",), ReadContext(1, study.direction, 0)) is None


def test_warm_start_trials_count_only_when_they_can_become_rows() -> None:
    study = optuna.create_study(direction="maximize")
    for i in range(30):  # results of an earlier study: no curve, no spectrum
        study.add_trial(
            optuna.trial.create_trial(params={"x": i / 30}, distributions=DIST, value=i)
        )
    add_completed(study, np.linspace(0.0, 1.0, 8))
    completed = study.get_trials(states=(TrialState.COMPLETE,))
    context = ReadContext(1, study.direction, spectrum_step=1)
    training, usable = training_set(
        completed, ("spectrum", "curve"), context, start=5, growth=1.25
    )
    assert usable == 8
    assert [t.number for t in training] == list(range(30, 37))  # sizes 5, 7, 9: 7 of 8
    curve_only, usable = training_set(completed, ("curve",), context, start=5, growth=1.0)
    assert usable == 8 and len(curve_only) == 8


def test_pruned_trials_join_below_the_newest_training_trial() -> None:
    study = optuna.create_study(direction="maximize")
    add_completed(study, [0.1, 0.2, 0.3])  # trials 0-2
    for _ in range(2):  # trials 3-4: pruned with a spectrum at steps 0 and 1
        trial = study.ask()
        report_spectrum(trial, [0.0, -1.0], 0)
        report_spectrum(trial, [0.0, -1.0], 1)
        study.tell(trial, state=TrialState.PRUNED)
    add_completed(study, [0.4])  # trial 5
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    completed = study.get_trials(states=(TrialState.COMPLETE,))
    assert [t.number for t in unlabelled_trials(pruned, 1, completed)] == [3, 4]
    assert unlabelled_trials(pruned, 1, completed[:3]) == []
    assert unlabelled_trials(pruned, 2, completed) == []
    assert unlabelled_trials(pruned, 1, []) == []


def test_warm_started_pruner_fits_on_the_new_trials() -> None:
    """optuna/optuna#5354: trials added with ``add_trial`` (no curve, no spectrum) filled the
    refit schedule, so 17 new trials with spectra and curves left the pruner with no model."""
    rng = np.random.default_rng(0)
    pruner = LyapunovPruner(
        model=InStudyModel(
            n_startup_trials=5, refit_growth=1.25, aelle_params={"n_models": 1, "max_steps": 20}
        ),
    )
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for i in range(100):
        x = (i % 50) / 50
        study.add_trial(optuna.trial.create_trial(params={"x": x}, distributions=DIST, value=x))

    def run_trial(x: float) -> optuna.Trial:
        trial = study.ask(DIST)
        for step in (0, 1):
            trial.report(x + 0.1 * step, step)
            report_spectrum(trial, np.sort(rng.normal(-1 + x, 0.3, 8))[::-1], step)
        return trial

    assert pruner.predict(study, study.trials[0], 1) is None  # no curve to predict from
    for _ in range(17):
        done = run_trial(float(rng.uniform()))
        study.tell(done, 1.2 * done.params["x"])
    running = run_trial(0.5)
    record = pruner.predict(study, study.trials[running.number], 1)
    assert record is not None
    assert record["n_train"] == 15  # the schedule 5, 7, 9, 12, 15 over the 17 new trials
    # The gate judged the model on those new trials' out-of-sample predictions.
    assert 0.0 <= record["gate_share"] <= 1.0 and record["gate_open"] == (
        record["gate_share"] >= 0.9
    )
