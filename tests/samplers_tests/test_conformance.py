"""Optuna's sampler conformance suites, on the plain wrapper and on a screening sampler."""

from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from optuna.samplers import BaseSampler, TPESampler
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    MultiObjectiveSamplerTestCase,
    RelativeSamplerTestCase,
)

from optuna_lyap import InStudyModel
from optuna_lyap.samplers import LyapunovSampler
from tests._support.gain_rnn import PROBE, gain_rnn, pretrained

_AELLE = pretrained()


def _plain() -> BaseSampler:
    return LyapunovSampler(seed=0)


def _relative() -> BaseSampler:
    # The relative suite asks for relative samples after one trial: no TPE start-up.
    return LyapunovSampler(TPESampler(n_startup_trials=0, seed=0), seed=0)


def _screening(base: BaseSampler | None = None) -> BaseSampler:
    # Screens from the second trial with the pretrained model (it never refits: the start-up
    # count is out of reach), on networks whose gain any parameter values set.
    return LyapunovSampler(
        base,
        model_factory=gain_rnn,
        probe_inputs=PROBE,
        model=InStudyModel(aelle=_AELLE),
        n_candidates=3,
        n_startup_trials=10_000,
        seed=0,
        prior=None,  # the pretrained AeLLE screens (the prior's screening: test_prior.py)
    )


def _relative_screening() -> BaseSampler:
    return _screening(TPESampler(n_startup_trials=0, seed=0))


class _Samplers:
    @pytest.fixture(params=[_plain, _screening], ids=["wrapper", "screening"])
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], BaseSampler]:
        return request.param


class TestBasic(_Samplers, BasicSamplerTestCase):
    pass


class TestRelative(RelativeSamplerTestCase):
    @pytest.fixture(params=[_relative, _relative_screening], ids=["wrapper", "screening"])
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], BaseSampler]:
        return request.param


class TestMultiObjective(_Samplers, MultiObjectiveSamplerTestCase):
    pass


def test_the_screening_sampler_screens_these_objectives() -> None:
    study = optuna.create_study(sampler=_screening())
    study.optimize(lambda t: t.suggest_float("x", 0, 10) + t.suggest_int("y", 0, 10), n_trials=4)
    screened = [t for t in study.trials if "lyap_screen_predicted" in t.user_attrs]
    assert [t.number for t in screened] == [1, 2, 3]
