"""The decision rule as tables of numbers: no fit, no study (the whole module runs in ms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from optuna.pruners._successive_halving import _is_trial_promotable_to_next_rung
from optuna.study import StudyDirection

from optuna_lyap._prediction import rank_correlation
from optuna_lyap.pruners import _rule


@pytest.mark.parametrize(
    ("r", "eta", "s", "rung", "step"),
    [(1, 4, 0, 0, 1), (1, 4, 0, 1, 4), (1, 4, 0, 2, 16), (2, 3, 1, 0, 6), (5, 2, 0, 3, 40)],
)
def test_rung_step(r: int, eta: int, s: int, rung: int, step: int) -> None:
    assert _rule.rung_step(r, eta, s, rung) == step


def test_estimate_min_resource_is_optunas_auto() -> None:
    assert _rule.estimate_min_resource([]) is None
    assert _rule.estimate_min_resource([10]) == 1
    assert _rule.estimate_min_resource([99, 250, 40]) == 2


# (score, competing scores including it, eta) -> promoted, rank, kept, bar
PROMOTIONS = [
    (0.5, [0.5], 4, True, 1, 1, 0.5),  # the first trial of a rung: the best of one
    (0.4, [0.9, 0.4], 4, False, 2, 1, 0.9),  # fewer than eta: only the best goes on
    (0.9, [0.1, 0.2, 0.3, 0.9], 4, True, 1, 1, 0.9),
    (0.3, [0.1, 0.2, 0.3, 0.9], 2, True, 2, 2, 0.3),
    (0.2, [0.1, 0.2, 0.3, 0.9], 2, False, 3, 2, 0.3),
    (0.3, [0.3, 0.3, 0.1, 0.0], 4, True, 1, 1, 0.3),  # a tie with the bar is promoted
    (-math.inf, [-math.inf, 1.0], 2, False, 2, 1, 1.0),
]


@pytest.mark.parametrize(
    ("score", "competing", "eta", "promoted", "rank", "kept", "bar"), PROMOTIONS
)
def test_promote_table(
    score: float,
    competing: list[float],
    eta: int,
    promoted: bool,
    rank: int,
    kept: int,
    bar: float,
) -> None:
    ranking = _rule.promote(score, competing, eta)
    assert (ranking.promoted, ranking.rank, ranking.n_promoted, ranking.bar) == (
        promoted,
        rank,
        kept,
        bar,
    )
    assert ranking.n_competitors == len(competing)


def test_promote_matches_optuna_on_random_tables() -> None:
    # Optuna's own promotion test on values, both directions, against ours on oriented scores.
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        values = [float(v) for v in rng.choice([0.0, 0.5, 1.0, 2.0, 3.0], n)]  # ties included
        eta = int(rng.integers(2, 5))
        for direction, sign in ((StudyDirection.MAXIMIZE, 1.0), (StudyDirection.MINIMIZE, -1.0)):
            expected = _is_trial_promotable_to_next_rung(values[0], list(values), eta, direction)
            ours = _rule.promote(sign * values[0], [sign * v for v in values], eta).promoted
            assert ours == expected


def test_screen_keeps_a_fraction_and_at_least_one() -> None:
    assert _rule.screen(1.0, [1.0, 0.0, 0.5], 0.1).n_promoted == 1
    assert _rule.screen(0.5, [1.0, 0.0, 0.5, 0.2], 0.5).promoted
    assert not _rule.screen(0.2, [1.0, 0.0, 0.5, 0.2], 0.5).promoted
    assert _rule.screen(0.0, [1.0, 0.0], 1.0).promoted


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: _rule.rank_among(0.0, [], 1), "competing"),
        (lambda: _rule.rank_among(0.0, [0.0], 2), "keep"),
        (lambda: _rule.screen(0.0, [0.0], 0.0), "fraction"),
        (lambda: _rule.gate_share([1.0], [1.0, 2.0], [1.0]), "one length"),
        (lambda: _rule.gate_share([1.0] * 3, [1.0] * 3, [1.0] * 3, n_resamples=0), "n_resamples"),
        (lambda: _rule.gate_share([1.0] * 3, [1.0] * 3, [1.0] * 3, groups=["a"]), "one key"),
    ],
)
def test_bad_input_is_a_clear_error(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


FINAL = np.arange(20, dtype=np.float64)
NOISE = np.random.default_rng(1).normal(0.0, 6.0, 20)


def test_resampled_spearman_matches_the_one_sample_formula() -> None:
    rng = np.random.default_rng(2)
    x = rng.choice([0.0, 1.0, 1.0, 2.0, 3.5], 12)  # ties
    y = rng.normal(size=12)
    index = rng.integers(0, 12, size=(40, 12))
    rho = _rule._row_spearman(_rule._rows_of_ranks(x, index), _rule._rows_of_ranks(y, index))
    for b in range(40):
        expected = rank_correlation(x[index[b]], y[index[b]])
        if math.isnan(expected):
            assert math.isnan(rho[b])
        else:
            assert rho[b] == pytest.approx(expected, abs=1e-12)


def test_gate_opens_for_a_clearly_better_ranker() -> None:
    share = _rule.gate_share(FINAL + 0.1 * NOISE, FINAL + NOISE, FINAL, seed=0)
    assert share >= 0.9


def test_gate_stays_shut_for_an_equal_or_worse_ranker() -> None:
    # The same numbers on both sides never win (a tie is no evidence).
    assert _rule.gate_share(FINAL + NOISE, FINAL + NOISE, FINAL) == 0.0
    assert _rule.gate_share(FINAL + NOISE, FINAL + 0.1 * NOISE, FINAL) < 0.1
    # A model that ranks backwards never beats 0, even against a useless raw value.
    assert _rule.gate_share(-FINAL, np.zeros(20), FINAL) == 0.0


def test_gate_is_a_margin_not_a_point_estimate() -> None:
    # Five labels where the model happens to rank one pair better: a point estimate says
    # "better", the bootstrap does not.
    final = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    model = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    raw = np.array([2.0, 1.0, 3.0, 4.0, 5.0])
    assert _rule.gate_share(model, raw, final) < 0.9


def test_gate_share_is_seeded_and_needs_three_trials() -> None:
    args = (FINAL + NOISE, FINAL + 2 * NOISE, FINAL)
    assert _rule.gate_share(*args, seed=3) == _rule.gate_share(*args, seed=3)
    assert _rule.gate_share([1.0, 2.0], [2.0, 1.0], [1.0, 2.0]) == 0.0


def test_a_configuration_trained_again_is_one_piece_of_evidence() -> None:
    # Configuration "a" completed eight times, the model right about it (it was predicted
    # from its own copies) and the raw value wrong; then six others on which the model ranks
    # backwards and the raw value right.
    groups = ["a"] * 8 + ["b", "c", "d", "e", "f", "g"]
    final = np.array([10.0] * 8 + [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    model = np.array([10.0] * 8 + [6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    raw = np.array([0.0] * 8 + [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    # Counted trial by trial, the eight copies carry the model past the raw value ...
    assert _rule.gate_share(model, raw, final, seed=0) > 0.9
    # ... counted by configuration, seven points, the model wrong on six.
    assert _rule.gate_share(model, raw, final, seed=0, groups=groups) < 0.5
    # Keys all distinct: exactly the ungrouped share.
    distinct = [str(i) for i in range(14)]
    assert _rule.gate_share(model, raw, final, seed=0, groups=distinct) == _rule.gate_share(
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
        bound = _rule.gate_share_bound(raw, final, **kwargs)
        for predicted in (final, -final, rng.normal(size=n), final + rng.normal(size=n)):
            assert _rule.gate_share(predicted, raw, final, **kwargs) <= bound
        if groups is None and np.isfinite(final).all():
            assert _rule.gate_share(final, raw, final, **kwargs) == bound


def test_gate_share_bound_is_zero_where_no_model_could_win() -> None:
    # The raw value ranks every final value right: no resample leaves room above it.
    assert _rule.gate_share_bound(FINAL, FINAL) == 0.0
    assert _rule.gate_share_bound(FINAL, 2.0 * FINAL + 1.0) == 0.0
    # Fewer than three configurations: nothing to judge.
    assert _rule.gate_share_bound([1.0, 2.0, 1.0], [1.0, 2.0, 1.0], groups=["a", "b", "a"]) == 0
    # Three configurations ranked backwards: every resample whose finals vary (those not
    # drawing one configuration thrice, 24 in 27) leaves room.
    share = _rule.gate_share_bound([3.0, 2.0, 1.0], [1.0, 2.0, 3.0], n_resamples=20000)
    assert share == pytest.approx(24 / 27, abs=0.01)
    with pytest.raises(ValueError, match="one length"):
        _rule.gate_share_bound([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="one key per trial"):
        _rule.gate_share_bound([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], groups=["a"])
    with pytest.raises(ValueError, match="n_resamples"):
        _rule.gate_share_bound([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], n_resamples=0)


def test_group_means_keep_first_appearance_order() -> None:
    x, y = _rule.group_means(["b", "a", "b", "c"], [1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(x, [2.0, 2.0, 4.0])
    np.testing.assert_array_equal(y, [0.0, 1.0, 1.0])


def test_gate_is_robust_to_huge_finite_and_infinite_finals() -> None:
    # One diverged trial: its final value is huge (or infinite) but it is one rank.
    base = _rule.gate_share(FINAL + 0.1 * NOISE, FINAL + NOISE, FINAL, seed=0)
    for worst in (3.0e1, 1.0e30, math.inf):
        final = FINAL.copy()
        final[-1] = worst
        share = _rule.gate_share(FINAL + 0.1 * NOISE, FINAL + NOISE, final, seed=0)
        assert share == base
    # A constant raw value (every untrained network at chance) counts as no correlation.
    assert _rule.gate_share(FINAL, np.full(20, 0.5), FINAL) == 1.0


def test_robust_spread_ignores_one_huge_residual() -> None:
    residuals = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 0.2, -0.2])
    calm = _rule.robust_spread(residuals)
    assert calm == pytest.approx(1.4826 * 0.5)
    for huge in (3.0, 10.0, 1e30):
        assert _rule.robust_spread(np.append(residuals, huge)) < 2 * calm
    assert _rule.robust_spread(np.append(residuals, math.inf)) < 2 * calm
    assert math.isnan(_rule.robust_spread(np.array([math.nan])))


# (raw scores, prior scores, weight) -> blended scores
BLENDS = [
    ([3.0, 1.0, 2.0], [0.1, 0.9, 0.5], 0.0, [1.0, 1 / 3, 2 / 3]),  # the raw ranks alone
    ([3.0, 1.0, 2.0], [0.1, 0.9, 0.5], 1.0, [1 / 3, 1.0, 2 / 3]),  # the prior's ranks alone
    ([3.0, 1.0, 2.0, 2.0], [0.1, 0.9, 0.5, 0.4], 0.5, [0.625, 0.625, 0.6875, 0.5625]),
    ([5.0], [0.2], 0.5, [1.0]),  # one competitor is the best of one
    ([-math.inf, 0.0], [0.9, 0.1], 0.5, [0.75, 0.75]),  # an infinite value ranks as the worst
]


@pytest.mark.parametrize(("raw", "prior", "weight", "expected"), BLENDS)
def test_blend_ranks(
    raw: list[float], prior: list[float], weight: float, expected: list[float]
) -> None:
    np.testing.assert_allclose(_rule.blend_ranks(raw, prior, weight), expected)


def test_blend_ranks_is_invariant_to_monotone_rescaling() -> None:
    raw, prior = [0.1, 0.5, 0.3, 0.2], [0.4, 0.3, 0.9, 0.1]
    base = _rule.blend_ranks(raw, prior, 0.5)
    np.testing.assert_array_equal(
        _rule.blend_ranks([1e6 * v + 3 for v in raw], [v**3 for v in prior], 0.5), base
    )


@pytest.mark.parametrize(
    ("raw", "prior", "weight", "match"),
    [
        ([1.0, 2.0], [0.5], 0.5, "one length"),
        ([], [], 0.5, "non-empty"),
        ([1.0, math.nan], [0.5, 0.4], 0.5, "NaN"),
        ([1.0], [0.5], 1.5, "weight=1.5"),
    ],
)
def test_blend_ranks_rejects(
    raw: list[float], prior: list[float], weight: float, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        _rule.blend_ranks(raw, prior, weight)
