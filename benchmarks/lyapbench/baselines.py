"""Simple pruners the replays compare ours against, and references that are not methods.

``TopKAfterFirstEpoch`` (every trial pays one epoch, the best share trains on), ``RankRule``
(successive halving's budget allocation at fixed steps, optionally ranked by our pruner's
prediction) and ``OraclePruner`` (a perfect predictor at one step: a reference, not a method).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

import optuna_lyap
from benchmarks.lyapbench.tables import AXES, lookup, top_configurations

__all__ = ["RANK_SHARES", "OraclePruner", "RankRule", "TopKAfterFirstEpoch"]


class TopKAfterFirstEpoch(BasePruner):
    """Keep a trial after its first epoch only if its value ranks in the best ``share`` so far.

    The "top-K after one epoch" rule: every trial pays one epoch, and only those whose epoch-1
    value is among the best ``share`` of all epoch-1 values seen train on.
    """

    def __init__(self, share: float = 0.2, n_startup_trials: int = 5) -> None:
        self._share = share
        self._n_startup = n_startup_trials

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if trial.last_step != 1:
            return False
        others = [
            t.intermediate_values[1]
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and 1 in t.intermediate_values
        ]
        if len(others) < self._n_startup:
            return False
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        scores = sign * np.array(others)
        bar = np.quantile(scores, 1.0 - self._share)
        return bool(sign * trial.intermediate_values[1] < bar)


# The rank rule's check steps and the share each keeps: successive halving's budget
# allocation (most trials cost one epoch, a third of them four), at steps where our tables
# separate trials (see ``rank_by_epoch.md``).
RANK_SHARES = {1: 1.0 / 3.0, 4: 1.0 / 3.0}


def _kept(score: float, scores: Sequence[float], share: float) -> bool:
    """Whether ``score`` is among the best ``share`` of ``scores`` (which include it; higher
    is better): the best ``max(1, floor(share * n))`` are kept, ties with the last kept too."""
    if not math.isfinite(score):
        return False
    ordered = np.sort(np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf))[::-1]
    return bool(score >= ordered[max(1, int(share * len(ordered))) - 1])


class RankRule(BasePruner):
    """Keep a trial at each step of ``shares`` only if it ranks among the best ``shares[step]``
    of every trial that reached the step, itself included (the first trial always passes).

    On the raw value (``lyapunov=None``) this is a reference: successive halving's budget
    allocation with rungs at ``RANK_SHARES``' steps. With a ``LyapunovPruner``, the score at a
    step where that pruner's model acts (:meth:`LyapunovPruner.predict`) is the predicted final
    value, for the running trial and for every trial it is ranked against, from the same model.
    With ``rescue``, the raw ranking decides and the model can only keep a trial more: one the
    raw value would prune is kept when its prediction ranks among the best ``rescue``.

    With a model, each decision is written to the trial's user attr ``rank_by_<step>``:
    ``"model"`` where the model acted, ``"raw"`` where it could not (no model yet, or one that
    does not out-rank the raw value there).
    """

    def __init__(
        self,
        lyapunov: optuna_lyap.LyapunovPruner | None = None,
        shares: dict[int, float] | None = None,
        rescue: float | None = None,
    ) -> None:
        self._lyap = lyapunov
        self._shares = dict(RANK_SHARES if shares is None else shares)
        self._rescue = rescue

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step not in self._shares:
            return False
        share = self._shares[step]
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        others = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and step in t.intermediate_values
        ]
        raw = [sign * t.intermediate_values[step] for t in others]
        mine_raw = sign * trial.intermediate_values[step]
        raw_kept = _kept(mine_raw, [*raw, mine_raw], share)
        if self._lyap is None:
            return not raw_kept
        mine = self._lyap.predict(study, trial, step)
        acts = mine is not None and mine["acts"]
        study._storage.set_trial_user_attr(
            trial._trial_id, f"rank_by_{step}", "model" if acts else "raw"
        )
        if mine is None or not acts:
            return not raw_kept
        if self._rescue is not None and raw_kept:
            return False
        predicted = []
        for t in others:
            record = self._lyap.predict(study, t, step)
            predicted.append(-math.inf if record is None else sign * record["predicted"])
        mine_score = sign * mine["predicted"]
        model_kept = _kept(
            mine_score, [*predicted, mine_score], share if self._rescue is None else self._rescue
        )
        return not model_kept


class OraclePruner(BasePruner):
    """A reference, not a method: prune at ``step`` every trial whose recorded final value is
    outside the table's top 2%.

    A perfect predictor acting at one step. ``step=1`` is the issue's "perfect one-epoch
    predictor" (every trial pays one epoch); ``step=0`` is a perfect predictor at
    initialisation (every trial pays only the spectrum, see ``seconds_to_top2pct``).
    """

    def __init__(self, table: dict[str, Any], step: int) -> None:
        top = top_configurations(table)
        self._top = {key for key, i in lookup(table).items() if top[i]}
        self._step = step

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if trial.last_step != self._step:
            return False
        return tuple(trial.params[a] for a in AXES) not in self._top
