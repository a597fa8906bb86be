"""Delayed recall (copy) task: remember symbols across a stretch of noise."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from optuna_lyap._checks import check_int, check_real
from optuna_lyap.tasks._base import SequenceData, SequenceTask
from optuna_lyap.tasks._registry import register_task


@register_task
class Copy(SequenceTask):
    """See ``n_recall`` symbols, wait ``delay`` steps of noise, then repeat the symbols.

    Inputs have ``n_symbols + 2`` features: a one-hot symbol during the first ``n_recall``
    steps, a noise channel (standard normal) during the ``delay`` steps in between, and a cue
    channel that is 1 during the final ``n_recall`` recall steps, where the network must output
    the symbols in order. ``T = 2 * n_recall + delay``. With ``n_recall = 1`` this is the
    "recall a symbol after N noise steps" memory task; larger values give the classic copy task.
    Metric: validation accuracy over the recalled symbols (chance ``1 / n_symbols``).

    Args:
        n_symbols: Size of the alphabet (at least 2).
        delay: Noise steps between presentation and recall.
        n_recall: Symbols to remember.
        noise_std: Standard deviation of the noise channel.
        n_train: Training sequences.
        n_val: Validation sequences.
        **kwargs: Common options, see ``SequenceTask``.

    Example:
        >>> from optuna_lyap.tasks import Copy
        >>> task = Copy(delay=10, n_train=64, n_val=32, seed=0)
        >>> task.val_data.inputs.shape, task.val_data.targets.shape
        (torch.Size([32, 12, 6]), torch.Size([32, 1]))
    """

    name = "copy"
    description = "delayed recall: repeat a symbol seen before a stretch of noise; accuracy"
    metric = "val_accuracy"
    direction = "maximize"
    problem = "classification"
    default_n_epochs = 10

    def __init__(
        self,
        *,
        n_symbols: int = 4,
        delay: int = 20,
        n_recall: int = 1,
        noise_std: float = 1.0,
        n_train: int = 1024,
        n_val: int = 256,
        **kwargs: Any,
    ) -> None:
        self.n_symbols = check_int("n_symbols", n_symbols, 2)
        self.delay = check_int("delay", delay, 0)
        self.n_recall = check_int("n_recall", n_recall, 1)
        self.noise_std = check_real("noise_std", noise_std, 0.0, math.inf)
        self.n_train = check_int("n_train", n_train, 1)
        self.n_val = check_int("n_val", n_val, 1)
        self.input_size = n_symbols + 2
        self.output_size = n_symbols
        super().__init__(**kwargs)

    def _generate(self, rng: np.random.Generator) -> tuple[SequenceData, SequenceData]:
        n, k, r = self.n_train + self.n_val, self.n_symbols, self.n_recall
        length = 2 * r + self.delay
        symbols = rng.integers(0, k, size=(n, r))
        inputs = np.zeros((n, length, k + 2), dtype=np.float32)
        inputs[np.arange(n)[:, None], np.arange(r)[None, :], symbols] = 1.0
        inputs[:, r : r + self.delay, k] = self.noise_std * rng.standard_normal((n, self.delay))
        inputs[:, r + self.delay :, k + 1] = 1.0
        inputs_t = torch.from_numpy(inputs)
        targets = torch.from_numpy(symbols.astype(np.int64))
        train = SequenceData(inputs_t[: self.n_train], targets[: self.n_train])
        return train, SequenceData(inputs_t[self.n_train :], targets[self.n_train :])


@register_task
class CopyLong(Copy):
    """Delayed recall across ``delay = 50`` noise steps, trained for 25 epochs.

    The memory task of the seed papers' kind at a delay where accuracy sits at chance (0.25)
    for several epochs before the networks that learn it jump: the task where the learning
    curve says least early on. Same options as ``Copy``; only the defaults differ.

    Args:
        delay: Noise steps between presentation and recall.
        n_train: Training sequences.
        n_val: Validation sequences.
        **kwargs: Other options of ``Copy`` and ``SequenceTask``.

    Example:
        >>> from optuna_lyap.tasks import CopyLong
        >>> CopyLong(n_train=64, n_val=32, seed=0).val_data.inputs.shape
        torch.Size([32, 52, 6])
    """

    name = "copy_long"
    description = "delayed recall of a symbol after 50 noise steps; accuracy, 25 epochs"
    default_n_epochs = 25

    def __init__(
        self, *, delay: int = 50, n_train: int = 1000, n_val: int = 250, **kwargs: Any
    ) -> None:
        super().__init__(delay=delay, n_train=n_train, n_val=n_val, **kwargs)
