from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal

import optuna
import pytest
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import TrialState

from optuna_lyap._storage import prediction_key
from optuna_lyap.samplers import PredictedStudyView, ReadOnlyViewError

DIST: dict[str, BaseDistribution] = {"x": FloatDistribution(0.0, 1.0)}


def _study(direction: Literal["maximize", "minimize"] = "maximize") -> optuna.Study:
    """Trials 0-1 complete (0.2, 0.4), 2 pruned with prediction 0.9, 3 pruned without one,
    4 pruned with a non-finite prediction stored as a string, 5 running."""
    study = optuna.create_study(direction=direction)
    for value in (0.2, 0.4):
        study.add_trial(optuna.create_trial(params={"x": value}, distributions=DIST, value=value))
    for attrs in ({"lyap_predicted": 0.9}, {}, {"lyap_predicted": "nan"}):
        _add_pruned(study, attrs)
    study.ask({"x": FloatDistribution(0.0, 1.0)})
    return study


def _add_pruned(
    study: optuna.Study, user_attrs: dict[str, Any], system_attrs: dict[str, Any] | None = None
) -> None:
    study.add_trial(
        optuna.create_trial(
            params={"x": 0.5},
            distributions=DIST,
            state=TrialState.PRUNED,
            intermediate_values={0: 0.1},
            user_attrs=user_attrs,
            system_attrs=system_attrs,
        )
    )


def _snapshot(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return copy.deepcopy(study._storage.get_all_trials(study._study_id, deepcopy=False))


def test_pruned_trials_with_predictions_read_as_completed() -> None:
    study = _study()
    view = PredictedStudyView(study)
    complete = view.get_trials(states=(TrialState.COMPLETE,))
    assert [t.number for t in complete] == [0, 1, 2]
    assert [t.value for t in complete] == [0.2, 0.4, 0.9]
    assert [t.number for t in view.get_trials(states=(TrialState.PRUNED,))] == [3, 4]
    assert [t.state for t in view.trials] == [TrialState.COMPLETE] * 3 + [
        TrialState.PRUNED,
        TrialState.PRUNED,
        TrialState.RUNNING,
    ]
    for use_cache in (False, True):
        cached = view._get_trials(
            deepcopy=False, states=[TrialState.COMPLETE], use_cache=use_cache
        )
        assert [t.number for t in cached] == [0, 1, 2]
    assert view.best_trial.number == 2 and view.best_value == 0.9
    storage = view._storage
    assert storage.get_trial(study.trials[2]._trial_id).state == TrialState.COMPLETE
    assert storage.get_n_trials(study._study_id, TrialState.COMPLETE) == 3
    assert storage.get_best_trial(study._study_id).number == 2
    got = storage.get_all_trials(study._study_id, states=(TrialState.COMPLETE,))
    assert [t.value for t in got] == [0.2, 0.4, 0.9]
    assert view.direction == study.direction and view.study_name == study.study_name
    assert view.user_attrs == {} and not view._is_multi_objective()
    # The substituted trial keeps its params, attrs and curve.
    assert complete[2].params == {"x": 0.5} and complete[2].intermediate_values == {0: 0.1}


def test_minimize_best_trial_and_original_untouched() -> None:
    study = _study("minimize")
    before = _snapshot(study)
    view = PredictedStudyView(study)
    assert view.best_trial.number == 0  # 0.2 < 0.4 < 0.9
    view.get_trials(deepcopy=False)
    view._get_trials(deepcopy=False, use_cache=True)
    assert _snapshot(study) == before
    assert study.trials[2].state == TrialState.PRUNED and study.trials[2].value is None


def test_substitution_can_be_switched_off_and_skips_multi_objective() -> None:
    study = _study()
    plain = PredictedStudyView(study, substitute=False)
    assert [t.number for t in plain.get_trials(states=(TrialState.COMPLETE,))] == [0, 1]

    multi = optuna.create_study(directions=["maximize", "minimize"])
    multi.add_trial(
        optuna.create_trial(
            params={"x": 0.5},
            distributions=DIST,
            state=TrialState.PRUNED,
            user_attrs={"lyap_predicted": 0.9},
        )
    )
    view = PredictedStudyView(multi)
    assert view.get_trials(states=(TrialState.COMPLETE,)) == []
    assert view._is_multi_objective()


def _writes(view: PredictedStudyView, other_id: int) -> dict[str, Callable[[], Any]]:
    s, sid = view._storage, view._study_id
    return {
        "optimize": lambda: view.optimize(lambda t: 0.0, n_trials=1),
        "ask": lambda: view.ask(),
        "tell": lambda: view.tell(0, 1.0),
        "set_user_attr": lambda: view.set_user_attr("k", 1),
        "enqueue_trial": lambda: view.enqueue_trial({"x": 0.1}),
        "add_trial": lambda: view.add_trial(
            optuna.create_trial(params={"x": 0.1}, distributions=DIST, value=0.0)
        ),
        "add_trials": lambda: view.add_trials([]),
        "set_metric_names": lambda: view.set_metric_names(["m"]),
        "create_new_study": lambda: s.create_new_study([optuna.study.StudyDirection.MINIMIZE]),
        "delete_study": lambda: s.delete_study(sid),
        "set_study_user_attr": lambda: s.set_study_user_attr(sid, "k", 1),
        "study_system_attr_elsewhere": lambda: s.set_study_system_attr(sid + 1, "k", 1),
        "create_new_trial": lambda: s.create_new_trial(sid),
        "set_trial_param": lambda: s.set_trial_param(other_id, "x", 0.1, DIST["x"]),
        "set_trial_state_values": lambda: s.set_trial_state_values(
            other_id, TrialState.COMPLETE, [1.0]
        ),
        "set_trial_intermediate_value": lambda: s.set_trial_intermediate_value(other_id, 1, 0.0),
        "set_trial_user_attr": lambda: s.set_trial_user_attr(other_id, "k", 1),
        "other_trial_system_attr": lambda: s.set_trial_system_attr(other_id, "k", 1),
    }


@pytest.mark.parametrize(
    "name",
    sorted(_writes(PredictedStudyView(optuna.create_study()), 0)),
)
def test_every_write_raises_and_nothing_changes(name: str) -> None:
    study = _study()
    running = study.trials[5]
    before = _snapshot(study)
    study_attrs = study._storage.get_study_system_attrs(study._study_id)
    view = PredictedStudyView(study, running)
    with pytest.raises(ReadOnlyViewError):
        _writes(view, study.trials[2]._trial_id)[name]()
    assert _snapshot(study) == before
    assert study._storage.get_study_system_attrs(study._study_id) == study_attrs
    assert len(optuna.get_all_study_names(study._storage)) == 1


def test_running_trial_writes_also_raise_except_bookkeeping() -> None:
    study = _study()
    running = study.trials[5]
    view = PredictedStudyView(study, running)
    with pytest.raises(ReadOnlyViewError):
        view._storage.set_trial_user_attr(running._trial_id, "k", 1)
    with pytest.raises(ReadOnlyViewError):
        view._storage.set_trial_param(running._trial_id, "y", 0.1, DIST["x"])
    # A sampler's notes on the trial it samples, and on the study, go through.
    view._storage.set_trial_system_attr(running._trial_id, "note", 1)
    view._storage.set_study_system_attr(study._study_id, "counter", 3)
    assert study._storage.get_trial_system_attrs(running._trial_id)["note"] == 1
    assert study._storage.get_study_system_attrs(study._study_id)["counter"] == 3
    # Without a trial being sampled, no trial takes notes.
    with pytest.raises(ReadOnlyViewError):
        PredictedStudyView(study)._storage.set_trial_system_attr(running._trial_id, "k", 1)


def test_held_bookkeeping_applies_only_when_replayed() -> None:
    study = _study()
    running = study.trials[5]
    view = PredictedStudyView(study, running)
    held = view.hold_bookkeeping()
    view._storage.set_trial_system_attr(running._trial_id, "note", "a")
    view._storage.set_study_system_attr(study._study_id, "counter", 1)
    view.release_bookkeeping()
    assert "note" not in study._storage.get_trial_system_attrs(running._trial_id)
    assert "counter" not in study._storage.get_study_system_attrs(study._study_id)
    view.replay(held)
    assert study._storage.get_trial_system_attrs(running._trial_id)["note"] == "a"
    assert study._storage.get_study_system_attrs(study._study_id)["counter"] == 1


def test_stop_reaches_the_study() -> None:
    study = optuna.create_study()

    def objective(trial: optuna.Trial) -> float:
        PredictedStudyView(study, trial._cached_frozen_trial).stop()
        return trial.suggest_float("x", 0.0, 1.0)

    study.optimize(objective, n_trials=5)
    assert len(study.trials) == 1


def test_a_prediction_counts_only_where_the_pruners_gate_was_open() -> None:
    """The pruner records ``lyap_predicted`` also where its gate stayed shut and it ranked by
    the raw value: such a prediction must not stand in for a final value."""
    study = optuna.create_study(direction="maximize")
    cases: list[tuple[float, dict[int, dict[str, Any]]]] = [
        (0.9, {1: {"rule": "model_rung", "predicted": 0.9, "gate_open": True}}),
        (0.8, {1: {"rule": "rung", "predicted": 0.8, "gate_open": False}}),
        # The latest record with a prediction wrote the attr: the gate had closed by then.
        (
            0.7,
            {
                1: {"rule": "model_rung", "predicted": 0.6, "gate_open": True},
                4: {"rule": "rung", "predicted": 0.7, "gate_open": False},
            },
        ),
        # The screen acted at step 0; the raw rung at step 1 predicted nothing.
        (0.5, {0: {"rule": "screen", "predicted": 0.5, "gate_open": True}, 1: {"rule": "rung"}}),
        (0.4, {}),  # set by the user's own code, with no record: taken as given
    ]
    for predicted, by_step in cases:
        records = {prediction_key(step): r for step, r in by_step.items()}
        _add_pruned(study, {"lyap_predicted": predicted}, records)
    complete = PredictedStudyView(study).get_trials(states=(TrialState.COMPLETE,))
    assert [(t.number, t.value) for t in complete] == [(0, 0.9), (3, 0.5), (4, 0.4)]


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_a_trial_the_prior_scored_reads_at_its_quantile_of_the_completed_values(
    direction: Literal["maximize", "minimize"],
) -> None:
    """Where the pruner ranked by the prior, its quantile (1 = best) becomes the value at that
    empirical quantile of the completed trials' final values."""
    study = optuna.create_study(direction=direction)
    prior_record = {"rule": "prior_rung", "scorer": "prior", "prior_quantile": 0.75}
    # No trial has completed yet: nothing to read the quantile against, so it stays pruned.
    _add_pruned(study, {}, {prediction_key(1): prior_record})
    view = PredictedStudyView(study)
    assert view.get_trials(states=(TrialState.COMPLETE,)) == []
    for value in (1.0, 2.0, 3.0, 4.0, 5.0):
        study.add_trial(optuna.create_trial(params={"x": 0.1}, distributions=DIST, value=value))
    # A prior quantile with a shut prior gate (the raw value scored) is not used; nor is the
    # prior's quantile of an earlier step once a later record scored by the raw value.
    raw_record = {"rule": "rung", "scorer": "raw", "prior_quantile": 0.9}
    _add_pruned(study, {}, {prediction_key(1): raw_record})
    _add_pruned(study, {}, {prediction_key(1): prior_record, prediction_key(2): raw_record})
    expected = 4.0 if direction == "maximize" else 2.0
    complete = view.get_trials(states=(TrialState.COMPLETE,))
    assert [(t.number, t.value) for t in complete if t.number == 0] == [(0, expected)]
    assert {t.number for t in complete} == {0, 1, 2, 3, 4, 5}
    # The storage's single-trial read agrees.
    assert view._storage.get_trial(study.trials[0]._trial_id).value == expected
