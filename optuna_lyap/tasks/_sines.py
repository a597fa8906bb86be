"""Sine sums: forecast a clean multi-sine signal from its noisy past."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from optuna_lyap._checks import InvalidParameterError, check_int, check_real
from optuna_lyap.tasks._base import SequenceData, SequenceTask, real_pair
from optuna_lyap.tasks._registry import register_task


@register_task
class Sines(SequenceTask):
    """Read a noisy sum of sines step by step and predict the clean signal ``horizon`` steps ahead.

    Each sequence sums ``n_components`` sines with its own amplitudes (U(0.5, 1)), frequencies
    (U of ``freq_range``, cycles per step) and phases (U(0, 2 pi)), divided by ``n_components``.
    The input (``I = 1``) is that signal plus Gaussian noise of ``noise_std``; the target at step
    ``t`` is the clean signal at ``t + horizon``, scored from step ``burn_in`` on (the network
    needs a few steps to tell the frequencies). ``horizon = 0`` turns forecasting into denoising.
    Metric: validation MSE divided by the variance of the validation targets (``val_nmse``,
    minimize; 1 = predicting the mean).

    Args:
        length: Time steps ``T``.
        n_components: Sines per sequence.
        freq_range: ``(low, high)`` frequencies in cycles per step (below the Nyquist 0.5).
        horizon: Steps ahead to predict.
        noise_std: Standard deviation of the input noise.
        burn_in: Steps not scored at the start of each sequence.
        n_train: Training sequences.
        n_val: Validation sequences.
        **kwargs: Common options, see ``SequenceTask``.

    Example:
        >>> from optuna_lyap.tasks import Sines
        >>> task = Sines(n_train=64, n_val=32, seed=0)
        >>> task.val_data.inputs.shape, task.val_data.targets.shape
        (torch.Size([32, 48, 1]), torch.Size([32, 40, 1]))
    """

    name = "sines"
    description = "sum of sines: forecast the clean signal from its noisy past; normalised MSE"
    metric = "val_nmse"
    direction = "minimize"
    problem = "regression"
    default_n_epochs = 10
    input_size = 1
    output_size = 1

    def __init__(
        self,
        *,
        length: int = 48,
        n_components: int = 3,
        freq_range: tuple[float, float] = (0.02, 0.1),
        horizon: int = 5,
        noise_std: float = 0.1,
        burn_in: int = 8,
        n_train: int = 1024,
        n_val: int = 256,
        **kwargs: Any,
    ) -> None:
        self.length = check_int("length", length, 1)
        self.n_components = check_int("n_components", n_components, 1)
        low, high = real_pair("freq_range", freq_range)
        if not 0 < low <= high < 0.5:
            raise InvalidParameterError(
                f"freq_range must satisfy 0 < low <= high < 0.5, but got {freq_range=}."
            )
        self.freq_range = (low, high)
        self.horizon = check_int("horizon", horizon, 0)
        self.noise_std = check_real("noise_std", noise_std, 0.0, math.inf)
        self.burn_in = check_int("burn_in", burn_in, 0, self.length - 1)
        self.n_train = check_int("n_train", n_train, 1)
        self.n_val = check_int("n_val", n_val, 1)
        super().__init__(**kwargs)

    def _generate(self, rng: np.random.Generator) -> tuple[SequenceData, SequenceData]:
        n, m = self.n_train + self.n_val, self.n_components
        amplitude = rng.uniform(0.5, 1.0, size=(n, m, 1))
        frequency = rng.uniform(*self.freq_range, size=(n, m, 1))
        phase = rng.uniform(0.0, 2 * np.pi, size=(n, m, 1))
        time = np.arange(self.length + self.horizon)
        clean = (amplitude * np.sin(2 * np.pi * frequency * time + phase)).sum(axis=1) / m
        noisy = clean[:, : self.length] + self.noise_std * rng.standard_normal((n, self.length))
        inputs = torch.from_numpy(noisy.astype(np.float32)).unsqueeze(-1)
        scored = clean[:, self.burn_in + self.horizon :]
        targets = torch.from_numpy(scored.astype(np.float32)).unsqueeze(-1)
        train = SequenceData(inputs[: self.n_train], targets[: self.n_train])
        return train, SequenceData(inputs[self.n_train :], targets[self.n_train :])
