"""How numbers are encoded in attr values, and how a damaged record is reported."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

_NON_FINITE_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode_floats(values: np.ndarray) -> list[float | str]:
    """Encode a 1-D float array as a JSON list; non-finite entries become ``"nan"``, ``"inf"``
    and ``"-inf"``."""
    out: list[float | str] = []
    for v in np.asarray(values, dtype=np.float64).tolist():
        if math.isfinite(v):
            out.append(float(v))
        elif math.isnan(v):
            out.append("nan")
        else:
            out.append("inf" if v > 0 else "-inf")
    return out


class DamagedRecordWarning(UserWarning):
    """A stored spectrum or decision record could not be read and was skipped.

    Example:
        >>> import warnings
        >>> import optuna
        >>> from optuna_lyap import DamagedRecordWarning, load_spectra
        >>> damaged = {"optuna_lyap:v1:spectrum:0": "not a list of numbers"}
        >>> trial = optuna.trial.create_trial(value=0.0, system_attrs=damaged)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always", DamagedRecordWarning)
        ...     spectra = load_spectra(trial)
        >>> spectra, caught[0].category.__name__
        ({}, 'DamagedRecordWarning')
    """


def decode_floats(values: Any) -> np.ndarray:
    """The inverse of :func:`encode_floats`: a float64 array.

    Raises:
        ValueError: ``values`` is not a list, or holds an entry that is neither a number nor
            one of ``"nan"``, ``"inf"``, ``"-inf"``; the message names the entry.
    """
    if not isinstance(values, list):
        raise ValueError(f"expected a list of numbers, but got a {type(values).__name__}")
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if isinstance(v, str) and v in _NON_FINITE_NAMES:
            out[i] = _NON_FINITE_NAMES[v]
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[i] = float(v)
        else:
            raise ValueError(f"entry {i} is {v!r}, neither a number nor 'nan', 'inf', '-inf'")
    return out


def _warn_damaged(where: str, key: str, what: str) -> None:
    warnings.warn(
        f"Skipping the damaged record {key!r} of {where}: {what}.",
        DamagedRecordWarning,
        stacklevel=3,
    )


def _where(trial: Any) -> str:
    number = getattr(trial, "number", None)
    return "a trial" if number is None else f"trial {number}"


def finite_or_none(value: Any) -> float | None:
    """``value`` as a Python float when it is a finite number, else None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
