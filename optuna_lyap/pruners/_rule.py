"""The pruner's decision rule: asynchronous successive halving and the gate on a model's ranks.

Pure functions over numbers (no Optuna, no torch), so the rule is table-tested in milliseconds.

Notation:
    ``eta``: the reduction factor; ``r``: the minimum resource (steps); ``s``: the minimum
    early-stopping rate; rung ``k`` closes at step ``r * eta ** (s + k)``. A *score* is a value
    oriented so that higher is better (the value when maximising, its negative when
    minimising). ``n``: completed trials a model is judged on; ``B``: bootstrap resamples.

Sources: asynchronous successive halving, Li et al. 2020, "A System for Massively Parallel
Hyperparameter Tuning" (MLSys), as Optuna's ``SuccessiveHalvingPruner`` implements it (the
promotion bar, the first ``eta - 1`` trials of a rung promoted only when best); the paired
bootstrap of a rank correlation, Efron & Tibshirani 1993, "An Introduction to the Bootstrap",
ch. 6; the normal-consistent median absolute deviation (factor 1.4826), Rousseeuw & Croux
1993, JASA 88:1273.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from optuna_lyap._numeric import MAD_TO_STD


def rung_step(
    min_resource: int, reduction_factor: int, min_early_stopping_rate: int, rung: int
) -> int:
    """The step at which rung ``rung`` closes: ``r * eta ** (s + rung)``."""
    return min_resource * reduction_factor ** (min_early_stopping_rate + rung)


def estimate_min_resource(completed_last_steps: Sequence[int]) -> int | None:
    """Optuna's ``min_resource="auto"``: the longest completed trial's last step / 100, at least 1.

    Args:
        completed_last_steps: The last step of every completed trial.

    Returns:
        The minimum resource, or None while no trial has completed.
    """
    if len(completed_last_steps) == 0:
        return None
    return max(max(completed_last_steps) // 100, 1)


def n_promoted(n_competitors: int, reduction_factor: int) -> int:
    """How many of ``n_competitors`` a rung promotes: ``n // eta``, at least the best one."""
    return max(n_competitors // reduction_factor, 1)


@dataclass(frozen=True)
class Ranking:
    """Where one score stands among its competitors (itself included).

    Attributes:
        promoted: Whether the score is at least the bar.
        rank: 1 + the number of competitors with a strictly better score.
        n_competitors: Competing scores, the judged one included.
        n_promoted: How many the rung (or screen) keeps.
        bar: The worst kept score: the number to beat (a score, higher is better).
    """

    promoted: bool
    rank: int
    n_competitors: int
    n_promoted: int
    bar: float


def rank_among(score: float, competing: Sequence[float], keep: int) -> Ranking:
    """Rank ``score`` among ``competing`` (which include it) and keep the best ``keep``.

    The comparison is Optuna's: the score is promoted when it is at least the ``keep``-th best
    competing score, so ties with the bar are promoted. A NaN anywhere compares as Python's
    sort leaves it; callers prune NaN scores before ranking.

    Args:
        score: The judged score (higher is better).
        competing: Every competing score, ``score`` included.
        keep: How many are kept, in ``[1, len(competing)]``.

    Returns:
        The ranking.

    Raises:
        ValueError: When ``competing`` is empty or ``keep`` is out of range.
    """
    n = len(competing)
    if n == 0:
        raise ValueError(f"`competing` must include the judged score, but got {competing=}.")
    if not 1 <= keep <= n:
        raise ValueError(f"`keep` must be in [1, {n}], but got {keep=}.")
    ordered = sorted(competing)
    bar = ordered[-keep]
    better = sum(1 for c in competing if c > score)
    return Ranking(bool(score >= bar), better + 1, n, keep, float(bar))


def promote(score: float, competing: Sequence[float], reduction_factor: int) -> Ranking:
    """Successive halving's promotion at a rung: keep the best ``1 / eta`` of ``competing``.

    Equivalent to Optuna's ``_is_trial_promotable_to_next_rung`` on oriented scores.
    """
    return rank_among(score, competing, n_promoted(len(competing), reduction_factor))


def screen(score: float, competing: Sequence[float], fraction: float) -> Ranking:
    """Keep the best ``fraction`` of ``competing`` (at least one).

    Raises:
        ValueError: When ``fraction`` is not in ``(0, 1]``.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"`fraction` must be in (0, 1], but got {fraction=}.")
    keep = max(1, math.floor(len(competing) * fraction + 1e-9))
    return rank_among(score, competing, min(keep, len(competing)))


def blend_ranks(raw: Sequence[float], prior: Sequence[float], weight: float) -> np.ndarray:
    """Each competitor's score mixing its rank by raw value and its rank by prediction.

    Ranks are average ranks (ties share their mean) divided by ``n``, so each lies in
    ``(0, 1]`` with 1 the best; the blend is ``(1 - weight) * raw rank + weight * prior rank``.
    Mixing ranks, not values, needs no common scale between a value in the study's units and a
    predicted quantile (the rank-averaging of two rankers, e.g. Borda's count).

    Args:
        raw: ``n`` scores by the raw value (higher is better).
        prior: ``n`` scores by the prediction (higher is better), in the same order.
        weight: The prediction's weight, in ``[0, 1]``; 0 gives the raw ranks.

    Returns:
        ``n`` blended scores, higher is better.

    Raises:
        ValueError: When the lengths differ or are 0, a score is NaN, or ``weight`` is out of
            ``[0, 1]``.
    """
    x = np.asarray(raw, dtype=np.float64)
    y = np.asarray(prior, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(
            f"`raw` and `prior` must be two non-empty sequences of one length, but got "
            f"{x.shape} and {y.shape}."
        )
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("`raw` and `prior` must hold no NaN (prune a NaN value before ranking).")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"`weight` must be in [0, 1], but got {weight=}.")
    n = x.size
    return (1.0 - weight) * _average_ranks(x) / n + weight * _average_ranks(y) / n


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ascending, ties sharing their mean rank."""
    return _rows_of_ranks(values, np.arange(values.size)[None, :])[0]


def _rows_of_ranks(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties sharing their mean rank) within each resample.

    Args:
        values: ``n`` finite numbers.
        index: ``B x n`` indices into ``values``: the resamples.

    Returns:
        A ``B x n`` float64 array: the rank of ``values[index[b, i]]`` within row ``b``.
    """
    _, codes = np.unique(values, return_inverse=True)
    m = int(codes.max()) + 1
    drawn = codes[index]
    rows = np.repeat(np.arange(index.shape[0]), index.shape[1])
    counts = np.zeros((index.shape[0], m))
    np.add.at(counts, (rows, drawn.ravel()), 1.0)
    below = np.cumsum(counts, axis=1) - counts
    mean_rank = below + (counts + 1.0) / 2.0
    return np.take_along_axis(mean_rank, drawn, axis=1)


def _row_spearman(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Spearman's correlation row by row from ``B x n`` ranks: Pearson's of the ranks.

    A row where either side is constant gives NaN.
    """
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    safe = np.where(den > 1e-12, den, 1.0)
    return np.where(den > 1e-12, (rx * ry).sum(axis=1) / safe, np.nan)


def gate_share(
    predicted: np.ndarray,
    raw: np.ndarray,
    final: np.ndarray,
    *,
    n_resamples: int = 500,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> float:
    """Share of paired bootstrap resamples in which the model out-ranks the raw value.

    Each resample draws ``n`` of the completed trials with replacement; in it, the model wins
    when Spearman(``predicted``, ``final``) is above both Spearman(``raw``, ``final``) and 0. An
    undefined model correlation (constant predictions in the resample) loses; an undefined raw
    correlation (e.g. every untrained network at chance, all equal) counts as 0. Rank-based, so
    a huge but finite final value weighs as one rank.

    Trials of one configuration (one ``groups`` key) are one piece of evidence: each group is
    first replaced by the means of its three values, so a configuration that samplers proposed
    and completed ten times neither counts ten times nor, being predicted from its own copies,
    makes an overfitted model look right.

    Args:
        predicted: ``n`` out-of-sample predictions of the completed trials' final values.
        raw: ``n`` intermediate values of the same trials at the step judged.
        final: ``n`` final values. All three in one orientation (scores: higher is better),
            so that an infinite value ranks at its end and a NaN ranks lowest.
        n_resamples: ``B``, at least 1.
        seed: Seed of the resampling, so every worker reaches the same share.
        groups: ``n`` hashable keys, equal for trials of one configuration (e.g. their
            params); None: every trial is its own group.

    Returns:
        The share in ``[0, 1]``; 0 with fewer than 3 groups.

    Raises:
        ValueError: When the arrays (or ``groups``) differ in length or ``n_resamples < 1``.
    """
    predicted, raw, final = _checked(
        {"predicted": predicted, "raw": raw, "final": final}, n_resamples, groups
    )
    if groups is not None:
        predicted, raw, final = group_means(groups, _ordinal(predicted), raw, _ordinal(final))
    n = predicted.size
    if n < 3:
        return 0.0
    index, final_ranks, raw_rho = _resampled(raw, final, n_resamples, seed)
    model_rho = _row_spearman(_rows_of_ranks(_ordinal(predicted), index), final_ranks)
    wins = np.isfinite(model_rho) & (model_rho > np.maximum(raw_rho, 0.0) + _WIN_MARGIN)
    return float(wins.mean())


def _checked(
    named: dict[str, Any], n_resamples: int, groups: Sequence[Hashable] | None
) -> list[np.ndarray]:
    """The arrays of ``named`` as float64, after the checks :func:`gate_share` documents."""
    arrays = [np.asarray(a, dtype=np.float64) for a in named.values()]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        names = [f"`{name}`" for name in named]
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise ValueError(
            f"{', '.join(names[:-1])} and {names[-1]} must be 1-D arrays of one length, but got "
            f"shapes {shapes}."
        )
    if n_resamples < 1:
        raise ValueError(f"`n_resamples` must be at least 1, but got {n_resamples=}.")
    if groups is not None and len(groups) != arrays[0].size:
        raise ValueError(
            f"`groups` must have one key per trial ({arrays[0].size}), but got {len(groups)}."
        )
    return arrays


# How far the model's correlation must exceed the raw value's in a resample, so that equal
# rankings (a model repeating the raw value) never win.
_WIN_MARGIN = 1e-9


def _resampled(
    raw: np.ndarray, final: np.ndarray, n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The resamples :func:`gate_share` draws for ``n`` (grouped) trials: their ``B x n``
    indices, the final values' ranks in each, and the raw value's Spearman there (an undefined
    one as 0)."""
    n = raw.size
    index = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    final_ranks = _rows_of_ranks(_ordinal(final), index)
    raw_rho = _row_spearman(_rows_of_ranks(_ordinal(raw), index), final_ranks)
    return index, final_ranks, np.nan_to_num(raw_rho, nan=0.0)


def gate_share_bound(
    raw: np.ndarray,
    final: np.ndarray,
    *,
    n_resamples: int = 500,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> float:
    """The highest :func:`gate_share` any predictions could reach on these trials.

    A model can win a resample only where the final values are not all equal (else its
    correlation is undefined) and the raw value's correlation leaves room above it (below 1).
    The share of such resamples bounds the gate share of every model, a perfect one included,
    on the same resamples (same ``n_resamples``, ``seed`` and ``groups``). Where it is below
    the gate, no fit can open the gate, and a pruner may skip the fit without changing a
    decision.

    Args:
        raw: ``n`` intermediate values at the step judged, as scores (higher is better).
        final: ``n`` final values, as scores.
        n_resamples: ``B``, at least 1.
        seed: Seed of the resampling.
        groups: ``n`` configuration keys, as for :func:`gate_share`.

    Returns:
        The bound in ``[0, 1]``; 0 with fewer than 3 groups.

    Raises:
        ValueError: When the arrays (or ``groups``) differ in length or ``n_resamples < 1``.
    """
    raw, final = _checked({"raw": raw, "final": final}, n_resamples, groups)
    if groups is not None:
        raw, final = group_means(groups, raw, _ordinal(final))
    if raw.size < 3:
        return 0.0
    _, final_ranks, raw_rho = _resampled(raw, final, n_resamples, seed)
    centred = final_ranks - final_ranks.mean(axis=1, keepdims=True)
    varied = (centred * centred).sum(axis=1) > 0.0
    # A correlation is at most 1; the 1e-12 covers its rounding, so the bound never falls
    # below a share gate_share can return.
    room = np.maximum(raw_rho, 0.0) + _WIN_MARGIN < 1.0 + 1e-12
    return float((varied & room).mean())


def group_means(groups: Sequence[Hashable], *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each column averaged within the groups, one entry per group in order of first appearance.

    A NaN in a group makes its mean NaN (it then ranks as :func:`_ordinal` ranks NaN).
    """
    index: dict[Hashable, int] = {}
    codes = np.array([index.setdefault(g, len(index)) for g in groups], dtype=np.intp)
    counts = np.bincount(codes, minlength=len(index)).astype(np.float64)
    out = []
    for column in columns:
        sums = np.zeros(len(index))
        np.add.at(sums, codes, np.asarray(column, dtype=np.float64))
        out.append(sums / counts)
    return tuple(out)


def _ordinal(a: np.ndarray) -> np.ndarray:
    """``a`` with infinities just past the finite extremes and NaN lowest: same ranks, finite."""
    ok = np.isfinite(a)
    low, high = (a[ok].min(), a[ok].max()) if ok.any() else (0.0, 0.0)
    out = np.where(np.isposinf(a), high + 1.0, a)
    return np.where(np.isneginf(a) | np.isnan(a), low - 2.0, out)


def robust_spread(residuals: np.ndarray) -> float:
    """The normal-consistent median absolute deviation of ``residuals`` (finite ones only).

    One huge residual moves it by at most one rank, where a root mean square would follow it.

    Returns:
        ``1.4826 * median(|r - median(r)|)``; NaN without finite residuals.
    """
    r = np.asarray(residuals, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return math.nan
    return float(MAD_TO_STD * np.median(np.abs(r - np.median(r))))
