"""The pruner's decision rule: asynchronous successive halving, which scorer ranks a rung, and
what the pruner decides there.

Pure functions over numbers (no Optuna, no torch), so the rule is table-tested in milliseconds.
Whether a model has earned a rung (the gate's bootstrap) is
:mod:`optuna_lyap._prediction._gate`'s question; this module takes its shares as given.

Notation:
    ``eta``: the reduction factor; ``r``: the minimum resource (steps); ``s``: the minimum
    early-stopping rate; rung ``k`` closes at step ``r * eta ** (s + k)``. A *score* is a value
    oriented so that higher is better (the value when maximising, its negative when
    minimising).

Sources: asynchronous successive halving, Li et al. 2020, "A System for Massively Parallel
Hyperparameter Tuning" (MLSys), as Optuna's ``SuccessiveHalvingPruner`` implements it (the
promotion bar, the first ``eta - 1`` trials of a rung promoted only when best).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from optuna_lyap._prediction._gate import average_ranks


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
    return (1.0 - weight) * average_ranks(x) / n + weight * average_ranks(y) / n


# --- which scorer ranks a rung, and what the rung decides -----------------------------------

#: What may rank a rung or the screen: the raw value, the in-study model's predicted final
#: value, the prior's predicted quantile, or the blend of the raw value's and the prior's ranks.
SCORERS = ("raw", "study", "prior", "blend")


def choose_scorer(
    study_share: float | None,
    prior_share: float | None,
    gate: float,
    *,
    can_blend: bool = False,
) -> str:
    """The scorer of a rung (one of :data:`SCORERS`).

    The competitor whose gate share is the larger of those at least ``gate`` (the in-study
    model on a tie); where no gate opens, ``"blend"`` if the blend may rank the rung, else
    the raw value.

    Args:
        study_share: The in-study model's gate share, or None where no model was judged.
        prior_share: The prior's gate share, or None where its gate was not judged.
        gate: The share a gate needs to open, in ``(0, 1]``.
        can_blend: Whether the blend may rank the rung (a blend weight above 0, a prior
            prediction of the judged trial, more competitors than the bootstrap count and a
            finite value).
    """
    open_ = [
        (share, name == "study", name)
        for name, share in (("study", study_share), ("prior", prior_share))
        if share is not None and share >= gate
    ]
    if open_:
        return max(open_)[2]
    return "blend" if can_blend else "raw"


@dataclass(frozen=True)
class RungEvidence:
    """What one rung decides on, in numbers (the pruner gathers them from the study).

    Attributes:
        value: The judged trial's raw value at the step, in the study's units.
        sign: +1 when maximising, -1 when minimising.
        raw_competing: The raw values of every trial that reached the rung, the judged one's
            included, in the study's units.
        reduction_factor: ``eta``.
        bootstrap_count: Competitors needed before any is promoted.
        scorer: What ranks the rung (see :func:`choose_scorer`).
        predicted: ``scorer == "study"``: the judged trial's predicted final value.
        predicted_competing: ``scorer == "study"``: the predicted final values of the
            competitors that have one, the judged trial's last.
        quantile: ``scorer == "prior"``: the judged trial's predicted quantile.
        quantile_competing: ``scorer == "prior"`` or ``"blend"``: the predicted quantiles of
            the competitors the prior predicts, the judged trial's last.
        blend_raw: ``scorer == "blend"``: the raw values of the same competitors, in order.
        prior_weight: ``scorer == "blend"``: the prior's weight.
        fallback_pruned: The fallback pruner's decision, or None without one.
        starting: Fewer trials than the pruner's ``n_startup_trials`` have completed.
    """

    value: float
    sign: float
    raw_competing: Sequence[float]
    reduction_factor: int
    bootstrap_count: int = 0
    scorer: str = "raw"
    predicted: float = math.nan
    predicted_competing: Sequence[float] = ()
    quantile: float = math.nan
    quantile_competing: Sequence[float] = ()
    blend_raw: Sequence[float] = ()
    prior_weight: float = 0.0
    fallback_pruned: bool | None = None
    starting: bool = False


@dataclass(frozen=True)
class Decision:
    """What a rung decided, as its record states it.

    Attributes:
        rule: The record's ``rule``: ``"rung"``, ``"model_rung"``, ``"prior_rung"``,
            ``"blend_rung"``, ``"fallback"`` or ``"startup"``.
        pruned: Whether the trial is pruned.
        score_kind: ``"raw"``, ``"predicted"``, ``"quantile"`` or ``"blend"``.
        score: The judged trial's score as recorded (the study's units for the raw value and
            the prediction; a quantile; a blend score).
        ranking: Where the score stood, or None where nothing was ranked.
        bar_sign: Orients ``ranking.bar`` as the record states it (the study's units).
        n_competitors: The competitors, where nothing was ranked but they were counted.
    """

    rule: str
    pruned: bool
    score_kind: str
    score: float
    ranking: Ranking | None = None
    bar_sign: float = 1.0
    n_competitors: int | None = None


def during_startup(evidence: RungEvidence) -> Decision | None:
    """Optuna's ``n_startup_trials``: until that many trials have completed nothing is pruned,
    a NaN value included (``MedianPruner`` returns before it looks at the value). None once
    pruning has started."""
    if not evidence.starting:
        return None
    return Decision(
        "startup", False, "raw", evidence.value, n_competitors=len(evidence.raw_competing)
    )


def decide_rung(evidence: RungEvidence) -> Decision:
    """Successive halving's decision at one rung, ranked by ``evidence.scorer``.

    A NaN value is pruned (Optuna's rule) and ranked nowhere. With fewer competitors than
    ``bootstrap_count + 1`` the raw rung prunes. A fallback pruner, where there is one,
    decides wherever the raw value would have ranked (not where a prediction did).
    """
    e = evidence
    starting = during_startup(e)
    if starting is not None:
        return starting
    if math.isnan(e.value):
        decision = Decision("rung", True, "raw", e.value)
    elif e.scorer == "study":
        ranking = promote(
            e.sign * e.predicted, [e.sign * p for p in e.predicted_competing], e.reduction_factor
        )
        return Decision(
            "model_rung", not ranking.promoted, "predicted", e.predicted, ranking, e.sign
        )
    elif e.scorer == "prior":
        ranking = promote(e.quantile, list(e.quantile_competing), e.reduction_factor)
        return Decision("prior_rung", not ranking.promoted, "quantile", e.quantile, ranking)
    elif e.scorer == "blend":
        blended = blend_ranks(
            [e.sign * v for v in e.blend_raw], list(e.quantile_competing), e.prior_weight
        )
        own = float(blended[-1])
        ranking = promote(own, blended.tolist(), e.reduction_factor)
        return Decision("blend_rung", not ranking.promoted, "blend", own, ranking)
    elif len(e.raw_competing) <= e.bootstrap_count:
        decision = Decision("rung", True, "raw", e.value, n_competitors=len(e.raw_competing))
    else:
        ranking = promote(
            e.sign * e.value, [e.sign * c for c in e.raw_competing], e.reduction_factor
        )
        decision = Decision("rung", not ranking.promoted, "raw", e.value, ranking, e.sign)
    if e.fallback_pruned is None:
        return decision
    # The fallback decides: the raw ranking would describe another rule.
    return Decision("fallback", e.fallback_pruned, "raw", e.value)
