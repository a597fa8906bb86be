"""``fit_prior``: build a prior bundle from earlier studies (what ``optuna-lyap fit`` calls).

Each study contributes its COMPLETE trials as rows: the inputs the prior reads (the
hyperparameters as ``network_of`` reads them, the spectrum at a step cut to the bundle's top
fraction, the learning curve at that step ranked among the study's trials that reported
there, read by the same ``_curve`` as ``TrialPrior``) and the target, the final value's
quantile within its own study (1 = best), so studies of different tasks, metrics and
directions mix. Final values become targets by the package's one rule
(:func:`~._reader.final_targets`: an infinite value, a diverged run, counts as the study's
worst finite value). One model is fitted per (step, input groups) of ``INPUT_SETS`` that
enough rows support (``MIN_ROWS``), as the shipped bundle has.

Warm start (``on_shipped``): the shipped bundle's models are kept for every (step, groups) the
studies cannot train. For the others a model is fitted on the studies' rows with the target
shrunk toward the shipped model's prediction, ``alpha * own + (1 - alpha) * shipped`` with
``alpha = n / (n + pseudo_count)`` (``n`` the rows): with few rows the shipped prior dominates,
with many the studies do. It replaces the shipped model only where its ``CV_FOLDS``-fold
out-of-fold predictions rank the rows' final quantiles better (Spearman) than the shipped
model's predictions do; otherwise the shipped model stays. Shrinkage alone lost to the shipped
prior on some held-out splits (``benchmarks/prior_fit_warm.py``), hence the check. This is
chosen over fine-tuning the shipped weights because it needs nothing from the shipped model but
its predictions (the AeLLE is refitted from scratch, deterministic given the seed), and the
result is an ordinary bundle model.

Notation: ``n`` rows (completed trials), ``s`` the step a model reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._prediction._core import rank_correlation
from optuna_lyap._prediction._prior import _curve, _finite_or_nan, network_of
from optuna_lyap._prediction._reader import trial_targets
from optuna_lyap._storage import spectrum_at, spectrum_dim
from optuna_lyap.aelle._bundle import INPUT_SETS, PriorBundle
from optuna_lyap.aelle._cross_task import CrossTaskPrior
from optuna_lyap.aelle._features import (
    CURVE_NAMES,
    NetworkDescription,
    PriorInputs,
    final_quantile,
    hyperparameter_features,
    top_fraction,
)

#: Rows (over all studies) a model needs before it is fitted.
MIN_ROWS = 12
#: Folds of the warm start's check of a fitted model against the shipped one.
CV_FOLDS = 3
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
    return _finite_or_nan(trial.intermediate_values.get(step))


def study_rows(study: optuna.Study, step: int, fraction: float) -> StudyRows:
    """The rows of ``study``'s completed trials at ``step`` (see the module docstring).

    Args:
        study: A single-objective study.
        step: The step whose spectrum (latest at or before it) and curve are read.
        fraction: Share of each spectrum kept (the bundle's ``spectrum_fraction``).
    """
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    direction: Literal["maximize", "minimize"] = "maximize" if maximize else "minimize"
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    # Final values become targets by the package's one rule (an infinite value counts as the
    # worst finite one); a trial with no label is no row.
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    labels = trial_targets(complete, direction)
    completed = [t for t, y in zip(complete, labels, strict=True) if math.isfinite(y)]
    reporting = [t for t in trials if math.isfinite(_value(t, step))]
    curve_of: dict[int, np.ndarray] = {}
    if reporting:
        for trial, row in zip(reporting, _curve(reporting, step, direction), strict=True):
            curve_of[trial.number] = row
    n = len(completed)
    target = final_quantile(labels[np.isfinite(labels)], direction)
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


@dataclass(frozen=True)
class _Recipe:
    """How one of the prior's models is fitted: its inputs, seed and AeLLE parameters."""

    inputs: tuple[str, ...]
    seed: int
    aelle_params: Mapping[str, Any] | None

    def fit(self, rows: PriorInputs, target: np.ndarray) -> CrossTaskPrior:
        prior = CrossTaskPrior(
            inputs=self.inputs, model="aelle", seed=self.seed, aelle_params=self.aelle_params
        )
        return prior.fit(rows, target)

    def out_of_fold(self, rows: PriorInputs, target: np.ndarray) -> np.ndarray:
        """Predictions of each row by a model fitted without its fold (``CV_FOLDS`` random
        folds, seeded by ``seed``)."""
        n = len(rows)
        folds = np.random.default_rng(self.seed).permutation(n) % CV_FOLDS
        out = np.full(n, np.nan)
        for fold in range(CV_FOLDS):
            held = folds == fold
            if held.all() or not held.any():
                continue
            model = self.fit(rows.subset(~held), target[~held])
            out[held] = model.predict(rows.subset(held))
        return out


def spectrum_steps(studies: Sequence[optuna.Study]) -> list[int]:
    """Steps at which some completed trial of ``studies`` stored a spectrum, and step 0."""
    from optuna_lyap._storage import load_spectra

    steps = {0}
    for study in studies:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            steps.update(load_spectra(trial))
    return sorted(steps)


def fit_prior(
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

    Example:

        .. code-block:: python

            bundle = fit_prior([optuna.load_study(study_name="old", storage=url)])
            bundle.save("mine.prior")  # optuna-lyap run --prior mine.prior

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
    models: dict[tuple[int, Sequence[str]], CrossTaskPrior] = {}
    counts: dict[str, int] = {}
    checks: dict[str, dict[str, Any]] = {}
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
            recipe = _Recipe(inputs, seed, aelle_params)
            if progress is not None:
                progress(f"fitting step {step} on {'+'.join(inputs)}: {n} rows")
            reference = None
            if shipped is not None:
                reference = shipped.models.get((step, inputs)) or shipped.select(step, set(inputs))
            if reference is None:
                models[(step, inputs)] = recipe.fit(subset, y)
                counts[f"{step}:{'+'.join(inputs)}"] = n
                continue
            shipped_pred = np.clip(reference.predict(subset), 0, 1)
            alpha = n / (n + pseudo_count)
            shrunk = alpha * y + (1 - alpha) * shipped_pred
            oof = recipe.out_of_fold(subset, shrunk)
            ours, theirs = rank_correlation(oof, y), rank_correlation(shipped_pred, y)
            label = f"{step}:{'+'.join(inputs)}"
            checks[label] = {
                "rows": n,
                "fitted_cv": ours if math.isfinite(ours) else None,
                "shipped": theirs if math.isfinite(theirs) else None,
            }
            if math.isfinite(ours) and (not math.isfinite(theirs) or ours > theirs):
                models[(step, inputs)] = recipe.fit(subset, shrunk)
                counts[label] = n
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
        "warm_start": None
        if shipped is None
        else {"pseudo_count": pseudo_count, "cv_folds": CV_FOLDS, "checks": checks},
    }
    return PriorBundle(models, provenance, spectrum_fraction=fraction)
