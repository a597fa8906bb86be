"""The adding problem: sum the two marked numbers of a long sequence."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from optuna_lyap._checks import check_int
from optuna_lyap.tasks._base import SequenceData, SequenceTask
from optuna_lyap.tasks._registry import register_task


@register_task
class Adding(SequenceTask):
    """Output, after the last step, the sum of the two numbers whose marker is on.

    Each step carries two features: a number drawn from U(0, 1) and a marker (0 or 1). One marker
    falls in the first half of the sequence and one in the second, so the network must hold the
    first number across at least half the sequence. The target lies in [0, 2].
    Metric: validation MSE divided by the variance of the validation targets (``val_nmse``,
    minimize): 1 is what always answering the mean sum (1.0) scores, the classic baseline.

    Args:
        length: Time steps ``T`` (at least 2).
        n_train: Training sequences.
        n_val: Validation sequences.
        **kwargs: Common options, see ``SequenceTask``.

    Example:
        >>> from optuna_lyap.tasks import Adding
        >>> task = Adding(length=20, n_train=64, n_val=32, seed=0)
        >>> task.val_data.inputs.shape, task.val_data.targets.shape
        (torch.Size([32, 20, 2]), torch.Size([32, 1, 1]))
        >>> task.metric, task.direction
        ('val_nmse', 'minimize')
    """

    name = "adding"
    description = "adding problem: sum two marked numbers of a sequence; normalised MSE"
    metric = "val_nmse"
    direction = "minimize"
    problem = "regression"
    default_n_epochs = 10
    input_size = 2
    output_size = 1

    def __init__(
        self, *, length: int = 30, n_train: int = 1024, n_val: int = 256, **kwargs: Any
    ) -> None:
        self.length = check_int("length", length, 2)
        self.n_train = check_int("n_train", n_train, 1)
        self.n_val = check_int("n_val", n_val, 2)
        super().__init__(**kwargs)

    def _generate(self, rng: np.random.Generator) -> tuple[SequenceData, SequenceData]:
        n, half = self.n_train + self.n_val, self.length // 2
        values = rng.uniform(size=(n, self.length))
        markers = np.zeros((n, self.length))
        rows = np.arange(n)
        first = rng.integers(0, half, size=n)
        second = rng.integers(half, self.length, size=n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        inputs = torch.from_numpy(np.stack([values, markers], axis=-1).astype(np.float32))
        sums = values[rows, first] + values[rows, second]
        targets = torch.from_numpy(sums.astype(np.float32)).reshape(n, 1, 1)
        train = SequenceData(inputs[: self.n_train], targets[: self.n_train])
        return train, SequenceData(inputs[self.n_train :], targets[self.n_train :])


@register_task
class AddingLong(Adding):
    """The adding problem over ``T = 100`` steps, trained for 20 epochs.

    The length of the classic benchmark's easier settings (Hochreiter and Schmidhuber 1997; Le
    et al. 2015, arXiv:1504.00941, use T = 100 to 750), where networks sit at the mean-answer
    plateau (``val_nmse`` near 1) before those that learn drop. Same options as ``Adding``.

    Args:
        length: Time steps ``T``.
        n_train: Training sequences.
        n_val: Validation sequences.
        **kwargs: Other options of ``Adding`` and ``SequenceTask``.

    Example:
        >>> from optuna_lyap.tasks import AddingLong
        >>> AddingLong(n_train=64, n_val=32, seed=0).val_data.inputs.shape
        torch.Size([32, 100, 2])
    """

    name = "adding_long"
    description = "adding problem over 100 steps; normalised MSE, 20 epochs"
    default_n_epochs = 20

    def __init__(
        self, *, length: int = 100, n_train: int = 600, n_val: int = 200, **kwargs: Any
    ) -> None:
        super().__init__(length=length, n_train=n_train, n_val=n_val, **kwargs)
