"""The judge, table-tested: which signal ranks, with repeated configurations, survivors, noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optuna_lyap._prediction._judge import (
    BASELINE,
    CHALLENGER,
    NONE_RANKS,
    TOO_FEW,
    corrected_correlation,
    judge,
    normal_scores,
)


def _noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def test_a_challenger_that_ranks_beats_a_flat_baseline() -> None:
    final = np.arange(10.0)
    verdict = judge(
        final, {"raw": np.zeros(10), "prior": final + 0.1 * _noise(10, 0)}, baseline="raw"
    )
    assert (verdict.choice, verdict.reason) == ("prior", CHALLENGER)
    assert verdict.of("prior").share > 0.99
    assert verdict.of("raw").share == 0.0  # a constant ranks nothing
    assert verdict.n_configurations == 10


def test_a_copy_of_the_baseline_never_wins_and_the_baseline_keeps_its_rung() -> None:
    final = np.arange(12.0)
    raw = final + 2.0 * _noise(12, 1)
    verdict = judge(final, {"raw": raw, "model": raw.copy()}, baseline="raw")
    assert verdict.of("model").share == 0.0
    assert (verdict.choice, verdict.reason) == ("raw", BASELINE)


def test_on_a_plateau_no_signal_ranks_in_most_studies() -> None:
    # Final values, raw values and predictions unrelated: a signal is chosen only by chance.
    # The bootstrap's shares are optimistic on few configurations, so the rate sits above the
    # nominal 1 - level = 0.1 (0.18 for two signals on 8 configurations when measured).
    chosen = [
        judge(
            _noise(8, s), {"raw": _noise(8, 100 + s), "prior": _noise(8, 200 + s)}, baseline="raw"
        ).reason
        for s in range(200)
    ]
    assert chosen.count(NONE_RANKS) / 200 >= 0.75


def test_a_raw_value_that_ranks_keeps_its_rung_in_most_studies() -> None:
    def draw(s: int) -> tuple[np.ndarray, np.ndarray]:
        final = _noise(8, s)
        return final, 0.8 * final + 0.6 * _noise(8, 500 + s)

    kept = [judge(f, {"raw": r}, baseline="raw").choice for f, r in map(draw, range(200))]
    assert kept.count("raw") / 200 >= 0.8


def test_too_few_configurations_returns_the_default_and_counts_each_configuration_once() -> None:
    # Ten trials of two configurations: two pieces of evidence, not ten.
    groups = ["a"] * 5 + ["b"] * 5
    final = np.array([1.0] * 5 + [2.0] * 5)
    prior = final.copy()
    verdict = judge(final, {"prior": prior}, groups=groups, default="prior")
    assert (verdict.choice, verdict.reason) == ("prior", TOO_FEW)
    assert (verdict.n_trials, verdict.n_configurations) == (10, 2)
    assert "2 of 5" in verdict.describe()


def test_repeated_configurations_do_not_inflate_the_evidence() -> None:
    # A weak prior on 6 configurations, one of which was completed twenty times: grouping must
    # give the share the 6 configurations give, however often the good one repeats.
    final = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    prior = np.array([2.0, 0.0, 1.0, 5.0, 3.0, 4.0])
    once = judge(final, {"prior": prior})
    groups = list(range(6)) + [5] * 20
    repeated = judge(np.r_[final, [5.0] * 20], {"prior": np.r_[prior, [4.0] * 20]}, groups=groups)
    assert repeated.n_configurations == 6
    assert repeated.of("prior").share == once.of("prior").share


def test_a_signal_without_scores_is_judged_on_the_configurations_it_scored() -> None:
    final = np.arange(9.0)
    prior = final.copy()
    prior[:3] = np.nan
    verdict = judge(final, {"prior": prior}, level=0.9)
    assert verdict.of("prior").n_configurations == 6
    assert verdict.choice == "prior"
    assert math.isclose(verdict.of("prior").rho, 1.0, abs_tol=0.05)


def test_without_selection_the_correlation_is_close_to_spearman() -> None:
    from scipy.stats import spearmanr

    final, signal = _noise(40, 3), _noise(40, 4)
    signal = 0.6 * final + 0.8 * signal
    rho = judge(final, {"s": signal}).of("s").rho
    assert abs(rho - spearmanr(final, signal).statistic) < 0.06


def test_corrected_correlation_is_thorndike_case_ii_for_the_selecting_signal() -> None:
    r, u = np.array([0.3]), np.array([2.0])
    expected = 0.3 * 2.0 / math.sqrt(1.0 + 0.09 * 3.0)
    np.testing.assert_allclose(corrected_correlation(r, np.ones(1), r, u), [expected])
    np.testing.assert_allclose(corrected_correlation(r, np.array([0.5]), r, np.ones(1)), r)


@pytest.mark.parametrize("seed", range(6))
def test_the_correction_undoes_selection_of_the_survivors(seed: int) -> None:
    # A population of 800 configurations; the rung keeps the top quarter by the raw value,
    # which correlates 0.7 with the final value; the prior correlates 0.6 with it and
    # little with the raw value.
    rng = np.random.default_rng(seed)
    n = 800
    final = rng.standard_normal(n)
    raw = 0.7 * final + math.sqrt(1 - 0.49) * rng.standard_normal(n)
    prior = 0.6 * final + 0.8 * rng.standard_normal(n)
    kept = raw >= np.quantile(raw, 0.75)
    signals = {"raw": raw[kept], "prior": prior[kept]}
    naive = judge(final[kept], signals, baseline="raw")
    fixed = judge(final[kept], signals, baseline="raw", selection=("raw", raw))
    population = {
        "raw": judge(final, {"raw": raw, "prior": prior}).of("raw").rho,
        "prior": judge(final, {"raw": raw, "prior": prior}).of("prior").rho,
    }
    # Among survivors the raw value looks worse than the prior; corrected, it is itself again.
    assert naive.of("raw").rho < population["raw"] - 0.2
    assert abs(fixed.of("raw").rho - population["raw"]) < 0.12
    assert abs(fixed.of("prior").rho - population["prior"]) < 0.12
    assert naive.of("prior").rho > naive.of("raw").rho
    assert fixed.of("raw").rho > fixed.of("prior").rho


def test_the_verdict_is_the_same_for_the_same_seed() -> None:
    final, raw = _noise(7, 5), _noise(7, 6)
    first = judge(final, {"raw": raw}, baseline="raw", seed=3)
    assert first == judge(final, {"raw": raw}, baseline="raw", seed=3)


def test_describe_names_the_choice_and_its_evidence_in_one_line() -> None:
    final = np.arange(10.0)
    verdict = judge(final, {"raw": np.zeros(10), "prior": final}, baseline="raw")
    line = verdict.describe({"raw": "the raw value", "prior": "the prior"})
    assert line.startswith("the prior ranks this study's trials")
    assert "the raw value" in line and "10 distinct configurations" in line
    assert "\n" not in line
    none = judge(_noise(8, 0), {"raw": _noise(8, 1)}, baseline="raw")
    assert none.describe().startswith("no signal was shown to rank")


def test_normal_scores_are_symmetric_blom_scores() -> None:
    scores = normal_scores(np.arange(1, 6), 5)
    np.testing.assert_allclose(scores, -scores[::-1])
    assert scores[2] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"signals": {"raw": np.zeros(3)}}, "one score per trial"),
        ({"baseline": "nope"}, "`baseline` must name"),
        ({"default": "nope"}, "`default` must name"),
        ({"level": 0.5}, "`level` must be in"),
        ({"min_configurations": 2}, "`min_configurations`"),
        ({"n_resamples": 0}, "`n_resamples`"),
        ({"groups": [1, 2]}, "`groups`"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    args = {"signals": {"raw": np.zeros(6)}, **kwargs}
    with pytest.raises(ValueError, match=match):
        judge(np.arange(6.0), **args)
