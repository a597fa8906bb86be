"""The simulation behind the gate-power suite: its noise gives the Spearman asked for."""

from __future__ import annotations

import math
from types import ModuleType

import numpy as np
import pytest
from scipy.stats import spearmanr

from benchmarks.suites import gate_power as gate_power_suite


@pytest.fixture(scope="module")
def gate_power() -> ModuleType:
    return gate_power_suite


@pytest.mark.parametrize("target", [0.1, 0.36, 0.55, 0.8, 0.95])
def test_noise_gives_the_population_spearman(gate_power: ModuleType, target: float) -> None:
    rng = np.random.default_rng(0)
    final = rng.standard_normal(200_000)
    noisy = gate_power._noisy(final, target, rng)
    assert spearmanr(final, noisy).statistic == pytest.approx(target, abs=0.01)


def test_noise_scale_ends(gate_power: ModuleType) -> None:
    assert gate_power.noise_scale(1.0) == 0.0
    assert math.isinf(gate_power.noise_scale(0.0))


def test_a_model_no_better_than_the_raw_value_rarely_opens_the_gate(
    gate_power: ModuleType,
) -> None:
    tie = gate_power.power(30, 0.6, 0.6, repeats=40, gate=0.9, seed=0)
    perfect = gate_power.power(30, 1.0, 0.0, repeats=40, gate=0.9, seed=0)
    assert tie["p_open"] <= 0.2 and perfect["p_open"] == 1.0
