"""Helpers the pruner and the sampler share: argument checks and the recurrent part of a model."""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn


def check_real(name: str, value: Any, low: float, high: float, *, closed: bool = True) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and closed:
        ok = low <= value <= high
    elif ok:
        ok = low < value < high
    if not ok:
        interval = f"[{low}, {high}]" if closed else f"({low}, {high})"
        raise ValueError(f"`{name}` must be a number in {interval}, but got {name}={value!r}.")
    return float(value)


def check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}, but got {name}={value!r}.")
    return int(value)


def recurrent_part(model: Any) -> Any:
    """The object whose spectrum is computed: the model itself or its one ``nn.RNNBase``."""
    if isinstance(model, (nn.RNNBase, nn.RNNCellBase)) or not isinstance(model, nn.Module):
        return model
    found = [m for m in model.modules() if isinstance(m, nn.RNNBase)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ValueError(
            f"The model holds {len(found)} nn.RNNBase modules, so which one to analyse is "
            "ambiguous; pass that module (e.g. model.encoder) to step()."
        )
    return model  # a custom cell: step(state (B, D), x_t (B, I)) -> state (B, D)
