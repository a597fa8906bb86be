"""The registered inputs: each reads its value from a trial at a step.

A new input gets one test like ``test_curve_input_reads_the_curve_up_to_the_step``.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_lyap import report_spectrum
from optuna_lyap._prediction import (
    INPUTS,
    CurveInput,
    ParamEncoder,
    ParamsInput,
    ReadContext,
    SpectrumInput,
    curve_features,
)

MAX = StudyDirection.MAXIMIZE


def test_registry_names_each_input_once() -> None:
    assert list(INPUTS) == ["spectrum", "curve", "params"]
    assert all(name == entry.name for name, entry in INPUTS.items())


def test_curve_features_read_only_steps_up_to_the_step() -> None:
    values = {0: 0.1, 1: 0.5, 2: 0.3, 5: 0.9}
    np.testing.assert_array_equal(curve_features(values, 2, StudyDirection.MAXIMIZE), [0.3, 0.5])
    np.testing.assert_array_equal(curve_features(values, 4, StudyDirection.MINIMIZE), [0.3, 0.1])
    assert np.isnan(curve_features(values, -1, StudyDirection.MAXIMIZE)).all()
    last_nan = curve_features({0: 0.2, 1: math.nan}, 1, StudyDirection.MAXIMIZE)
    assert math.isnan(last_nan[0]) and last_nan[1] == 0.2


def test_curve_input_reads_the_curve_up_to_the_step() -> None:
    trial = optuna.trial.create_trial(
        value=1.0, intermediate_values={0: 0.1, 1: 0.5, 2: 0.3, 5: 0.9}
    )
    curve = CurveInput()
    assert curve.width(ReadContext(2, MAX)) == 2
    np.testing.assert_array_equal(curve.read(trial, ReadContext(2, MAX)), [0.3, 0.5])
    np.testing.assert_array_equal(curve.read(trial, ReadContext(9, MAX)), [0.9, 0.9])
    assert curve.read(trial, ReadContext(-1, MAX)) is None  # nothing reported yet
    assert not curve.available(trial, ReadContext(-1, MAX))
    diverged = optuna.trial.create_trial(value=1.0, intermediate_values={0: 0.2, 1: math.nan})
    assert curve.read(diverged, ReadContext(1, MAX)) is None  # no finite current value


def test_spectrum_input_reads_the_latest_or_the_exact_step() -> None:
    study = optuna.create_study()
    trial = study.ask()
    report_spectrum(trial, [0.5, -1.0], 0)
    report_spectrum(trial, [0.25, -2.0], 2)
    study.tell(trial, state=TrialState.PRUNED)
    frozen = study.trials[0]
    spectrum = SpectrumInput()
    assert spectrum.width(ReadContext(0, MAX, spectrum_step=1)) is None
    assert spectrum.width(ReadContext(0, MAX)) == 0  # no spectrum step: not read
    np.testing.assert_array_equal(spectrum.read(frozen, ReadContext(1, MAX, 1)), [0.5, -1.0])
    np.testing.assert_array_equal(spectrum.read(frozen, ReadContext(3, MAX, 3)), [0.25, -2.0])
    exact = ReadContext(1, MAX, 1, exact_spectrum_step=True)
    assert spectrum.read(frozen, exact) is None and not spectrum.available(frozen, exact)
    assert spectrum.available(frozen, ReadContext(1, MAX, 1))
    assert spectrum.read(frozen, ReadContext(1, MAX)) is None


def test_param_encoder_logs_and_one_hots() -> None:
    encoder = ParamEncoder(
        {
            "lr": FloatDistribution(1e-4, 1.0, log=True),
            "cell": CategoricalDistribution(["rnn", "gru", "lstm"]),
            "hidden": IntDistribution(8, 64),
        }
    )
    assert encoder.width == 5  # cell (3), hidden, lr: sorted by name
    np.testing.assert_allclose(
        encoder.encode({"lr": 1e-2, "cell": "gru", "hidden": 32}),
        [0.0, 1.0, 0.0, 32.0, math.log(1e-2)],
    )
    missing = encoder.encode({"lr": 1e-2})
    assert np.isnan(missing[:4]).all() and missing[4] == pytest.approx(math.log(1e-2))


def test_params_input_reads_through_the_encoder() -> None:
    dist = {"lr": FloatDistribution(1e-4, 1.0, log=True)}
    trial = optuna.trial.create_trial(value=1.0, params={"lr": 1e-3}, distributions=dist)
    params = ParamsInput()
    context = ReadContext(0, MAX, encoder=ParamEncoder(dist))
    assert params.width(context) == 1
    np.testing.assert_allclose(params.read(trial, context), [math.log(1e-3)])
    assert (
        params.width(ReadContext(0, MAX)) == 0 and params.read(trial, ReadContext(0, MAX)) is None
    )
