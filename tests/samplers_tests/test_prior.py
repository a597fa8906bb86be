"""LyapunovSampler screening by the trial prior (the shipped one unless told otherwise)."""

from __future__ import annotations

import math
import pickle
import warnings
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import RandomSampler
from optuna.trial import FrozenTrial

from optuna_lyap._prediction._prior import TrialPrior
from optuna_lyap.samplers import LyapunovSampler
from optuna_lyap.samplers._lyapunov import init_measurement

# The built-in tasks' parameter names, which the prior reads as hyperparameters.
SPACE: dict[str, BaseDistribution] = {
    "cell": CategoricalDistribution(["rnn", "gru", "lstm"]),
    "hidden_size": IntDistribution(8, 64, log=True),
    "init_scale": FloatDistribution(0.3, 3.0, log=True),
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
}
PROBE = torch.randn(2, 20, 1, generator=torch.Generator().manual_seed(0))


def _suggest(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "cell": trial.suggest_categorical("cell", ["rnn", "gru", "lstm"]),
        "hidden_size": trial.suggest_int("hidden_size", 8, 64, log=True),
        "init_scale": trial.suggest_float("init_scale", 0.3, 3.0, log=True),
        "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
    }


def _shipped() -> TrialPrior:
    prior = TrialPrior.resolve("shipped")
    assert prior is not None
    return prior


def _quantile(params: dict[str, Any]) -> float:
    pred = _shipped().predict_candidates([params])[0]
    assert pred is not None
    return float(pred.quantile)


class RecordingSampler(RandomSampler):
    """A random sampler that records every value it proposes, per trial number."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)
        self.proposed: list[tuple[int, str, Any]] = []

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, name: str, dist: BaseDistribution
    ) -> Any:
        value = super().sample_independent(study, trial, name, dist)
        self.proposed.append((trial.number, name, value))
        return value


def _candidates(base: RecordingSampler, number: int) -> list[dict[str, Any]]:
    values = [(n, v) for t, n, v in base.proposed if t == number]
    per = len(SPACE)
    return [dict(values[i : i + per]) for i in range(0, len(values), per)]


def test_trial_zero_of_a_fresh_study_is_screened_by_the_shipped_prior() -> None:
    base = RecordingSampler(seed=1)
    sampler = LyapunovSampler(base, search_space=SPACE, n_candidates=6, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(_suggest(t)["lr"]), n_trials=1)
    trial = study.trials[0]
    candidates = _candidates(base, 0)
    assert len(candidates) == 6
    quantiles = [_quantile(c) for c in candidates]
    best = candidates[int(np.argmax(quantiles))]
    assert trial.params == pytest.approx(best)
    assert trial.user_attrs["lyap_screen_by"] == "prior"
    assert trial.user_attrs["lyap_screen_quantile"] == pytest.approx(max(quantiles))
    assert "lyap_screen_predicted" not in trial.user_attrs  # that one is in study units


def test_the_prior_reads_the_candidates_spectra_with_a_model_factory() -> None:
    def factory(params: dict[str, Any]) -> torch.nn.Module:
        kinds = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}
        return kinds[params["cell"]](1, int(params["hidden_size"]), batch_first=True)

    sampler = LyapunovSampler(
        RandomSampler(seed=2),
        model_factory=factory,
        probe_inputs=PROBE,
        search_space=SPACE,
        n_candidates=3,
        seed=0,
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(_suggest(t)["lr"]), n_trials=1)
    trial = study.trials[0]
    spectrum, dim = init_measurement(
        factory,
        trial.params,
        PROBE,
        seed=_chosen_seed(sampler, trial, factory),
        spectrum_kwargs={"seed": 0},
    )
    expected = _shipped().predict_candidates([trial.params], [spectrum], [dim])[0]
    assert expected is not None
    assert trial.user_attrs["lyap_screen_quantile"] == pytest.approx(expected.quantile)
    assert expected.quantile != pytest.approx(_quantile(trial.params))


def _chosen_seed(sampler: LyapunovSampler, trial: FrozenTrial, factory: Any) -> int:
    """The candidate seed of the kept candidate (found by re-measuring each index)."""
    from optuna_lyap.samplers._lyapunov import candidate_seed

    prior = _shipped()
    for index in range(3):
        seed = candidate_seed(0, trial.number, index)
        spectrum, dim = init_measurement(
            factory, trial.params, PROBE, seed=seed, spectrum_kwargs={"seed": 0}
        )
        pred = prior.predict_candidates([trial.params], [spectrum], [dim])[0]
        if pred is not None and pred.quantile == pytest.approx(
            trial.user_attrs["lyap_screen_quantile"]
        ):
            return seed
    raise AssertionError("no candidate index reproduces the recorded quantile")


def test_unknown_parameter_names_warn_once_and_leave_the_base_in_charge() -> None:
    def f(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", -1, 1) ** 2 + trial.suggest_int("y", 0, 3)

    plain = optuna.create_study(sampler=RandomSampler(seed=4))
    plain.optimize(f, n_trials=6)
    sampler = LyapunovSampler(RandomSampler(seed=4), seed=0)
    wrapped = optuna.create_study(sampler=sampler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wrapped.optimize(f, n_trials=6)
    messages = [str(w.message) for w in caught if "prior predicts nothing" in str(w.message)]
    assert len(messages) == 1
    assert "['x', 'y']" in messages[0] and "hidden_size" in messages[0]
    assert [t.params for t in wrapped.trials] == [t.params for t in plain.trials]
    assert all("lyap_screen_by" not in t.user_attrs for t in wrapped.trials)


def test_unknown_names_warn_once_also_with_a_model_factory() -> None:
    from tests._support.gain_rnn import PROBE as GAIN_PROBE
    from tests._support.gain_rnn import gain_rnn, objective

    sampler = LyapunovSampler(
        RandomSampler(seed=4), model_factory=gain_rnn, probe_inputs=GAIN_PROBE, seed=0
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(objective, n_trials=4)
    messages = [str(w.message) for w in caught if "prior predicts nothing" in str(w.message)]
    assert len(messages) == 1 and "['g']" in messages[0]
    assert "no spectrum without hyperparameters" in messages[0]
    assert all("lyap_screen_by" not in t.user_attrs for t in study.trials)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_prior_that_ranks_the_study_inversely_stops_screening(sign: float) -> None:
    # The final value is the prior's own prediction (sign 1) or its negation (sign -1).
    def f(trial: optuna.Trial) -> float:
        return sign * _quantile(_suggest(trial))

    sampler = LyapunovSampler(
        RandomSampler(seed=5), search_space=SPACE, n_candidates=3, n_startup_trials=4, seed=0
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(f, n_trials=8)
    screened = ["lyap_screen_by" in t.user_attrs for t in study.trials]
    assert screened[:4] == [True] * 4
    if sign > 0:
        assert all(screened)
        assert study.trials[-1].user_attrs["lyap_screen_rank_corr"] == pytest.approx(1.0)
    else:
        assert not any(screened[4:])


def test_a_prior_that_stops_leaves_the_study_model_or_the_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sampler = LyapunovSampler(RandomSampler(seed=6), search_space=SPACE, seed=0)
    assert sampler._study_prior is not None
    monkeypatch.setattr(
        sampler._study_prior,
        "rank_correlation_at_init",
        lambda study_id, done, direction, with_spectra: (-0.5, len(done)),
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(_suggest(t)["lr"]), n_trials=12)
    by = [t.user_attrs.get("lyap_screen_by") for t in study.trials]
    assert by[:10] == ["prior"] * 10 and by[10:] == [None, None]


def test_prior_none_disables_and_a_bad_prior_is_named() -> None:
    sampler = LyapunovSampler(RandomSampler(seed=7), search_space=SPACE, prior=None, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(_suggest(t)["lr"]), n_trials=2)
    assert all("lyap_screen_by" not in t.user_attrs for t in study.trials)
    with pytest.raises(ValueError, match="not-a-prior"):
        LyapunovSampler(prior="not-a-prior")


def test_pickled_sampler_with_a_prior_samples_the_same() -> None:
    def run(sampler: LyapunovSampler) -> list[dict[str, Any]]:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(lambda t: float(_suggest(t)["lr"]), n_trials=3)
        return [t.params for t in study.trials]

    sampler = LyapunovSampler(RandomSampler(seed=8), search_space=SPACE, seed=0)
    copy = pickle.loads(pickle.dumps(sampler))
    assert run(copy) == run(sampler)


def test_threads_share_a_sampler_screening_by_the_prior() -> None:
    # No evidence check (the start-up count is out of reach): which trials completed first
    # depends on the threads, and so would the prior's rank correlation.
    sampler = LyapunovSampler(
        RandomSampler(seed=9), search_space=SPACE, n_startup_trials=100, seed=0
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(lambda t: float(_suggest(t)["lr"]), n_trials=12, n_jobs=3)
    assert not [w for w in caught if "LyapunovSampler" in str(w.message)]
    assert len(study.trials) == 12
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert math.isfinite(trial.user_attrs["lyap_screen_quantile"])


@pytest.mark.filterwarnings("ignore:.*non-finite states:RuntimeWarning")
def test_a_diverging_candidate_network_is_predicted_from_its_parameters_without_a_warning() -> (
    None
):
    def nan_factory(params: dict[str, Any]) -> torch.nn.Module:
        rnn = torch.nn.RNN(1, int(params["hidden_size"]), batch_first=True)
        with torch.no_grad():
            rnn.weight_hh_l0.fill_(math.nan)
        return rnn

    base = RecordingSampler(seed=3)
    sampler = LyapunovSampler(
        base,
        model_factory=nan_factory,
        probe_inputs=PROBE,
        search_space=SPACE,
        n_candidates=4,
        seed=0,
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study.optimize(lambda t: float(_suggest(t)["lr"]), n_trials=1)
    assert not [w for w in caught if "LyapunovSampler" in str(w.message)]
    quantiles = [_quantile(c) for c in _candidates(base, 0)]
    assert study.trials[0].user_attrs["lyap_screen_quantile"] == pytest.approx(max(quantiles))


def test_completed_trials_the_prior_cannot_predict_are_no_evidence() -> None:
    # Ten completed trials with parameters the prior does not read: the prior has no evidence
    # against it, so it keeps screening, also when the completed set is read from its cache
    # (the new trials are pruned, so the set does not change).
    sampler = LyapunovSampler(
        RandomSampler(seed=10), search_space=SPACE, n_startup_trials=4, seed=0
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for x in np.linspace(0, 1, 10):
        study.add_trial(
            optuna.create_trial(
                params={"x": x}, distributions={"x": FloatDistribution(0, 1)}, value=x
            )
        )

    def pruned(trial: optuna.Trial) -> float:
        _suggest(trial)
        raise optuna.TrialPruned()

    study.optimize(pruned, n_trials=3)
    assert [t.user_attrs.get("lyap_screen_by") for t in study.trials[10:]] == ["prior"] * 3
