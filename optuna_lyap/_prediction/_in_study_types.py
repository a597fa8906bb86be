"""The in-study model's small types: what a consumer fills in (:class:`ConsumerDefaults`), what
the model gives for a judged trial at a step (a fitted model, a fit skipped because no fit could
open the gate, and the record fields either writes), and its input names."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from optuna_lyap._prediction._core import SPECTRUM, FittedPredictor
from optuna_lyap._prediction._inputs import INPUTS


@dataclass(frozen=True)
class FittedModel:
    """The predictor fitted for one step, where its rows are read, and its cache key."""

    key: tuple[Any, ...]
    fitted: FittedPredictor
    spectrum_step: int | None

    @property
    def gate_share(self) -> float:
        return self.fitted.evidence.get("gate_share", 0.0)

    @property
    def spread(self) -> float:
        """Robust spread of the out-of-sample residuals (target units; NaN where unknown)."""
        return self.fitted.evidence.get("residual_spread", math.nan)

    def record_fields(self, own: tuple[float, float], gate: float) -> dict[str, Any]:
        """The model's fields of a decision record, for the judged trial's prediction ``own``
        (its mean and ensemble spread)."""
        model = self
        fitted = model.fitted
        predicted, ensemble_std = own
        spread = model.spread if math.isfinite(model.spread) else 0.0
        return {
            "predicted": predicted,
            "predicted_std": math.sqrt(ensemble_std**2 + spread**2),
            "inputs": "+".join(fitted.chosen.inputs),
            "pretrained": fitted.chosen.pretrained,
            "rank_corr": fitted.chosen.rank_corr,
            "raw_rank_corr": fitted.raw_rank_corr,
            "gate_share": model.gate_share,
            "gate_open": model.gate_share >= gate,
            "n_train": fitted.n_train,
            "spectrum_step": model.spectrum_step,
        }


@dataclass(frozen=True)
class SkippedFit:
    """No model fitted for one step, because none could pass the gate: on its training set
    even perfect predictions out-rank the raw value in fewer resamples than the gate asks
    (:func:`~optuna_lyap._prediction._gate.gate_share_bound`), so a fit would change no
    decision."""

    bound: float
    n_train: int

    def record_fields(self, gate: float) -> dict[str, Any]:
        return {
            "gate_share_bound": self.bound,
            "gate": gate,
            "gate_open": False,
            "n_train": self.n_train,
        }


@dataclass(frozen=True)
class ModelAtStep:
    """The model's view of a judged trial at a step: the model (None where no fit could open
    the gate), the trial's predicted final value (NaN then), and the record's model fields
    (see ``optuna_lyap._storage.DecisionRecord``)."""

    model: FittedModel | None
    predicted: float
    fields: dict[str, Any]


@dataclass(frozen=True)
class ConsumerDefaults:
    """What a consumer fills in where an :class:`InStudyModel` argument was left at None, and
    how it stores its fits.

    Attributes:
        owner: The consumer's class name; part of every stored fit's digest.
        inputs: The inputs offered by default.
        allowed: The inputs the consumer can read for a trial it predicts (None: any
            registered one).
        aelle_params: The AeLLE settings by default.
        refit_growth: The refit schedule's growth by default.
        seed: The seed by default.
        n_startup_trials: Completed trials before the first fit, by default.
        startup_sets_min_rows: Whether fewer labelled rows than ``max(n_startup_trials, 3)``
            leave only a pretrained model as a candidate (else fewer than 3), and start the
            refit schedule there.
        cache_size: Fits kept in the process.
        gate_evidence: Whether each fit carries the gate's evidence (the pruner's gate).
        spectra_only_pretrained: Whether a pretrained AeLLE must read spectra alone.
    """

    owner: str
    inputs: tuple[str, ...]
    aelle_params: Mapping[str, Any]
    refit_growth: float
    seed: int
    n_startup_trials: int
    allowed: tuple[str, ...] | None = None
    startup_sets_min_rows: bool = False
    cache_size: int = 16
    gate_evidence: bool = False
    spectra_only_pretrained: bool = False


def registered_inputs(inputs: Iterable[str]) -> tuple[str, ...]:
    """``inputs`` in the registry's order (the order feature blocks are concatenated)."""
    if isinstance(inputs, str):
        inputs = (inputs,)
    given = tuple(inputs)
    unknown = [name for name in given if name not in INPUTS]
    if unknown:
        raise ValueError(
            f"`inputs` must name registered inputs ({', '.join(INPUTS)}), but got {given!r}."
        )
    if not given:
        raise ValueError(f"`inputs` must name at least one input, but got {given!r}.")
    return tuple(name for name in INPUTS if name in given)


def required_inputs(spectrum_step: int | None) -> tuple[str, ...]:
    """The inputs every row at a trial's step needs, fitted or predicted: the curve, and the
    spectrum when one is read."""
    return ("curve",) if spectrum_step is None else (SPECTRUM, "curve")
