"""Whether a signal ranks a study's completed trials: the acceptance rules of the prediction layer.

The pruner's gate (a paired bootstrap of rank correlations: does a model's ranking of the
completed trials beat the raw value's, resample after resample?) and the sampler's switch-off
(a point rank correlation above ``min_rank_corr``) both live here, with the one rank statistic
they use, so that a judge that replaces them changes one module. Pure functions over numbers,
table-tested in milliseconds; no Optuna.

Notation:
    ``n``: completed trials (or configurations: a group of trials with one key counts once)
    judged; ``B``: bootstrap resamples; a *score* is a value oriented so that higher is better
    (``direction_sign(direction) * value``). Ranks are average ranks, 1-based, ties sharing
    their mean rank.

Sources: Spearman's rank correlation as Pearson's correlation of average ranks; the paired
bootstrap of a rank correlation, Efron & Tibshirani 1993, "An Introduction to the Bootstrap",
ch. 6; the normal-consistent median absolute deviation (factor 1.4826), Rousseeuw & Croux
1993, JASA 88:1273.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from optuna_lyap._numeric import MAD_TO_STD

if TYPE_CHECKING:
    from optuna_lyap._prediction._core import FittedPredictor


def direction_sign(direction: Any) -> float:
    """+1 when maximising, -1 when minimising: ``sign * value`` is a score (higher is better).

    Args:
        direction: An ``optuna.study.StudyDirection`` or its name (``"maximize"``, any case).
    """
    name = getattr(direction, "name", direction)
    return 1.0 if str(name).lower() == "maximize" else -1.0


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``n`` numbers, ascending, ties sharing their mean rank (float64)."""
    values = np.asarray(values, dtype=np.float64)
    return _rows_of_ranks(values, np.arange(values.size)[None, :])[0]


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation over the entries finite in both; NaN when undefined (fewer
    than 3 such entries, or either side constant).

    The point form of :func:`row_spearman`, on the same ranks. (Computed here rather than with
    SciPy, whose ``stats`` module takes over a second to import in every worker process.)
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return math.nan
    return float(row_spearman(average_ranks(a[ok])[None, :], average_ranks(b[ok])[None, :])[0])


def rank_correlation_accepts(corr: float, min_rank_corr: float) -> bool:
    """The sampler's acceptance rule: a measured rank correlation above ``min_rank_corr``
    (an undefined one, NaN, never accepts)."""
    return math.isfinite(corr) and corr > min_rank_corr


def gate_evidence(
    fitted: FittedPredictor, direction: Any, *, n_resamples: int, seed: int
) -> dict[str, float]:
    """The gate's evidence for a fitted predictor, computed once where it is fitted.

    Args:
        fitted: The predictor, with its chosen candidate's out-of-sample predictions and the
            labelled rows' targets and raw values.
        direction: The study's direction (see :func:`direction_sign`).
        n_resamples: Resamples of the paired bootstrap (see :func:`gate_share`).
        seed: Seed of the bootstrap.

    Returns:
        ``gate_share``: the share of paired bootstrap resamples of the labelled rows in which
        the out-of-sample predictions out-rank the raw values (0 with fewer than 3 rows), and
        ``residual_spread``: the robust spread of ``targets - oof`` (:func:`robust_spread`,
        NaN without rows).
    """
    oof, targets, raw = fitted.chosen.oof, fitted.targets, fitted.raw
    share = 0.0
    if len(oof) == len(targets) == len(raw) and len(targets) >= 3:
        sign = direction_sign(direction)
        share = gate_share(
            sign * oof,
            sign * raw,
            sign * targets,
            n_resamples=n_resamples,
            seed=seed,
            groups=fitted.groups,
        )
    spread = robust_spread(targets - oof) if len(oof) == len(targets) else math.nan
    return {"gate_share": float(share), "residual_spread": float(spread)}


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


def row_spearman(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
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
    model_rho = row_spearman(_rows_of_ranks(_ordinal(predicted), index), final_ranks)
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
    raw_rho = row_spearman(_rows_of_ranks(_ordinal(raw), index), final_ranks)
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
