"""A recurrent network whose spectrum at initialisation is set by one parameter, the gain.

``gain_rnn({"g": g})`` is a tanh RNN whose recurrent matrix is ``g`` times a fixed orthogonal
matrix, driven by weak inputs: its exponents at initialisation are close to ``log g`` (lower
for ``g > 1``, where tanh saturates). ``value_of(g) = -|log g|`` makes the spectrum at
initialisation determine the final value: the edge of chaos (``g = 1``) is best.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn

from optuna_lyap import report_spectrum
from optuna_lyap.samplers._lyapunov import init_measurement

HIDDEN = 8
PROBE = torch.randn(2, 30, 1, generator=torch.Generator().manual_seed(0))

# Small, fast AeLLE models: the tests check decisions, not model quality.
FAST_AELLE: dict[str, Any] = {
    "n_models": 2,
    "max_steps": 80,
    "hidden_dim": 16,
    "head_hidden_dim": 8,
}


def gain_of(params: Mapping[str, Any]) -> float:
    """``params["g"]`` or, for any other parameters, a gain in [0.5, 2.5) derived from them."""
    if "g" in params:
        return float(params["g"])
    total = 0.0
    for value in params.values():
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        total += abs(float(value)) if is_number else float(len(str(value)))
    return 0.5 + 2.0 * ((total * 0.37) % 1.0)


def gain_rnn(params: Mapping[str, Any]) -> nn.RNN:
    """The untrained network of ``params`` (its recurrent weights do not depend on a seed)."""
    rnn = nn.RNN(1, HIDDEN, batch_first=True, bias=False)
    q, _ = torch.linalg.qr(torch.randn(HIDDEN, HIDDEN, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        rnn.get_parameter("weight_hh_l0").copy_(gain_of(params) * q)
        rnn.get_parameter("weight_ih_l0").fill_(0.05)
    return rnn


def value_of(g: float) -> float:
    return -abs(math.log(g))


def spectrum_of(params: Mapping[str, Any]) -> np.ndarray:
    return init_measurement(gain_rnn, params, PROBE, seed=0, spectrum_kwargs={"seed": 0})[0]


def objective(trial: optuna.Trial) -> float:
    """Suggest ``g``, store the spectrum at initialisation, return ``value_of(g)``."""
    g = trial.suggest_float("g", 0.2, 5.0, log=True)
    report_spectrum(trial, spectrum_of({"g": g}), 0)
    trial.report(0.0, 0)
    return value_of(g)


_PRETRAINED: dict[str, Any] = {}


def pretrained(direction: str = "maximize") -> Any:
    """An AeLLE fitted on the spectra of 12 gains and their values (negated for minimize)."""
    from optuna_lyap import AeLLE

    if direction not in _PRETRAINED:
        gains = np.geomspace(0.2, 5.0, 12)
        sign = 1.0 if direction == "maximize" else -1.0
        targets = [sign * value_of(g) for g in gains]
        spectra = [spectrum_of({"g": g}) for g in gains]
        _PRETRAINED[direction] = AeLLE(seed=0, **FAST_AELLE).fit(spectra, targets)
    return _PRETRAINED[direction]


def signed_objective(direction: str) -> Any:
    """``objective`` whose value is negated for a minimised study."""
    sign = 1.0 if direction == "maximize" else -1.0

    def run(trial: optuna.Trial) -> float:
        return sign * objective(trial)

    return run
