"""The acceptance rules of the prediction layer: the rank statistic, the paired bootstrap gate
and its bound, the sampler's rank-correlation rule (pure functions, milliseconds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from optuna.study import StudyDirection

from optuna_lyap._prediction import _gate
from optuna_lyap._prediction._gate import rank_correlation


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: _gate.gate_share([1.0], [1.0, 2.0], [1.0]), "one length"),
        (lambda: _gate.gate_share([1.0] * 3, [1.0] * 3, [1.0] * 3, n_resamples=0), "n_resamples"),
        (lambda: _gate.gate_share([1.0] * 3, [1.0] * 3, [1.0] * 3, groups=["a"]), "one key"),
    ],
)
def test_bad_input_is_a_clear_error(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("direction", "sign"),
    [
        (StudyDirection.MAXIMIZE, 1.0),
        (StudyDirection.MINIMIZE, -1.0),
        ("maximize", 1.0),
        ("MINIMIZE", -1.0),
    ],
)
def test_direction_sign(direction: object, sign: float) -> None:
    assert _gate.direction_sign(direction) == sign


def test_average_ranks_share_ties_and_agree_with_rank_correlation() -> None:
    np.testing.assert_array_equal(
        _gate.average_ranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1, 3.5, 2]
    )
    rng = np.random.default_rng(0)
    for n in (3, 7, 50, 300):
        a, b = rng.normal(size=n).round(1), rng.normal(size=n)
        ra, rb = _gate.average_ranks(a), _gate.average_ranks(b)
        ra, rb = ra - ra.mean(), rb - rb.mean()
        # The point statistic is exactly the one-row form of the batched one.
        assert rank_correlation(a, b) == float(ra @ rb / math.sqrt((ra @ ra) * (rb @ rb)))


@pytest.mark.parametrize(
    ("corr", "min_rank_corr", "accepts"),
    [(0.3, 0.0, True), (0.0, 0.0, False), (-0.2, -0.5, True), (math.nan, -1.0, False)],
)
def test_rank_correlation_accepts(corr: float, min_rank_corr: float, accepts: bool) -> None:
    assert _gate.rank_correlation_accepts(corr, min_rank_corr) is accepts


FINAL = np.arange(20, dtype=np.float64)
NOISE = np.random.default_rng(1).normal(0.0, 6.0, 20)


def test_resampled_spearman_matches_the_one_sample_formula() -> None:
    rng = np.random.default_rng(2)
    x = rng.choice([0.0, 1.0, 1.0, 2.0, 3.5], 12)  # ties
    y = rng.normal(size=12)
    index = rng.integers(0, 12, size=(40, 12))
    rho = _gate.row_spearman(_gate._rows_of_ranks(x, index), _gate._rows_of_ranks(y, index))
    for b in range(40):
        expected = rank_correlation(x[index[b]], y[index[b]])
        if math.isnan(expected):
            assert math.isnan(rho[b])
        else:
            assert rho[b] == pytest.approx(expected, abs=1e-12)


def test_gate_opens_for_a_clearly_better_ranker() -> None:
    share = _gate.gate_share(FINAL + 0.1 * NOISE, FINAL + NOISE, FINAL, seed=0)
    assert share >= 0.9


def test_gate_stays_shut_for_an_equal_or_worse_ranker() -> None:
    # The same numbers on both sides never win (a tie is no evidence).
    assert _gate.gate_share(FINAL + NOISE, FINAL + NOISE, FINAL) == 0.0
    assert _gate.gate_share(FINAL + NOISE, FINAL + 0.1 * NOISE, FINAL) < 0.1
    # A model that ranks backwards never beats 0, even against a useless raw value.
    assert _gate.gate_share(-FINAL, np.zeros(20), FINAL) == 0.0


def test_gate_is_a_margin_not_a_point_estimate() -> None:
    # Five labels where the model happens to rank one pair better: a point estimate says
    # "better", the bootstrap does not.
    final = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    model = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    raw = np.array([2.0, 1.0, 3.0, 4.0, 5.0])
    assert _gate.gate_share(model, raw, final) < 0.9


def test_gate_share_is_seeded_and_needs_three_trials() -> None:
    args = (FINAL + NOISE, FINAL + 2 * NOISE, FINAL)
    assert _gate.gate_share(*args, seed=3) == _gate.gate_share(*args, seed=3)
    assert _gate.gate_share([1.0, 2.0], [2.0, 1.0], [1.0, 2.0]) == 0.0


def test_a_configuration_trained_again_is_one_piece_of_evidence() -> None:
    # Configuration "a" completed eight times, the model right about it (it was predicted
    # from its own copies) and the raw value wrong; then six others on which the model ranks
    # backwards and the raw value right.
    groups = ["a"] * 8 + ["b", "c", "d", "e", "f", "g"]
    final = np.array([10.0] * 8 + [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    model = np.array([10.0] * 8 + [6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    raw = np.array([0.0] * 8 + [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    # Counted trial by trial, the eight copies carry the model past the raw value ...
    assert _gate.gate_share(model, raw, final, seed=0) > 0.9
    # ... counted by configuration, seven points, the model wrong on six.
    assert _gate.gate_share(model, raw, final, seed=0, groups=groups) < 0.5
    # Keys all distinct: exactly the ungrouped share.
    distinct = [str(i) for i in range(14)]
    assert _gate.gate_share(model, raw, final, seed=0, groups=distinct) == _gate.gate_share(
        model, raw, final, seed=0
    )


def test_no_predictions_beat_the_gate_share_bound() -> None:
    # Random studies, with ties, copies of a configuration and a diverged trial: the bound is
    # at least every model's share on the same resamples, and a perfect model reaches it.
    rng = np.random.default_rng(0)
    for case in range(60):
        n = int(rng.integers(3, 15))
        final = rng.integers(0, 4 if case % 3 == 0 else 100, size=n).astype(float)
        raw = final + rng.normal(0.0, [0.0, 0.5, 5.0, 50.0][case % 4], size=n)
        if case % 5 == 0:
            final[0] = -math.inf
        groups = None if case % 2 else [int(g) for g in rng.integers(0, n, size=n)]
        kwargs = {"seed": case, "n_resamples": 100, "groups": groups}
        bound = _gate.gate_share_bound(raw, final, **kwargs)
        for predicted in (final, -final, rng.normal(size=n), final + rng.normal(size=n)):
            assert _gate.gate_share(predicted, raw, final, **kwargs) <= bound
        if groups is None and np.isfinite(final).all():
            assert _gate.gate_share(final, raw, final, **kwargs) == bound


def test_gate_share_bound_is_zero_where_no_model_could_win() -> None:
    # The raw value ranks every final value right: no resample leaves room above it.
    assert _gate.gate_share_bound(FINAL, FINAL) == 0.0
    assert _gate.gate_share_bound(FINAL, 2.0 * FINAL + 1.0) == 0.0
    # Fewer than three configurations: nothing to judge.
    assert _gate.gate_share_bound([1.0, 2.0, 1.0], [1.0, 2.0, 1.0], groups=["a", "b", "a"]) == 0
    # Three configurations ranked backwards: every resample whose finals vary (those not
    # drawing one configuration thrice, 24 in 27) leaves room.
    share = _gate.gate_share_bound([3.0, 2.0, 1.0], [1.0, 2.0, 3.0], n_resamples=20000)
    assert share == pytest.approx(24 / 27, abs=0.01)
    with pytest.raises(ValueError, match="one length"):
        _gate.gate_share_bound([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="one key per trial"):
        _gate.gate_share_bound([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], groups=["a"])
    with pytest.raises(ValueError, match="n_resamples"):
        _gate.gate_share_bound([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], n_resamples=0)


def test_group_means_keep_first_appearance_order() -> None:
    x, y = _gate.group_means(["b", "a", "b", "c"], [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(x, [2.0, 2.0, 4.0])
    np.testing.assert_array_equal(y, [0.0, 1.0, 1.0])


def test_gate_is_robust_to_huge_finite_and_infinite_finals() -> None:
    # One diverged trial: its final value is huge (or infinite) but it is one rank.
    base = _gate.gate_share(FINAL + 0.1 * NOISE, FINAL + NOISE, FINAL, seed=0)
    for worst in (3.0e1, 1.0e30, math.inf):
        final = FINAL.copy()
        final[-1] = worst
        share = _gate.gate_share(FINAL + 0.1 * NOISE, FINAL + NOISE, final, seed=0)
        assert share == base
    # A constant raw value (every untrained network at chance) counts as no correlation.
    assert _gate.gate_share(FINAL, np.full(20, 0.5), FINAL) == 1.0


def test_robust_spread_ignores_one_huge_residual() -> None:
    residuals = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 0.2, -0.2])
    calm = _gate.robust_spread(residuals)
    assert calm == pytest.approx(1.4826 * 0.5)
    for huge in (3.0, 10.0, 1e30):
        assert _gate.robust_spread(np.append(residuals, huge)) < 2 * calm
    assert _gate.robust_spread(np.append(residuals, math.inf)) < 2 * calm
    assert math.isnan(_gate.robust_spread(np.array([math.nan])))
