"""The dynamics diagnosis: regime, memory horizon, Kaplan-Yorke dimension, and its user attrs."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch

import optuna_lyap
from optuna_lyap._storage import diagnosis_attrs
from optuna_lyap.lyapunov import LyapunovSpectrum
from optuna_lyap.lyapunov._diagnosis import (
    EDGE_MARGIN,
    MAX_MEMORY_HORIZON,
    REGIME_CODES,
    describe,
    describe_change,
    diagnose,
    kaplan_yorke_dimension,
)


@pytest.mark.parametrize(
    ("lambda_1", "regime"),
    [(0.2, "chaotic"), (0.005, "edge"), (0.0, "edge"), (-0.005, "edge"), (-0.3, "ordered")],
)
def test_regime_by_the_documented_margin(lambda_1: float, regime: str):
    d = diagnose([lambda_1, -0.5, -1.0])
    assert d.regime == regime
    assert d.margin == EDGE_MARGIN
    assert d.lambda_1 == lambda_1


def test_a_standard_error_widens_the_edge_band():
    assert diagnose([0.05, -1.0]).regime == "chaotic"
    # 0.05 is within two standard errors of 0.03: not clearly chaotic.
    d = diagnose([0.05, -1.0], stderr=0.03)
    assert d.regime == "edge" and d.margin == pytest.approx(0.06)
    assert diagnose([0.05, -1.0], stderr=0.001).regime == "chaotic"


def test_memory_horizon_is_the_lyapunov_time():
    assert diagnose([-0.25, -1.0]).memory_horizon == pytest.approx(4.0)
    assert diagnose([0.5]).memory_horizon == pytest.approx(2.0)
    assert diagnose([0.0, -1.0]).memory_horizon == math.inf


def test_kaplan_yorke_dimension_known_values():
    # j = 2 (0.5 - 0.2 >= 0, 0.5 - 0.2 - 1.0 < 0): 2 + 0.3 / 1.0.
    assert kaplan_yorke_dimension([0.5, -0.2, -1.0]) == pytest.approx(2.3)
    # The Lorenz attractor's exponents give its known dimension, about 2.06.
    assert kaplan_yorke_dimension([0.906, 0.0, -14.572]) == pytest.approx(2.0622, abs=1e-4)
    assert kaplan_yorke_dimension([-0.1, -0.2]) == 0.0
    assert kaplan_yorke_dimension([0.3, 0.1]) == 2.0  # every partial sum >= 0: k, a lower bound
    assert kaplan_yorke_dimension([0.2, -math.inf]) == 1.0
    assert math.isnan(kaplan_yorke_dimension([math.nan, math.nan]))
    # Order does not matter; NaN entries are dropped.
    assert kaplan_yorke_dimension([-1.0, math.nan, 0.5, -0.2]) == pytest.approx(2.3)


def test_kaplan_yorke_dimension_agrees_with_the_spectrum_result():
    rng = np.random.default_rng(0)
    for _ in range(50):
        k = int(rng.integers(1, 12))
        lam = np.sort(rng.normal(rng.uniform(-0.5, 0.3), 0.4, k))[::-1].copy()
        if rng.random() < 0.2:
            lam[-1] = -math.inf
        exponents = torch.tensor(lam, dtype=torch.float64)
        result = LyapunovSpectrum(
            exponents, exponents[None, :], exponents * 0, torch.zeros(1, dtype=torch.bool), k
        )
        assert kaplan_yorke_dimension(lam) == pytest.approx(result.kaplan_yorke_dimension)


def test_undefined_spectrum_is_diagnosed_not_raised():
    d = diagnose([math.nan, math.nan])
    assert d.regime == "undefined" and math.isnan(d.lambda_1)
    assert "diverged" in describe(d)
    assert diagnose([-math.inf, -math.inf]).regime == "ordered"


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="margin"):
        diagnose([0.1], margin=-1.0)
    with pytest.raises(ValueError, match="stderr"):
        diagnose([0.1], stderr=math.nan)
    with pytest.raises(ValueError, match="1-D"):
        diagnose(np.zeros((2, 2)))


def test_describe_names_regime_horizon_dimension_and_change():
    first, last = diagnose([-0.3, -1.0]), diagnose([0.2, -0.1, -1.0])
    text = describe(last)
    assert "chaotic" in text and "memory horizon" in text and "Kaplan-Yorke" in text
    change = describe_change(first, last)
    assert change.startswith("Moved from ordered to chaotic")
    assert "+0.5" in change


def test_diagnosis_attrs_are_finite_numbers_and_track_the_change():
    attrs = diagnosis_attrs({0: np.array([-0.3, -1.0]), 1: np.array([0.2, -0.1, -1.0])})
    assert attrs["lyap_regime"] == REGIME_CODES["chaotic"] == 1
    assert attrs["lyap_memory_horizon"] == pytest.approx(5.0)
    assert attrs["lyap_ky_dimension"] == pytest.approx(2.1)
    assert attrs["lyap_max_change"] == pytest.approx(0.5)
    assert attrs["lyap_ky_dimension_change"] == pytest.approx(2.1)
    assert all(isinstance(v, float) and math.isfinite(v) for v in attrs.values())
    assert diagnosis_attrs({}) == {}
    only = diagnosis_attrs({0: np.array([0.0, -1.0])})
    assert only["lyap_memory_horizon"] == MAX_MEMORY_HORIZON  # lambda_1 = 0: capped
    assert only["lyap_max_change"] == 0.0 == only["lyap_ky_dimension_change"]
    # A diverged latest spectrum writes nothing (the previous values stay, as lyap_max does).
    assert diagnosis_attrs({0: np.array([-0.1]), 1: np.array([math.nan])}) == {}


def test_report_spectrum_writes_the_diagnosis_while_the_trial_runs():
    study = optuna.create_study()
    trial = study.ask()
    optuna_lyap.report_spectrum(trial, np.array([-0.5, -1.0]), 0)
    assert trial.user_attrs["lyap_regime"] == -1
    optuna_lyap.report_spectrum(trial, np.array([0.1, -1.0]), 1)
    study.tell(trial, 1.0)
    attrs = study.trials[0].user_attrs
    assert attrs["lyap_regime"] == 1
    assert attrs["lyap_max_change"] == pytest.approx(0.6)
    assert attrs["lyap_memory_horizon"] == pytest.approx(10.0)
