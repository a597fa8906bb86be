"""FeatureDomain: where a model's training rows lay, and what lies outside."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optuna_lyap.aelle._domain import FeatureDomain

NAMES = ("log_h", "log10_lr", "norm")
TRAIN = np.array([[2.0, -4.0, np.nan], [4.0, -1.5, np.nan], [3.0, -2.0, np.nan]])


def test_bounds_are_the_finite_extremes_widened_by_the_tolerance() -> None:
    domain = FeatureDomain.from_rows(NAMES, TRAIN, tolerance=0.1)
    np.testing.assert_allclose(domain.low[:2], [2.0 - 0.2, -4.0 - 0.25])
    np.testing.assert_allclose(domain.high[:2], [4.0 + 0.2, -1.5 + 0.25])
    assert math.isnan(domain.low[2]) and math.isnan(domain.high[2])


def test_values_outside_become_unknown_and_inside_stay() -> None:
    domain = FeatureDomain.from_rows(NAMES, TRAIN, tolerance=0.0)
    rows = np.array([[3.0, -3.0, np.nan], [5.0, 0.0, 1.2], [2.0, -1.5, np.nan]])
    restricted, outside = domain.restrict(rows)
    assert outside.tolist() == [
        [False, False, False],
        [True, True, True],  # above both ranges; a column never known is outside
        [False, False, False],  # the edges are inside
    ]
    np.testing.assert_array_equal(restricted[0], rows[0])
    assert np.isnan(restricted[1]).all()
    assert domain.describe_outside(rows) == [[], ["log_h", "log10_lr", "norm"], []]
    assert not np.isnan(rows[1]).any()  # the input is not modified


def test_a_column_of_one_value_keeps_that_value_only() -> None:
    domain = FeatureDomain.from_rows(("layers",), np.zeros((4, 1)))
    _, outside = domain.restrict(np.array([[0.0], [0.7]]))
    assert outside[:, 0].tolist() == [False, True]


def test_json_round_trip() -> None:
    domain = FeatureDomain.from_rows(NAMES, TRAIN)
    again = FeatureDomain.from_json(domain.to_json())
    assert again.names == domain.names
    np.testing.assert_array_equal(again.low, domain.low)
    np.testing.assert_array_equal(again.high, domain.high)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: FeatureDomain.from_rows(NAMES, np.zeros((2, 2))), "rows must be n x 3"),
        (lambda: FeatureDomain.from_rows(NAMES, TRAIN, tolerance=-1), "tolerance"),
        (lambda: FeatureDomain(("a",), np.array([1.0]), np.array([0.0])), "low must be <="),
        (lambda: FeatureDomain(("a",), np.zeros(2), np.zeros(2)), "one bound per name"),
        (lambda: FeatureDomain.from_json({"names": []}), "needs 'names'"),
        (lambda: FeatureDomain.from_rows(NAMES, TRAIN).outside(np.zeros((1, 2))), "n x 3"),
    ],
)
def test_bad_input_is_named(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
