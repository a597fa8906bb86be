"""The prediction layer's core: rows, fit and choice of inputs, rank correlation, schedule.

None of these tests builds a study: the core reads rows, never trials.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from optuna_lyap._prediction import _core
from optuna_lyap._prediction._core import (
    SPECTRUM,
    FitSettings,
    Rows,
    fit_predictor,
    input_sets,
    pretrained_inputs,
    rank_correlation,
    refit_size,
)
from optuna_lyap.aelle import AeLLE

FAST_AELLE = {"n_models": 2, "max_steps": 120, "hidden_dim": 16, "head_hidden_dim": 8}


def make_rows(qualities: np.ndarray, seed: int = 0) -> Rows:
    """Labelled rows whose spectrum level encodes the target; the curve is noise."""
    rng = np.random.default_rng(seed)
    spectra = [
        np.sort(-np.linspace(0, 2, 16) + 2 * q - 1 + rng.normal(0, 0.02, 16))[::-1]
        for q in qualities
    ]
    curve = np.column_stack([0.5 + rng.normal(0, 0.01, qualities.size)] * 2)
    n = qualities.size
    return Rows(list(range(n)), {SPECTRUM: spectra, "curve": curve}, curve[:, 0], qualities.copy())


def make_model() -> AeLLE:
    return AeLLE(seed=0, **FAST_AELLE)


def settings(candidates: list[tuple[str, ...]], cv_folds: int = 2) -> FitSettings:
    return FitSettings(tuple(candidates), FAST_AELLE, seed=0, cv_folds=cv_folds)


def test_the_core_imports_no_optuna() -> None:
    tree = ast.parse(Path(_core.__file__).read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] == "optuna"]


def test_rank_correlation_matches_scipy_with_ties_and_skips_non_finite() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = rng.integers(0, 4, 9).astype(float)
        b = rng.normal(size=9)
        assert rank_correlation(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    a = np.array([1.0, 2.0, math.nan, 4.0, math.inf])
    assert rank_correlation(a, np.arange(5.0)) == pytest.approx(1.0)
    assert math.isnan(rank_correlation(np.ones(5), np.arange(5.0)))
    assert math.isnan(rank_correlation(np.arange(2.0), np.arange(2.0)))


def test_refit_size_schedule() -> None:
    sizes = [refit_size(n, 5, 1.25) for n in range(0, 25)]
    assert sizes[:5] == [0, 1, 2, 3, 4]  # below the start: everything there is
    assert sorted(set(sizes[5:])) == [5, 7, 9, 12, 15, 19, 24]
    assert [refit_size(n, 5, 1.0) for n in range(5, 12)] == list(range(5, 12))


def test_input_sets() -> None:
    assert input_sets(("spectrum", "curve"), True) == [
        ("spectrum",),
        ("curve",),
        ("spectrum", "curve"),
    ]
    assert input_sets(("spectrum", "curve", "params"), False) == [("spectrum", "curve", "params")]
    assert input_sets(("curve",), True) == [("curve",)]
    with pytest.raises(ValueError, match="enabled=()"):
        input_sets((), True)


def test_rows_take_concat_and_features() -> None:
    rows = make_rows(np.linspace(0, 1, 4))
    rows.columns["params"] = np.arange(8.0).reshape(4, 2)
    part = rows.take(np.array([2, 0]))
    assert part.numbers == [2, 0] and part.targets.tolist() == [rows.targets[2], 0.0]
    np.testing.assert_array_equal(part.spectra[0], rows.spectra[2])
    np.testing.assert_array_equal(
        part.features(("spectrum", "curve", "params")),
        np.concatenate([rows.columns["curve"], rows.columns["params"]], axis=1)[[2, 0]],
    )
    assert part.features(("spectrum",)) is None
    no_params = make_rows(np.linspace(0, 1, 2))
    both = Rows.concat(part, no_params)
    assert both.numbers == [2, 0, 0, 1] and set(both.columns) == {SPECTRUM, "curve"}
    assert both.has(("spectrum", "curve")) and not both.has(("params",))
    query = Rows.unlabelled([7], {"curve": np.zeros((1, 2))})
    assert np.isnan(query.targets).all() and np.isnan(query.raw).all()


def test_fit_settings_make_seeded_models() -> None:
    fit = settings([("spectrum",)])
    assert fit.make_model().get_params() == make_model().get_params()
    assert fit.as_dict()["candidates"] == (("spectrum",),)


def test_fit_predictor_keeps_the_input_that_ranks_best() -> None:
    rows = make_rows(np.linspace(0.0, 1.0, 9))
    fitted = fit_predictor(
        rows, settings=settings(input_sets(("spectrum", "curve"), True), cv_folds=3)
    )
    assert fitted is not None
    assert [c.inputs for c in fitted.candidates] == [
        ("spectrum",),
        ("curve",),
        ("spectrum", "curve"),
    ]
    assert "spectrum" in fitted.chosen.inputs and fitted.chosen.rank_corr > 0.8
    assert fitted.beats_raw and fitted.n_train == 9 and fitted.n_rows == 9
    too_few = fit_predictor(rows.take(np.arange(2)), settings=settings([("spectrum",)]))
    assert too_few is None


def test_fit_predictor_skips_inputs_the_rows_lack() -> None:
    rows = make_rows(np.linspace(0.0, 1.0, 6))
    fitted = fit_predictor(rows, settings=settings([("params",), ("spectrum",)], cv_folds=3))
    assert fitted is not None and [c.inputs for c in fitted.candidates] == [("spectrum",)]


def test_fit_predictor_leaves_one_out_when_a_fold_would_keep_one_label() -> None:
    rows = make_rows(np.linspace(0.0, 1.0, 3))
    # Two folds of three rows would fit one fold on a single label, which AeLLE refuses.
    fitted = fit_predictor(rows, settings=settings([("spectrum",)], cv_folds=2))
    assert fitted is not None and fitted.n_train == 3
    # Every row got an out-of-sample prediction: a NaN one would make the RMS NaN.
    assert math.isfinite(fitted.chosen.residual_rms)


class Memoriser:
    """A model that predicts the target of the nearest training row (1-nearest neighbour on
    the features): right on a row whose copy it saw, uninformed elsewhere."""

    def fit(self, spectra: object, targets: np.ndarray, features: np.ndarray) -> Memoriser:
        self.x, self.y = np.asarray(features), np.asarray(targets)
        return self

    def predict(
        self, spectra: object, features: np.ndarray, return_std: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        d = np.abs(np.asarray(features)[:, None, 0] - self.x[None, :, 0])
        mean = self.y[np.argmin(d, axis=1)]
        return mean, np.zeros_like(mean)


class MemoriserSettings(FitSettings):
    def make_model(self) -> AeLLE:
        return Memoriser()  # type: ignore[return-value]


def test_folds_keep_a_configuration_together() -> None:
    # Five configurations trained three times each; a configuration's copies share its
    # features and target. A model predicting a row from its copies ranks perfectly.
    config = np.repeat(np.arange(5), 3)
    target = np.array([0.3, 0.9, 0.1, 0.7, 0.5])[config]
    features = np.array([0.0, 1.0, 2.0, 3.0, 4.0])[config][:, None]
    rows = Rows(list(range(15)), {"curve": features}, features[:, 0], target)
    fit_settings = MemoriserSettings((("curve",),), cv_folds=3)
    leaky = fit_predictor(rows, settings=fit_settings)
    assert leaky is not None and leaky.chosen.rank_corr == pytest.approx(1.0)
    rows.groups = [f"config {c}" for c in config]
    grouped = fit_predictor(rows, settings=fit_settings)
    assert grouped is not None
    # No row is predicted from a copy of itself, and the fit keeps the keys for the gate.
    assert not np.any(grouped.chosen.oof == target)
    assert grouped.groups == rows.groups
    # Three configurations at least, or no cross-validated candidate.
    two = rows.take(np.flatnonzero(config < 2))
    assert fit_predictor(two, settings=fit_settings) is None


def test_prediction_std_adds_the_cross_validated_residuals() -> None:
    rows = make_rows(np.linspace(0.0, 1.0, 8))
    fitted = fit_predictor(rows, settings=settings([("spectrum",)], cv_folds=2))
    assert fitted is not None
    query = Rows.unlabelled([0, 1], {SPECTRUM: rows.spectra[:2]})
    mean, std = fitted.predict(query)
    own_mean, own_std = fitted.model.predict(rows.spectra[:2], return_std=True)
    rms = fitted.chosen.residual_rms
    assert rms > 0
    np.testing.assert_array_equal(mean, own_mean)
    np.testing.assert_allclose(std, np.sqrt(own_std**2 + rms**2), rtol=1e-12)


def test_a_pretrained_model_competes_last_and_wins_only_by_ranking() -> None:
    rows = make_rows(np.linspace(0.0, 1.0, 8))
    source = make_rows(np.linspace(0.0, 1.0, 12), seed=3)
    model = make_model().fit(source.spectra, source.targets)
    fitted = fit_predictor(
        rows,
        settings=settings([("curve",)]),
        pretrained=(model, pretrained_inputs(model, {"curve": 2})),
    )
    assert fitted is not None
    assert [c.pretrained for c in fitted.candidates] == [False, True]
    assert fitted.chosen.pretrained and fitted.model is model
    assert fitted.n_train == 12  # the pretrained model's own labels
    alone = fit_predictor(
        rows.take(np.arange(0)), settings=settings([("curve",)]), pretrained=(model, (SPECTRUM,))
    )
    assert alone is not None and alone.n_rows == 0 and math.isnan(alone.chosen.residual_rms)


def test_pretrained_inputs_name_the_features_a_model_reads() -> None:
    rows = make_rows(np.linspace(0.0, 1.0, 4))
    spectra_only = make_model().fit(rows.spectra, rows.targets)
    with_curve = make_model().fit(rows.spectra, rows.targets, rows.columns["curve"])
    with_three = make_model().fit(None, rows.targets, np.zeros((4, 3)))
    widths = {"curve": 2}
    assert pretrained_inputs(spectra_only, widths) == ("spectrum",)
    assert pretrained_inputs(with_curve, widths) == ("spectrum", "curve")
    with pytest.raises(ValueError, match="3 features"):
        pretrained_inputs(with_three, widths)
    with pytest.raises(ValueError, match="must be fitted"):
        pretrained_inputs(make_model(), widths)
