"""The inputs a predictor reads from a trial, one class each, in one registry.

An input has a name, a width, and a way to read it from a trial at a step. Adding one (a
spectrum summary, gradient statistics) is a subclass of :class:`Input`, one line in
:data:`INPUTS`, and a test of its ``read``; the reader, the row container, the fit and the
stored predictors need no change. The pruner and the sampler choose among the registered
inputs by name.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from optuna_lyap._prediction._core import SPECTRUM
from optuna_lyap._prediction._core import pretrained_inputs as _pretrained_inputs
from optuna_lyap._storage import spectrum_at, spectrum_key, steps_with_spectra
from optuna_lyap.aelle import AeLLE


def curve_features(
    intermediate_values: Mapping[int, float], step: int, direction: StudyDirection
) -> np.ndarray:
    """Learning-curve features of a trial at ``step``.

    Args:
        intermediate_values: ``{step: value}`` reported so far.
        step: Only values at steps ``<= step`` are read.
        direction: The study's direction (``best`` is the maximum or the minimum).

    Returns:
        A 2-entry float64 array: the value at the latest step ``<= step`` and the best value
        up to ``step``; NaN where there is no finite value.
    """
    steps = sorted(s for s in intermediate_values if s <= step)
    values = np.array([intermediate_values[s] for s in steps], dtype=np.float64)
    last = values[-1] if values.size else math.nan
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        best = math.nan
    else:
        best = finite.max() if direction == StudyDirection.MAXIMIZE else finite.min()
    return np.array([last, best], dtype=np.float64)


class ParamEncoder:
    """Encode hyperparameters as numbers: log for log-scaled ones, one-hot for categorical ones.

    Args:
        distributions: ``{name: distribution}``, e.g. the intersection search space of the
            finished trials. Names are encoded in sorted order.
    """

    def __init__(self, distributions: Mapping[str, BaseDistribution]) -> None:
        self.distributions = dict(sorted(distributions.items()))
        width = 0
        for dist in self.distributions.values():
            width += len(dist.choices) if isinstance(dist, CategoricalDistribution) else 1
        self.width = width

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """A ``p`` float64 array; NaN for parameters the trial does not have."""
        out = np.full(self.width, np.nan)
        i = 0
        for name, dist in self.distributions.items():
            value = params.get(name)
            if isinstance(dist, CategoricalDistribution):
                if name in params and value in dist.choices:
                    out[i : i + len(dist.choices)] = 0.0
                    out[i + dist.choices.index(value)] = 1.0
                i += len(dist.choices)
                continue
            if value is not None and isinstance(dist, (FloatDistribution, IntDistribution)):
                out[i] = math.log(value) if dist.log and value > 0 else float(value)
            i += 1
        return out


@dataclass(frozen=True)
class ReadContext:
    """Where and how inputs are read from trials.

    Attributes:
        step: The step whose learning curve (values at steps ``<= step``) is read.
        direction: The study's direction.
        spectrum_step: Spectra are read at the latest step ``<= spectrum_step``; None reads
            none.
        encoder: Encodes hyperparameters; None reads none.
        exact_spectrum_step: Read only spectra reported at exactly ``spectrum_step``.
    """

    step: int
    direction: StudyDirection
    spectrum_step: int | None = None
    encoder: ParamEncoder | None = None
    exact_spectrum_step: bool = False


class Input(abc.ABC):
    """One input of a predictor: a name, a width, and how to read it from a trial."""

    name: ClassVar[str]

    @abc.abstractmethod
    def width(self, context: ReadContext) -> int | None:
        """Entries per row; None for a spectrum (any length); 0 when nothing can be read."""

    @abc.abstractmethod
    def read(self, trial: FrozenTrial, context: ReadContext) -> np.ndarray | None:
        """The trial's value of this input, a 1-D float64 array; None when it has none (the
        trial then cannot become a labelled row)."""

    def available(self, trial: FrozenTrial, context: ReadContext) -> bool:
        """Whether :meth:`read` would give a value; override where that can be told cheaply."""
        return self.read(trial, context) is not None


class SpectrumInput(Input):
    """The Lyapunov spectrum at the latest step ``<= context.spectrum_step`` (nats per step)."""

    name = SPECTRUM

    def width(self, context: ReadContext) -> int | None:
        return None if context.spectrum_step is not None else 0

    def _step(self, trial: FrozenTrial, context: ReadContext) -> int | None:
        if context.spectrum_step is None:
            return None
        if context.exact_spectrum_step:
            key = spectrum_key(context.spectrum_step)
            return context.spectrum_step if key in trial.system_attrs else None
        steps = [s for s in steps_with_spectra(trial.system_attrs) if s <= context.spectrum_step]
        return steps[-1] if steps else None

    def available(self, trial: FrozenTrial, context: ReadContext) -> bool:
        return self._step(trial, context) is not None

    def read(self, trial: FrozenTrial, context: ReadContext) -> np.ndarray | None:
        if context.spectrum_step is None:
            return None
        found = spectrum_at(trial, context.spectrum_step)
        if found is None or (context.exact_spectrum_step and found[0] != context.spectrum_step):
            return None
        return found[1]


class CurveInput(Input):
    """The learning curve at ``context.step``: the latest value and the best value so far."""

    name = "curve"

    def width(self, context: ReadContext) -> int | None:
        return 2

    def read(self, trial: FrozenTrial, context: ReadContext) -> np.ndarray | None:
        curve = curve_features(trial.intermediate_values, context.step, context.direction)
        return curve if math.isfinite(curve[0]) else None


class ParamsInput(Input):
    """The hyperparameters, encoded by ``context.encoder`` (see :class:`ParamEncoder`)."""

    name = "params"

    def width(self, context: ReadContext) -> int | None:
        return 0 if context.encoder is None else context.encoder.width

    def read(self, trial: FrozenTrial, context: ReadContext) -> np.ndarray | None:
        if context.encoder is None or context.encoder.width == 0:
            return None
        return context.encoder.encode(trial.params)


# The registry: every input a predictor can read, in the order feature blocks are concatenated.
INPUTS: dict[str, Input] = {i.name: i for i in (SpectrumInput(), CurveInput(), ParamsInput())}


def pretrained_inputs(model: AeLLE) -> tuple[str, ...]:
    """The input set a fitted AeLLE reads, as the registered inputs build it.

    A pretrained model reads the spectrum, the learning curve (the 2 features of
    :func:`curve_features`), or both.

    Raises:
        ValueError: When the model is not fitted or reads other features.
    """
    curve = INPUTS["curve"].width(ReadContext(0, StudyDirection.MAXIMIZE))
    assert curve is not None
    return _pretrained_inputs(model, {"curve": curve})
