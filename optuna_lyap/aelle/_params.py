"""The checks of :class:`~optuna_lyap.aelle.AeLLE`'s constructor parameters."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from optuna_lyap._checks import InvalidParameterError, check_int, check_optional_int, check_real


def _is_finite_real(x: Any) -> bool:
    real = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
    return real and math.isfinite(x)


def check_estimator_params(params: Mapping[str, Any]) -> None:
    """Check :meth:`AeLLE.get_params <optuna_lyap.aelle.AeLLE.get_params>`'s values.

    Raises:
        InvalidParameterError: A parameter of the wrong type or out of its range (a subclass of
            ``ValueError`` and ``TypeError``); the message names it, what is valid, and the
            value given.
    """
    check_int("latent_dim", params["latent_dim"], 1)
    check_int("n_models", params["n_models"], 1)
    check_optional_int("seed", params["seed"], 0)
    check_int("grid_size", params["grid_size"], 2)
    check_int("hidden_dim", params["hidden_dim"], 1)
    check_int("head_hidden_dim", params["head_hidden_dim"], 0)
    check_real("dropout", params["dropout"], 0.0, 1.0, closed=(True, False))
    alpha_schedule = params["alpha_schedule"]
    if (
        not isinstance(alpha_schedule, (tuple, list))
        or len(alpha_schedule) == 0
        or not all(_is_finite_real(a) and a >= 0 for a in alpha_schedule)
        or max(alpha_schedule) == 0
    ):
        raise InvalidParameterError(
            "alpha_schedule must be a non-empty tuple of finite floats >= 0, not all 0, but "
            f"got {alpha_schedule=}."
        )
    check_real("lr", params["lr"], 0.0, math.inf, closed=False)
    check_real("weight_decay", params["weight_decay"], 0.0, math.inf, closed=(True, False))
    check_int("max_steps", params["max_steps"], 1)
    check_int("batch_size", params["batch_size"], 1)
    check_real("validation_fraction", params["validation_fraction"], 0.0, 1.0, closed=False)
    check_int("min_labels_for_validation", params["min_labels_for_validation"], 2)
    clip = params["clip"]
    if (
        not isinstance(clip, (tuple, list))
        or len(clip) != 2
        or not all(_is_finite_real(c) for c in clip)
        or not clip[0] < clip[1]
    ):
        raise InvalidParameterError(
            f"clip must be a pair of finite floats low < high, but got {clip=}."
        )
    check_optional_int("n_threads", params["n_threads"], 1)
