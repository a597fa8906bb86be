from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch

from optuna_lyap import _storage
from optuna_lyap.lyapunov import LyapunovSpectrum
from optuna_lyap.pruners import load_predictions, load_spectra, report_spectrum
from tests._support.storages import KINDS, storage_url, study_factory

SPECIAL = np.array([0.25, math.nan, 1e-300, -math.inf, math.inf, -1.0 / 3.0])


@pytest.fixture(params=KINDS)
def make_study(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., optuna.Study]]:
    with study_factory(request.param, tmp_path) as make:
        yield make


def _assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == np.float64 and a.shape == b.shape
    np.testing.assert_array_equal(a, b)  # NaN == NaN here; finite values bit for bit


def _strict_json(trial: optuna.trial.FrozenTrial) -> None:
    json.dumps(trial.system_attrs, allow_nan=False)
    json.dumps(trial.user_attrs, allow_nan=False)


def test_round_trip_on_every_storage(make_study: Callable[..., optuna.Study]) -> None:
    study = make_study()
    trial = study.ask()
    report_spectrum(trial, SPECIAL, step=0)
    report_spectrum(trial, np.array([0.5, -0.5], dtype=np.float32), step=3)
    study.tell(trial, 1.0)

    frozen = study.trials[0]
    spectra = load_spectra(frozen)
    assert list(spectra) == [0, 3]
    _assert_same(spectra[0], SPECIAL)
    _assert_same(spectra[3], np.array([0.5, -0.5]))
    _strict_json(frozen)
    # A running trial reads the same.
    running = study.ask()
    report_spectrum(running, SPECIAL, step=1)
    _assert_same(load_spectra(running)[1], SPECIAL)


def test_long_spectrum_is_split_under_the_size_cap(
    make_study: Callable[..., optuna.Study],
) -> None:
    study = make_study()
    rng = np.random.default_rng(0)
    exponents = np.sort(rng.normal(size=5001))[::-1] * 1e-7
    exponents[17] = math.nan
    trial = study.ask()
    report_spectrum(trial, exponents, step=2)
    study.tell(trial, 0.0)

    frozen = study.trials[0]
    _assert_same(load_spectra(frozen)[2], exponents)
    sizes = [len(json.dumps(v)) for v in frozen.system_attrs.values()]
    assert len(sizes) == 4  # header + 3 parts
    assert max(sizes) < 60 * 1024


def test_accepts_tensors_and_spectrum_objects() -> None:
    study = optuna.create_study()
    trial = study.ask()
    per_sequence = torch.tensor([[0.1, -0.2], [0.3, -0.4]], dtype=torch.float64)
    spec = LyapunovSpectrum.from_per_sequence(per_sequence, torch.tensor([False, False]), dim=8)
    report_spectrum(trial, spec, step=0)
    report_spectrum(trial, torch.tensor([1.5, -2.0], dtype=torch.float32), step=1)
    report_spectrum(trial, [0.0, -1.0], step=np.int64(2))  # type: ignore[arg-type]
    spectra = load_spectra(trial)
    _assert_same(spectra[0], spec.exponents.numpy())
    _assert_same(spectra[1], np.array([1.5, -2.0]))
    frozen = study.trials[0]
    assert _storage.spectrum_dim(frozen, 0) == 8
    assert _storage.spectrum_dim(frozen, 1) == 2


def test_user_attrs_follow_the_latest_report_and_stay_finite() -> None:
    study = optuna.create_study()
    trial = study.ask()
    report_spectrum(trial, [0.5, -1.5, -math.inf], step=1)
    # The dynamics diagnosis (optuna_lyap/lyapunov/_diagnosis.py) rides along: chaotic,
    # horizon 1 / 0.5, Kaplan-Yorke dimension 1 + 0.5 / 1.5, no change yet.
    at_1 = {"lyap_regime": 1.0, "lyap_memory_horizon": 2.0, "lyap_ky_dimension": 4 / 3}
    at_1 |= {"lyap_max_change": 0.0, "lyap_ky_dimension_change": 0.0}
    # And one line for a person, listed first by the dashboard (see USER_ATTR_SUMMARY).
    line = {"lyap": "regime chaotic; λ1 0.5"}
    assert trial.user_attrs == {"lyap_max": 0.5, "lyap_mean": -0.5, "lyap_step": 1, **at_1, **line}
    report_spectrum(trial, [math.nan, math.nan], step=2)  # diverged: nothing non-finite
    attrs = trial.user_attrs
    assert attrs == {"lyap_max": 0.5, "lyap_mean": -0.5, "lyap_step": 1, **at_1, **line}
    numbers = {k: v for k, v in attrs.items() if k != _storage.USER_ATTR_SUMMARY}
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in numbers.values())
    report_spectrum(trial, [0.0, -2.0], step=3)
    assert trial.user_attrs == {
        "lyap_max": 0.0,
        "lyap_mean": -1.0,
        "lyap_step": 3,
        "lyap_regime": 0.0,
        "lyap_memory_horizon": 1e6,  # lambda_1 = 0: the documented cap
        "lyap_ky_dimension": 1.0,
        "lyap_max_change": -0.5,
        "lyap_ky_dimension_change": 1.0 - 4 / 3,
        "lyap": "regime edge of chaos; λ1 0",
    }
    assert isinstance(trial.user_attrs["lyap_max"], float)


def test_a_retried_trial_shows_its_new_spectra() -> None:
    # A trial retried after its worker died starts with the old run's attrs.
    study = optuna.create_study()
    old = study.ask()
    report_spectrum(old, [1.0], step=0)
    report_spectrum(old, [2.0], step=1)
    study.tell(old, state=optuna.trial.TrialState.FAIL)
    frozen = study.trials[0]
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            system_attrs=frozen.system_attrs,
            user_attrs=frozen.user_attrs,
        )
    )
    retried = study.ask()
    assert retried.user_attrs["lyap_step"] == 1
    report_spectrum(retried, [3.0], step=0)
    # The diagnosis reads the new run's spectra only (none after step 0): no stale change.
    diagnosis = {"lyap_regime": 1.0, "lyap_memory_horizon": 1 / 3, "lyap_ky_dimension": 1.0}
    diagnosis |= {"lyap_max_change": 0.0, "lyap_ky_dimension_change": 0.0}
    line = {"lyap": "regime chaotic; λ1 3"}
    assert retried.user_attrs == {
        "lyap_max": 3.0, "lyap_mean": 3.0, "lyap_step": 0, **diagnosis, **line
    }  # fmt: skip
    assert load_spectra(retried)[0][0] == 3.0


def test_spectrum_at_takes_the_latest_step_not_after() -> None:
    study = optuna.create_study()
    trial = study.ask()
    report_spectrum(trial, [1.0], step=0)
    report_spectrum(trial, [2.0], step=2)
    study.tell(trial, 0.0)
    frozen = study.trials[0]
    assert _storage.spectrum_at(frozen, 1) == (0, pytest.approx(np.array([1.0])))
    found = _storage.spectrum_at(frozen, 5)
    assert found is not None and found[0] == 2
    assert _storage.spectrum_at(frozen, -1) is None


def test_fixed_trial_is_a_no_op_and_bad_arguments_fail() -> None:
    report_spectrum(optuna.trial.FixedTrial({}), [0.1], step=0)
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="step"):
        report_spectrum(trial, [0.1], step=-1)
    with pytest.raises(ValueError, match="step"):
        report_spectrum(trial, [0.1], step=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        report_spectrum(trial, np.zeros((2, 2)), step=0)
    with pytest.raises(ValueError, match="shape"):
        report_spectrum(trial, [], step=0)
    study.tell(trial, 0.0)
    with pytest.raises(TypeError, match="FrozenTrial"):
        report_spectrum(study.trials[0], [0.1], step=0)


def test_prediction_records_round_trip(make_study: Callable[..., optuna.Study]) -> None:
    study = make_study()
    trial = study.ask()
    frozen = study.trials[0]
    record = {
        "predicted": np.float64(0.75),
        "predicted_std": 0.125,
        "threshold": math.inf,
        "n_train": np.int64(6),
        "rank_corr": math.nan,
        "rule": "model",
        "pruned": np.bool_(True),
    }
    _storage.record_prediction(study, frozen, 4, record)
    study.tell(trial, 1.0)
    frozen = study.trials[0]
    _strict_json(frozen)
    assert frozen.user_attrs == {
        "lyap_predicted": 0.75,
        "lyap_predicted_std": 0.125,
        "lyap_n_train": 6,
        "lyap": "predicted 0.75 ± 0.12",
    }
    loaded = load_predictions(frozen)[4]
    assert loaded["threshold"] == math.inf and math.isnan(loaded["rank_corr"])
    assert loaded["rule"] == "model" and loaded["pruned"] is True and loaded["n_train"] == 6


KEY0 = _storage.spectrum_key(0)
KEY1 = _storage.spectrum_key(1)


def _frozen_with(attrs: dict[str, Any]) -> optuna.trial.FrozenTrial:
    """A completed trial holding a readable spectrum at step 0 beside ``attrs``."""
    study = optuna.create_study()
    trial = study.ask()
    report_spectrum(trial, [0.5, -0.5], step=0)
    for key, value in attrs.items():
        study._storage.set_trial_system_attr(trial._trial_id, key, value)
    study.tell(trial, 1.0)
    return study.trials[0]


DAMAGED = [
    ({KEY1: "not an object"}, "header is a str"),
    ({KEY1: {"dim": 2, "k": 2, "exponents": [0.1, "abc"]}}, "entry 1 is 'abc'"),
    ({KEY1: {"dim": 2, "k": 2, "exponents": [0.1, None]}}, "entry 1 is None"),
    ({KEY1: {"dim": 2, "k": 2, "exponents": {"a": 1}}}, "expected a list"),
    ({KEY1: {"dim": 2, "k": 2, "exponents": []}}, "0 exponents"),
    ({KEY1: {"dim": 2, "k": 3, "exponents": [0.1, 0.2]}}, "where k=3"),
    ({KEY1: {"dim": 2, "k": 2, "parts": 2}, f"{KEY1}:0": [0.1]}, "part 1 of 2 is missing"),
    ({KEY1: {"dim": 2, "k": 2, "parts": "two"}}, "count of parts"),
    ({KEY1: {"dim": 2, "k": 2}}, "count of parts"),
    ({KEY1: {"dim": 2, "k": 2, "parts": 1}, f"{KEY1}:0": "0.1"}, "expected a list"),
]


@pytest.mark.parametrize(("attrs", "what"), DAMAGED)
def test_a_damaged_spectrum_is_skipped_with_a_warning(attrs: dict[str, Any], what: str) -> None:
    frozen = _frozen_with(attrs)
    with pytest.warns(_storage.DamagedRecordWarning, match=rf"{KEY1}.* of trial 0: .*{what}"):
        spectra = load_spectra(frozen)
    assert list(spectra) == [0]
    np.testing.assert_array_equal(spectra[0], [0.5, -0.5])
    with pytest.warns(_storage.DamagedRecordWarning):
        found = _storage.spectrum_at(frozen, 1)  # falls back to the readable step 0
    assert found is not None and found[0] == 0


def test_a_damaged_dimension_or_prediction_record_is_skipped_with_a_warning() -> None:
    frozen = _frozen_with(
        {
            KEY1: {"dim": "x", "k": 1, "exponents": [0.0]},
            _storage.prediction_key(1): "pruned",
            _storage.prediction_key(2): {"rule": "model", "predicted": "inf"},
        }
    )
    with pytest.warns(_storage.DamagedRecordWarning, match="dimension is 'x'"):
        assert _storage.spectrum_dim(frozen, 1) is None
    assert _storage.spectrum_dim(frozen, 0) == 2
    with pytest.warns(_storage.DamagedRecordWarning, match="record is a str"):
        records = load_predictions(frozen)
    assert records == {2: {"rule": "model", "predicted": math.inf}}


def test_decode_floats_names_the_bad_entry() -> None:
    np.testing.assert_array_equal(_storage.decode_floats([1, "-inf"]), [1.0, -math.inf])
    for bad, what in [([True], "entry 0 is True"), (["NaN"], "entry 0 is 'NaN'"), ("1", "list")]:
        with pytest.raises(ValueError, match=what):
            _storage.decode_floats(bad)


def test_a_damaged_record_does_not_stop_a_study_with_the_pruner() -> None:
    from optuna_lyap import InStudyModel, LyapunovPruner
    from tests._support.synthetic import add_completed, start_running

    # refit_growth=1.25 refits at the fifth completed trial, so the damaged one is read.
    pruner = LyapunovPruner(
        model=InStudyModel(
            n_startup_trials=4,
            aelle_params={"n_models": 1, "max_steps": 10, "hidden_dim": 4, "head_hidden_dim": 0},
            cv_folds=2,
            refit_growth=1.25,
        ),
    )
    study = optuna.create_study(direction="maximize", pruner=pruner)
    add_completed(study, [0.1, 0.4, 0.6, 0.9])
    template = study.trials[2]
    study.add_trial(
        optuna.trial.create_trial(
            value=0.5,
            intermediate_values=template.intermediate_values,
            system_attrs={KEY0: [1, 2], KEY1: {"exponents": ["oops"]}},
        )
    )
    running = start_running(study, 0.2, step=1)
    frozen = study._storage.get_trial(running._trial_id)
    with pytest.warns(_storage.DamagedRecordWarning, match="trial 4"):
        assert isinstance(pruner.prune(study, frozen), bool)


def test_redis_journal_is_deleted_afterwards(tmp_path: Path) -> None:
    redis = pytest.importorskip("redis")
    with study_factory("redis", tmp_path) as make:
        study = make()
        trial = study.ask()
        report_spectrum(trial, SPECIAL, step=0)
        study.tell(trial, 1.0)
        location = storage_url("redis", tmp_path)
    url, prefix = location.rsplit("#", 1)
    client = redis.Redis.from_url(url)
    try:
        assert list(client.scan_iter(match=f"{prefix}:*")) == []
    finally:
        client.close()
