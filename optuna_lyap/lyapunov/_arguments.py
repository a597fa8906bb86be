"""The spectrum's own argument checks, and the part of a model whose spectrum is computed.

Used where :func:`~optuna_lyap.lyapunov_spectrum`'s arguments are stored now and the spectrum
is computed later (the monitor, the sampler), so that a mistake fails at construction, not
inside ``study.optimize``. No Optuna here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from optuna_lyap._checks import (
    InvalidParameterError,
    check_choice,
    check_int,
    check_keywords,
    check_optional_int,
)
from optuna_lyap.lyapunov._spectrum import lyapunov_spectrum

SPECTRUM_STATES = ("full", "h")


def check_spectrum_kwargs(kwargs: Mapping[str, Any], name: str = "spectrum_kwargs") -> dict:
    """Check keyword arguments meant for :func:`~optuna_lyap.lyapunov_spectrum` up front.

    What depends on the model and the inputs (``k <= D``, ``warmup < T``, the shape of ``h0``)
    is checked when the spectrum is computed.

    Args:
        kwargs: Any of ``k`` (None or an integer >= 1), ``warmup`` (integer >= 0),
            ``qr_interval`` (integer >= 1), ``state`` (``"full"`` or ``"h"``), ``h0`` (None, a
            tensor, or a pair of tensors), ``dtype`` (None or a floating ``torch.dtype``) and
            ``seed`` (None or an integer >= 0).
        name: The argument's name, for the messages.

    Returns:
        The keyword arguments as a new dict.

    Raises:
        InvalidParameterError: An unknown name or an invalid value; the message names it.
    """
    out = check_keywords(name, kwargs, lyapunov_spectrum, exclude=("model", "inputs"))
    if "k" in out:
        check_optional_int("k", out["k"], 1)
    if "warmup" in out:
        check_int("warmup", out["warmup"], 0)
    if "qr_interval" in out:
        check_int("qr_interval", out["qr_interval"], 1)
    if "state" in out:
        check_choice("state", out["state"], SPECTRUM_STATES)
    if "seed" in out:
        check_optional_int("seed", out["seed"], 0)
    dtype = out.get("dtype")
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise InvalidParameterError(
            f"dtype must be None or a floating torch.dtype, but got {dtype=}."
        )
    h0 = out.get("h0")
    pair = isinstance(h0, (tuple, list)) and len(h0) == 2
    if (
        h0 is not None
        and not isinstance(h0, torch.Tensor)
        and not (pair and all(isinstance(t, torch.Tensor) for t in h0))
    ):
        raise InvalidParameterError(
            "h0 must be None, a tensor, or a pair of tensors (h0, c0) for an LSTM, but got "
            f"{type(h0).__name__}."
        )
    return out


def recurrent_part(model: Any) -> Any:
    """The object whose spectrum is computed: the model itself or its one ``nn.RNNBase``.

    Raises:
        ValueError: ``model`` is a module that holds several ``nn.RNNBase`` modules.
    """
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
