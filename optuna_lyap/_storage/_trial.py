"""What a trial records beside its spectra (its configuration, its network), and a trial read
back as a ``FrozenTrial``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import optuna

from optuna_lyap._checks import InvalidParameterError
from optuna_lyap._storage._keys import CONFIGURATION_ATTR, NETWORK_ATTR

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


def report_configuration(trial: optuna.trial.BaseTrial, key: str) -> None:
    """Name the configuration a running trial trains, where its params do not say it.

    The pruner's and the sampler's in-study models are cross-validated by configuration, and
    their gate counts a configuration once: trials of one configuration are never predicted
    from each other. By default a configuration is the trial's params. Name it when different
    params train the same network (params snapped to a table or a grid, as a tabular
    benchmark does), or when the same params must count as different configurations.

    Args:
        trial: The running :class:`optuna.Trial` (on a :class:`optuna.trial.FixedTrial` this
            does nothing).
        key: A non-empty string; trials with equal keys are one configuration.

    Raises:
        InvalidParameterError: When ``key`` is not a non-empty string (a subclass of
            ``ValueError`` and ``TypeError``).
        TypeError: When ``trial`` is not a running trial.

    Example:
        >>> import optuna
        >>> from optuna_lyap import report_configuration
        >>> def objective(trial):
        ...     hidden = trial.suggest_int("hidden", 8, 64)
        ...     snapped = min(64, 8 * round(hidden / 8))  # the network trained: a grid of sizes
        ...     report_configuration(trial, f"hidden={snapped}")
        ...     return float(snapped)
        >>> study = optuna.create_study()
        >>> study.optimize(objective, n_trials=3)
        >>> report_configuration(study.ask(), "")
        Traceback (most recent call last):
            ...
        optuna_lyap._checks.InvalidParameterError: key must be a non-empty string, but got key=''.
    """
    if not isinstance(key, str) or not key:
        raise InvalidParameterError(f"key must be a non-empty string, but got {key=!r}.")
    if isinstance(trial, optuna.trial.FixedTrial):
        return
    if not isinstance(trial, optuna.Trial):
        raise TypeError(
            f"report_configuration needs a running optuna.Trial, but got {type(trial).__name__}."
        )
    trial.storage.set_trial_system_attr(trial._trial_id, CONFIGURATION_ATTR, key)


def report_network(trial: optuna.trial.BaseTrial, description: Mapping[str, Any]) -> None:
    """Store what the cross-task prior reads about a running trial's network.

    Args:
        trial: The running :class:`optuna.Trial` (on any other trial, such as an
            :class:`optuna.trial.FixedTrial`, this does nothing).
        description: ``NetworkDescription.to_json()``: cell, hidden size, layers,
            initialisation scale, learning rate, recurrent spectral norm (null where unknown).
    """
    if isinstance(trial, optuna.Trial):
        trial.storage.set_trial_system_attr(trial._trial_id, NETWORK_ATTR, dict(description))


def as_frozen_trial(trial: Any) -> FrozenTrial:
    """``trial`` as a :class:`~optuna.trial.FrozenTrial`: a live :class:`optuna.Trial` (as
    ask-and-tell hands it out) is read back from its study's storage, a ``FrozenTrial`` is
    returned as it is.

    Raises:
        TypeError: For anything else, naming both accepted types.
    """
    if isinstance(trial, optuna.trial.FrozenTrial):
        return trial
    if isinstance(trial, optuna.trial.Trial):
        return trial.study._storage.get_trial(trial._trial_id)
    raise TypeError(
        "`trial` must be an optuna.Trial or an optuna.trial.FrozenTrial, but got "
        f"{type(trial).__name__}."
    )
