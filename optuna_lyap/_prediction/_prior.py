"""The shipped cross-task prior as Optuna sees it: which trials it reads, and how.

:class:`TrialPrior` wraps a :class:`~optuna_lyap.aelle.PriorBundle` and predicts, for
Optuna trials, the final quantile within their study (in ``(0, 1)``, 1 = best, whatever the
direction) and a calibrated probability of ending in the study's top 10%.

What is read from a trial at ``step``:

* **hyperparameters**: :func:`network_of`: the system attr ``optuna_lyap:network`` that
  :class:`~optuna_lyap.LyapunovMonitor` writes (a JSON object of
  :class:`~optuna_lyap.aelle.NetworkDescription`), else the trial's params under
  common names (:data:`PARAM_ALIASES`); unknown fields are NaN features, which the models read
  as the corpus median.
* **spectrum**: the latest spectrum at or before ``step``
  (:func:`optuna_lyap._storage.spectrum_at`) with its state dimension ``D``, cut to the top
  ``spectrum_fraction`` of the bundle (a quarter), as in training. A spectrum with fewer
  exponents than that quarter of ``D`` (a thin ``k`` too small) counts as unavailable.
* **curve**: among the trials passed in, which all reported a value at ``step``: each value's
  percentile and robust z-score at ``step``, and the change of the percentile since the
  previous reported step (the largest step below ``step`` at which some of the trials
  reported; 0 when none). The validation-loss rank is NaN (read as the corpus median) unless a
  trial carries its validation loss at ``step`` as the user attr ``val_loss:{step}`` (a
  number; Optuna keeps one intermediate value per step, which is the metric). The shipped
  models are trained with that column unknown, so it changes nothing for them.

The bundle's model for a trial is ``PriorBundle.select(step, groups the trial has)``; trials
with neither hyperparameters nor a spectrum get no prediction.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from optuna_lyap._storage import NETWORK_ATTR, VAL_LOSS_ATTR, spectrum_at, spectrum_dim
from optuna_lyap.aelle._bundle import PriorBundle, load_shipped_prior
from optuna_lyap.aelle._cross_task import CrossTaskPrior
from optuna_lyap.aelle._features import (
    CURVE_NAMES,
    NetworkDescription,
    PriorInputs,
    hyperparameter_features,
    study_ranks,
    study_zscores,
    top_fraction,
)

#: Parameter names :func:`network_of` reads, per field, in order of preference.
PARAM_ALIASES: dict[str, tuple[str, ...]] = {
    "cell": ("cell", "cell_type", "rnn_cell", "rnn_type", "rnn"),
    "hidden_size": (
        "hidden_size",
        "hidden_dim",
        "hidden",
        "n_hidden",
        "num_hidden",
        "hidden_units",
    ),
    "num_layers": ("num_layers", "n_layers", "layers", "rnn_layers"),
    "init_scale": ("init_scale",),
    "lr": ("lr", "learning_rate", "learningrate"),
}

_CELL_ALIASES = {
    "rnn": "rnn",
    "tanh": "rnn",
    "rnn_tanh": "rnn",
    "vanilla": "rnn",
    "elman": "rnn",
    "gru": "gru",
    "lstm": "lstm",
}

# Predicted quantiles are held inside (0, 1) by this margin.
_EDGE = 1e-3


@dataclass(frozen=True)
class PriorPrediction:
    """One trial's prediction by the prior.

    Attributes:
        quantile: Predicted final quantile within the study, in ``(0, 1)``, 1 = best.
        top_probability: Calibrated probability of ending in the study's top 10%; NaN when
            the model carries no calibration.
        inputs: The input groups of the model used, joined by ``+`` (e.g.
            ``"hyperparameters+spectrum+curve"``).
        model_step: The step of the model used (0, 1, 2).
    """

    quantile: float
    top_probability: float
    inputs: str
    model_step: int


def _positive_float(value: Any) -> float | None:
    """``value`` as a positive finite float, or None (booleans and non-numbers included)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _positive_int(value: Any) -> int | None:
    """``value`` as an integer of at least 1 (``12.0`` counts, ``12.5`` does not), or None."""
    number = _positive_float(value)
    if number is None or number < 1 or number != int(number):
        return None
    return int(number)


def _cell(value: Any) -> str | None:
    return _CELL_ALIASES.get(value.strip().lower()) if isinstance(value, str) else None


def network_from_params(params: Mapping[str, Any]) -> NetworkDescription | None:
    """A network description from parameter names (:data:`PARAM_ALIASES`).

    A value that does not parse (an unknown cell, a non-positive size) leaves its field
    unknown; None when no field is known.
    """
    fields: dict[str, Any] = {}
    parse = {
        "cell": _cell,
        "hidden_size": _positive_int,
        "num_layers": _positive_int,
        "init_scale": _positive_float,
        "lr": _positive_float,
    }
    for field, names in PARAM_ALIASES.items():
        for name in names:
            if name in params:
                value = parse[field](params[name])
                if value is not None:
                    fields[field] = value
                    break
    if not fields:
        return None
    return NetworkDescription(
        cell=fields.get("cell"),
        hidden_size=fields.get("hidden_size"),
        num_layers=fields.get("num_layers"),
        init_scale=fields.get("init_scale"),
        lr=fields.get("lr"),
    )


def network_of(trial: FrozenTrial) -> NetworkDescription | None:
    """What the prior reads about a trial's network.

    The system attr ``optuna_lyap:network`` (written by ``LyapunovMonitor`` from the network
    itself, with the learning rate from its optimiser) where it is a valid description; fields
    it leaves unknown are filled from the params. Else the trial's params under common names
    (:data:`PARAM_ALIASES`). Unknown fields are missing (NaN features), not errors.

    Returns:
        The description, or None when nothing about the network is known.
    """
    from_params = network_from_params(trial.params)
    stored = trial.system_attrs.get(NETWORK_ATTR)
    if stored is not None:
        try:
            network = NetworkDescription.from_json(stored)
        except (TypeError, ValueError):
            network = None
        if network is not None:
            if from_params is not None:
                merged = {
                    k: v if v is not None else from_params.to_json()[k]
                    for k, v in network.to_json().items()
                }
                network = NetworkDescription.from_json(merged)
            return network if network.known() else None
    return from_params


class TrialPrior:
    """A prior bundle applied to Optuna trials (see the module docstring for what is read).

    Args:
        bundle: The :class:`~optuna_lyap.aelle.PriorBundle`.

    Attributes:
        bundle: The bundle.
        digest: Its short SHA-256 (``PriorBundle.digest``), naming the prior in fit keys.
    """

    def __init__(self, bundle: PriorBundle) -> None:
        if not isinstance(bundle, PriorBundle):
            raise TypeError(f"bundle must be a PriorBundle but got {type(bundle).__name__}.")
        self.bundle = bundle
        self.digest = bundle.digest()

    @classmethod
    def resolve(cls, prior: Any) -> TrialPrior | None:
        """The prior a pruner or sampler argument names.

        Args:
            prior: ``"shipped"`` (the package's bundle, loaded once per process), a
                ``PriorBundle``, a ``TrialPrior``, a path (str or PathLike) to a file written by
                ``PriorBundle.save``, or None.

        Returns:
            The ``TrialPrior``, or None for None.

        Raises:
            ValueError: Any other value (naming it), or a path that is not a readable bundle.
        """
        if prior is None:
            return None
        if isinstance(prior, TrialPrior):
            return prior
        if isinstance(prior, PriorBundle):
            return cls(prior)
        if isinstance(prior, str) and prior == "shipped":
            return _shipped()
        if isinstance(prior, (str, os.PathLike)):
            path = os.fspath(prior)
            if not os.path.isfile(path):
                raise ValueError(
                    f"prior must be 'shipped', a PriorBundle, a path to a saved bundle or None "
                    f"but got {prior!r} (no such file)."
                )
            return cls(PriorBundle.load(path))
        raise ValueError(
            f"prior must be 'shipped', a PriorBundle, a path to a saved bundle or None, but got "
            f"{prior!r}."
        )

    def _predict(
        self,
        model: CrossTaskPrior,
        rows: PriorInputs,
    ) -> tuple[np.ndarray, np.ndarray]:
        quantile = np.clip(model.predict(rows), _EDGE, 1 - _EDGE)
        return quantile, model.calibrated_top_probability(quantile)

    def _run(
        self,
        step: int,
        hyperparameters: np.ndarray,
        has_network: np.ndarray,
        spectra: list[np.ndarray | None],
        dims: np.ndarray,
        curve: np.ndarray | None,
    ) -> list[PriorPrediction | None]:
        n = hyperparameters.shape[0]
        chosen: dict[int, list[int]] = {}
        models: dict[int, CrossTaskPrior] = {}
        for i in range(n):
            available = set()
            if has_network[i]:
                available.add("hyperparameters")
            if spectra[i] is not None:
                available.add("spectrum")
            if not available:
                continue
            if curve is not None:
                available.add("curve")
            model = self.bundle.select(step, available)
            if model is None:
                continue
            chosen.setdefault(id(model), []).append(i)
            models[id(model)] = model
        out: list[PriorPrediction | None] = [None] * n
        empty = np.zeros(0)
        width = len(CURVE_NAMES)
        for key, index in chosen.items():
            model = models[key]
            model_step, groups = self.bundle.key_of(model)
            rows = PriorInputs(
                hyperparameters[index],
                [row if row is not None else empty for row in (spectra[i] for i in index)],
                dims[index],
                curve[index] if curve is not None else np.full((len(index), width), np.nan),
            )
            quantile, top = self._predict(model, rows)
            label = "+".join(groups)
            for j, i in enumerate(index):
                out[i] = PriorPrediction(float(quantile[j]), float(top[j]), label, model_step)
        return out

    def _spectrum(self, trial: FrozenTrial, step: int) -> tuple[np.ndarray, int] | None:
        found = spectrum_at(trial, step)
        if found is None:
            return None
        spectrum_step, exponents = found
        dim = spectrum_dim(trial, spectrum_step) or int(exponents.size)
        try:
            return top_fraction(exponents, dim, self.bundle.spectrum_fraction), dim
        except ValueError:
            return None  # too few exponents for the fraction: unavailable

    def predict_trials(
        self,
        trials: Sequence[FrozenTrial],
        step: int,
        direction: optuna.study.StudyDirection | str,
    ) -> dict[int, PriorPrediction]:
        """Predict the final quantile of trials from what they have reported up to ``step``.

        Args:
            trials: Every trial of the study that reported a value at ``step`` (they define the
                within-study ranks of the curve at ``step``); a trial without a value there is
                still predicted, its curve features NaN.
            step: The current step.
            direction: The study's direction (``StudyDirection`` or ``"maximize"`` /
                ``"minimize"``).

        Returns:
            ``{trial.number: PriorPrediction}`` for every trial that has hyperparameters or a
            spectrum (and a model of the bundle fits).

        Raises:
            ValueError: ``direction`` is not a single-objective direction.
        """
        direction_name = _direction(direction)
        trials = list(trials)
        n = len(trials)
        if n == 0:
            return {}
        networks = [network_of(t) for t in trials]
        has_network = np.array([net is not None for net in networks])
        hyperparameters = hyperparameter_features(
            [net if net is not None else NetworkDescription(None, None) for net in networks]
        )
        spectra: list[np.ndarray | None] = []
        dims = np.ones(n, dtype=np.int64)
        for i, trial in enumerate(trials):
            found = self._spectrum(trial, step)
            spectra.append(None if found is None else found[0])
            if found is not None:
                dims[i] = found[1]
        curve = _curve(trials, step, direction_name)
        predictions = self._run(step, hyperparameters, has_network, spectra, dims, curve)
        return {
            trial.number: p for trial, p in zip(trials, predictions, strict=True) if p is not None
        }

    def predict_candidates(
        self,
        params_list: Sequence[Mapping[str, Any]],
        spectra: Sequence[Any] | None = None,
        dims: Sequence[int | None] | None = None,
    ) -> list[PriorPrediction | None]:
        """Step-0 predictions of untrained candidates (for a sampler).

        Args:
            params_list: Each candidate's parameters, read as :func:`network_of` reads params.
            spectra: Optional spectra at initialisation, one per candidate or None (nats per
                step, descending; full or top ``k``).
            dims: The state dimension ``D`` of each spectrum (default: its length, i.e. a full
                spectrum).

        Returns:
            One prediction per candidate, None where nothing is known about it.

        Raises:
            ValueError: ``spectra`` or ``dims`` of another length than ``params_list``.
        """
        n = len(params_list)
        if spectra is not None and len(spectra) != n:
            raise ValueError(f"spectra must have {n} entries but got {len(spectra)}.")
        if dims is not None and len(dims) != n:
            raise ValueError(f"dims must have {n} entries but got {len(dims)}.")
        networks = [network_from_params(p) for p in params_list]
        has_network = np.array([net is not None for net in networks], dtype=bool)
        hyperparameters = hyperparameter_features(
            [net if net is not None else NetworkDescription(None, None) for net in networks]
        )
        cut: list[np.ndarray | None] = [None] * n
        dim_array = np.ones(n, dtype=np.int64)
        for i in range(n):
            if spectra is None or spectra[i] is None:
                continue
            exponents = np.asarray(spectra[i], dtype=np.float64).reshape(-1)
            given = dims[i] if dims is not None else None
            dim = int(given) if given is not None else exponents.size
            try:
                cut[i] = top_fraction(exponents, dim, self.bundle.spectrum_fraction)
                dim_array[i] = dim
            except ValueError:
                cut[i] = None
        return self._run(0, hyperparameters, has_network, cut, dim_array, None)

    def __repr__(self) -> str:
        return f"TrialPrior(digest={self.digest!r})"


def _direction(direction: Any) -> str:
    if isinstance(direction, optuna.study.StudyDirection):
        if direction == optuna.study.StudyDirection.MAXIMIZE:
            return "maximize"
        if direction == optuna.study.StudyDirection.MINIMIZE:
            return "minimize"
    elif direction in ("maximize", "minimize"):
        return str(direction)
    raise ValueError(f"direction must be 'maximize' or 'minimize' but got {direction!r}.")


def _finite_or_nan(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _curve(trials: Sequence[FrozenTrial], step: int, direction: str) -> np.ndarray:
    """The curve group of ``trials`` at ``step`` (``CURVE_NAMES``), ranked among themselves."""
    n = len(trials)
    values = np.array([_finite_or_nan(t.intermediate_values.get(step)) for t in trials])
    ranks = study_ranks(values, direction)  # type: ignore[arg-type]
    z = study_zscores(values, direction)  # type: ignore[arg-type]
    before = [s for t in trials for s in t.intermediate_values if s < step]
    change = np.zeros(n)
    if before:
        previous = max(before)
        prev = np.array([_finite_or_nan(t.intermediate_values.get(previous)) for t in trials])
        change = ranks - study_ranks(prev, direction)  # type: ignore[arg-type]
    loss = np.array(
        [_finite_or_nan(t.user_attrs.get(VAL_LOSS_ATTR.format(step=step))) for t in trials]
    )
    loss_rank = study_ranks(loss, "minimize")
    return np.column_stack([ranks, z, change, loss_rank])


_SHIPPED: TrialPrior | None = None


def _shipped() -> TrialPrior:
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = TrialPrior(load_shipped_prior())
    return _SHIPPED
