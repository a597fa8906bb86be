from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from optuna_lyap.pruners import (
    LyapunovPruner,
    _lyapunov,
    fit_aelle,
    load_predictions,
    report_spectrum,
)
from optuna_lyap.pruners._predictor import refit_size
from tests.pruners_tests.synthetic import (
    FAST_AELLE,
    add_completed,
    chance,
    spectrum_for,
    start_running,
)

QUALITIES = np.linspace(0.0, 1.0, 10)


def make_pruner(**kwargs: Any) -> LyapunovPruner:
    options: dict[str, Any] = {
        "n_startup_trials": 8,
        "min_unpruned_share": 0.0,
        "aelle_params": FAST_AELLE,
        "cv_folds": 3,
        "fallback": None,
    }
    options.update(kwargs)
    return LyapunovPruner(**options)


def decide(study: optuna.Study, trial: optuna.Trial) -> bool:
    return study.pruner.prune(study, study._storage.get_trial(trial._trial_id))


def record_of(study: optuna.Study, trial: optuna.Trial) -> dict[str, Any]:
    frozen = study._storage.get_trial(trial._trial_id)
    records = load_predictions(frozen)
    return records[max(records)] if records else {}


def assert_finite_user_attrs(study: optuna.Study) -> None:
    for t in study.get_trials(deepcopy=False):
        for value in t.user_attrs.values():
            assert isinstance(value, (int, float)) and math.isfinite(value)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_prunes_a_bad_trial_and_keeps_a_good_one(
    direction: Literal["maximize", "minimize"],
) -> None:
    study = optuna.create_study(direction=direction, pruner=make_pruner())
    add_completed(study, QUALITIES)
    bad = start_running(study, 0.05)
    good = start_running(study, 0.95)
    assert bad.should_prune()
    assert not good.should_prune()

    bad_record, good_record = record_of(study, bad), record_of(study, good)
    assert bad_record["rule"] == good_record["rule"] == "model"
    assert "spectrum" in bad_record["inputs"]
    assert bad_record["rank_corr"] > bad_record["raw_rank_corr"]
    # The bar is the best quarter of the completed final values.
    expected = 0.75 if direction == "maximize" else 0.25
    assert bad_record["threshold"] == pytest.approx(expected)
    attrs = study._storage.get_trial(bad._trial_id).user_attrs
    assert attrs["lyap_n_train"] == 10
    assert attrs["lyap_predicted_std"] > 0
    good_value = study._storage.get_trial(good._trial_id).user_attrs["lyap_predicted"]
    assert (attrs["lyap_predicted"] < good_value) == (direction == "maximize")
    assert_finite_user_attrs(study)


def test_predict_matches_the_decision_and_writes_nothing() -> None:
    pruner = make_pruner()
    study = optuna.create_study(direction="maximize", pruner=pruner)
    add_completed(study, QUALITIES[:7])
    early = start_running(study, 0.5)
    assert pruner.predict(study, study._storage.get_trial(early._trial_id)) is None  # startup

    add_completed(study, QUALITIES)
    bad = start_running(study, 0.05)
    frozen = study._storage.get_trial(bad._trial_id)
    predicted = pruner.predict(study, frozen)
    assert predicted is not None and predicted["acts"]
    assert load_predictions(study._storage.get_trial(bad._trial_id)) == {}
    assert bad.should_prune()
    recorded = record_of(study, bad)
    for key in ("predicted", "predicted_std", "threshold", "p_worse", "n_train", "inputs"):
        assert predicted[key] == recorded[key]

    # Any trial can be predicted with the same model, at any step it reached.
    good_completed = study.get_trials(states=(TrialState.COMPLETE,))[-1]
    good = pruner.predict(study, good_completed, step=1)
    assert good is not None and good["predicted"] > predicted["predicted"]
    assert pruner.predict(study, good_completed, step=0) is not None
    with pytest.raises(ValueError, match="step"):
        pruner.predict(study, frozen, step=-1)

    # Where the pruner does not consult the model, the prediction is not acted on.
    elsewhere = make_pruner(model_steps=(0,))
    other = elsewhere.predict(study, frozen, step=1)
    assert other is not None and not other["acts"]


def test_default_fallback_never_prunes_the_untrained_network() -> None:
    # Step 0 is the untrained network (LyapunovMonitor, the built-in tasks): its value is at
    # chance, so the default median fallback must not judge it; from step 1 it does.
    pruner = LyapunovPruner(n_startup_trials=3, aelle_params=FAST_AELLE)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for value in (0.6, 0.7, 0.8, 0.9):
        trial = study.ask()
        trial.report(0.5 + value / 100, 0)
        trial.report(value, 1)
        study.tell(trial, value)
    trial = study.ask()  # no spectrum: the fallback decides
    trial.report(0.0, 0)
    assert not trial.should_prune()
    trial.report(0.0, 1)
    assert trial.should_prune()


def test_startup_defers_to_the_fallback() -> None:
    # Seven completed trials, eight needed: the median rule on the raw value decides.
    pruner = make_pruner(fallback=optuna.pruners.MedianPruner(n_startup_trials=1))
    study = optuna.create_study(direction="maximize", pruner=pruner)
    add_completed(study, QUALITIES[:7])
    low = start_running(study, 0.95, value=0.0)  # a good spectrum, a low raw value
    high = start_running(study, 0.05, value=1.0)
    assert decide(study, low)
    assert not decide(study, high)
    assert record_of(study, low) == {} and record_of(study, high) == {}

    study_without = optuna.create_study(direction="maximize", pruner=make_pruner())
    add_completed(study_without, QUALITIES[:7])
    assert not decide(study_without, start_running(study_without, 0.0, value=0.0))


def test_warmup_and_interval_are_respected() -> None:
    study = optuna.create_study(
        direction="maximize", pruner=make_pruner(n_warmup_steps=2, interval_steps=2)
    )
    add_completed(study, QUALITIES, steps=(0, 1, 2, 3, 4))
    trial = start_running(study, 0.0, step=1)
    assert not decide(study, trial)  # step 1 < n_warmup_steps
    for step in (2, 3):
        report_spectrum(trial, spectrum_for(0.0), step)
        trial.report(0.5, step)
        # Step 2 is a check step; step 3 is inside the interval that step 2 opened.
        assert decide(study, trial) == (step == 2)
    assert list(load_predictions(study._storage.get_trial(trial._trial_id))) == [2]


def test_model_steps_default_to_the_steps_with_a_spectrum() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner(use_curve=False))
    add_completed(study, QUALITIES)  # spectra at steps 0 and 1, values at 0, 1, 2
    trial = start_running(study, 0.0, step=1)
    trial.report(0.5, 2)
    assert not decide(study, trial)  # no spectrum at step 2: the fallback (none) decides
    assert load_predictions(study._storage.get_trial(trial._trial_id)) == {}

    # Asked to, the model decides at step 2 from the spectrum of step 1.
    study.pruner = make_pruner(use_curve=False, model_steps=[2])
    assert decide(study, trial)
    assert record_of(study, trial)["spectrum_step"] == 1


def test_acts_only_where_the_model_beats_the_raw_value() -> None:
    # The curve ranks the final values perfectly; the spectrum-only model cannot beat it.
    rng = np.random.default_rng(3)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(use_curve=False))
    add_completed(study, QUALITIES, curve_is_final=True)
    # A trial that looks good to the spectrum but bad on the curve: the fallback (none) decides.
    trial = study.ask()
    report_spectrum(trial, spectrum_for(0.0, rng=rng), 1)
    trial.report(0.9, 1)
    assert not decide(study, trial)
    record = record_of(study, trial)
    assert record["rule"] == "fallback" and record["pruned"] is False
    assert record["raw_rank_corr"] == pytest.approx(1.0)

    # Without the check, the same model acts.
    study.pruner = make_pruner(use_curve=False, require_beating_raw=False)
    assert decide(study, trial)
    assert record_of(study, trial)["rule"] == "model"


def test_hyperparameters_as_inputs_without_spectra() -> None:
    # The final value follows the learning rate; the curve is at chance.
    study = optuna.create_study(
        direction="maximize", pruner=make_pruner(use_spectrum=False, use_params=True)
    )
    rng = np.random.default_rng(0)

    def ask(lr: float) -> optuna.Trial:
        study.enqueue_trial({"lr": lr, "cell": "gru"})
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_categorical("cell", ["rnn", "gru"])
        trial.report(chance(rng), 1)
        return trial

    for lr in np.logspace(-4, -1, 10):
        study.tell(ask(lr), float(np.log10(lr)))
    low, high = ask(1.5e-4), ask(0.09)
    assert decide(study, low)
    assert not decide(study, high)
    record = record_of(study, low)
    assert record["spectrum_step"] is None and "params" in record["inputs"]


def test_diverged_spectra_neither_fail_nor_poison() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    add_completed(study, QUALITIES, diverged=(0, 4))
    good = start_running(study, 0.95)
    assert not decide(study, good)
    assert record_of(study, good)["rule"] == "model"

    nan_trial = study.ask()
    report_spectrum(nan_trial, np.full(16, math.nan), 1)
    nan_trial.report(0.5, 1)
    decide(study, nan_trial)  # no exception
    record = record_of(study, nan_trial)
    assert math.isfinite(record["predicted"]) and math.isfinite(record["predicted_std"])
    assert_finite_user_attrs(study)


@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # MedianPruner's own
def test_nan_current_value_goes_to_the_fallback() -> None:
    pruner = make_pruner(fallback=optuna.pruners.MedianPruner(n_startup_trials=1))
    study = optuna.create_study(direction="maximize", pruner=pruner)
    add_completed(study, QUALITIES)
    trial = start_running(study, 0.95, value=math.nan)
    assert decide(study, trial)  # the median rule prunes NaN values
    assert record_of(study, trial) == {}


def test_protected_share_keeps_trial_zero_and_records_it() -> None:
    assert _lyapunov.is_protected(0, 0.1)
    kept = sum(_lyapunov.is_protected(n, 0.1) for n in range(1000))
    assert 95 <= kept <= 105
    study = optuna.create_study(
        direction="maximize", pruner=make_pruner(min_unpruned_share=0.5, use_curve=False)
    )
    add_completed(study, QUALITIES)
    decisions = {}
    for _ in range(4):
        trial = start_running(study, 0.0)
        decisions[trial.number] = decide(study, trial)
        assert record_of(study, trial)["rule"] == (
            "kept" if _lyapunov.is_protected(trial.number, 0.5) else "model"
        )
    assert decisions == {n: not _lyapunov.is_protected(n, 0.5) for n in decisions}
    assert any(decisions.values()) and not all(decisions.values())


def count_fits(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Record the labelled trial numbers of every fit the pruner makes."""
    calls: list[tuple[int, ...]] = []
    original = _lyapunov.fit_predictor

    def counting(rows: Any, **kwargs: Any) -> Any:
        calls.append(tuple(rows.numbers))
        return original(rows, **kwargs)

    monkeypatch.setattr(_lyapunov, "fit_predictor", counting)
    return calls


def test_refits_only_when_the_completed_set_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_fits(monkeypatch)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(refit_growth=1.0))
    add_completed(study, QUALITIES)
    first = start_running(study, 0.2)
    second = start_running(study, 0.8)
    decide(study, first)
    decide(study, second)
    assert len(calls) == 1
    study.tell(first, 0.2)
    decide(study, second)
    assert len(calls) == 2 and calls[1] == tuple(range(11))


def test_refits_on_the_growth_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_fits(monkeypatch)
    # n_startup_trials=8, growth 1.25: training sets of 8, 10, 13, 17, ... completed trials.
    study = optuna.create_study(direction="maximize", pruner=make_pruner(refit_growth=1.25))
    add_completed(study, QUALITIES)  # 10 completed
    for value in (0.3, 0.6):  # the 11th and 12th completions reuse the model of 10
        trial = start_running(study, value)
        decide(study, trial)
        study.tell(trial, value)
    assert calls == [tuple(range(10))]
    running = start_running(study, 0.5)
    decide(study, running)
    assert calls == [tuple(range(10))]
    record = record_of(study, running)
    assert record["n_train"] == 10
    # ... but the threshold follows all 12 completed trials.
    finals = [t.value for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(finals) == 12
    assert record["threshold"] == pytest.approx(np.quantile(finals, 0.75))
    study.tell(running, 0.5)  # the 13th: a refit on all of them
    decide(study, start_running(study, 0.5))
    assert calls == [tuple(range(10)), tuple(range(13))]


def test_refit_size_schedule() -> None:
    sizes = [refit_size(n, 5, 1.25) for n in range(0, 25)]
    assert sizes[:5] == [0, 1, 2, 3, 4]  # below the start: everything there is
    assert sorted(set(sizes[5:])) == [5, 7, 9, 12, 15, 19, 24]
    assert [refit_size(n, 5, 1.0) for n in range(5, 12)] == list(range(5, 12))


def test_pruned_spectra_enter_with_the_training_set(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[int]] = []
    original = _lyapunov.fit_predictor

    def capture(rows: Any, **kwargs: Any) -> Any:
        extra = kwargs["unlabelled"]
        seen.append([] if extra is None else list(extra.numbers))
        return original(rows, **kwargs)

    monkeypatch.setattr(_lyapunov, "fit_predictor", capture)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(refit_growth=1.0))
    add_completed(study, QUALITIES)  # trials 0-9
    for _ in range(3):  # trials 10-12
        study.tell(start_running(study, 0.1), state=TrialState.PRUNED)
    decide(study, start_running(study, 0.5))  # trial 13
    assert seen == [[]]  # newer than every training trial: no refit of their own
    finished = start_running(study, 0.5)  # trial 14
    study.tell(finished, 0.5)
    decide(study, start_running(study, 0.5))
    assert seen == [[], [10, 11, 12]]  # they join with the training set's next change


def test_same_decisions_from_separate_instances_and_after_pickling() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner(use_curve=False))
    add_completed(study, QUALITIES)
    trial = start_running(study, 0.4)
    decide(study, trial)
    first = record_of(study, trial)

    restored = pickle.loads(pickle.dumps(study.pruner))
    assert restored._cache == {}
    study.pruner = restored
    decide(study, trial)
    assert record_of(study, trial) == first
    study.pruner = make_pruner(use_curve=False)
    decide(study, trial)
    assert record_of(study, trial) == first


def test_pretrained_aelle_predicts_from_the_first_trial(tmp_path: Path) -> None:
    source = optuna.create_study(direction="maximize")
    add_completed(source, np.linspace(0.0, 1.0, 16), seed=5)
    model = fit_aelle(source, step=1, seed=0, **FAST_AELLE)
    path = tmp_path / "aelle.pt"
    model.save(path)

    for aelle in (model, str(path)):
        study = optuna.create_study(direction="maximize", pruner=make_pruner(aelle=aelle))
        bad, good = start_running(study, 0.05), start_running(study, 0.95)
        assert decide(study, bad) and not decide(study, good)
        record = record_of(study, bad)
        assert record["pretrained"] is True and record["n_train"] == 16
        # The bar comes from the pretrained model's targets (mean 0.5, spread ~0.31).
        assert 0.6 < record["threshold"] < 0.8


def test_n_jobs_two_prunes_and_nothing_fails() -> None:
    pruner = make_pruner(n_startup_trials=5, n_warmup_steps=1, use_curve=False, cv_folds=2)

    def objective(trial: optuna.Trial) -> float:
        q = trial.suggest_float("q", 0.0, 1.0)
        rng = np.random.default_rng(trial.number)
        for step in range(3):
            if step < 2:
                report_spectrum(trial, spectrum_for(q, rng=rng), step)
            trial.report(chance(rng), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return q

    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(objective, n_trials=14, n_jobs=2)
    states = [t.state for t in study.trials]
    assert TrialState.FAIL not in states
    assert states.count(TrialState.PRUNED) >= 1
    assert states.count(TrialState.COMPLETE) >= 5
    assert_finite_user_attrs(study)


def test_multi_objective_is_a_clear_error() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    with pytest.raises(ValueError, match="single-objective"):
        make_pruner().prune(study, study._storage.get_trial(trial._trial_id))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_startup_trials": -1}, "n_startup_trials"),
        ({"n_warmup_steps": -1}, "n_warmup_steps"),
        ({"interval_steps": 0}, "interval_steps"),
        ({"quantile": 0.0}, "quantile"),
        ({"quantile": 1.0}, "quantile"),
        ({"confidence": 0.5}, "confidence"),
        ({"confidence": 1.0}, "confidence"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"refit_growth": 0.9}, "refit_growth"),
        ({"min_unpruned_share": 1.0}, "min_unpruned_share"),
        ({"min_unpruned_share": -0.1}, "min_unpruned_share"),
        ({"seed": -1}, "seed"),
        ({"model_steps": [1, -1]}, "model_steps"),
        ({"fallback": "hyperband"}, "fallback"),
        ({"aelle": 3}, "aelle"),
        ({"use_spectrum": False, "use_curve": False}, "use_spectrum"),
        ({"n_startup_trials": True}, "n_startup_trials"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LyapunovPruner(**kwargs)


def test_unknown_aelle_param_fails_early() -> None:
    with pytest.raises(TypeError):
        LyapunovPruner(aelle_params={"latent_dims": 4})
