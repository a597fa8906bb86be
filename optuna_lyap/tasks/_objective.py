"""An Optuna objective that trains a built-in task and reads its spectrum as it goes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from optuna_lyap._checks import check_optional_int, check_steps
from optuna_lyap._monitor import LyapunovMonitor
from optuna_lyap._storage import USER_ATTR_EPOCHS
from optuna_lyap._threads import limited_threads
from optuna_lyap.tasks._base import SequenceTask

if TYPE_CHECKING:
    import optuna


def trial_seed(seed: int | None, number: int) -> int:
    """The model seed of trial ``number`` of a study run with ``seed`` (``None`` reads as 0).

    Example:
        >>> from optuna_lyap.tasks import trial_seed
        >>> trial_seed(0, 3) == trial_seed(None, 3) != trial_seed(0, 4)
        True
    """
    state = np.random.SeedSequence([0 if seed is None else seed, number]).generate_state(1)
    return int(state[0])


def make_objective(
    task: SequenceTask,
    *,
    n_epochs: int | None = None,
    spectrum_steps: Sequence[int] = (0, 1),
    k: int | None = None,
    device: str = "cpu",
    seed: int | None = None,
) -> Callable[[optuna.Trial], float]:
    """An objective for ``study.optimize`` that trains ``task``'s models under a Lyapunov monitor.

    Each trial draws its parameters with ``task.suggest_params``, builds the model (seeded by
    ``seed`` and the trial number, so a rerun trains the same network), then, for ``step`` in
    ``0 .. n_epochs``, trains one epoch (not at step 0, which scores the network at its
    initialisation), evaluates the validation metric and hands it to
    ``optuna_lyap.LyapunovMonitor.step``: that reports the value, stores the spectrum on the
    ``spectrum_steps`` and raises ``optuna.TrialPruned`` when the study's pruner says so. The
    pruner is not asked at the last step: the whole budget is spent by then, and the trial
    completes with its final value. The trial's user attribute ``epochs_trained`` counts the
    epochs spent so far. Training, evaluation and the spectrum run on the package's torch
    thread setting (one thread unless ``optuna_lyap.use_threads`` or
    ``OPTUNA_LYAP_NUM_THREADS`` says otherwise): the built-in models are small.

    Args:
        task: A built-in task (see ``get_task``).
        n_epochs: Epochs of full training (``None``: ``task.n_epochs``).
        spectrum_steps: Steps at which the spectrum is computed and stored.
        k: Number of exponents (``None``: the full spectrum).
        device: Where models train (``"cpu"``, ``"cuda"``, ...); data stay on the CPU.
        seed: Study-level seed of the model initialisations and minibatch orders.

    Returns:
        ``objective(trial) -> float``: the validation metric after the last epoch.

    Raises:
        InvalidParameterError: ``n_epochs`` is not None or an integer >= 0, ``spectrum_steps``
            is not an iterable of non-negative integers, or ``k`` is not None or an integer
            >= 1.

    Example:
        >>> import optuna
        >>> from optuna_lyap.tasks import get_task, make_objective
        >>> task = get_task("adding", length=20, n_train=64, n_val=32)
        >>> study = optuna.create_study(direction=task.direction)
        >>> study.optimize(make_objective(task, n_epochs=1, k=4, seed=0), n_trials=1)
        >>> trial = study.trials[0]
        >>> sorted(trial.intermediate_values), trial.user_attrs["epochs_trained"]
        ([0, 1], 1)
    """
    given = check_optional_int("n_epochs", n_epochs, 0)
    total = task.n_epochs if given is None else given
    steps = tuple(sorted(check_steps("spectrum_steps", spectrum_steps)))
    check_optional_int("k", k, 1)

    @limited_threads()
    def objective(trial: optuna.Trial) -> float:
        params = task.suggest_params(trial)
        model = task.build_model(params, seed=trial_seed(seed, trial.number)).to(device)
        optimizer = task.make_optimizer(model, params)
        # The probe closes over this trial's model so that embedded tasks see its embedding,
        # whichever module the monitor passes along.
        monitor = LyapunovMonitor(
            trial,
            lambda _: task.probe_inputs(model),
            steps=steps,
            spectrum_kwargs={"k": k},
            optimizer=optimizer,
        )
        value = task.worst_value
        for step in range(total + 1):
            if step > 0:
                task.train_epoch(model, optimizer)
            trial.set_user_attr(USER_ATTR_EPOCHS, step)
            value = task.evaluate(model)
            monitor.step(model, value, step, prune=step < total)
        return value

    return objective
