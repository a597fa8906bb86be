"""``optuna-lyap fit``: build a prior bundle from earlier studies.

Each study contributes its COMPLETE trials as rows: the inputs the prior reads (the
hyperparameters as ``network_of`` reads them, the spectrum at a step cut to the bundle's top
fraction, the learning curve at that step ranked among the study's trials that reported
there) and the target, the final value's quantile within its own study (1 = best), so studies
of different tasks, metrics and directions mix. One model is fitted per (step, input groups)
of ``INPUT_SETS`` that enough rows support (``MIN_ROWS``), as the shipped bundle has.

Warm start (``on_shipped``): the shipped bundle's models are kept for every (step, groups) the
studies cannot train; for the others the target is shrunk toward the shipped model's
prediction, ``alpha * own + (1 - alpha) * shipped`` with ``alpha = n / (n + pseudo_count)``
(``n`` the rows). With few rows the shipped prior dominates; with many, the studies do. This
is chosen over fine-tuning the shipped weights because it needs nothing from the model but its
predictions (the bundle's AeLLE is refitted from scratch, deterministic given the seed), and
the result is an ordinary bundle model.

Notation: ``n`` rows (completed trials), ``s`` the step a model reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._prediction._prior import network_of
from optuna_lyap._storage import spectrum_at, spectrum_dim
from optuna_lyap.aelle._prior import (
    CURVE_NAMES,
    INPUT_SETS,
    CrossTaskPrior,
    NetworkDescription,
    PriorBundle,
    PriorInputs,
    final_quantile,
    hyperparameter_features,
    study_ranks,
    study_zscores,
    top_fraction,
)

#: Rows (over all studies) a model needs before it is fitted.
MIN_ROWS = 12
#: Rows worth as much as the shipped model in a warm start (``alpha = n / (n + 50)``): a
#: typical study of 50 completed trials weighs half.
PSEUDO_COUNT = 50.0


@dataclass
class StudyRows:
    """One study's rows at one step.

    Attributes:
        inputs: ``n`` rows of all three groups (NaN where unknown).
        target: ``n`` final quantiles within the study.
        groups: ``n`` sets of the groups each row has.
    """

    inputs: PriorInputs
    target: np.ndarray
    groups: list[frozenset[str]]


def _value(trial: FrozenTrial, step: int) -> float:
    value = trial.intermediate_values.get(step)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _curve(trials: Sequence[FrozenTrial], step: int, direction: str) -> np.ndarray:
    """``len(trials) x 4`` curve features at ``step`` ranked among ``trials``."""
    values = np.array([_value(t, step) for t in trials])
    ranks = study_ranks(values, direction)  # type: ignore[arg-type]
    z = study_zscores(values, direction)  # type: ignore[arg-type]
    change = np.zeros(len(trials))
    before = [s for t in trials for s in t.intermediate_values if s < step]
    if before:
        previous = np.array([_value(t, max(before)) for t in trials])
        change = ranks - study_ranks(previous, direction)  # type: ignore[arg-type]
    loss_rank = np.full(len(trials), np.nan)
    return np.column_stack([ranks, z, change, loss_rank])


def study_rows(study: optuna.Study, step: int, fraction: float) -> StudyRows:
    """The rows of ``study``'s completed trials at ``step`` (see the module docstring).

    Args:
        study: A single-objective study.
        step: The step whose spectrum (latest at or before it) and curve are read.
        fraction: Share of each spectrum kept (the bundle's ``spectrum_fraction``).
    """
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    direction = "maximize" if maximize else "minimize"
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    completed = [
        t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
        and math.isfinite(t.value)
    ]  # fmt: skip
    reporting = [t for t in trials if math.isfinite(_value(t, step))]
    curve_of: dict[int, np.ndarray] = {}
    if reporting:
        for trial, row in zip(reporting, _curve(reporting, step, direction), strict=True):
            curve_of[trial.number] = row
    n = len(completed)
    target = final_quantile(np.array([t.value for t in completed], dtype=float), direction)
    networks = [network_of(t) for t in completed]
    hyperparameters = hyperparameter_features(
        [net if net is not None else NetworkDescription(None, None) for net in networks]
    )
    spectra: list[np.ndarray] = []
    dims = np.ones(n, dtype=np.int64)
    curve = np.full((n, len(CURVE_NAMES)), np.nan)
    groups: list[frozenset[str]] = []
    for i, trial in enumerate(completed):
        have = set()
        if networks[i] is not None:
            have.add("hyperparameters")
        found = spectrum_at(trial, step)
        cut = None
        if found is not None and np.isfinite(found[1]).any():
            dim = spectrum_dim(trial, found[0]) or int(found[1].size)
            try:
                cut = top_fraction(found[1], dim, fraction)
                dims[i] = dim
            except ValueError:
                cut = None
        if cut is not None:
            have.add("spectrum")
            spectra.append(cut)
        else:
            spectra.append(np.zeros(0))
        if trial.number in curve_of:
            curve[i] = curve_of[trial.number]
            have.add("curve")
        groups.append(frozenset(have))
    return StudyRows(PriorInputs(hyperparameters, spectra, dims, curve), target, groups)


def spectrum_steps(studies: Sequence[optuna.Study]) -> list[int]:
    """Steps at which some completed trial of ``studies`` stored a spectrum, and step 0."""
    from optuna_lyap._storage import load_spectra

    steps = {0}
    for study in studies:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            steps.update(load_spectra(trial))
    return sorted(steps)


def fit_bundle(
    studies: Sequence[optuna.Study],
    *,
    steps: Sequence[int] | None = None,
    shipped: PriorBundle | None = None,
    pseudo_count: float = PSEUDO_COUNT,
    seed: int = 0,
    aelle_params: Mapping[str, Any] | None = None,
    info: Mapping[str, Any] | None = None,
    progress: Any = None,
) -> PriorBundle:
    """A prior bundle fitted on ``studies``' completed trials.

    Args:
        studies: Single-objective studies (any tasks, metrics, directions).
        steps: Model steps; None: step 0 and every step with a stored spectrum.
        shipped: Warm start from this bundle (see the module docstring); None: the studies
            alone.
        pseudo_count: The warm start's ``alpha = n / (n + pseudo_count)``; positive.
        seed: Seeds every model fit.
        aelle_params: Extra ``AeLLE`` parameters of every model.
        info: Provenance stored in the bundle (merged with the row counts).
        progress: ``callable(str)`` told about each model; None: silent.

    Returns:
        The bundle: one model per (step, groups) with at least ``MIN_ROWS`` rows, plus with
        ``shipped`` its models for the keys not fitted.

    Raises:
        ValueError: A multi-objective study, a non-positive ``pseudo_count``, or no
            (step, groups) with ``MIN_ROWS`` rows (and no ``shipped``).
    """
    if not pseudo_count > 0:
        raise ValueError(f"pseudo_count must be positive but got {pseudo_count=}.")
    for study in studies:
        if len(study.directions) != 1:
            raise ValueError(
                f"study {study.study_name!r} has {len(study.directions)} objectives; a prior "
                "is fitted on single-objective studies."
            )
    fraction = shipped.spectrum_fraction if shipped is not None else 0.25
    steps = spectrum_steps(studies) if steps is None else sorted(set(steps))
    models: dict[tuple[int, tuple[str, ...]], CrossTaskPrior] = {}
    counts: dict[str, int] = {}
    for step in steps:
        parts = [study_rows(study, step, fraction) for study in studies]
        rows = PriorInputs.concatenate([p.inputs for p in parts])
        target = np.concatenate([p.target for p in parts])
        groups = [g for p in parts for g in p.groups]
        for inputs in INPUT_SETS:
            mask = np.array([set(inputs) <= g for g in groups], dtype=bool)
            n = int(mask.sum())
            if n < MIN_ROWS:
                continue
            subset, y = rows.subset(mask), target[mask]
            if shipped is not None:
                reference = shipped.models.get((step, inputs)) or shipped.select(step, set(inputs))
                if reference is not None:
                    alpha = n / (n + pseudo_count)
                    y = alpha * y + (1 - alpha) * np.clip(reference.predict(subset), 0, 1)
            if progress is not None:
                progress(f"fitting step {step} on {'+'.join(inputs)}: {n} rows")
            prior = CrossTaskPrior(
                inputs=inputs, model="aelle", seed=seed, aelle_params=aelle_params
            ).fit(subset, y)
            models[(step, inputs)] = prior
            counts[f"{step}:{'+'.join(inputs)}"] = n
    if shipped is not None:
        for key, model in shipped.models.items():
            models.setdefault(key, model)
    if not models:
        raise ValueError(
            f"no step and input set has {MIN_ROWS} completed trials with those inputs in "
            f"{[s.study_name for s in studies]} (steps read: {steps})"
        )
    provenance = {
        **dict(info or {}),
        "rows": counts,
        "warm_start": None if shipped is None else {"pseudo_count": pseudo_count},
    }
    return PriorBundle(models, provenance, spectrum_fraction=fraction)
