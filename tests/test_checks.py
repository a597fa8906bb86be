"""One set of argument checks: one exception type per kind of mistake, raised up front."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from optuna_lyap import (
    AeLLE,
    InStudyModel,
    InvalidParameterError,
    LyapunovMonitor,
    LyapunovPruner,
    LyapunovSampler,
    lyapunov_spectrum,
    report_spectrum,
)
from optuna_lyap._checks import check_choice, check_int, check_real, check_steps
from optuna_lyap.aelle._estimator import check_aelle_params
from optuna_lyap.lyapunov._arguments import check_spectrum_kwargs


def test_invalid_parameter_error_is_both_value_and_type_error() -> None:
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(InvalidParameterError, TypeError)


@pytest.mark.parametrize("value", [True, 1.0, 0.7, "1", None, -1, 6])
def test_check_int_refuses_what_int_would_hide(value: Any) -> None:
    with pytest.raises(InvalidParameterError, match=rf"but got k={value!r}\."):
        check_int("k", value, 0, 5)


def test_check_int_accepts_integers_and_names_the_range() -> None:
    assert check_int("k", np.int64(3), 0) == 3 and type(check_int("k", np.int64(3), 0)) is int
    with pytest.raises(InvalidParameterError, match=r"k must be an integer >= 1"):
        check_int("k", 0, 1)
    with pytest.raises(InvalidParameterError, match=r"k must be in \{1, \.\.\., 4\}"):
        check_int("k", 5, 1, 4)


@pytest.mark.parametrize(
    ("value", "closed", "ok"),
    [
        (0.0, True, True),
        (0.0, False, False),
        (1.0, (False, True), True),
        (math.nan, True, False),
        (math.inf, True, False),
        (True, True, False),
        ("0.5", True, False),
    ],
)
def test_check_real(value: Any, closed: Any, ok: bool) -> None:
    if ok:
        assert check_real("q", value, 0.0, 1.0, closed=closed) == value
    else:
        with pytest.raises(InvalidParameterError, match=r"q must be a finite number in"):
            check_real("q", value, 0.0, 1.0, closed=closed)


def test_check_choice_and_steps() -> None:
    assert check_choice("state", "h", ("full", "h")) == "h"
    with pytest.raises(InvalidParameterError, match=r"one of 'full', 'h', but got state='c'"):
        check_choice("state", "c", ("full", "h"))
    assert check_steps("steps", (0, np.int32(2))) == {0, 2}
    for bad in [(0.7,), (1, -1), 1, "01"]:
        with pytest.raises(InvalidParameterError, match="steps"):
            check_steps("steps", bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k=0"),
        ({"k": 2.0}, "k=2.0"),
        ({"warmup": -1}, "warmup=-1"),
        ({"qr_interval": 0}, "qr_interval=0"),
        ({"qr_interval": 1.5}, "qr_interval=1.5"),
        ({"state": "c"}, "state='c'"),
        ({"dtype": torch.int32}, "dtype=torch.int32"),
        ({"dtype": "float32"}, "dtype='float32'"),
        ({"seed": -1}, "seed=-1"),
        ({"h0": [1.0, 2.0]}, "h0 must be"),
        ({"warm_up": 3}, r"does not take: \['warm_up'\]"),
        ({"inputs": torch.zeros(1)}, r"does not take: \['inputs'\]"),
    ],
)
def test_spectrum_kwargs_are_checked_where_they_are_stored(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        check_spectrum_kwargs(kwargs)
    # The sampler stores them for later screening: the mistake surfaces at construction.
    with pytest.raises(InvalidParameterError, match=match):
        LyapunovSampler(spectrum_kwargs=kwargs)
    # The monitor takes them the same way.
    with pytest.raises(InvalidParameterError, match=match):
        LyapunovMonitor(optuna.trial.FixedTrial({}), spectrum_kwargs=kwargs)


def test_valid_spectrum_kwargs_pass_unchanged() -> None:
    kwargs = {"k": None, "warmup": 2, "qr_interval": 3, "state": "h", "dtype": torch.float64}
    assert check_spectrum_kwargs(kwargs) == kwargs
    assert check_spectrum_kwargs({"h0": (torch.zeros(1), torch.zeros(1))})


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_models": 0}, "n_models=0"),
        ({"max_steps": 1.5}, "max_steps=1.5"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"lr": -1.0}, "lr=-1.0"),
        ({"n_threads": 0}, "n_threads=0"),
        ({"latent_dims": 4}, r"does not take: \['latent_dims'\]"),
    ],
)
def test_aelle_params_are_checked_at_construction(params: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        check_aelle_params(params)
    with pytest.raises(InvalidParameterError, match=match):
        InStudyModel(aelle_params=params)


def test_aelle_params_drop_the_seed() -> None:
    assert check_aelle_params({"n_models": 2, "seed": 7}) == {"n_models": 2}
    with pytest.raises(InvalidParameterError, match="aelle_params must be a mapping"):
        check_aelle_params([("n_models", 2)])


def test_a_valid_aelle_params_study_still_runs() -> None:
    # n_models=0 used to pass the constructor and fail inside optimize; valid ones still work.
    pruner = LyapunovPruner(model=InStudyModel(aelle_params={"n_models": 1, "max_steps": 5}))
    study = optuna.create_study(pruner=pruner)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.trials) == 2


@pytest.mark.parametrize("bad", [True, 1.0, -1])
def test_every_entry_point_raises_the_same_type_for_a_bad_integer(bad: Any) -> None:
    rnn = nn.RNN(3, 4, batch_first=True)
    calls = [
        lambda: lyapunov_spectrum(rnn, torch.randn(2, 6, 3), warmup=bad),
        lambda: LyapunovPruner(n_startup_trials=bad),
        lambda: LyapunovSampler(n_candidates=bad if bad != -1 else 0),
        lambda: AeLLE(latent_dim=bad).check_params(),
        lambda: LyapunovMonitor(optuna.trial.FixedTrial({}), steps=(bad,)),
        lambda: report_spectrum(optuna.create_study().ask(), [0.1], step=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidParameterError):
            call()
