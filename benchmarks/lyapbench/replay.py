"""The one replay loop: an HPO study on a recorded table instead of training again.

A replayed trial asks the sampler for a configuration (:class:`ConfigurationSpace`: one
categorical per axis on a grid, the nearest recorded configuration on a random design), then
reads its recorded epochs one by one: it stores the spectrum on steps 0 and 1 (as
``LyapunovMonitor`` would), reports the objective (:func:`objective_of`), and stops when the
pruner says so. Epoch ``e`` costs one epoch; step 0 (the untrained network) costs none. A run
ends when its epoch budget is spent.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial

import optuna_lyap
from benchmarks.lyapbench.tables import ConfigurationSpace, objective_of, recorded_spectrum

__all__ = ["SPECTRUM_STEPS", "Replayed", "TableSampler", "TimedPruner", "replay"]

# The steps at which a replayed trial stores its recorded spectrum.
SPECTRUM_STEPS = (0, 1)


class TimedPruner(BasePruner):
    """Any pruner, with the CPU seconds its ``prune`` calls take added up in ``seconds``."""

    def __init__(self, pruner: BasePruner) -> None:
        self.pruner = pruner
        self.seconds = 0.0

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        started = time.process_time()
        try:
            return self.pruner.prune(study, trial)
        finally:
            self.seconds += time.process_time() - started


def _never_built(params: Any) -> Any:
    raise AssertionError("the replay reads spectra from the table")


class TableSampler(optuna_lyap.LyapunovSampler):
    """``LyapunovSampler`` whose candidates' spectra at initialisation come from the table.

    The recorded step-0 spectrum of the configuration a candidate would train is the one of the
    very network the replay then "trains", so this is what the sampler would compute, without
    rebuilding it. The spectrum is returned with its state dimension ``D`` (corpus tables keep
    only the top exponents of a larger ``D``), which ``LyapunovSampler`` reads from a returned
    spectrum's ``dim``.

    Args:
        base: The sampler whose proposals are screened.
        table: The replayed table.
        seed: The sampler's seed.
        finite_only: Drop a recorded spectrum's non-finite exponents where some are finite (the
            held-out replays); without it (the grid replays) such a candidate is skipped.
        **kwargs: Any other ``LyapunovSampler`` argument (``prior``, ``search_space``, ...).
    """

    def __init__(
        self,
        base: BaseSampler,
        table: dict[str, Any],
        seed: int,
        finite_only: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            base,
            model_factory=_never_built,
            probe_inputs=torch.zeros(1, 1, 1),
            seed=seed,
            **kwargs,
        )
        self._space = ConfigurationSpace(table)
        self._table = table
        self._finite_only = finite_only

    def _candidate_spectrum(self, params: Any, number: int, index: int) -> Any:
        i = self._space.index(dict(params))
        return recorded_spectrum(self._table, i, 0, self._finite_only)


@dataclass
class Replayed:
    """One replayed study.

    Attributes:
        study: The finished study.
        trace: Per finished trial, in order: the cumulative epochs at its end and its final
            value (None when pruned).
        indices: Per trial number, the recorded configuration it trained.
        pruner_cpu_seconds: CPU seconds of the pruner's ``prune`` calls (None for Hyperband,
            which must see itself as the study's pruner).
        cpu_seconds: CPU seconds of ``study.optimize``.
    """

    study: optuna.Study
    trace: list[tuple[int, float | None]]
    indices: dict[int, int]
    pruner_cpu_seconds: float | None
    cpu_seconds: float


def replay(
    table: dict[str, Any],
    *,
    sampler: BaseSampler,
    pruner: BasePruner,
    budget: int,
    study_name: str,
    on_trial: Callable[[optuna.Trial, dict[str, Any], int], None] | None = None,
    finite_spectra: bool = True,
) -> Replayed:
    """Replay one HPO study on ``table`` until ``budget`` epochs are spent.

    Args:
        table: The recorded table.
        sampler: The study's sampler.
        pruner: The study's pruner (timed, except ``HyperbandPruner``).
        budget: Epochs the study may spend; the trial that crosses it finishes.
        study_name: The study's name (``HyperbandPruner`` assigns brackets by hashing it).
        on_trial: Called with the trial, the table and the recorded configuration's index
            once the configuration is chosen (the held-out replays store the network there).
        finite_spectra: Store only a recorded spectrum's finite exponents (see
            :func:`~benchmarks.lyapbench.tables.recorded_spectrum`).

    Returns:
        The :class:`Replayed` study.
    """
    _, values, direction = objective_of(table)
    n_epochs = values.shape[1] - 1
    space = ConfigurationSpace(table)
    spent = 0
    trace: list[tuple[int, float | None]] = []
    indices: dict[int, int] = {}

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        i = space.suggest(trial)
        indices[trial.number] = i
        if on_trial is not None:
            on_trial(trial, table, i)
        for step in range(n_epochs + 1):
            if step > 0:
                spent += 1
            trial.set_user_attr("epochs_trained", step)
            if step in SPECTRUM_STEPS:
                spectrum = recorded_spectrum(table, i, step, finite_spectra)
                optuna_lyap.report_spectrum(trial, spectrum, step)
            trial.report(float(values[i, step]), step)
            if trial.should_prune():
                trace.append((spent, None))
                raise optuna.TrialPruned()
        trace.append((spent, float(values[i, -1])))
        return float(values[i, -1])

    def stop_at_budget(study: optuna.Study, trial: FrozenTrial) -> None:
        if spent >= budget:
            study.stop()

    timed = None if isinstance(pruner, optuna.pruners.HyperbandPruner) else TimedPruner(pruner)
    study = optuna.create_study(
        study_name=study_name,
        direction=direction,
        sampler=sampler,
        pruner=pruner if timed is None else timed,
    )
    started = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, callbacks=[stop_at_budget], n_trials=100 * budget)
    return Replayed(
        study=study,
        trace=trace,
        indices=indices,
        pruner_cpu_seconds=None if timed is None else timed.seconds,
        cpu_seconds=time.process_time() - started,
    )
