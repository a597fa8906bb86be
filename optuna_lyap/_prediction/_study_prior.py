"""The prior within one study: the predictions the pruner and the sampler ask of a
:class:`~optuna_lyap._prediction._prior.TrialPrior`, made in fixed batches and cached, and the
evidence on whether it ranks the study's completed trials.

Notation: ``n`` completed trials that reported the judged step; a *score* is a value oriented
so that higher is better. The prior predicts a *quantile* within the study (1 is best).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._prediction._gate import direction_sign, gate_share, rank_correlation
from optuna_lyap._prediction._lru import LRUCache
from optuna_lyap._prediction._prior import PriorPrediction, TrialPrior
from optuna_lyap._prediction._reader import configuration_key
from optuna_lyap._storage import spectrum_at, spectrum_dim


def resolve_prior(prior: Any) -> Any:
    """The prior a ``prior`` argument names (see :meth:`TrialPrior.resolve`); an object that
    already predicts trials (``predict_trials``) is used as it is."""
    if prior is None:
        return None
    if not isinstance(prior, (str, os.PathLike)) and hasattr(prior, "predict_trials"):
        return prior
    return TrialPrior.resolve(prior)


# Entries each of StudyPrior's caches keeps.
_CACHE_SIZE = 64


@dataclass(frozen=True)
class CurveOnlyTrial:
    """A trial as the prior's within-study curve ranks read it, and nothing else.

    The prior ranks each trial's curve among every trial given; it reads the hyperparameters
    and the spectrum (the costly part: decoding and resampling) of each. A trial whose own
    prediction is not needed is passed as this, so it shapes the ranks but is not predicted.
    """

    number: int
    intermediate_values: Mapping[int, float]
    user_attrs: Mapping[str, Any]
    state: TrialState
    value: float | None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    system_attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, trial: FrozenTrial) -> CurveOnlyTrial:
        return cls(
            trial.number, trial.intermediate_values, trial.user_attrs, trial.state, trial.value
        )


@dataclass(frozen=True)
class TrialsAtStep:
    """The trials that reported one step, and the prior's predictions of them by batch.

    Attributes:
        key: ``(step, numbers of the trials that reported it)``: what the predictions depend on.
        step: The step.
        direction: The study's direction.
        reached: The trials that reported ``step``, by number.
        batches: Predictions by batch (see :meth:`StudyPrior.predict_batch`), shared with the
            cache.
    """

    key: tuple[Any, ...]
    step: int
    direction: Any
    reached: list[FrozenTrial]
    batches: dict[tuple[int, ...], dict[int, Any]]

    @property
    def completed(self) -> list[FrozenTrial]:
        return [t for t in self.reached if t.state == TrialState.COMPLETE and t.value is not None]


@dataclass(frozen=True)
class PriorAtStep:
    """The prior's view of a step for one judged trial.

    Attributes:
        view: The trials at the step.
        own: The judged trial's prediction.
        share: The prior's gate share at the step, None where not judged.
        fields: The record's prior fields (see ``optuna_lyap._storage.DecisionRecord``).
    """

    view: TrialsAtStep
    own: PriorPrediction
    share: float | None
    fields: dict[str, Any]


class StudyPrior:
    """A :class:`TrialPrior` (or any object with its ``predict_trials`` and
    ``predict_candidates``) applied within one consumer: the predictions the pruner and the
    sampler ask of it, made in fixed batches and cached, and the evidence on whether it ranks
    the study's completed trials.

    Thread-safe; pickling keeps the prior and drops the caches.

    Args:
        prior: The prior.
    """

    def __init__(self, prior: Any) -> None:
        self.prior = prior
        self._init_local()

    def _init_local(self) -> None:
        # Predictions per (step, trials that reported it) and batch, gate shares per (step,
        # completed trials that reported it), rank correlations per set of completed trials:
        # inputs that never change.
        self._batches: LRUCache[tuple[Any, ...], dict[tuple[int, ...], dict[int, Any]]]
        self._batches = LRUCache(_CACHE_SIZE)
        self._gates: LRUCache[tuple[Any, ...], float | None] = LRUCache(_CACHE_SIZE)
        self._rank_corrs: LRUCache[tuple[Any, ...], tuple[float, int]] = LRUCache(_CACHE_SIZE)

    def __getstate__(self) -> dict[str, Any]:
        return {"prior": self.prior}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.prior = state["prior"]
        self._init_local()

    @property
    def digest(self) -> str:
        return str(getattr(self.prior, "digest", ""))

    def at_step(
        self, trial: FrozenTrial, trials: Sequence[FrozenTrial], step: int, direction: Any
    ) -> tuple[TrialsAtStep, PriorPrediction | None] | None:
        """The trials at ``step`` and ``trial``'s prediction there (None where it has none);
        None where ``trial`` did not report ``step``. The trials that reported ``step``
        (``trial`` included) define the within-study ranks."""
        if step not in trial.intermediate_values:
            return None
        reached = [t for t in trials if t.number != trial.number and step in t.intermediate_values]
        reached.append(trial)
        reached.sort(key=lambda t: t.number)
        key = (step, tuple(t.number for t in reached))
        batches = self._batches.setdefault(key, dict)
        view = TrialsAtStep(key, step, direction, reached, batches)
        return view, self.predict_batch(view, [trial.number]).get(trial.number)

    def predict_batch(self, view: TrialsAtStep, numbers: Sequence[int]) -> dict[int, Any]:
        """The prior's predictions of the trials ``numbers`` of ``view``, made in one batch
        with the other trials given by their curves only (they shape the ranks, and their
        spectra are not read), and kept per batch.

        The model's float32 results depend slightly (~1e-9) on a batch's make-up, so each
        prediction is always made in the same batch whatever was cached before: the judged
        trial alone, the completed trials together, every trial together. So every worker
        reaches the same numbers from the same storage.
        """
        batch_key = tuple(sorted(numbers))
        found = view.batches.get(batch_key)
        if found is not None:
            return found
        wanted = set(batch_key)
        batch = [t if t.number in wanted else CurveOnlyTrial.of(t) for t in view.reached]
        predicted = self.prior.predict_trials(batch, view.step, view.direction)
        # A prediction the ranks cannot use (a non-finite quantile) is no prediction.
        found = {
            int(n): p
            for n, p in predicted.items()
            if int(n) in wanted and math.isfinite(float(p.quantile))
        }
        view.batches[batch_key] = found
        return found

    def gate_share(
        self, view: TrialsAtStep, *, needed: int, n_resamples: int, seed: int
    ) -> float | None:
        """The prior's gate share at ``view.step``: the paired bootstrap of
        :func:`~optuna_lyap._prediction._gate.gate_share` over the completed trials that
        reported the step, the prior's quantiles against their raw values there, both ranked
        against their final values (oriented as scores). None (not judged, so shut) until
        ``needed`` of them have a finite prediction.

        The completed trials are predicted among themselves (their curves ranked within the
        completed set), so the share is computed once per step and completed set, not again
        whenever a running trial reaches the step."""
        completed = view.completed
        if len(completed) < needed:
            return None
        key = (view.step, tuple(t.number for t in completed))
        cached, share = self._gates.lookup(key)
        if cached:
            return share
        predicted = self.prior.predict_trials(completed, view.step, view.direction)
        judged = [
            t
            for t in completed
            if t.number in predicted and math.isfinite(float(predicted[t.number].quantile))
        ]
        share = None
        if len(judged) >= needed:
            sign = direction_sign(view.direction)
            quantiles = np.array([predicted[t.number].quantile for t in judged])
            raw = sign * np.array([t.intermediate_values[view.step] for t in judged])
            final = sign * np.array([t.value for t in judged], dtype=np.float64)
            share = float(
                gate_share(
                    quantiles,
                    raw,
                    final,
                    n_resamples=n_resamples,
                    seed=seed,
                    groups=[configuration_key(t) for t in judged],
                )
            )
        return self._gates.put(key, share)

    def view_at(
        self,
        trial: FrozenTrial,
        trials: Sequence[FrozenTrial],
        step: int,
        direction: Any,
        *,
        judge: bool,
        needed: int,
        n_resamples: int,
        seed: int,
        gate: float,
    ) -> PriorAtStep | None:
        """``trial``'s prediction at ``step`` and, with ``judge``, the prior's gate share there
        (see :meth:`gate_share`; open at ``gate``); None where the prior does not predict it."""
        found = self.at_step(trial, trials, step, direction)
        if found is None:
            return None
        view, own = found
        if own is None:
            return None
        fields = self.record_fields(own)
        share = None
        if judge:
            share = self.gate_share(view, needed=needed, n_resamples=n_resamples, seed=seed)
            # A gate not judged yet (too few completed trials) writes nothing: it is shut, but
            # no share of resamples was measured.
            if share is not None:
                fields.update({"prior_gate_share": share, "prior_gate_open": share >= gate})
        return PriorAtStep(view, own, share, fields)

    def record_fields(self, prediction: Any) -> dict[str, Any]:
        """The prior's fields of a decision record for one prediction."""
        return {
            "prior_quantile": float(prediction.quantile),
            "prior_top10": float(prediction.top_probability),
            "prior_inputs": str(prediction.inputs),
            "prior_model_step": int(prediction.model_step),
            "prior_digest": self.digest,
        }

    def predict_candidates(
        self,
        params: Sequence[Mapping[str, Any]],
        spectra: Sequence[np.ndarray | None] | None = None,
        dims: Sequence[int | None] | None = None,
    ) -> list[PriorPrediction | None]:
        """Step-0 predictions of candidates: those with a spectrum (``spectra[i]`` not None)
        from their parameters and spectrum in one batch, the others from their parameters in
        another (``spectra=None``: every one from its parameters)."""
        if spectra is None:
            return list(self.prior.predict_candidates(list(params)))
        out: list[PriorPrediction | None] = [None] * len(params)
        with_spectrum = [i for i, s in enumerate(spectra) if s is not None]
        without = [i for i, s in enumerate(spectra) if s is None]
        if with_spectrum:
            got = self.prior.predict_candidates(
                [params[i] for i in with_spectrum],
                [spectra[i] for i in with_spectrum],
                [None if dims is None else dims[i] for i in with_spectrum],
            )
            for i, pred in zip(with_spectrum, got, strict=True):
                out[i] = pred
        if without:
            got = self.prior.predict_candidates([params[i] for i in without])
            for i, pred in zip(without, got, strict=True):
                out[i] = pred
        return out

    def rank_correlation_at_init(
        self,
        study_id: int,
        completed: Sequence[FrozenTrial],
        direction: Any,
        with_spectra: bool,
    ) -> tuple[float, int]:
        """Spearman of the prior's step-0 predicted quantiles of ``completed`` (from the inputs
        a candidate has: the parameters, and with ``with_spectra`` the spectrum stored at step
        0 where there is one) with their final values.

        Returns:
            The correlation (NaN where undefined) and the number of trials it was measured
            on (those the prior predicts). Cached per study and set of completed trials.
        """
        key = (study_id, tuple(t.number for t in completed))
        found, value = self._rank_corrs.lookup(key)
        if found:
            assert value is not None
            return value
        params = [dict(t.params) for t in completed]
        spectra: list[np.ndarray | None] | None = None
        dims: list[int | None] | None = None
        if with_spectra:
            spectra, dims = [], []
            for trial in completed:
                stored = spectrum_at(trial, 0)
                if stored is None or stored[0] != 0:
                    spectra.append(None)
                    dims.append(None)
                else:
                    spectra.append(stored[1])
                    dims.append(spectrum_dim(trial, 0) or len(stored[1]))
        predicted, final = [], []
        for trial, pred in zip(
            completed, self.predict_candidates(params, spectra, dims), strict=True
        ):
            if pred is not None and math.isfinite(pred.quantile):
                predicted.append(pred.quantile)
                final.append(float(trial.value))  # type: ignore[arg-type]
        sign = direction_sign(direction)
        corr = rank_correlation(np.array(predicted), sign * np.array(final))
        return self._rank_corrs.put(key, (corr, len(predicted)))
