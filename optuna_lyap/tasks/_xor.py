"""Temporal XOR: the exclusive or of two marked bits far apart in a sequence of random bits."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from optuna_lyap._checks import check_int
from optuna_lyap.tasks._base import SequenceData, SequenceTask
from optuna_lyap.tasks._registry import register_task


@register_task
class TemporalXOR(SequenceTask):
    """Output, after the last step, the XOR of the two bits whose marker is on.

    Each step carries two features: a random bit written as -1 or +1, and a marker (0 or 1). One
    marker falls in the first quarter of the sequence and one in the last quarter, so the two
    bits are at least ``T / 2`` steps apart and the first must be held across them. Like the
    adding problem (whose layout it borrows) but with a target no linear read-out of a sum
    gives: nothing short of both bits beats chance, so accuracy sits at 0.5 until the network
    learns the whole rule.
    Metric: validation accuracy (chance 0.5).

    Args:
        length: Time steps ``T`` (at least 4).
        n_train: Training sequences.
        n_val: Validation sequences.
        **kwargs: Common options, see ``SequenceTask``.

    Example:
        >>> from optuna_lyap.tasks import TemporalXOR
        >>> task = TemporalXOR(length=20, n_train=64, n_val=32, seed=0)
        >>> task.val_data.inputs.shape, task.val_data.targets.shape
        (torch.Size([32, 20, 2]), torch.Size([32, 1]))
    """

    name = "xor"
    description = "XOR of two marked bits at least T/2 steps apart (T = 50); accuracy, 25 epochs"
    metric = "val_accuracy"
    direction = "maximize"
    problem = "classification"
    default_n_epochs = 25
    input_size = 2
    output_size = 2

    def __init__(
        self, *, length: int = 50, n_train: int = 1000, n_val: int = 250, **kwargs: Any
    ) -> None:
        self.length = check_int("length", length, 4)
        self.n_train = check_int("n_train", n_train, 1)
        self.n_val = check_int("n_val", n_val, 1)
        super().__init__(**kwargs)

    def _generate(self, rng: np.random.Generator) -> tuple[SequenceData, SequenceData]:
        n, quarter = self.n_train + self.n_val, self.length // 4
        bits = rng.integers(0, 2, size=(n, self.length))
        rows = np.arange(n)
        first = rng.integers(0, quarter, size=n)
        second = rng.integers(self.length - quarter, self.length, size=n)
        markers = np.zeros((n, self.length))
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        features = np.stack([2.0 * bits - 1.0, markers], axis=-1).astype(np.float32)
        labels = bits[rows, first] ^ bits[rows, second]
        inputs = torch.from_numpy(features)
        targets = torch.from_numpy(labels.astype(np.int64)).unsqueeze(1)
        train = SequenceData(inputs[: self.n_train], targets[: self.n_train])
        return train, SequenceData(inputs[self.n_train :], targets[self.n_train :])
