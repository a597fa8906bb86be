from __future__ import annotations

import copy
import math
import pickle
import random
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap import InStudyModel, report_spectrum
from optuna_lyap._prediction import fit_predictor
from optuna_lyap.samplers import LyapunovSampler, PredictedStudyView
from tests._support.gain_rnn import (
    FAST_AELLE,
    PROBE,
    gain_rnn,
    objective,
    pretrained,
    signed_objective,
    spectrum_of,
    value_of,
)

G = FloatDistribution(0.2, 5.0, log=True)


class CyclingSampler(BaseSampler):
    """Proposes ``values`` in turn for every parameter, independently; records its calls."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.values = list(values)
        self.i = 0
        self.calls: list[tuple[str, type]] = []

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        self.calls.append(("infer_relative_search_space", type(study)))
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        self.calls.append(("sample_relative", type(study)))
        return {}

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, name: str, dist: BaseDistribution
    ) -> Any:
        self.calls.append(("sample_independent", type(study)))
        value = self.values[self.i % len(self.values)]
        self.i += 1
        return value

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.calls.append(("before_trial", type(study)))

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self.calls.append(("after_trial", type(study)))

    def reseed_rng(self) -> None:
        self.calls.append(("reseed_rng", type(None)))


# InStudyModel's arguments: _screening hands them to the sampler's model.
MODEL_ARGS = (
    "inputs", "aelle", "aelle_params", "select_inputs", "cv_folds", "use_unlabelled",
    "refit_growth", "artifact_store", "fit",
)  # fmt: skip


def _screening(base: BaseSampler | None = None, **kwargs: Any) -> LyapunovSampler:
    options: dict[str, Any] = {
        "model_factory": gain_rnn,
        "probe_inputs": PROBE,
        "seed": 0,
        # These tests are about the study's own model; the prior has tests of its own.
        "prior": None,
    }
    model: dict[str, Any] = {"inputs": ("spectrum",), "aelle_params": FAST_AELLE, "cv_folds": 2}
    for name in MODEL_ARGS:
        if name in kwargs:
            model[name] = kwargs.pop(name)
    options.update(kwargs)
    return LyapunovSampler(base, model=InStudyModel(**model), **options)


def _counting_fit(record: list[Any], what: Any) -> Any:
    """A fit function for the sampler's model that records ``what(rows, unlabelled rows)`` of
    every fit."""

    def counting(rows: Any, **kwargs: Any) -> Any:
        record.append(what(rows, kwargs["unlabelled"]))
        return fit_predictor(rows, **kwargs)

    return counting


def _add_pruned(study: optuna.Study, x: float, predicted: float | None) -> None:
    attrs = {} if predicted is None else {"lyap_predicted": predicted}
    study.add_trial(
        optuna.create_trial(
            params={"x": x},
            distributions={"x": FloatDistribution(0.0, 1.0)},
            state=TrialState.PRUNED,
            intermediate_values={0: 0.0},
            user_attrs=attrs,
        )
    )


# -- predicted values of pruned trials ------------------------------------------------------------


def test_without_factory_and_predictions_it_samples_as_its_base() -> None:
    def f(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", -1, 1) ** 2 + trial.suggest_int("y", 0, 3)

    plain = optuna.create_study(sampler=TPESampler(seed=3, n_startup_trials=4))
    plain.optimize(f, n_trials=12)
    wrapped = optuna.create_study(
        sampler=LyapunovSampler(TPESampler(seed=3, n_startup_trials=4), seed=0)
    )
    wrapped.optimize(f, n_trials=12)
    assert [t.params for t in wrapped.trials] == [t.params for t in plain.trials]


@pytest.mark.parametrize("use_predictions", [True, False])
def test_the_base_sampler_reads_pruned_trials_at_their_prediction(use_predictions: bool) -> None:
    seen: list[list[float | None]] = []

    class Recording(RandomSampler):
        def sample_independent(
            self, study: optuna.Study, trial: FrozenTrial, name: str, dist: BaseDistribution
        ) -> Any:
            trials = study._get_trials(
                deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True
            )
            seen.append([t.value for t in trials])
            return super().sample_independent(study, trial, name, dist)

    study = optuna.create_study(direction="maximize")
    study.add_trial(
        optuna.create_trial(
            params={"x": 0.1}, distributions={"x": FloatDistribution(0.0, 1.0)}, value=0.1
        )
    )
    _add_pruned(study, 0.9, 0.95)
    _add_pruned(study, 0.5, None)
    study.sampler = LyapunovSampler(Recording(seed=0), use_predictions=use_predictions, seed=0)
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=1)
    assert seen == [[0.1, 0.95]] if use_predictions else [[0.1]]
    assert study.trials[1].state == TrialState.PRUNED and study.trials[1].value is None


def test_tpe_moves_toward_pruned_trials_predicted_to_be_good() -> None:
    # Completed trials sit at x < 0.5 (value x); pruned ones at x > 0.8 are predicted to
    # reach 0.95. TPE alone counts them as bad; through the view they are the best trials.
    def share_high(sampler: BaseSampler, seed: int) -> float:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        rng = np.random.default_rng(seed)
        for x in rng.uniform(0.0, 0.5, 10):
            study.add_trial(
                optuna.create_trial(
                    params={"x": x}, distributions={"x": FloatDistribution(0.0, 1.0)}, value=x
                )
            )
        for x in rng.uniform(0.8, 1.0, 10):
            _add_pruned(study, x, 0.95)
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=10)
        return float(np.mean([t.params["x"] > 0.75 for t in study.trials[20:]]))

    seeds = range(3)
    assert np.mean([share_high(LyapunovSampler(seed=s), s) for s in seeds]) >= 0.4
    assert np.mean([share_high(TPESampler(seed=s), s) for s in seeds]) <= 0.15


@pytest.mark.parametrize("kind", ["inmemory", "sqlite", "journal"])
def test_sampling_leaves_every_earlier_trial_unchanged(kind: str, tmp_path: Any) -> None:
    storage: Any = None
    if kind == "sqlite":
        storage = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    elif kind == "journal":
        storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    sampler = _screening(aelle=pretrained(), search_space={"g": G}, n_candidates=3)
    study = optuna.create_study(direction="maximize", storage=storage, sampler=sampler)
    study.optimize(objective, n_trials=3)
    for x in (0.7, 1.3):
        trial = study.ask({"g": G})
        report_spectrum(trial, spectrum_of({"g": x}), 0)
        study._storage.set_trial_user_attr(trial._trial_id, "lyap_predicted", value_of(x))
        study.tell(trial, state=TrialState.PRUNED)
    before = copy.deepcopy(study.trials)
    study_attrs = study._storage.get_study_system_attrs(study._study_id)
    study.optimize(objective, n_trials=3)
    assert study.trials[: len(before)] == before
    assert study._storage.get_study_system_attrs(study._study_id) == study_attrs
    assert all("lyap_screen_predicted" in t.user_attrs for t in study.trials[len(before) :])


def test_every_hook_is_delegated_with_the_view_for_sampling() -> None:
    base = CyclingSampler([0.5, 1.0])
    sampler = LyapunovSampler(base, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("g", 0.2, 5.0), n_trials=2, n_jobs=2)
    names = {name for name, _ in base.calls}
    assert names >= {
        "before_trial",
        "after_trial",
        "infer_relative_search_space",
        "sample_relative",
        "sample_independent",
        "reseed_rng",
    }
    for name, study_type in base.calls:
        if name in ("infer_relative_search_space", "sample_relative", "sample_independent"):
            assert study_type is PredictedStudyView
        elif name in ("before_trial", "after_trial"):
            assert study_type is optuna.Study


@pytest.mark.parametrize(
    "make_base",
    [
        lambda: TPESampler(seed=0, n_startup_trials=2, constant_liar=True),
        lambda: optuna.samplers.GPSampler(seed=0, n_startup_trials=2),
        lambda: optuna.samplers.QMCSampler(seed=0),
        lambda: optuna.samplers.NSGAIISampler(seed=0, population_size=4),
        lambda: optuna.samplers.GridSampler({"g": [0.5, 1.0, 2.0, 4.0]}, seed=0),
        lambda: optuna.samplers.BruteForceSampler(seed=0),
    ],
    ids=["tpe_liar", "gp", "qmc", "nsga2", "grid", "bruteforce"],
)
def test_optunas_samplers_run_as_the_base(make_base: Any) -> None:
    sampler = _screening(make_base(), aelle=pretrained(), n_candidates=3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="LyapunovSampler")
        study.optimize(lambda t: value_of(t.suggest_float("g", 0.5, 4.0, step=0.5)), n_trials=6)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert any("lyap_screen_predicted" in t.user_attrs for t in study.trials)


def test_hyperband_bracket_studies_are_wrapped() -> None:
    study = optuna.create_study(
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=4),
        sampler=LyapunovSampler(TPESampler(seed=0, n_startup_trials=2), seed=0),
    )

    def f(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(4):
            trial.report(x * step, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x

    study.optimize(f, n_trials=8)
    assert len(study.trials) == 8


# -- screening ----------------------------------------------------------------------------------


def _expected_pick(
    candidates: Sequence[float], direction: str, kappa: float
) -> tuple[float, float]:
    model = pretrained(direction)
    mean, std = model.predict([spectrum_of({"g": g}) for g in candidates], return_std=True)
    sign = 1.0 if direction == "maximize" else -1.0
    best = int(np.argmax(sign * np.asarray(mean) + kappa * np.asarray(std)))
    return candidates[best], float(mean[best])


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
@pytest.mark.parametrize("kappa", [0.0, 3.0])
def test_screening_picks_the_candidate_the_model_prefers(direction: str, kappa: float) -> None:
    candidates = [0.3, 3.5, 1.05, 0.6]
    sampler = _screening(
        CyclingSampler(candidates),
        aelle=pretrained(direction),
        search_space={"g": G},
        n_candidates=4,
        kappa=kappa,
    )
    study = optuna.create_study(direction=StudyDirection[direction.upper()], sampler=sampler)
    study.optimize(signed_objective(direction), n_trials=1)
    g, predicted = _expected_pick(candidates, direction, kappa)
    trial = study.trials[0]
    assert trial.params["g"] == g
    assert trial.user_attrs["lyap_screen_predicted"] == pytest.approx(predicted)
    if kappa == 0.0:
        assert g == 1.05  # the spectrum at initialisation tells the edge of chaos


def test_enqueued_params_are_kept_and_not_screened() -> None:
    sampler = _screening(aelle=pretrained(), search_space={"g": G})
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({"g": 4.0})
    study.optimize(objective, n_trials=1)
    assert study.trials[0].params == {"g": 4.0}
    assert "lyap_screen_predicted" not in study.trials[0].user_attrs


def test_parameters_outside_the_screened_space_come_from_the_base() -> None:
    sampler = _screening(aelle=pretrained(), n_candidates=3)

    def conditional(trial: optuna.Trial) -> float:
        value = objective(trial)
        if trial.params["g"] > 1.0:
            trial.suggest_categorical("cell", ["rnn", "gru"])
        return value + trial.suggest_float("noise", 0.0, 1e-3) * 0.0

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(conditional, n_trials=6)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    # From the second trial on, g and noise (in every trial) are screened; cell is not.
    assert all("lyap_screen_predicted" in t.user_attrs for t in study.trials[1:])


def test_own_model_is_fitted_after_startup_once_per_set_of_completed_trials() -> None:
    fits: list[tuple[int, int]] = []

    def sizes(rows: Any, unlabelled: Any) -> tuple[int, int]:
        return len(rows.numbers), 0 if unlabelled is None else len(unlabelled.numbers)

    sampler = _screening(
        n_startup_trials=4,
        n_candidates=3,
        min_rank_corr=-1.0,
        refit_growth=1,
        fit=_counting_fit(fits, sizes),
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=7)
    assert fits == [(4, 0), (5, 0), (6, 0)]
    screened = ["lyap_screen_predicted" in t.user_attrs for t in study.trials]
    assert screened == [False] * 4 + [True] * 3
    assert sampler._model.at_init(study) is sampler._model.at_init(study)
    assert fits[-1] == (7, 0)  # one more fit for the seventh completed trial, then cached

    # A pruned trial's spectrum at step 0 trains the reconstruction once a newer trial is
    # labelled: it causes no refit of its own.
    trial = study.ask({"g": G})
    report_spectrum(trial, spectrum_of({"g": 2.0}), 0)
    study.tell(trial, state=TrialState.PRUNED)
    sampler._model.at_init(study)
    assert len(fits) == 4
    study.optimize(objective, n_trials=1)
    sampler._model.at_init(study)
    assert fits[-1] == (8, 1)


def test_screening_std_adds_the_cross_validated_residuals() -> None:
    # The sampler scored candidates by the ensemble's spread alone, where the pruner adds the
    # model's cross-validated residuals; both now use FittedPredictor.predict.
    sampler = _screening(
        CyclingSampler([0.3, 0.6, 1.05, 2.0, 3.5, 0.8]),
        search_space={"g": G},
        n_startup_trials=4,
        n_candidates=2,
        min_rank_corr=-1.0,
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=5)
    screened = study.trials[4]
    fitted = sampler._model._cache[((0, 1, 2, 3), ())]
    assert fitted is not None
    _, spread = fitted.model.predict([spectrum_of(screened.params)], return_std=True)
    rms = fitted.chosen.residual_rms
    assert rms > 0
    expected = math.sqrt(float(spread[0]) ** 2 + rms**2)
    assert screened.user_attrs["lyap_screen_std"] == pytest.approx(expected, rel=1e-9)


def test_own_model_is_refitted_on_the_growth_schedule() -> None:
    # Start 4, growth 1.5: training sets of 4, 6, 9 labelled trials.
    fits: list[tuple[int, ...]] = []
    sampler = _screening(
        n_startup_trials=4,
        n_candidates=2,
        min_rank_corr=-1.0,
        refit_growth=1.5,
        fit=_counting_fit(fits, lambda rows, _: tuple(rows.numbers)),
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=9)  # trials 7 and 8 reuse the model of six labels
    assert fits == [(0, 1, 2, 3), (0, 1, 2, 3, 4, 5)]
    sampler._model.at_init(study)  # nine labels: the next size
    assert fits[2:] == [tuple(range(9))]


def _steered_values(sampler: BaseSampler, n_trials: int) -> list[float]:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return [t.value for t in study.trials if t.value is not None]


def test_screening_is_deterministic() -> None:
    def run() -> list[float]:
        sampler = _screening(RandomSampler(seed=2), n_startup_trials=4, n_candidates=4)
        return _steered_values(sampler, 6)

    assert run() == run()


@pytest.mark.slow
def test_screening_beats_the_proposals_it_screens() -> None:
    # The base proposes at random; the screening keeps the best of 6 by the model fitted on
    # the study's own trials, from the fifth trial on.
    options = {"n_startup_trials": 4, "n_candidates": 6, "kappa": 0.0}
    screened = _steered_values(_screening(RandomSampler(seed=2), **options), 12)
    plain = _steered_values(RandomSampler(seed=2), 12)
    assert screened[:4] == plain[:4]
    assert np.mean(screened[4:]) > np.mean(plain[4:]) + 0.2


def test_pretrained_model_can_be_given_as_a_path(tmp_path: Any) -> None:
    path = tmp_path / "aelle"
    pretrained().save(path)
    sampler = _screening(aelle=str(path), search_space={"g": G})
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=1)
    assert "lyap_screen_predicted" in study.trials[0].user_attrs


# -- falling back --------------------------------------------------------------------------------


def test_too_few_trials_leave_the_base_in_charge() -> None:
    sampler = _screening(TPESampler(seed=0), n_startup_trials=5)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        study.optimize(objective, n_trials=4)
    plain = optuna.create_study(direction="maximize", sampler=TPESampler(seed=0))
    plain.optimize(objective, n_trials=4)
    assert [t.params for t in study.trials] == [t.params for t in plain.trials]
    assert not any("lyap_screen_predicted" in t.user_attrs for t in study.trials)


def test_startup_waits_until_every_fold_can_be_fitted() -> None:
    # Three labels in two folds would leave one label to fit: the fourth trial is the first.
    sampler = _screening(n_startup_trials=3, cv_folds=2, n_candidates=2, min_rank_corr=-1.0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        study.optimize(objective, n_trials=5)
    screened = ["lyap_screen_predicted" in t.user_attrs for t in study.trials]
    assert screened == [False] * 4 + [True]


def test_a_model_that_does_not_rank_leaves_the_base_in_charge() -> None:
    sampler = _screening(RandomSampler(seed=0), n_startup_trials=4, min_rank_corr=0.999)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=6)
    plain = optuna.create_study(direction="maximize", sampler=RandomSampler(seed=0))
    plain.optimize(objective, n_trials=6)
    assert [t.params for t in study.trials] == [t.params for t in plain.trials]
    assert not any("lyap_screen_predicted" in t.user_attrs for t in study.trials)


def _raising_factory(params: dict[str, Any]) -> torch.nn.Module:
    raise KeyError("hidden_size")


def _nan_factory(params: dict[str, Any]) -> torch.nn.Module:
    rnn = gain_rnn(params)
    with torch.no_grad():
        rnn.get_parameter("weight_hh_l0").fill_(math.nan)
    return rnn


@pytest.mark.filterwarnings("ignore:.*non-finite states:RuntimeWarning")
@pytest.mark.parametrize(
    ("factory", "message"),
    [(_raising_factory, "raised KeyError"), (_nan_factory, "not finite")],
)
def test_unscorable_candidates_fall_back_to_the_base_proposal(factory: Any, message: str) -> None:
    sampler = _screening(
        CyclingSampler([0.4, 2.0]),
        model_factory=factory,
        aelle=pretrained(),
        search_space={"g": G},
        n_candidates=2,
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with pytest.warns(RuntimeWarning, match=message):
        with pytest.warns(RuntimeWarning, match="could not score any candidate"):
            study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.params["g"] == 0.4  # the base's first proposal
    assert "lyap_screen_predicted" not in trial.user_attrs


def test_an_error_in_the_screening_never_fails_the_trial() -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("broken model")

    sampler = _screening(
        CyclingSampler([0.4, 2.0]), aelle=pretrained(), search_space={"g": G}, fit=broken
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with pytest.warns(RuntimeWarning, match="could not screen trial 0.*broken model"):
        study.optimize(objective, n_trials=1)
    assert study.trials[0].state == TrialState.COMPLETE
    assert study.trials[0].params["g"] == 0.4


def test_multi_objective_studies_are_left_to_the_base() -> None:
    sampler = _screening(aelle=pretrained(), search_space={"g": G})
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    with pytest.warns(RuntimeWarning, match="single-objective"):
        study.optimize(lambda t: (t.suggest_float("g", 0.2, 5.0, log=True), 0.0), n_trials=3)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


# -- pickling, threads, processes --------------------------------------------------------------


def test_pickled_sampler_drops_its_caches_and_samples_the_same() -> None:
    def run(sampler: LyapunovSampler) -> optuna.Study:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=5)
        return study

    def make() -> LyapunovSampler:
        return _screening(RandomSampler(seed=2), n_startup_trials=4, n_candidates=3)

    original, other = make(), make()
    study, other_study = run(original), run(other)
    assert original._model._cache
    clone = pickle.loads(pickle.dumps(other))
    assert not clone._model._cache
    other_study.sampler = clone
    study.optimize(objective, n_trials=2)
    other_study.optimize(objective, n_trials=2)
    assert [t.params for t in other_study.trials] == [t.params for t in study.trials]
    assert "lyap_screen_predicted" in other_study.trials[-1].user_attrs


def test_threads_share_the_sampler() -> None:
    sampler = _screening(n_startup_trials=4, n_candidates=3, min_rank_corr=-1.0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=10, n_jobs=2)
    assert len(study.trials) == 10
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert any("lyap_screen_predicted" in t.user_attrs for t in study.trials)


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"base_sampler": "tpe"}, "base_sampler"),
        ({"model_factory": 3}, "model_factory"),
        ({"model_factory": gain_rnn}, "probe_inputs"),
        ({"probe_inputs": [1, 2]}, "probe_inputs"),
        ({"n_candidates": 0}, "n_candidates"),
        ({"n_startup_trials": -1}, "n_startup_trials"),
        ({"kappa": -1.0}, "kappa"),
        ({"min_rank_corr": 1.0}, "min_rank_corr"),
        ({"search_space": {"g": (0, 1)}}, "search_space"),
        ({"seed": -1}, "seed"),
        ({"model": "default"}, "model"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises((ValueError, TypeError, OSError), match=name):
        LyapunovSampler(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"refit_growth": 0.5}, "refit_growth"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"aelle_params": {"n_model": 2}}, "n_model"),
        ({"aelle": 3}, "aelle"),
        ({"artifact_store": "/tmp/models"}, "artifact_store"),
        ({"inputs": ("spectrum", "curve")}, "inputs"),  # a candidate has no curve
    ],
)
def test_bad_model_arguments_are_named(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises((ValueError, TypeError, OSError), match=name):
        LyapunovSampler(model=InStudyModel(**kwargs))


@pytest.mark.parametrize(
    "name",
    [
        "aelle", "aelle_params", "use_params", "select_inputs", "cv_folds", "use_unlabelled",
        "refit_growth", "artifact_store",
    ],
)  # fmt: skip
def test_removed_arguments_are_type_errors(name: str) -> None:
    with pytest.raises(TypeError, match=name):
        LyapunovSampler(**{name: 1})


def test_a_pretrained_model_must_read_spectra_only() -> None:
    from optuna_lyap import AeLLE

    gains = np.geomspace(0.2, 5.0, 6)
    model = AeLLE(seed=0, **FAST_AELLE).fit(
        [spectrum_of({"g": g}) for g in gains], [value_of(g) for g in gains], gains[:, None]
    )
    with pytest.raises(ValueError, match="spectra only"):
        LyapunovSampler(
            model_factory=gain_rnn, probe_inputs=PROBE, model=InStudyModel(aelle=model)
        )
    with pytest.raises(ValueError, match="fitted AeLLE"):
        LyapunovSampler(model=InStudyModel(aelle=AeLLE()))


# -- the user's random generators ----------------------------------------------------------------


def _greedy_factory(params: dict[str, Any]) -> torch.nn.Module:
    """A factory that draws from every global generator, as a user's factory may."""
    np.random.rand(3)
    random.random()
    torch.randn(4)
    return gain_rnn(params)


def _user_training(sampler: BaseSampler) -> tuple[list[torch.Tensor], optuna.Study]:
    """A seeded user loop: each trial trains a small net from the global generators only."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    weights: list[torch.Tensor] = []

    def train(trial: optuna.Trial) -> float:
        trial.suggest_float("g", 0.2, 5.0, log=True)
        net = torch.nn.Linear(3, 1)
        data = torch.randn(16, 3) + float(np.random.rand()) + random.random()
        optimiser = torch.optim.SGD(net.parameters(), lr=0.1)
        for _ in range(3):
            optimiser.zero_grad()
            net(data).pow(2).mean().backward()
            optimiser.step()
        weights.append(net.weight.detach().clone())
        return float(net.weight.sum())

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(train, n_trials=4)
    return weights, study


def test_screening_leaves_the_users_seeded_training_unchanged() -> None:
    # The shipped prior screens from trial 0, building every candidate with the factory.
    space = {"hidden_size": optuna.distributions.IntDistribution(4, 16), "g": G}
    screening = LyapunovSampler(
        RandomSampler(seed=0),
        model_factory=_greedy_factory,
        probe_inputs=PROBE,
        n_candidates=3,
        search_space=space,
        seed=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        screened, study = _user_training(screening)
        alone, _ = _user_training(RandomSampler(seed=0))
    assert [t.user_attrs.get("lyap_screen_by") for t in study.trials] == ["prior"] * 4
    assert len(screened) == 4
    assert all(torch.equal(a, b) for a, b in zip(screened, alone, strict=True))
