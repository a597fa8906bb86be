"""16-bit networks through ``LyapunovMonitor`` and the sampler's screening (pytorch#9315)."""

from __future__ import annotations

import warnings
from typing import Any

import optuna
import pytest
import torch
from torch import nn

import optuna_lyap as ol
from optuna_lyap.samplers._lyapunov import init_measurement


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_monitor_stores_the_spectrum_of_a_16bit_lstm(dtype: torch.dtype):
    torch.manual_seed(0)
    net = nn.LSTM(3, 8, batch_first=True).to(dtype)
    probe = torch.randn(4, 20, 3).to(dtype)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    monitor = ol.LyapunovMonitor(trial, probe, steps=(0,))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        spectrum = monitor.step(net, 0.1, 0)
    assert spectrum is not None
    assert torch.isfinite(spectrum.exponents).all()
    assert spectrum.dim == 16
    reference = ol.lyapunov_spectrum(net.float(), probe.float(), seed=0)
    torch.testing.assert_close(spectrum.exponents, reference.exponents, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_sampler_screens_a_16bit_model(dtype: torch.dtype):
    def factory(params: dict[str, Any], seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.GRU(3, params["hidden"], batch_first=True).to(dtype)

    exponents, dim = init_measurement(
        factory, {"hidden": 6}, torch.randn(3, 15, 3), seed=0, spectrum_kwargs={"seed": 0}
    )
    assert dim == 6
    assert exponents.shape == (6,)
    assert (exponents == exponents).all() and abs(exponents).max() < 50
