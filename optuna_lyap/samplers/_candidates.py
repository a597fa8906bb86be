"""The sampler's candidates: drawing them from the base sampler, and measuring each untrained
network's Lyapunov spectrum.

Notation: ``m`` candidate parameter sets per new trial; ``D`` a network's state dimension;
``k`` the exponents computed (``k = D`` for the full spectrum).
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution, _get_single_value
from optuna.samplers import BaseSampler
from optuna.search_space import intersection_search_space
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._prediction._core import SPECTRUM, FittedPredictor, Rows
from optuna_lyap._prediction._prior import PARAM_ALIASES
from optuna_lyap._random import caller_rng_kept
from optuna_lyap._storage import USER_ATTR_SCREEN_BY, as_exponents
from optuna_lyap.lyapunov import lyapunov_spectrum
from optuna_lyap.lyapunov._arguments import recurrent_part
from optuna_lyap.samplers._view import PredictedStudyView

ModelFactory = Callable[..., torch.nn.Module]
ProbeInputs = torch.Tensor | Callable[[Any], torch.Tensor]


def candidate_seed(seed: int, number: int, index: int) -> int:
    """The seed of candidate ``index``'s network for trial ``number`` (a 63-bit int)."""
    state = np.random.SeedSequence([seed, number, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) | (int(state[1]) >> 1)


def _takes_seed(factory: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in parameters


def init_measurement(
    model_factory: ModelFactory,
    params: Mapping[str, Any],
    probe_inputs: ProbeInputs,
    *,
    seed: int,
    spectrum_kwargs: Mapping[str, Any],
) -> tuple[np.ndarray, int]:
    """Build the untrained network for ``params``; its Lyapunov spectrum and state dimension.

    The global random generators (torch's, NumPy's, Python's) are restored afterwards (see
    :func:`optuna_lyap._random.caller_rng_kept`): building candidates never changes the
    user's training.

    Args:
        model_factory: ``model_factory(params)`` (or ``model_factory(params, seed=...)`` when
            it takes a ``seed``) returns an ``nn.RNN``/``nn.GRU``/``nn.LSTM``, a module holding
            exactly one of them, or a built-in cell.
        params: The candidate's parameters.
        probe_inputs: A tensor, or ``callable(model) -> tensor``, laid out as the recurrent
            module expects.
        seed: Seeds the network's initialisation: passed as ``seed=`` when the factory takes
            it; torch's global CPU generator is seeded with it (and restored) either way.
        spectrum_kwargs: Keyword arguments of :func:`~optuna_lyap.lyapunov_spectrum`.

    Returns:
        The ``k`` exponents (float64, nats per step, descending) and the state dimension
        ``D`` they belong to (``k = D`` for the full spectrum).
    """
    with caller_rng_kept():
        torch.random.default_generator.manual_seed(seed)
        if _takes_seed(model_factory):
            model = model_factory(dict(params), seed=seed)
        else:
            model = model_factory(dict(params))
        inputs = probe_inputs if isinstance(probe_inputs, torch.Tensor) else probe_inputs(model)
        spectrum = lyapunov_spectrum(recurrent_part(model), inputs, **spectrum_kwargs)
    return as_exponents(spectrum)


@dataclass(frozen=True)
class Screening:
    """One new trial's screening: what drawing, measuring and choosing its candidates read.

    Attributes:
        base: The base sampler that proposes the candidates.
        study: The study.
        view: The study as the base sampler reads it.
        trial: The new trial.
        base_part: The distributions the base samples relatively.
        screen_part: The distributions screened.
        given: The values of the parameters that are not screened.
    """

    base: BaseSampler
    study: optuna.Study
    view: PredictedStudyView
    trial: FrozenTrial
    base_part: dict[str, BaseDistribution]
    screen_part: dict[str, BaseDistribution]
    given: dict[str, Any]


def draw_candidates(
    screening: Screening, count: int
) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """``count`` proposals of the base sampler, each with the bookkeeping it held (to replay
    the chosen one's, see :meth:`PredictedStudyView.replay`)."""
    base, view, trial = screening.base, screening.view, screening.trial
    base_part, screen_part = screening.base_part, screening.screen_part
    # Optuna hands sample_independent the trial with its current system attrs (what
    # before_trial wrote, e.g. GridSampler's grid id); the trial given here predates them.
    latest = copy.copy(trial)
    latest.system_attrs = dict(screening.study._storage.get_trial_system_attrs(trial._trial_id))
    candidates: list[dict[str, Any]] = []
    held = []
    for _ in range(count):
        held.append(view.hold_bookkeeping())
        params = dict(base.sample_relative(view, trial, base_part)) if base_part else {}
        for name, dist in screen_part.items():
            if name not in params:
                params[name] = base.sample_independent(view, latest, name, dist)
        candidates.append(params)
    view.release_bookkeeping()
    return candidates, held


def measure_candidates(
    spectrum_of: Callable[[Mapping[str, Any], int, int], Any],
    dims_seen: dict[int, int],
    screening: Screening,
    candidates: list[dict[str, Any]],
    first_index: int = 0,
    warn_non_finite: bool = True,
) -> tuple[list[int], list[np.ndarray], list[int]]:
    """The candidates whose spectrum at initialisation is finite, their spectra and ``D``.

    Args:
        spectrum_of: ``spectrum_of(params, trial number, candidate index)``, the sampler's
            ``_candidate_spectrum``: the exponents, or an object with ``exponents`` and ``dim``
            (``D``, as :func:`~optuna_lyap.report_spectrum` takes); it may also record a
            candidate's ``D`` in ``dims_seen``.
        dims_seen: ``{candidate index: D}`` as ``spectrum_of`` records them (default: the
            spectrum's length).
        candidates: The candidates' parameters (the screened part).
        screening: The trial's screening (its ``trial`` and ``given`` are read).
        first_index: The index of ``candidates[0]`` among the trial's candidates.
        warn_non_finite: Whether a non-finite spectrum is skipped with a ``RuntimeWarning``
            (False: silently, the prior then predicts it from its parameters).

    A candidate whose factory or spectrum raises is skipped with a ``RuntimeWarning``.
    """
    trial, given = screening.trial, screening.given
    scored: list[int] = []
    spectra: list[np.ndarray] = []
    dims: list[int] = []
    for i, params in enumerate(candidates):
        try:
            spectrum = spectrum_of(
                {**given, **dict(trial.params), **params}, trial.number, first_index + i
            )
        except Exception as err:
            warnings.warn(
                f"LyapunovSampler skips a candidate of trial {trial.number}: building "
                f"its network or spectrum raised {type(err).__name__}: {err}",
                RuntimeWarning,
                stacklevel=4,
            )
            continue
        if hasattr(spectrum, "exponents"):  # a spectrum that carries its own D
            dims_seen[first_index + i] = int(spectrum.dim)
            spectrum = np.asarray(spectrum.exponents)
        if not np.isfinite(spectrum).all():
            if not warn_non_finite:
                continue
            warnings.warn(
                f"LyapunovSampler skips a candidate of trial {trial.number}: its "
                "spectrum at initialisation is not finite.",
                RuntimeWarning,
                stacklevel=4,
            )
            continue
        scored.append(i)
        spectra.append(spectrum)
        dims.append(int(dims_seen.get(first_index + i, len(spectrum))))
    return scored, spectra, dims


def screen_space(
    study: optuna.Study,
    trial: FrozenTrial,
    search_space: Mapping[str, BaseDistribution] | None,
) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
    """The distributions to screen for ``trial``, and the values the factory is given for the
    others (single-valued distributions and enqueued parameters).

    Args:
        study: The study.
        trial: The new trial.
        search_space: The sampler's ``search_space``; None: the intersection of the finished
            trials' parameters.
    """
    if search_space is not None:
        space = dict(search_space)
    else:
        finished = study._get_trials(
            deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED), use_cache=True
        )
        space = intersection_search_space(finished, include_pruned=True)
    given: dict[str, Any] = {
        name: _get_single_value(dist) for name, dist in space.items() if dist.single()
    }
    fixed = trial.system_attrs.get("fixed_params") or {}
    given.update(fixed)
    screen = {n: d for n, d in space.items() if not d.single() and n not in fixed}
    return screen, given


def best_by_model(
    fitted: FittedPredictor,
    candidates: Sequence[Mapping[str, Any]],
    spectra: list[np.ndarray],
    number: int,
    sign: float,
    kappa: float,
) -> tuple[int, float, float]:
    """The candidate with the best ``sign * predicted + kappa * std`` (an upper confidence
    bound; a non-finite prediction never wins), with its prediction and ``std``.

    Args:
        fitted: The study's model; it reads the spectrum and/or the hyperparameters.
        candidates: The ``m`` scored candidates' parameters.
        spectra: Their spectra at initialisation (empty where the model reads none).
        number: The trial's number.
        sign: +1 when maximising, -1 when minimising.
        kappa: The weight of the standard deviation.

    Returns:
        The index into ``candidates``, its predicted final value and standard deviation.
    """
    inputs = fitted.chosen.inputs
    columns: dict[str, Any] = {}
    if SPECTRUM in inputs:
        columns[SPECTRUM] = spectra
    if "params" in inputs:
        encoder = fitted.encoder
        columns["params"] = np.array([encoder.encode(c) for c in candidates])
    mean, std = fitted.predict(Rows.unlabelled([number] * len(candidates), columns))
    score = np.where(np.isfinite(mean), sign * mean + kappa * std, -np.inf)
    best = int(np.argmax(score))
    return best, float(mean[best]), float(std[best])


def record_screen(
    study: optuna.Study, trial: FrozenTrial, by: str, numbers: Mapping[str, float]
) -> None:
    """Write the screening's user attrs: ``lyap_screen_by`` and the finite ``numbers``."""
    storage, trial_id = study._storage, trial._trial_id
    storage.set_trial_user_attr(trial_id, USER_ATTR_SCREEN_BY, by)
    for key, value in numbers.items():
        if math.isfinite(value):
            storage.set_trial_user_attr(trial_id, key, float(value))


def warn_unreadable(names: frozenset[str], *, with_factory: bool) -> None:
    """The prior reads none of the parameters ``names`` (a ``RuntimeWarning``)."""
    looked_for = ", ".join(alias for aliases in PARAM_ALIASES.values() for alias in aliases)
    spectrum_note = "; its models read no spectrum without hyperparameters" if with_factory else ""
    warnings.warn(
        f"LyapunovSampler's prior predicts nothing for the candidates: it reads the "
        f"hyperparameters from the parameter names {looked_for}, and found none among "
        f"{sorted(names)}{spectrum_note}. Rename the parameters so, or pass prior=None; "
        "until then the base sampler decides.",
        RuntimeWarning,
        stacklevel=6,
    )
