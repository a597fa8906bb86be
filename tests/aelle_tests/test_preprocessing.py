from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optuna_lyap.aelle._preprocessing import (
    AUX_NAMES,
    as_spectrum_list,
    grid_points,
    preprocess_spectra,
    sanitize_spectrum,
)
from optuna_lyap.lyapunov import LyapunovSpectrum

CLIP = (-10.0, 10.0)


@pytest.mark.parametrize("dim", [1, 3, 17, 64, 500])
def test_constant_spectrum_is_constant_on_the_grid(dim: int) -> None:
    grid, aux = preprocess_spectra([np.full(dim, -0.7)], 32, CLIP)
    np.testing.assert_allclose(grid, -0.7, atol=1e-12)
    assert aux[0, AUX_NAMES.index("log_dim")] == pytest.approx(math.log(dim))


@pytest.mark.parametrize("dim", [5, 17, 64, 500])
def test_linear_spectrum_lands_on_the_same_line_for_every_size(dim: int) -> None:
    u = (np.arange(dim) + 0.5) / dim
    grid, _ = preprocess_spectra([1.0 - 2.0 * u], 16, CLIP)
    expected = 1.0 - 2.0 * grid_points(16)
    # Exact away from the two ends, where the curve is held constant beyond the outer exponents.
    inner = (grid_points(16) > 1.0 / dim) & (grid_points(16) < 1.0 - 1.0 / dim)
    inner &= (grid_points(16) > 1.0 / 16) & (grid_points(16) < 1.0 - 1.0 / 16)
    np.testing.assert_allclose(grid[0, inner], expected[inner], atol=1e-9)
    np.testing.assert_allclose(grid[0], expected, atol=2.0 / min(dim, 16))


def test_long_spectrum_is_averaged_per_bin_not_subsampled() -> None:
    rng = np.random.default_rng(0)
    values = np.sort(rng.normal(size=1000))[::-1]
    grid, _ = preprocess_spectra([values], 10, CLIP)
    bin_means = values.reshape(10, 100).mean(axis=1)
    # The interpolant differs from the step function only near bin edges.
    np.testing.assert_allclose(grid[0], bin_means, atol=0.02)


def test_sanitize_clips_flags_and_sorts() -> None:
    spectrum = np.array([-math.inf, 0.5, math.nan, 20.0, math.inf, -3.0, -50.0, 1.0])
    values, flags = sanitize_spectrum(spectrum, (-10.0, 10.0))
    np.testing.assert_array_equal(values, [10.0, 10.0, 10.0, 1.0, 0.5, -3.0, -10.0, -10.0])
    np.testing.assert_allclose(flags, [1 / 8, 2 / 8, 2 / 8])
    assert np.all(np.diff(values) <= 0)


def test_preprocess_is_finite_and_bounded_for_any_input() -> None:
    spectra = [np.full(12, math.nan), np.array([math.inf, -math.inf]), np.array([1e300, -1e300])]
    grid, aux = preprocess_spectra(spectra, 8, CLIP)
    assert np.isfinite(grid).all() and np.isfinite(aux).all()
    assert grid.min() >= CLIP[0] and grid.max() <= CLIP[1]
    np.testing.assert_allclose(grid[0], CLIP[1])
    assert aux[0, AUX_NAMES.index("frac_nonfinite")] == 1.0


def test_unsorted_input_is_sorted_descending() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=40)
    a, _ = preprocess_spectra([values], 8, CLIP)
    b, _ = preprocess_spectra([np.sort(values)[::-1]], 8, CLIP)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.diff(a[0]) <= 0)


def test_accepted_containers_agree() -> None:
    rows = np.random.default_rng(2).normal(size=(3, 6))
    spectrum = LyapunovSpectrum.from_per_sequence(
        torch.as_tensor(rows[:1]), torch.zeros(1, dtype=torch.bool), dim=6
    )
    forms = [
        as_spectrum_list(rows),
        as_spectrum_list(torch.as_tensor(rows)),
        as_spectrum_list(list(rows)),
        as_spectrum_list([torch.as_tensor(r) for r in rows]),
        as_spectrum_list([spectrum, rows[1], rows[2]]),
    ]
    for form in forms:
        assert len(form) == 3
        for got, row in zip(form, rows, strict=True):
            np.testing.assert_array_equal(got, row)
    mixed = as_spectrum_list([np.zeros(3), np.zeros(7)])
    assert [len(s) for s in mixed] == [3, 7]


@pytest.mark.parametrize(
    ("spectra", "error"),
    [
        (np.zeros(5), ValueError),
        (np.zeros((2, 3, 4)), ValueError),
        ([], ValueError),
        ([np.zeros(3), np.zeros(0)], ValueError),
        ([np.zeros((2, 2))], ValueError),
        ("spectra", TypeError),
        (3.0, TypeError),
    ],
)
def test_bad_containers_raise(spectra: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        as_spectrum_list(spectra)
