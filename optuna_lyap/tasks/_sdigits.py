"""Sequential digits: scikit-learn's 8 x 8 handwritten digits read as a sequence."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from optuna_lyap._checks import InvalidParameterError, check_int, check_real
from optuna_lyap.tasks._base import SequenceData, SequenceTask
from optuna_lyap.tasks._registry import register_task

ORDERS = ("row", "pixel")


@register_task
class SDigits(SequenceTask):
    """Classify a handwritten digit read row by row (8 steps of 8 pixels) or pixel by pixel.

    The 1797 images of ``sklearn.datasets.load_digits`` (bundled with scikit-learn, no download),
    pixel values scaled to [0, 1]. With ``permute=True`` the 64 pixels are shuffled by one fixed
    permutation (``self.permutation``, drawn from ``permutation_seed``, the same for every split
    seed) before being cut into steps, which removes the spatial order. The label is read out
    after the last step.
    Metric: validation accuracy (chance 0.1).

    Args:
        order: ``"row"`` (``T = 8``, ``I = 8``) or ``"pixel"`` (``T = 64``, ``I = 1``).
        permute: Shuffle the pixels with a fixed permutation.
        permutation_seed: Seeds that permutation.
        val_fraction: Share of the images held out for validation (split drawn from ``seed``).
        **kwargs: Common options, see ``SequenceTask``.

    Example:
        >>> from optuna_lyap.tasks import SDigits
        >>> task = SDigits(seed=0)
        >>> task.val_data.inputs.shape, task.val_data.targets.shape
        (torch.Size([359, 8, 8]), torch.Size([359, 1]))
    """

    name = "sdigits"
    description = "scikit-learn digits read row by row (or pixel by pixel); 10-class accuracy"
    metric = "val_accuracy"
    direction = "maximize"
    problem = "classification"
    default_n_epochs = 10
    output_size = 10

    def __init__(
        self,
        *,
        order: str = "row",
        permute: bool = False,
        permutation_seed: int = 0,
        val_fraction: float = 0.2,
        **kwargs: Any,
    ) -> None:
        if not isinstance(order, str) or order not in ORDERS:
            raise InvalidParameterError(f"order must be one of {list(ORDERS)}, but got {order=}.")
        if not isinstance(permute, (bool, np.bool_)):
            raise InvalidParameterError(f"permute must be a bool, but got {permute=}.")
        permutation_seed = check_int("permutation_seed", permutation_seed, 0)
        val_fraction = check_real("val_fraction", val_fraction, 0.0, 1.0, closed=False)
        self.order = order
        self.permute = permute
        self.permutation_seed = permutation_seed
        self.permutation: np.ndarray | None = None
        if permute:
            self.permutation = np.random.default_rng(permutation_seed).permutation(64)
        self.val_fraction = val_fraction
        self.input_size = 8 if order == "row" else 1
        super().__init__(**kwargs)

    def _generate(self, rng: np.random.Generator) -> tuple[SequenceData, SequenceData]:
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
        pixels = images.astype(np.float32) / 16.0
        if self.permutation is not None:
            pixels = pixels[:, self.permutation]
        steps = pixels.reshape(len(pixels), 64 // self.input_size, self.input_size)
        order = rng.permutation(len(steps))
        n_val = round(self.val_fraction * len(steps))
        splits = []
        for index in (order[n_val:], order[:n_val]):
            inputs = torch.from_numpy(np.ascontiguousarray(steps[index]))
            targets = torch.from_numpy(labels[index].astype(np.int64)).unsqueeze(1)
            splits.append(SequenceData(inputs, targets))
        return splits[0], splits[1]


@register_task
class PermutedSDigits(SDigits):
    """Digits read pixel by pixel (``T = 64``, ``I = 1``) in one fixed shuffled order.

    The small-scale analogue of permuted sequential MNIST (Le et al. 2015, arXiv:1504.00941):
    the shuffle spreads each stroke over the whole sequence, so the network must integrate over
    all 64 steps. Same options as ``SDigits``; only the defaults differ.

    Args:
        order: ``"pixel"`` by default.
        permute: ``True`` by default.
        **kwargs: Other options of ``SDigits`` and ``SequenceTask``.

    Example:
        >>> from optuna_lyap.tasks import PermutedSDigits
        >>> PermutedSDigits(seed=0).val_data.inputs.shape
        torch.Size([359, 64, 1])
    """

    name = "psdigits"
    description = "scikit-learn digits, pixel by pixel in a fixed shuffled order; accuracy"
    default_n_epochs = 10

    def __init__(self, *, order: str = "pixel", permute: bool = True, **kwargs: Any) -> None:
        super().__init__(order=order, permute=permute, **kwargs)
