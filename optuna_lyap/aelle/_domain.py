"""The domain of a trained model's inputs: where its training data lay, column by column.

A model fitted on learning rates up to ``3e-2`` has seen nothing about ``lr = 1``; a monotone
model extrapolates there and calls it its best. Outside the range its training rows covered,
a feature is not evidence: ``FeatureDomain.restrict`` turns it into an unknown (NaN), which
the prior's models read as the training corpus's median of that column, so a candidate is
predicted from what the corpus does cover and is never preferred for lying outside it.

Notation: ``n`` rows, ``c`` columns; ``low`` and ``high`` the smallest and largest finite
training value of each column, widened by ``tolerance`` times the column's range (0 for a
column that took one value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FeatureDomain:
    """Per-column ``[low, high]`` of the rows a model was trained on.

    Attributes:
        names: The ``c`` column names.
        low: ``c`` lower bounds (NaN: the column was never known in training).
        high: ``c`` upper bounds.

    Example:
        >>> import numpy as np
        >>> domain = FeatureDomain.from_rows(("log10_lr",), np.log10([[1e-4], [3e-2]]))
        >>> rows, outside = domain.restrict(np.log10([[1e-3], [1.0]]))
        >>> rows[:, 0].round(1).tolist(), outside[:, 0].tolist()
        ([-3.0, nan], [False, True])
    """

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray

    def __post_init__(self) -> None:
        low = np.asarray(self.low, dtype=np.float64)
        high = np.asarray(self.high, dtype=np.float64)
        if low.shape != (len(self.names),) or high.shape != low.shape:
            raise ValueError(
                f"low and high must hold one bound per name ({len(self.names)}), but got "
                f"shapes {low.shape} and {high.shape}."
            )
        if np.any(low > high):
            raise ValueError(f"every low must be <= its high, but got {low=} and {high=}.")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    @classmethod
    def from_rows(
        cls, names: Sequence[str], rows: np.ndarray, *, tolerance: float = 0.05
    ) -> FeatureDomain:
        """The domain of training ``rows`` (``n x c``; NaN entries ignored).

        Args:
            names: The ``c`` column names.
            rows: The training rows.
            tolerance: Share of each column's range added on both sides, so that values
                rounded at the edge of the corpus stay inside. At least 0.

        Raises:
            ValueError: ``rows`` is not ``n x len(names)`` or ``tolerance < 0``.
        """
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(f"rows must be n x {len(names)}, but got shape {x.shape}.")
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, but got {tolerance=}.")
        finite = np.isfinite(x)
        known = finite.any(axis=0)
        low = np.where(known, np.nanmin(np.where(finite, x, np.inf), axis=0), np.nan)
        high = np.where(known, np.nanmax(np.where(finite, x, -np.inf), axis=0), np.nan)
        pad = tolerance * np.where(known, high - low, 0.0)
        return cls(tuple(names), low - pad, high + pad)

    def outside(self, rows: np.ndarray) -> np.ndarray:
        """An ``n x c`` bool array: a finite value outside its column's bounds.

        A column never known in training has no bounds: every finite value is outside.
        """
        x = self._checked(rows)
        with np.errstate(invalid="ignore"):
            beyond = (x < self.low) | (x > self.high)
        unknown_column = np.isnan(self.low)[None, :]
        return np.isfinite(x) & (beyond | unknown_column)

    def restrict(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``rows`` with every value outside the domain made unknown (NaN), and the mask.

        Returns:
            ``(restricted, outside)``: an ``n x c`` float64 copy and :meth:`outside`'s mask.
        """
        x = self._checked(rows).copy()
        mask = self.outside(x)
        x[mask] = np.nan
        return x, mask

    def describe_outside(self, rows: np.ndarray) -> list[list[str]]:
        """For each row, the names of its columns outside the domain."""
        mask = self.outside(rows)
        return [[name for name, out in zip(self.names, row, strict=True) if out] for row in mask]

    def to_json(self) -> dict[str, Any]:
        """The domain as a JSON object (unknown bounds as null)."""

        def num(v: float) -> float | None:
            return None if np.isnan(v) else float(v)

        return {
            "names": list(self.names),
            "low": [num(v) for v in self.low],
            "high": [num(v) for v in self.high],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeatureDomain:
        """Read :meth:`to_json`'s object back.

        Raises:
            ValueError: ``data`` lacks a key or its lists do not match.
        """
        try:
            names, low, high = data["names"], data["low"], data["high"]
        except (KeyError, TypeError):
            raise ValueError(
                f"a feature domain needs 'names', 'low' and 'high', but got {data!r}."
            ) from None

        def arr(values: list[float | None]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

        return cls(tuple(names), arr(low), arr(high))

    def _checked(self, rows: np.ndarray) -> np.ndarray:
        x = np.asarray(rows, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.names):
            raise ValueError(f"rows must be n x {len(self.names)}, but got shape {x.shape}.")
        return x
