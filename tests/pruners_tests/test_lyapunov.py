from __future__ import annotations

import gzip
import json
import math
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import pytest
from optuna.pruners import SuccessiveHalvingPruner
from optuna.trial import TrialState

from optuna_lyap import InStudyModel
from optuna_lyap._prediction import _gate, configuration_key, fit_predictor, refit_size
from optuna_lyap._prediction._in_study import FittedModel
from optuna_lyap._storage import USER_ATTR_SUMMARY
from optuna_lyap.aelle import AeLLE
from optuna_lyap.pruners import (
    LyapunovPruner,
    fit_aelle,
    load_predictions,
    report_spectrum,
)
from tests._support.synthetic import (
    FAST_AELLE,
    add_completed,
    chance,
    spectrum_for,
    start_running,
)

QUALITIES = np.linspace(0.0, 1.0, 10)
TABLES = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
RECORD_KEYS = {
    "pruned", "rule", "step", "rung", "scorer", "score_kind", "score", "rank", "n_competitors",
    "n_promoted", "bar", "direction",
}  # fmt: skip
MODEL_KEYS = {
    "predicted", "predicted_std", "inputs", "rank_corr", "raw_rank_corr", "gate_share",
    "gate_open", "n_train",
}  # fmt: skip


# InStudyModel's arguments: make_pruner hands them to the pruner's model.
MODEL_ARGS = (
    "inputs", "aelle", "aelle_params", "select_inputs", "cv_folds", "use_unlabelled",
    "refit_growth", "model_steps", "n_resamples", "seed", "artifact_store", "fit",
    "n_startup_trials",
)  # fmt: skip


def make_pruner(**kwargs: Any) -> LyapunovPruner:
    options: dict[str, Any] = {
        "min_resource": 1,
        "reduction_factor": 2,
        # The in-study model alone: the prior's part is tested in test_prior.py.
        "prior": None,
    }
    model: dict[str, Any] = {
        "inputs": ("spectrum",), "aelle_params": FAST_AELLE, "cv_folds": 3, "n_startup_trials": 10
    }  # fmt: skip
    for name in MODEL_ARGS:
        if name in kwargs:
            model[name] = kwargs.pop(name)
    options.update(kwargs)
    return LyapunovPruner(model=InStudyModel(**model), **options)


def decide(study: optuna.Study, trial: optuna.Trial) -> bool:
    return study.pruner.prune(study, study._storage.get_trial(trial._trial_id))


def record_of(study: optuna.Study, trial: optuna.Trial) -> dict[str, Any]:
    frozen = study._storage.get_trial(trial._trial_id)
    records = load_predictions(frozen)
    return records[max(records)] if records else {}


def assert_finite_user_attrs(study: optuna.Study) -> None:
    for t in study.get_trials(deepcopy=False):
        for key, value in t.user_attrs.items():
            if key == USER_ATTR_SUMMARY:  # the one line for a person, the only text attr
                assert isinstance(value, str) and value
                continue
            assert isinstance(value, (int, float)) and math.isfinite(value)


def rung_of_three(study: optuna.Study) -> tuple[optuna.Trial, optuna.Trial, optuna.Trial]:
    """Three running trials reaching rung 0 (step 1) in turn, each judged there.

    The raw value says the opposite of the spectrum: the middle trial has the worst spectrum
    and the best value, the last the best spectrum and the worst value.
    """
    first = start_running(study, 0.5, value=0.5)
    decide(study, first)
    bad = start_running(study, 0.05, value=0.9)
    good = start_running(study, 0.95, value=0.0)
    return first, bad, good


# --- the model decides where it out-ranks the raw value ------------------------------------


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_model_ranks_a_rung_where_it_beats_the_raw_value(
    direction: Literal["maximize", "minimize"],
) -> None:
    study = optuna.create_study(direction=direction, pruner=make_pruner())
    add_completed(study, QUALITIES)  # chance-level curves, spectra that encode the final value
    _, bad, good = rung_of_three(study)
    if direction == "minimize":  # the same raw ranking in the other direction
        for trial in (bad, good):
            value = study._storage.get_trial(trial._trial_id).intermediate_values[1]
            study._storage.set_trial_intermediate_value(trial._trial_id, 1, 1.0 - value)
    assert decide(study, bad)  # the raw value would promote it
    assert not decide(study, good)  # the raw value would prune it

    bad_record, good_record = record_of(study, bad), record_of(study, good)
    for record in (bad_record, good_record):
        assert RECORD_KEYS | MODEL_KEYS <= set(record)
        assert record["rule"] == "model_rung" and record["score_kind"] == "predicted"
        assert record["gate_open"] and record["gate_share"] >= 0.9
        assert record["rung"] == 0 and record["step"] == 1 and record["direction"] == direction
        assert record["score"] == record["predicted"]
        assert "spectrum" in record["inputs"] and record["n_train"] == 10
    assert (bad_record["n_competitors"], bad_record["n_promoted"], bad_record["rank"]) == (2, 1, 2)
    assert (good_record["n_competitors"], good_record["rank"]) == (3, 1)
    assert bad_record["bar"] != bad_record["predicted"]
    better = good_record["predicted"] > bad_record["predicted"]
    assert better == (direction == "maximize")
    attrs = study._storage.get_trial(bad._trial_id).user_attrs
    assert attrs["lyap_n_train"] == 10 and attrs["lyap_predicted_std"] > 0
    # SHA's bookkeeping is kept with the raw value.
    frozen = study._storage.get_trial(bad._trial_id)
    assert frozen.system_attrs["completed_rung_0"] == frozen.intermediate_values[1]
    assert_finite_user_attrs(study)


def test_a_closed_gate_leaves_the_raw_value_to_decide() -> None:
    # The curve ranks the final values perfectly; the spectrum cannot do better.
    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    add_completed(study, QUALITIES, curve_is_final=True)
    _, bad, good = rung_of_three(study)
    assert not decide(study, bad)  # the best raw value so far
    assert decide(study, good)
    record = record_of(study, good)
    assert RECORD_KEYS <= set(record)
    assert record["rule"] == "rung" and record["score_kind"] == "raw"
    assert record["score"] == 0.0 and record["bar"] == 0.9
    # No model can out-rank a perfect raw value in any resample, so none was fitted: the
    # record says so instead of holding a prediction.
    assert record["gate_share_bound"] == 0.0 and record["gate"] == 0.9
    assert not record["gate_open"] and record["n_train"] == len(QUALITIES)
    assert "predicted" not in record and "gate_share" not in record
    assert len(study.pruner._model._cache) == 0

    # Asked for a prediction, the pruner fits the model all the same.
    prediction = study.pruner.predict(study, study._storage.get_trial(good._trial_id))
    assert prediction is not None and MODEL_KEYS <= set(prediction)
    assert prediction["gate_share"] == 0.0 and not prediction["acts"]
    assert prediction["raw_rank_corr"] == pytest.approx(1.0)


def test_a_model_is_fitted_only_where_it_could_open_the_gate() -> None:
    # The spectrum encodes the final value and the raw value is chance: a model may win, so
    # the training set is fitted; with a perfect raw value it is not, and the decisions agree
    # with a pruner that fits regardless.
    for curve_is_final, fitted in ((False, True), (True, False)):
        decisions = []
        for skip in (True, False):
            pruner = make_pruner()
            if not skip:
                pruner._gate_bound = lambda *args: 1.0  # type: ignore[method-assign]
            study = optuna.create_study(direction="maximize", pruner=pruner)
            add_completed(study, QUALITIES, curve_is_final=curve_is_final)
            _, bad, good = rung_of_three(study)
            decisions.append((decide(study, bad), decide(study, good)))
            if skip:
                assert (len(pruner._model._cache) > 0) is fitted
                assert ("gate_share" in record_of(study, good)) is fitted
        assert decisions[0] == decisions[1]


def test_records_only_at_decision_points() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner(inputs=("spectrum",)))
    trial = study.ask()
    for step in range(5):
        trial.report(0.5, step)
        assert not decide(study, trial)  # alone in every rung
    records = load_predictions(study._storage.get_trial(trial._trial_id))
    assert sorted(records) == [1, 2, 4]  # rungs close at 1, 2, 4 (r = 1, eta = 2)
    assert [records[s]["rung"] for s in (1, 2, 4)] == [0, 1, 2]
    assert all(r["rule"] == "rung" and "predicted" not in r for r in records.values())
    assert all(r["scorer"] == "raw" for r in records.values())
    assert set(records[4]) == RECORD_KEYS
    json.dumps(records[4])


def test_the_step0_screen_keeps_the_best_predictions() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner(screen_fraction=0.5))
    add_completed(study, QUALITIES)
    first = start_running(study, 0.6, step=0)
    assert not decide(study, first)
    bad = start_running(study, 0.05, step=0)
    assert decide(study, bad)
    record = record_of(study, bad)
    assert record["rule"] == "screen" and record["rung"] is None and record["step"] == 0
    assert record["gate_open"] and record["n_competitors"] == 12  # the completed ones too
    # Without the screen nothing is judged at step 0.
    study.pruner = make_pruner()
    assert not decide(study, start_running(study, 0.05, step=0))


# --- exactly successive halving without a model ---------------------------------------------


def table_study(
    pruner: optuna.pruners.BasePruner, task: str = "sines", n_trials: int = 60, seed: int = 0
) -> list[tuple[int, TrialState, int | None]]:
    """Replay a recorded table: each trial draws a configuration, reports its recorded values
    (and its spectra at steps 0 and 1) epoch by epoch until pruned. Returns, per trial, the
    configuration, the state and the last step."""
    with gzip.open(TABLES / f"{task}.jsonl.gz", "rt") as f:
        lines = [json.loads(line) for line in f]
    meta, configs = lines[0], [line for line in lines[1:] if line.get("kind") == "config"]
    study = optuna.create_study(
        direction=meta["direction"],
        pruner=pruner,
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )

    def objective(trial: optuna.Trial) -> float:
        config = configs[trial.suggest_int("config", 0, len(configs) - 1)]
        values = [math.nan if v is None else float(v) for v in config["values"]]
        for step, value in enumerate(values):
            if step < 2:
                spectrum = np.array(
                    [math.nan if v is None else v for v in config["spectra"][step]]
                )
                report_spectrum(trial, spectrum, step)
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return values[-1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, n_trials=n_trials)
    return [(t.params["config"], t.state, t.last_step) for t in study.trials]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ({}, {"min_resource": 1}),  # our default
        ({"min_resource": "auto"}, {}),  # Optuna's default
        (
            {"reduction_factor": 3, "bootstrap_count": 2},
            {"min_resource": 1, "reduction_factor": 3, "bootstrap_count": 2},
        ),
        (
            {"min_resource": 2, "reduction_factor": 2, "min_early_stopping_rate": 1},
            {"min_resource": 2, "reduction_factor": 2, "min_early_stopping_rate": 1},
        ),
    ],
)
def test_without_a_model_it_is_successive_halving(
    ours: dict[str, Any], theirs: dict[str, Any]
) -> None:
    # No model ever (too few completed trials for one): Optuna's decisions, trial by trial.
    never = InStudyModel(n_startup_trials=10**6)
    ours_trials = table_study(LyapunovPruner(model=never, **ours))
    assert ours_trials == table_study(SuccessiveHalvingPruner(**theirs))
    assert any(state == TrialState.PRUNED for _, state, _ in ours_trials)


@pytest.mark.slow
def test_with_a_closed_gate_it_is_successive_halving() -> None:
    # Models are fitted on the sines table; its raw value ranks better there, so the gate
    # stays shut and every decision is successive halving's.
    ours_pruner = LyapunovPruner(model=InStudyModel(n_startup_trials=5))
    ours = table_study(ours_pruner, n_trials=60)
    assert ours == table_study(SuccessiveHalvingPruner(min_resource=1), n_trials=60)
    # Each training set was either fitted and failed the gate, or not fitted because no
    # model could have passed it.
    models = [m for m in ours_pruner._model._cache.values() if m is not None]
    assert all(m.evidence["gate_share"] < 0.9 for m in models)
    bounds = list(ours_pruner._model._gate_bounds.values())
    assert bounds and len(models) == sum(b >= 0.9 for b in bounds)


# --- stateful fallbacks (optuna#3088) -------------------------------------------------------


def sha_bookkeeping_mismatches(
    pruner: optuna.pruners.BasePruner, spectrum_step: int | None
) -> list[int]:
    rng = np.random.default_rng(0)
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(5):
            trial.report(x * (1 + 0.1 * step), step)
            if step == spectrum_step:
                report_spectrum(trial, np.sort(rng.normal(-1 + x, 0.3, 8))[::-1], step)
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


def test_a_stateful_fallback_keeps_its_own_bookkeeping() -> None:
    # A SuccessiveHalvingPruner fallback must be consulted at every
    # check step, also where the model decides, so its rung values are those it keeps alone.
    def sha() -> SuccessiveHalvingPruner:
        return SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)

    assert sha_bookkeeping_mismatches(sha(), None) == []
    assert (
        sha_bookkeeping_mismatches(
            LyapunovPruner(model=InStudyModel(n_startup_trials=3), fallback=sha()), None
        )
        == []
    )
    rng = np.random.default_rng(0)
    spectra = [np.sort(rng.normal(-1, 0.3, 8))[::-1] for _ in range(10)]
    aelle = AeLLE(n_models=1, max_steps=20, seed=0).fit(
        spectra, rng.normal(size=10), rng.normal(size=(10, 2))
    )
    modelled = LyapunovPruner(
        n_startup_trials=100, model=InStudyModel(aelle=aelle), fallback=sha()
    )
    assert sha_bookkeeping_mismatches(modelled, spectrum_step=1) == []


def test_the_fallback_decides_where_the_model_does_not() -> None:
    fallback = optuna.pruners.ThresholdPruner(lower=0.4)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(fallback=fallback))
    trial = study.ask()
    trial.report(0.3, 0)
    assert decide(study, trial)  # not a rung: the fallback alone
    assert load_predictions(study._storage.get_trial(trial._trial_id)) == {}
    trial.report(0.3, 1)
    assert decide(study, trial)  # rung 0, no model: the fallback, recorded
    record = record_of(study, trial)
    assert record["rule"] == "fallback" and record["fallback"] == "ThresholdPruner"
    frozen = study._storage.get_trial(trial._trial_id)
    assert "completed_rung_0" not in frozen.system_attrs  # ours are namespaced then
    assert frozen.system_attrs["optuna_lyap:completed_rung_0"] == 0.3


# --- robust statistics ----------------------------------------------------------------------


@pytest.mark.parametrize("huge", [3.0, 10.0, 1e30])
def test_one_huge_final_value_neither_widens_the_spread_nor_stops_pruning(huge: float) -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner(refit_growth=1.0))
    add_completed(study, QUALITIES)
    outlier = study.ask()
    for step in (0, 1):
        report_spectrum(outlier, spectrum_for(1.0), step)
        outlier.report(chance(np.random.default_rng(9)), step)
    study.tell(outlier, huge)
    _, bad, good = rung_of_three(study)
    assert decide(study, bad)
    assert not decide(study, good)
    record = record_of(study, bad)
    assert record["rule"] == "model_rung"
    assert record["predicted_std"] < 1.0  # the targets' spread without the outlier is ~0.3
    assert_finite_user_attrs(study)


# --- other behaviour ------------------------------------------------------------------------


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
    decide(study, bad)
    recorded = record_of(study, bad)
    for key in MODEL_KEYS:
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


def test_model_steps_default_to_the_steps_with_a_spectrum() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    add_completed(study, QUALITIES, steps=(0, 1, 2))  # spectra at steps 0 and 1
    trial = start_running(study, 0.0, step=1)
    decide(study, trial)
    trial.report(0.5, 2)
    decide(study, trial)  # rung 1 closes at step 2, which has no spectrum: the raw value
    assert "predicted" not in record_of(study, trial)

    # Asked to, the model judges step 2 from the spectrum of step 1.
    other = start_running(study, 0.0, step=1)
    study.pruner = make_pruner(model_steps=[2])
    decide(study, other)
    other.report(0.5, 2)
    decide(study, other)
    assert record_of(study, other)["spectrum_step"] == 1


def test_hyperparameters_as_inputs_without_spectra() -> None:
    # The final value follows the learning rate; the curve is at chance.
    study = optuna.create_study(direction="maximize", pruner=make_pruner(inputs=("params",)))
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
    first = ask(0.01)
    decide(study, first)
    low, high = ask(1.5e-4), ask(0.09)
    assert decide(study, low)
    assert not decide(study, high)
    record = record_of(study, low)
    assert record["rule"] == "model_rung"
    assert record["spectrum_step"] is None and "params" in record["inputs"]


def test_diverged_spectra_neither_fail_nor_poison() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    add_completed(study, QUALITIES, diverged=(0, 4))
    first, bad, good = rung_of_three(study)
    decide(study, bad)
    assert not decide(study, good)
    assert record_of(study, good)["rule"] == "model_rung"

    nan_trial = study.ask()
    report_spectrum(nan_trial, np.full(16, math.nan), 1)
    nan_trial.report(0.5, 1)
    decide(study, nan_trial)  # no exception
    record = record_of(study, nan_trial)
    assert math.isfinite(record["predicted"]) and math.isfinite(record["predicted_std"])
    assert_finite_user_attrs(study)


def test_nan_current_value_is_pruned_as_successive_halving_does() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    add_completed(study, QUALITIES)
    trial = start_running(study, 0.95, value=math.nan)
    assert decide(study, trial)
    frozen = study._storage.get_trial(trial._trial_id)
    assert "completed_rung_0" not in frozen.system_attrs
    assert record_of(study, trial)["rule"] == "rung"


def count_fits() -> tuple[list[tuple[int, ...]], Any]:
    """A fit function for the pruner's model that records the labelled trial numbers of every
    fit, and the list it records them in."""
    calls: list[tuple[int, ...]] = []

    def counting(rows: Any, **kwargs: Any) -> Any:
        calls.append(tuple(rows.numbers))
        return fit_predictor(rows, **kwargs)

    return calls, counting


def test_refits_only_when_the_completed_set_changes() -> None:
    calls, fit = count_fits()
    study = optuna.create_study(
        direction="maximize", pruner=make_pruner(refit_growth=1.0, fit=fit)
    )
    add_completed(study, QUALITIES)
    first = start_running(study, 0.2)
    decide(study, first)
    decide(study, start_running(study, 0.8))
    assert len(calls) == 1
    study.tell(first, 0.2)
    decide(study, start_running(study, 0.8))
    assert len(calls) == 2 and calls[1] == tuple(range(11))


def test_refits_on_the_growth_schedule() -> None:
    calls, fit = count_fits()
    # n_startup_trials=10, growth 1.25: training sets of 10, 13, 17, ... completed trials.
    study = optuna.create_study(
        direction="maximize", pruner=make_pruner(refit_growth=1.25, fit=fit)
    )
    add_completed(study, QUALITIES)  # 10 completed
    for value in (0.3, 0.6):  # the 11th and 12th completions reuse the model of 10
        trial = start_running(study, value)
        decide(study, trial)
        study.tell(trial, value)
    assert calls == [tuple(range(10))]
    running = start_running(study, 0.5)
    decide(study, running)
    assert calls == [tuple(range(10))]
    assert record_of(study, running)["n_train"] == 10
    study.tell(running, 0.5)  # the 13th: a refit on all of them
    decide(study, start_running(study, 0.5))
    assert calls == [tuple(range(10)), tuple(range(13))]


def test_refit_size_schedule() -> None:
    sizes = [refit_size(n, 5, 1.25) for n in range(0, 25)]
    assert sizes[:5] == [0, 1, 2, 3, 4]  # below the start: everything there is
    assert sorted(set(sizes[5:])) == [5, 7, 9, 12, 15, 19, 24]
    assert [refit_size(n, 5, 1.0) for n in range(5, 12)] == list(range(5, 12))


def test_pruned_spectra_enter_with_the_training_set() -> None:
    seen: list[list[int]] = []

    def capture(rows: Any, **kwargs: Any) -> Any:
        extra = kwargs["unlabelled"]
        seen.append([] if extra is None else list(extra.numbers))
        return fit_predictor(rows, **kwargs)

    study = optuna.create_study(
        direction="maximize", pruner=make_pruner(refit_growth=1.0, fit=capture)
    )
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
    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    add_completed(study, QUALITIES)

    def model_fields() -> dict[str, Any]:
        trial = start_running(study, 0.4)  # the same spectra and values each time
        decide(study, trial)
        return {k: v for k, v in record_of(study, trial).items() if k in MODEL_KEYS}

    first = model_fields()
    restored = pickle.loads(pickle.dumps(study.pruner))
    assert restored._model._cache == {}
    study.pruner = restored
    assert model_fields() == first
    study.pruner = make_pruner()
    assert model_fields() == first


def test_a_pretrained_aelle_passes_the_same_gate(tmp_path: Path) -> None:
    source = optuna.create_study(direction="maximize")
    add_completed(source, np.linspace(0.0, 1.0, 16), seed=5)
    model = fit_aelle(source, step=1, seed=0, **FAST_AELLE)
    path = tmp_path / "aelle.pt"
    model.save(path)

    for aelle in (model, str(path)):
        # No completed trial: no evidence, so the raw value ranks.
        study = optuna.create_study(direction="maximize", pruner=make_pruner(aelle=aelle))
        _, bad, good = rung_of_three(study)
        assert not decide(study, bad)
        record = record_of(study, bad)
        assert record["pretrained"] is True and record["n_train"] == 16
        assert record["rule"] == "rung" and not record["gate_open"]
        # With the study's own evidence, it ranks.
        study = optuna.create_study(
            direction="maximize", pruner=make_pruner(aelle=aelle, n_startup_trials=10)
        )
        add_completed(study, QUALITIES)
        _, bad, good = rung_of_three(study)
        assert decide(study, bad) and not decide(study, good)
        assert record_of(study, bad)["rule"] == "model_rung"


def test_n_jobs_two_prunes_and_nothing_fails() -> None:
    pruner = make_pruner(n_startup_trials=5, n_warmup_steps=1, cv_folds=2)

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
        ({"min_resource": 0}, "min_resource"),
        ({"min_resource": "many"}, "min_resource must be an integer >= 1 or 'auto'"),
        ({"reduction_factor": 1}, "reduction_factor"),
        ({"min_early_stopping_rate": -1}, "min_early_stopping_rate"),
        ({"bootstrap_count": -1}, "bootstrap_count"),
        ({"bootstrap_count": 2, "min_resource": "auto"}, "bootstrap_count"),
        ({"gate": 0.0}, r"gate must be a finite number in \(0.0, 1.0\]"),
        ({"gate": 1.5}, r"gate must be a finite number in \(0.0, 1.0\]"),
        ({"screen_fraction": 0.0}, r"screen_fraction must be a finite number in \(0.0, 1.0\]"),
        ({"screen_fraction": 1.5}, r"screen_fraction must be a finite number in \(0.0, 1.0\]"),
        ({"fallback": "median"}, "fallback"),
        ({"n_startup_trials": True}, "n_startup_trials"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LyapunovPruner(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"refit_growth": 0.9}, "refit_growth"),
        ({"seed": -1}, "seed"),
        ({"model_steps": [1, -1]}, "model_steps"),
        ({"aelle": 3}, "aelle"),
        ({"inputs": ()}, "inputs"),
        ({"inputs": ("spectrum", "gradient")}, "inputs"),
        ({"n_startup_trials": -1}, "n_startup_trials"),
    ],
)
def test_invalid_model_parameters(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        InStudyModel(**kwargs)


def test_unknown_aelle_param_fails_early() -> None:
    with pytest.raises(TypeError):
        InStudyModel(aelle_params={"latent_dims": 4})
    with pytest.raises(TypeError, match="InStudyModel"):
        LyapunovPruner(model="default")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        # The threshold rule's, removed with it.
        "quantile", "confidence", "min_unpruned_share", "require_beating_raw",
        # The in-study model's, now InStudyModel's.
        "aelle", "aelle_params", "use_spectrum", "use_curve", "use_params", "select_inputs",
        "cv_folds", "use_unlabelled", "model_steps", "refit_growth", "n_resamples", "seed",
        "artifact_store",
    ],
)  # fmt: skip
def test_removed_arguments_are_type_errors(name: str) -> None:
    with pytest.raises(TypeError, match=name):
        LyapunovPruner(**{name: 0.9})


def test_the_gate_evidence_is_computed_once_and_read_by_every_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    add_completed(study, QUALITIES)
    running = study._storage.get_trial(start_running(study, 0.4)._trial_id)
    first = study.pruner.predict(study, running)
    assert first is not None
    (fitted,) = [m for m in study.pruner._model._cache.values() if m is not None]
    # The evidence stored with the predictor is the bootstrap of its own fit's numbers.
    assert fitted.numbers == list(range(10))
    expected = _gate.gate_evidence(fitted, study.direction, n_resamples=500, seed=0)
    assert fitted.evidence == expected
    assert first["gate_share"] == expected["gate_share"]

    def no_fit(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("another worker refitted instead of loading the stored predictor")

    # The bootstrap runs only inside a fit: a worker that loads the fit runs neither.
    monkeypatch.setattr(_gate, "gate_share", no_fit)
    assert make_pruner(fit=no_fit).predict(study, running) == first
    # Another bootstrap size is another predictor: its evidence would differ.
    with pytest.raises(AssertionError, match="refitted"):
        make_pruner(n_resamples=100, fit=no_fit).predict(study, running)


def test_the_gate_counts_a_configuration_once() -> None:
    # Ten completed trials, two configurations among them trained three times each.
    x = [0.1, 0.1, 0.1, 0.2, 0.3, 0.4, 0.4, 0.4, 0.5, 0.6]
    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    add_completed(study, QUALITIES, params=x)
    running = study._storage.get_trial(start_running(study, 0.4)._trial_id)
    assert study.pruner.predict(study, running) is not None
    (fitted,) = [m for m in study.pruner._model._cache.values() if m is not None]
    keys = [configuration_key(t) for t in study.trials[:10]]
    assert fitted.groups == keys and len(set(keys)) == 6
    # Maximised, so predictions, raw values and finals are scores as they stand.
    grouped = _gate.gate_share(fitted.chosen.oof, fitted.raw, fitted.targets, seed=0, groups=keys)
    assert fitted.evidence["gate_share"] == grouped
    # (The copies move the share: counted trial by trial it would differ.)
    assert grouped != _gate.gate_share(fitted.chosen.oof, fitted.raw, fitted.targets, seed=0)


def test_threads_share_the_competitors_predictions() -> None:
    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    add_completed(study, QUALITIES)
    competitors = [
        study._storage.get_trial(start_running(study, q, seed=i)._trial_id)
        for i, q in enumerate(np.linspace(0.1, 0.9, 8))
    ]
    pruner = study.pruner
    model = pruner._model.at_step(study, competitors[0], 1)
    assert isinstance(model, FittedModel)
    alone = make_pruner()._model
    fitted = alone.at_step(study, competitors[0], 1)
    assert isinstance(fitted, FittedModel)
    expected = alone.predictions(fitted, competitors, 1, study.direction)
    assert all(v is not None for v in expected.values())

    results: list[dict[int, float | None]] = []
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            order = competitors[offset:] + competitors[:offset]  # overlapping, different orders
            results.append(pruner._model.predictions(model, order, 1, study.direction))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 4
    assert all(r == expected for r in results)
    assert pruner._model._predictions[model.key] == expected  # each competitor kept once per model


def test_predict_takes_the_live_trial_of_ask_and_tell() -> None:
    # Ask-and-tell hands out an optuna.Trial: predict must read it as its FrozenTrial.
    study = optuna.create_study(direction="maximize", pruner=make_pruner())
    add_completed(study, QUALITIES)
    live = start_running(study, 0.4)
    assert isinstance(live, optuna.Trial)
    frozen = study._storage.get_trial(live._trial_id)
    expected = study.pruner.predict(study, frozen, 1)
    assert expected is not None
    assert study.pruner.predict(study, live, 1) == expected
    assert study.pruner.predict(study, live) == study.pruner.predict(study, frozen)
    # prune too (Optuna gives a FrozenTrial; a user calling it by hand may hold either).
    assert isinstance(study.pruner.prune(study, live), bool)
    assert load_predictions(study._storage.get_trial(live._trial_id))
    with pytest.raises(TypeError, match="FrozenTrial"):
        study.pruner.predict(study, live._trial_id)  # type: ignore[arg-type]


def test_an_aelle_path_that_names_no_file_says_which_argument(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match=r"`aelle` names no file.*fitted AeLLE"):
        InStudyModel(aelle=missing)
