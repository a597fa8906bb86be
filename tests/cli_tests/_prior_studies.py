"""Small studies with the built-in tasks' parameter names, spectra and curves, for ``fit``."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from optuna_lyap import report_spectrum

SPACE = {
    "cell": CategoricalDistribution(["rnn", "gru", "lstm"]),
    "hidden_size": IntDistribution(8, 64, log=True),
    "init_scale": FloatDistribution(0.3, 3.0, log=True),
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
}


def make_study(
    storage: str, name: str, n_trials: int, seed: int, direction: str, steps: int = 2
) -> None:
    """A study whose final value is best near ``lr = 1e-2`` and ``init_scale = 1``; steps
    ``0 .. steps - 1`` report a noisy curve toward it and a spectrum whose top exponent is
    ``log init_scale``. Built in memory, then copied to ``storage`` in one call."""
    rng = np.random.default_rng(seed)
    memory = optuna.create_study(
        direction=direction, sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    sign = 1.0 if direction == "maximize" else -1.0
    for _ in range(n_trials):
        trial = memory.ask(SPACE)
        p = trial.params
        quality = -abs(np.log10(p["lr"]) + 2) - abs(np.log(p["init_scale"]))
        dim = int(p["hidden_size"]) * (2 if p["cell"] == "lstm" else 1)
        for step in range(steps):
            top = np.log(p["init_scale"]) + 0.05 * step
            report_spectrum(trial, top - np.linspace(0, 1, dim), step)
            trial.report(sign * (quality * step / 2 + rng.normal(0, 0.3)), step)
        memory.tell(trial, sign * (quality + rng.normal(0, 0.1)))
    study = optuna.create_study(storage=storage, study_name=name, direction=direction)
    study.add_trials(memory.trials)
