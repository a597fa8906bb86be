"""Argument checks shared by the package.

One exception type per kind of mistake:

* An argument of the wrong type or outside its valid range raises
  :class:`InvalidParameterError`, a subclass of both :class:`ValueError` and
  :class:`TypeError` (as scikit-learn's parameter validation does), so a caller may catch either.
  The message names the argument, what is valid, and the value given:
  ``"warmup must be an integer >= 0, but got warmup=-1."``.
* An object the function cannot work with at all (a model that is neither a recurrent module
  nor a cell, inputs that are no tensor, a trial of the wrong class) raises :class:`TypeError`.
* Data that contradict each other or the model (shapes, lengths, too few labels) raise
  :class:`ValueError`.

Nothing here imports Optuna or any module of the package: it is the ground floor that the
spectrum engine, AeLLE and the Optuna glue all build on. The checks of one component's own
arguments live with it (``lyapunov/_arguments.py``, ``aelle/_params.py``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np


class InvalidParameterError(ValueError, TypeError):
    """An argument has the wrong type or a value outside its valid range.

    Example:
        >>> import optuna_lyap
        >>> try:
        ...     with optuna_lyap.use_threads(0):
        ...         pass
        ... except optuna_lyap.InvalidParameterError as err:
        ...     print(isinstance(err, ValueError), isinstance(err, TypeError))
        True True
    """


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an ``int`` if it is an integer in ``[low, high]`` (``high=None``: no bound).

    Booleans and floats with an integral value (``1.0``) are refused: a float step or count is
    almost always a mistake that ``int()`` would hide (``0.7`` becoming ``0``).

    Raises:
        InvalidParameterError: ``value`` is not an integer, or lies outside the range.
    """
    if not _is_int(value) or value < low or (high is not None and value > high):
        valid = f"an integer >= {low}" if high is None else f"in {{{low}, ..., {high}}}"
        raise InvalidParameterError(f"{name} must be {valid}, but got {name}={value!r}.")
    return int(value)


def check_optional_int(name: str, value: Any, low: int, high: int | None = None) -> int | None:
    """:func:`check_int`, with None accepted and returned as is."""
    if value is None:
        return None
    if not _is_int(value) or value < low or (high is not None and value > high):
        valid = f"an integer >= {low}" if high is None else f"in {{{low}, ..., {high}}}"
        raise InvalidParameterError(f"{name} must be None or {valid}, but got {name}={value!r}.")
    return int(value)


def check_real(
    name: str,
    value: Any,
    low: float,
    high: float,
    *,
    closed: bool | tuple[bool, bool] = True,
) -> float:
    """``value`` as a ``float`` if it is a real number in the interval from ``low`` to ``high``.

    Args:
        name: The argument's name, for the message.
        value: The value to check. NaN and infinities are always refused.
        low: Lower bound.
        high: Upper bound (``math.inf`` for none).
        closed: Whether the bounds belong to the interval: one bool for both, or
            ``(low_closed, high_closed)``.

    Raises:
        InvalidParameterError: ``value`` is not a real number, or lies outside the interval.
    """
    low_closed, high_closed = (closed, closed) if isinstance(closed, bool) else closed
    high_closed = high_closed and math.isfinite(high)  # infinity itself is never valid
    ok = _is_real(value) and math.isfinite(value)
    if ok:
        above = low <= value if low_closed else low < value
        below = value <= high if high_closed else value < high
        ok = above and below
    if not ok:
        interval = f"{'[' if low_closed else '('}{low}, {high}{']' if high_closed else ')'}"
        raise InvalidParameterError(
            f"{name} must be a finite number in {interval}, but got {name}={value!r}."
        )
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``.

    Raises:
        InvalidParameterError: ``value`` is none of ``choices``.
    """
    options = list(choices)
    if not any(value is c or (type(value) is type(c) and value == c) for c in options):
        listed = ", ".join(repr(c) for c in options)
        raise InvalidParameterError(f"{name} must be one of {listed}, but got {name}={value!r}.")
    return value


def check_steps(name: str, steps: Any) -> frozenset[int]:
    """A set of steps: an iterable of non-negative integers (``0.7`` is refused, not truncated).

    Raises:
        InvalidParameterError: ``steps`` is not an iterable (a lone number or a string), or one
            of its entries is not a non-negative integer.
    """
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Iterable):
        raise InvalidParameterError(
            f"{name} must be an iterable of non-negative integers, but got {name}={steps!r}."
        )
    return frozenset(check_int(f"{name} entry", s, 0) for s in steps)


def check_keywords(
    name: str, kwargs: Any, function: Callable[..., Any], *, exclude: Iterable[str] = ()
) -> dict[str, Any]:
    """``kwargs`` as a dict, if it is a mapping of keyword arguments ``function`` accepts.

    Args:
        name: The argument's name, for the message.
        kwargs: The mapping to check.
        function: The callable (or class) the keywords are meant for.
        exclude: Keywords the caller sets itself and that ``kwargs`` must not hold.

    Raises:
        InvalidParameterError: ``kwargs`` is not a mapping with string keys, or holds a name
            ``function`` does not accept; the message lists the valid names.
    """
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise InvalidParameterError(
            f"{name} must be a mapping of keyword arguments, but got {name}={kwargs!r}."
        )
    valid = [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in set(exclude)
    ]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise InvalidParameterError(
            f"{name} holds names {function.__name__} does not take: {unknown}; valid names are "
            f"{valid}, but got {name}={dict(kwargs)!r}."
        )
    return dict(kwargs)
