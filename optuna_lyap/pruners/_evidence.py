"""What the pruner consults at a decision point, gathered into the numbers its rule decides on.

At a rung, :class:`Witnesses` stores the trial's value there, reads the competitors, asks the
in-study model (:class:`~optuna_lyap.InStudyModel`) and the prior
(:class:`~optuna_lyap._prediction._study_prior.StudyPrior`) for their views and gate shares,
picks the scorer (:func:`_rule.choose_scorer`) and hands :func:`_rule.decide_rung` a
:class:`_rule.RungEvidence`. The pruner records what the rule decided.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial

import optuna_lyap.pruners._rule as _rule
from optuna_lyap._prediction._gate import direction_sign
from optuna_lyap._prediction._in_study import FittedModel, InStudyModel, ModelAtStep
from optuna_lyap._prediction._independence import draws_independently, sampler_name
from optuna_lyap._prediction._study_prior import PriorAtStep, StudyPrior
from optuna_lyap.pruners._warnings import warn_adaptive_blend, warn_unblended


class Witnesses:
    """The in-study model, the prior, and the policy on when the prior's gate is judged.

    Args:
        model: The pruner's bound :class:`~optuna_lyap.InStudyModel`.
        study_prior: The prior within the study, or None without one.
        rung_key: The system attr of a rung's value.
        gate: The share a gate needs to open.
        n_startup_trials: Completed trials with a prediction before the prior's gate is judged
            (at least 3 in any case).
        prior_decides: The pruner's ``prior_decides`` (True, False or None: by the sampler).
        prior_weight: The blend's weight (0: no blend).
        reduction_factor: ``eta``.
        bootstrap_count: Competitors needed before any is promoted.
    """

    def __init__(
        self,
        model: InStudyModel,
        study_prior: StudyPrior | None,
        rung_key: Callable[[int], str],
        *,
        gate: float,
        n_startup_trials: int,
        prior_decides: bool | None,
        prior_weight: float,
        reduction_factor: int,
        bootstrap_count: int,
    ) -> None:
        self._model = model
        self._study_prior = study_prior
        self._rung_key = rung_key
        self._gate = gate
        self._n_startup_trials = n_startup_trials
        self._prior_decides = prior_decides
        self._prior_weight = prior_weight
        self._reduction_factor = reduction_factor
        self._bootstrap_count = bootstrap_count
        self._lock = threading.Lock()
        # prior_weight > 0 and a judged trial the prior cannot read: said once per process.
        self._warned_unblended = False
        # prior_weight > 0 in a study whose sampler is adaptive: said once per pruner object.
        self._warned_adaptive_blend = False

    def rung(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        trials: list[FrozenTrial],
        step: int,
        rung: int,
        closes: int,
        fallback_pruned: bool | None,
    ) -> tuple[_rule.RungEvidence, dict[str, Any]]:
        """Store the trial's value at ``rung``, read the competitors, consult the model and the
        prior where the rung closes at ``step``, and pick the scorer: the evidence
        :func:`_rule.decide_rung` decides on, and the record's fields so far."""
        value = trial.intermediate_values[step]
        key = self._rung_key(rung)
        study._storage.set_trial_system_attr(trial._trial_id, key, value)
        # As Optuna: read the competitors after storing (an in-memory storage's list then
        # holds this trial's value too).
        competing = [t.system_attrs[key] for t in trials if key in t.system_attrs]
        competing.append(value)
        others = [t for t in trials if key in t.system_attrs and t.number != trial.number]
        judged = prior = None
        fields: dict[str, Any] = {}
        if step == closes:
            if self._model.consults(trial, step):
                judged = self.model_at(study, trial, step)
                if judged is not None:
                    fields.update(judged.fields)
            prior = self.prior_at(study, trial, trials, step, fields, judge=True)
        if step == closes and self._prior_weight > 0.0 and prior is None:
            if self._first_time("_warned_unblended"):  # once per process
                warn_unblended(self._prior_weight, trial)
        scorer = _rule.choose_scorer(
            None if judged is None else judged.fields.get("gate_share"),
            None if prior is None else prior.share,
            self._gate,
            # A diverged value ranks at its end by the raw value alone: no prediction may lift
            # it over finite ones.
            can_blend=self._prior_weight > 0.0
            and prior is not None
            and len(competing) > self._bootstrap_count
            and math.isfinite(value),
        )
        if scorer == "blend" and not draws_independently(study.sampler):
            if self._first_time("_warned_adaptive_blend"):  # once per pruner object
                warn_adaptive_blend(self._prior_weight, sampler_name(study.sampler))
        fields["scorer"] = scorer
        sign = direction_sign(study.direction)
        evidence = _rule.RungEvidence(
            value,
            sign,
            competing,
            self._reduction_factor,
            self._bootstrap_count,
            scorer,
            fallback_pruned=fallback_pruned,
        )
        if scorer == "study":
            assert judged is not None and judged.model is not None
            predicted = self._model.predictions(judged.model, others, step, study.direction)
            rivals = [p for p in predicted.values() if p is not None]
            evidence = replace(
                evidence,
                predicted=judged.predicted,
                predicted_competing=[*rivals, judged.predicted],
            )
        elif scorer in ("prior", "blend"):
            assert prior is not None and self._study_prior is not None
            # Competitors the prior cannot predict drop out, as the model's do.
            batch = self._study_prior.predict_batch(prior.view, [t.number for t in others])
            kept = [t for t in others if t.number in batch]
            evidence = replace(
                evidence,
                quantile=prior.own.quantile,
                quantile_competing=[batch[t.number].quantile for t in kept] + [prior.own.quantile],
                blend_raw=[t.system_attrs[key] for t in kept] + [value],
                prior_weight=self._prior_weight,
            )
            if scorer == "blend":
                fields["prior_weight"] = self._prior_weight
        return evidence, fields

    def _first_time(self, flag: str) -> bool:
        """Whether ``flag`` was unset (and set it now): a warning said once."""
        with self._lock:
            said = getattr(self, flag)
            setattr(self, flag, True)
        return not said

    def model_at(
        self, study: optuna.Study, trial: FrozenTrial, step: int, *, always_fit: bool = False
    ) -> ModelAtStep | None:
        """The in-study model's view of ``trial`` at ``step`` (see ``InStudyModel.view_at``),
        skipping a fit that could not open the gate unless ``always_fit``."""
        return self._model.view_at(study, trial, step, gate=self._gate, always_fit=always_fit)

    def competing_scores(
        self,
        model: FittedModel,
        others: Sequence[FrozenTrial],
        step: int,
        study: optuna.Study,
        own: float,
    ) -> list[float]:
        """Scores (higher is better) of the predicted final values of ``others`` that have
        one, then of the judged trial's ``own``."""
        sign = direction_sign(study.direction)
        predicted = self._model.predictions(model, others, step, study.direction)
        return [sign * p for p in predicted.values() if p is not None] + [sign * own]

    def prior_decides(self, study: optuna.Study) -> bool:
        """Whether the prior may replace the raw value in ``study`` (where its gate opens).

        ``prior_decides`` as given; where it was None, True exactly when the study's sampler
        draws configurations independently of earlier results (:func:`draws_independently`).
        """
        if self._prior_decides is not None:
            return self._prior_decides
        return draws_independently(study.sampler)

    def prior_at(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        trials: Sequence[FrozenTrial],
        step: int,
        fields: dict[str, Any],
        *,
        judge: bool,
    ) -> PriorAtStep | None:
        """The prior's view of ``step`` with ``trial``'s prediction, and (with ``judge``) its
        gate share where the prior may decide; None without a prior or a prediction. Its
        record fields are written into ``fields``."""
        if self._study_prior is None:
            return None
        may_decide = judge and self.prior_decides(study)
        found = self._study_prior.view_at(
            trial,
            trials,
            step,
            study.direction,
            judge=may_decide,
            needed=max(self._n_startup_trials, 3),
            n_resamples=self._model.n_resamples,
            seed=self._model.seed,
            gate=self._gate,
        )
        if found is None:
            return None
        fields.update(found.fields)
        if judge and not may_decide:
            fields["prior_decides"] = False
            # Why not: the sampler (prior_decides=None) or the argument (False, the default).
            fields["prior_decides_by"] = "argument" if self._prior_decides is False else "sampler"
        return found
