"""Trials whose final value is a known function of their spectrum, for the pruner, storage and
reader tests and the pruner worker."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import optuna

from optuna_lyap.pruners import report_spectrum

# Small, fast AeLLE models: the tests check decisions, not model quality.
FAST_AELLE: dict[str, Any] = {
    "n_models": 2,
    "max_steps": 120,
    "hidden_dim": 16,
    "head_hidden_dim": 8,
}


def spectrum_for(
    quality: float, dim: int = 16, rng: np.random.Generator | None = None
) -> np.ndarray:
    """A descending spectrum whose level encodes ``quality`` in [0, 1]."""
    noise = 0.0 if rng is None else rng.normal(0.0, 0.02, dim)
    return np.sort(-np.linspace(0.0, 2.0, dim) + 2.0 * quality - 1.0 + noise)[::-1]


def chance(rng: np.random.Generator) -> float:
    """An intermediate value that says nothing about the final one (a memory task at chance)."""
    return float(0.5 + rng.normal(0.0, 0.01))


def final_value(quality: float, direction: str) -> float:
    return quality if direction == "maximize" else 1.0 - quality


def add_completed(
    study: optuna.Study,
    qualities: Iterable[float],
    *,
    seed: int = 0,
    steps: Sequence[int] = (0, 1, 2),
    spectrum_steps: Sequence[int] = (0, 1),
    curve_is_final: bool = False,
    diverged: Sequence[int] = (),
    params: Sequence[float] | None = None,
) -> None:
    """Run trials to completion with ask/tell, reporting spectra and intermediate values.

    ``params`` gives each trial a float param ``x`` in [0, 1] (equal values: one configuration
    trained again); None leaves the trials without params.

    ``curve_is_final`` makes every intermediate value equal the final value (the curve alone
    ranks perfectly); else intermediate values are at chance. Trials whose position is in
    ``diverged`` report NaN spectra.
    """
    rng = np.random.default_rng(seed)
    direction = (
        "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
    )
    for i, q in enumerate(qualities):
        if params is not None:
            study.enqueue_trial({"x": params[i]})
        trial = study.ask()
        if params is not None:
            trial.suggest_float("x", 0.0, 1.0)
        final = final_value(q, direction)
        for step in steps:
            if step in spectrum_steps:
                spectrum = spectrum_for(q, rng=rng)
                if i in diverged:
                    spectrum = np.full_like(spectrum, math.nan)
                report_spectrum(trial, spectrum, step)
            trial.report(final if curve_is_final else chance(rng), step)
        study.tell(trial, final)


def start_running(
    study: optuna.Study,
    quality: float,
    step: int = 1,
    *,
    seed: int = 1,
    value: float | None = None,
) -> optuna.Trial:
    """Ask a trial and report its spectrum and a chance-level value at steps 0..step."""
    rng = np.random.default_rng(seed)
    trial = study.ask()
    for s in range(step + 1):
        report_spectrum(trial, spectrum_for(quality, rng=rng), s)
        trial.report(chance(rng) if value is None else value, s)
    return trial
