"""What a replayed trial costs: epochs, and seconds on the machine that recorded the table.

Every epoch a trial trains counts one (step 0 none). Its seconds are the recorded training and
evaluation seconds of those epochs, plus the recorded spectrum seconds at the steps its method
computes a spectrum (``spectrum_steps``; with our pruner's ``(0, 1)`` also the evaluation at
step 0, a curve feature), plus, for every trial our sampler screened with spectra,
``N_CANDIDATES`` spectra at initialisation at the table's mean step-0 spectrum time (the chosen
candidate's included, so with our pruner that one is paid twice).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from benchmarks.lyapbench.methods import GRID_OURS, METHODS, N_CANDIDATES, SPECTRUM_STEPS

__all__ = [
    "charged_spectrum_steps",
    "grid_trial_seconds",
    "heldout_trial_seconds",
    "screened_with_spectra",
    "trial_seconds",
    "training_seconds",
]


def trial_seconds(
    table: dict[str, Any],
    trials: Iterable[tuple[int, int, bool]],
    spectrum_steps: tuple[int, ...],
) -> np.ndarray:
    """Seconds of each finished trial, given as ``(index, stop, screened)``.

    Args:
        table: The replayed table.
        trials: Per finished trial: its recorded configuration, the step it was pruned at
            (``-1``: completed) and whether our sampler screened candidates with spectra for it.
        spectrum_steps: The steps at which the trial computes a spectrum.

    Returns:
        One float per trial.
    """
    epoch = np.nan_to_num(table["train_seconds"] + table["eval_seconds"])  # column 0 unused
    spectrum = np.nan_to_num(table["spectrum_seconds"])
    n_epochs = epoch.shape[1] - 1
    screen_cost = N_CANDIDATES * float(spectrum[:, 0].mean())
    out = []
    for i, stop, screened in trials:
        last = n_epochs if stop == -1 else stop
        cost = float(epoch[i, 1 : last + 1].sum())
        cost += sum(float(spectrum[i, step]) for step in spectrum_steps if step <= last)
        if tuple(spectrum_steps) == SPECTRUM_STEPS:
            cost += float(np.nan_to_num(table["eval_seconds"][i, 0]))
        if screened:
            cost += screen_cost
        out.append(cost)
    return np.array(out)


def charged_spectrum_steps(method: str, sampler: str) -> tuple[int, ...]:
    """The steps at which a trial of grid ``method`` (with ``sampler``) computes a spectrum:
    ``(0, 1)`` for our pruners, ``(0,)`` for our sampler's labels alone or the oracle at
    initialisation, ``()`` otherwise."""
    base = method.split("@")[0]
    if base in GRID_OURS:
        return SPECTRUM_STEPS
    if sampler == "lyapunov" or base == "oracle_init":
        return (0,)
    return ()


def grid_trial_seconds(
    table: dict[str, Any], run: dict[str, Any], spectrum_steps: tuple[int, ...], screens: bool
) -> np.ndarray:
    """:func:`trial_seconds` of a grid run (trials stored as ``[i, stop, rule, screened]``);
    with ``screens`` (our sampler), each trial it screened pays the candidates' spectra."""
    trials = [(r[0], r[1], screens and bool(r[3])) for r in run["trials"]]
    return trial_seconds(table, trials, spectrum_steps)


def screened_with_spectra(trial: dict[str, Any]) -> bool:
    """Whether our sampler screened this held-out trial's candidates with their spectra."""
    screen = trial.get("screen", {})
    if not screen:
        return False
    inputs = str(screen.get("lyap_screen_inputs", "spectrum"))
    return "spectrum" in inputs


def heldout_trial_seconds(table: dict[str, Any], method: str, run: dict[str, Any]) -> np.ndarray:
    """:func:`trial_seconds` of a held-out run of ``method`` (trials stored as dicts)."""
    m = METHODS[method]
    steps = SPECTRUM_STEPS if m.pruner_spectra else ()
    trials = [(t["i"], t["stop"], m.screens and screened_with_spectra(t)) for t in run["trials"]]
    return trial_seconds(table, trials, steps)


def training_seconds(table: dict[str, Any], run: dict[str, Any]) -> np.ndarray:
    """Recorded training and evaluation seconds of the epochs each finished grid trial trained."""
    epoch = table["train_seconds"] + table["eval_seconds"]
    n_epochs = epoch.shape[1] - 1
    return np.array(
        [
            float(epoch[i, 1 : (n_epochs if stop == -1 else stop) + 1].sum())
            for i, stop, *_ in run["trials"]
        ]
    )
