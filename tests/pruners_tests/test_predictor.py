from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from scipy.stats import spearmanr

from optuna_lyap.aelle import AeLLE
from optuna_lyap.pruners import curve_features, report_spectrum
from optuna_lyap.pruners._predictor import (
    ParamEncoder,
    collect_rows,
    fit_predictor,
    input_sets,
    rank_correlation,
)
from tests.pruners_tests.synthetic import FAST_AELLE, add_completed


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


def test_curve_features_read_only_steps_up_to_the_step() -> None:
    values = {0: 0.1, 1: 0.5, 2: 0.3, 5: 0.9}
    np.testing.assert_array_equal(curve_features(values, 2, StudyDirection.MAXIMIZE), [0.3, 0.5])
    np.testing.assert_array_equal(curve_features(values, 4, StudyDirection.MINIMIZE), [0.3, 0.1])
    assert np.isnan(curve_features(values, -1, StudyDirection.MAXIMIZE)).all()
    last_nan = curve_features({0: 0.2, 1: math.nan}, 1, StudyDirection.MAXIMIZE)
    assert math.isnan(last_nan[0]) and last_nan[1] == 0.2


def test_param_encoder_logs_and_one_hots() -> None:
    encoder = ParamEncoder(
        {
            "lr": FloatDistribution(1e-4, 1.0, log=True),
            "cell": CategoricalDistribution(["rnn", "gru", "lstm"]),
            "hidden": IntDistribution(8, 64),
        }
    )
    assert encoder.width == 5  # cell (3), hidden, lr: sorted by name
    np.testing.assert_allclose(
        encoder.encode({"lr": 1e-2, "cell": "gru", "hidden": 32}),
        [0.0, 1.0, 0.0, 32.0, math.log(1e-2)],
    )
    missing = encoder.encode({"lr": 1e-2})
    assert np.isnan(missing[:4]).all() and missing[4] == pytest.approx(math.log(1e-2))


def test_input_sets() -> None:
    assert input_sets(True, True, False, True) == [
        ("spectrum",),
        ("curve",),
        ("spectrum", "curve"),
    ]
    assert input_sets(True, True, True, False) == [("spectrum", "curve", "params")]
    assert input_sets(False, True, False, True) == [("curve",)]
    with pytest.raises(ValueError, match="use_spectrum"):
        input_sets(False, False, False, True)


def test_collect_rows_skips_missing_data_and_bounds_infinite_targets() -> None:
    study = optuna.create_study(direction="minimize")
    add_completed(study, [0.2, 0.8, 0.5], spectrum_steps=(1,))
    trial = study.ask()  # a value but no spectrum: left out when spectra are read
    trial.report(0.5, 1)
    study.tell(trial, 0.3)
    trial = study.ask()  # a diverged loss
    report_spectrum(trial, [0.0], 1)
    trial.report(0.5, 1)
    study.tell(trial, math.inf)

    trials = study.get_trials()
    rows = collect_rows(trials, step=2, spectrum_step=0, direction=study.direction)
    assert len(rows) == 0  # no spectrum at or before step 0
    rows = collect_rows(trials, step=2, spectrum_step=2, direction=study.direction)
    assert rows.numbers == [0, 1, 2, 4]
    assert rows.targets[-1] == pytest.approx(0.8)  # inf -> the worst finite loss
    no_spectra = collect_rows(trials, step=2, spectrum_step=None, direction=study.direction)
    assert no_spectra.numbers == [0, 1, 2, 3, 4] and no_spectra.spectra is None


def test_fit_predictor_keeps_the_input_that_ranks_best() -> None:
    study = optuna.create_study(direction="maximize")
    add_completed(study, np.linspace(0.0, 1.0, 9))  # the spectrum carries the signal
    rows = collect_rows(study.get_trials(), step=1, spectrum_step=1, direction=study.direction)
    fitted = fit_predictor(
        rows,
        candidates=input_sets(True, True, False, True),
        make_model=lambda: AeLLE(seed=0, **FAST_AELLE),
        cv_folds=3,
    )
    assert fitted is not None
    assert [c.inputs for c in fitted.candidates] == [
        ("spectrum",),
        ("curve",),
        ("spectrum", "curve"),
    ]
    assert "spectrum" in fitted.chosen.inputs and fitted.chosen.rank_corr > 0.8
    assert fitted.beats_raw and fitted.n_train == 9
    too_few = fit_predictor(
        rows.take(np.arange(2)),
        candidates=[("spectrum",)],
        make_model=lambda: AeLLE(seed=0, **FAST_AELLE),
    )
    assert too_few is None


def test_fit_predictor_leaves_one_out_when_a_fold_would_keep_one_label() -> None:
    study = optuna.create_study(direction="maximize")
    add_completed(study, np.linspace(0.0, 1.0, 3))
    rows = collect_rows(study.get_trials(), step=1, spectrum_step=1, direction=study.direction)
    # Two folds of three rows would fit one fold on a single label, which AeLLE refuses.
    fitted = fit_predictor(
        rows,
        candidates=[("spectrum",)],
        make_model=lambda: AeLLE(seed=0, **FAST_AELLE),
        cv_folds=2,
    )
    assert fitted is not None and fitted.n_train == 3
    assert np.isfinite(fitted.chosen.oof).all()
