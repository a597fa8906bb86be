"""The decision rule as tables of numbers: no fit, no study (the whole module runs in ms)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from optuna.pruners._successive_halving import _is_trial_promotable_to_next_rung
from optuna.study import StudyDirection

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
    ],
)
def test_bad_input_is_a_clear_error(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


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


# (study share, prior share, gate, can blend) -> scorer
SCORERS = [
    (None, None, 0.9, False, "raw"),
    (None, None, 0.9, True, "blend"),
    (0.95, None, 0.9, True, "study"),
    (None, 0.95, 0.9, False, "prior"),
    (0.92, 0.97, 0.9, False, "prior"),  # the larger open share
    (0.95, 0.95, 0.9, False, "study"),  # the in-study model on a tie
    (0.89, 0.5, 0.9, True, "blend"),  # both shut
    (0.9, None, 0.9, False, "study"),  # a share at the gate opens it
]


@pytest.mark.parametrize(("study", "prior", "gate", "can_blend", "scorer"), SCORERS)
def test_choose_scorer(
    study: float | None, prior: float | None, gate: float, can_blend: bool, scorer: str
) -> None:
    assert _rule.choose_scorer(study, prior, gate, can_blend=can_blend) == scorer


def evidence(**changes: object) -> _rule.RungEvidence:
    """A rung of 4 competitors (raw values 0.1-0.4, maximised, eta 2) judging the one at 0.3."""
    base = _rule.RungEvidence(0.3, 1.0, (0.1, 0.4, 0.2, 0.3), 2)
    return _rule.RungEvidence(**{**base.__dict__, **changes})  # type: ignore[arg-type]


# evidence -> (rule, pruned, score_kind, score, rank or None)
DECISIONS = [
    ({}, ("rung", False, "raw", 0.3, 2)),  # the 2nd of 4 is at the bar
    ({"value": 0.4, "raw_competing": (0.1, 0.4, 0.2, 0.4)}, ("rung", False, "raw", 0.4, 1)),
    ({"sign": -1.0}, ("rung", True, "raw", 0.3, 3)),  # minimised: 0.1 and 0.2 are better
    ({"bootstrap_count": 4}, ("rung", True, "raw", 0.3, None)),
    ({"value": math.nan}, ("rung", True, "raw", math.nan, None)),
    (
        {"scorer": "study", "predicted": 0.9, "predicted_competing": (0.5, 0.2, 0.9)},
        ("model_rung", False, "predicted", 0.9, 1),
    ),
    (
        {"scorer": "prior", "quantile": 0.2, "quantile_competing": (0.8, 0.6, 0.4, 0.2)},
        ("prior_rung", True, "quantile", 0.2, 4),
    ),
    (
        {
            "scorer": "blend",
            "blend_raw": (0.1, 0.4, 0.3),
            "quantile_competing": (0.9, 0.1, 0.8),
            "prior_weight": 0.5,
        },
        ("blend_rung", False, "blend", 2 / 3, 1),  # every blend ties at 2/3
    ),
    ({"fallback_pruned": False}, ("fallback", False, "raw", 0.3, None)),
    ({"value": math.nan, "fallback_pruned": False}, ("fallback", False, "raw", math.nan, None)),
    (
        # A prediction that ranked the rung is not overruled by the fallback.
        {
            "scorer": "study",
            "predicted": 0.1,
            "predicted_competing": (0.5, 0.1),
            "fallback_pruned": False,
        },
        ("model_rung", True, "predicted", 0.1, 2),
    ),
]


@pytest.mark.parametrize(("changes", "expected"), DECISIONS)
def test_decide_rung(changes: dict[str, object], expected: tuple[object, ...]) -> None:
    decision = _rule.decide_rung(evidence(**changes))
    rule, pruned, kind, score, rank = expected
    assert (decision.rule, decision.pruned, decision.score_kind) == (rule, pruned, kind)
    assert decision.score == pytest.approx(score, nan_ok=True)
    assert (None if decision.ranking is None else decision.ranking.rank) == rank


def test_decide_rung_counts_competitors_below_the_bootstrap_count() -> None:
    decision = _rule.decide_rung(evidence(bootstrap_count=4))
    assert decision.n_competitors == 4 and decision.ranking is None
    # The bar is recorded in the study's units: a minimised rung's bar is a value, not a score.
    ranked = _rule.decide_rung(evidence(sign=-1.0))
    assert ranked.ranking is not None and ranked.bar_sign * ranked.ranking.bar == 0.2
