"""Mackey-Glass: forecast a chaotic delay-differential series, generated on the fly."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from optuna_lyap._checks import check_int, check_real
from optuna_lyap.tasks._base import SequenceData, SequenceTask
from optuna_lyap.tasks._registry import register_task

# Mackey and Glass (1977), Science 197:287, in the chaotic setting used for forecasting
# benchmarks since Farmer and Sidorowich (1987): beta = 0.2, gamma = 0.1, n = 10, tau = 17.
BETA, GAMMA, POWER = 0.2, 0.1, 10.0

# Euler steps per unit of time, and time units integrated (and dropped) before sampling so that
# every sequence starts on the attractor rather than on its random initial history.
_STEPS_PER_UNIT = 10
_TRANSIENT = 300


def mackey_glass(
    n: int, n_samples: int, sample_every: float, tau: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` independent Mackey-Glass series, each sampled ``n_samples`` times.

    ``dx/dt = BETA x(t - tau) / (1 + x(t - tau) ** POWER) - GAMMA x(t)``, integrated by the Euler
    method with step ``1 / 10`` from a random history ``x ~ U(0.5, 1.3)`` on ``[-tau, 0]``; the
    first 300 time units are dropped, then one value is kept every ``sample_every`` units.

    Returns:
        An ``n x n_samples`` float64 array.
    """
    dt = 1.0 / _STEPS_PER_UNIT
    lag = round(tau * _STEPS_PER_UNIT)
    stride = round(sample_every * _STEPS_PER_UNIT)
    n_steps = _TRANSIENT * _STEPS_PER_UNIT + (n_samples - 1) * stride + 1
    x = np.empty((n, lag + n_steps))
    x[:, : lag + 1] = rng.uniform(0.5, 1.3, size=(n, lag + 1))
    for t in range(lag, lag + n_steps - 1):
        delayed = x[:, t - lag]
        x[:, t + 1] = x[:, t] + dt * (BETA * delayed / (1.0 + delayed**POWER) - GAMMA * x[:, t])
    start = lag + _TRANSIENT * _STEPS_PER_UNIT
    return x[:, start : start + (n_samples - 1) * stride + 1 : stride]


@register_task
class MackeyGlass(SequenceTask):
    """Read a Mackey-Glass series step by step and predict it ``horizon`` samples ahead.

    Each sequence is its own trajectory of the chaotic Mackey-Glass system (``tau = 17``, see
    ``mackey_glass``), sampled every ``sample_every`` time units and standardised with fixed
    constants (mean 0.9, scale 0.23, close to the attractor's). The target at step ``t`` is the
    series at ``t + horizon``, scored from step ``burn_in`` on.
    Metric: validation MSE divided by the variance of the validation targets (``val_nmse``,
    minimize; 1 = predicting the mean).

    Args:
        length: Time steps ``T``.
        sample_every: Time units between samples.
        horizon: Samples ahead to predict.
        tau: The delay of the system (17: mildly chaotic; 30: more so).
        burn_in: Steps not scored at the start of each sequence.
        n_train: Training sequences.
        n_val: Validation sequences.
        **kwargs: Common options, see ``SequenceTask``.

    Example:
        >>> from optuna_lyap.tasks import MackeyGlass
        >>> task = MackeyGlass(n_train=64, n_val=32, seed=0)
        >>> task.val_data.inputs.shape, task.val_data.targets.shape
        (torch.Size([32, 64, 1]), torch.Size([32, 56, 1]))
    """

    name = "mackey_glass"
    description = "Mackey-Glass chaotic series: forecast 4 samples ahead; normalised MSE"
    metric = "val_nmse"
    direction = "minimize"
    problem = "regression"
    default_n_epochs = 10
    input_size = 1
    output_size = 1

    def __init__(
        self,
        *,
        length: int = 64,
        sample_every: float = 3.0,
        horizon: int = 4,
        tau: float = 17.0,
        burn_in: int = 8,
        n_train: int = 600,
        n_val: int = 200,
        **kwargs: Any,
    ) -> None:
        self.length = check_int("length", length, 1)
        self.burn_in = check_int("burn_in", burn_in, 0, self.length - 1)
        self.horizon = check_int("horizon", horizon, 0)
        # Time units of the delay equation; the integrator's step is 1 / 10.
        self.sample_every = check_real("sample_every", sample_every, 0.1, math.inf)
        self.tau = check_real("tau", tau, 0.1, math.inf)
        self.n_train = check_int("n_train", n_train, 1)
        self.n_val = check_int("n_val", n_val, 1)
        super().__init__(**kwargs)

    def _generate(self, rng: np.random.Generator) -> tuple[SequenceData, SequenceData]:
        n = self.n_train + self.n_val
        series = mackey_glass(n, self.length + self.horizon, self.sample_every, self.tau, rng)
        series = ((series - 0.9) / 0.23).astype(np.float32)
        inputs = torch.from_numpy(series[:, : self.length]).unsqueeze(-1)
        targets = torch.from_numpy(series[:, self.burn_in + self.horizon :]).unsqueeze(-1)
        train = SequenceData(inputs[: self.n_train], targets[: self.n_train])
        return train, SequenceData(inputs[self.n_train :], targets[self.n_train :])
