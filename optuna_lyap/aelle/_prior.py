"""Inputs and target of a prior trained across tasks: features that mean the same on any task.

A model trained on many recorded studies can only transfer if its inputs and its target carry no
task's units. This module turns one study's trials into such rows (no Optuna imports):

- **hyperparameters** in a generic encoding (``NetworkDescription``): the cell type, ``log`` of
  the hidden size and of the number of layers, ``log`` of the initialisation scale relative to
  PyTorch's default ``1 / sqrt(H)``, ``log10`` of the learning rate, and the spectral norm of the
  first layer's recurrent weights when the network itself is at hand;
- **the spectrum** on the grid of normalised index ``u = i / D`` (``_preprocessing``), restricted
  to its top ``fraction`` (a quarter by default: recordings cap ``k`` at 64 exponents, which
  covers a quarter of the largest LSTM's ``D = 256``), plus ``lambda_1`` and ``log D``;
- **the learning curve** normalised within its own study: at each step, a trial's rank among the
  study's trials at that step (a percentile in ``(0, 1)``) and its robust z-score (median and
  scaled median absolute deviation), both oriented so that higher is better;
- **the target**: the final value's quantile within its own study (1 = best), so tasks with any
  metric and direction mix.

Notation: ``n`` trials of one study, ``E`` recorded steps, ``G`` grid points.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.stats import rankdata

from optuna_lyap.aelle._preprocessing import preprocess_spectra

CELL_NAMES: tuple[str, ...] = ("rnn", "gru", "lstm")

#: Where the package's trained prior lives (``prior.pt``, a ``PriorBundle``).
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"

_SAVE_FORMAT = "optuna_lyap.CrossTaskPrior"
_SAVE_VERSION = 2

# Grid points of the spectrum group in ``PriorInputs.matrix``.
_GRID_SIZE = 8

#: Column names of ``hyperparameter_features``.
HYPERPARAMETER_NAMES: tuple[str, ...] = (
    "cell_rnn",
    "cell_gru",
    "cell_lstm",
    "log_hidden_size",
    "log_num_layers",
    "log_init_scale",
    "log10_lr",
    "recurrent_norm",
)

# Exponents are clipped to this range (nats per step) before resampling, as AeLLE does.
_CLIP = (-10.0, 10.0)

# 1.4826 * MAD estimates the standard deviation of a normal sample.
_MAD_TO_STD = 1.4826


@dataclass(frozen=True)
class NetworkDescription:
    """What the prior reads about one network, whether from its hyperparameters or its weights.

    Every field may be unknown (None): an unknown field becomes NaN in
    ``hyperparameter_features``, which the prior's models read as the training corpus's median
    of that column (``AeLLE`` replaces non-finite features by the column median).

    Attributes:
        cell: ``"rnn"``, ``"gru"`` or ``"lstm"``, or None.
        hidden_size: Units per layer ``H``, or None.
        num_layers: Stacked recurrent layers, or None.
        init_scale: Bound of the uniform initialisation in units of ``1 / sqrt(H)`` (1 is
            PyTorch's default; see ``optuna_lyap.tasks._model``), or None.
        lr: Learning rate of the optimiser, or None.
        recurrent_norm: Largest singular value of the first layer's recurrent weight matrix
            (all gates stacked), or None where unknown (a recorded table).

    Raises:
        ValueError: A known field out of range (a cell not in ``CELL_NAMES``, a size that is
            not a positive integer, a scale, rate or norm that is not a positive finite number).
    """

    cell: str | None
    hidden_size: int | None
    num_layers: int | None = None
    init_scale: float | None = None
    lr: float | None = None
    recurrent_norm: float | None = None

    def __post_init__(self) -> None:
        if self.cell is not None and self.cell not in CELL_NAMES:
            raise ValueError(
                f"cell must be one of {list(CELL_NAMES)} or None, but got {self.cell=}."
            )
        for name in ("hidden_size", "num_layers"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer or None, but got {value=}.")
        for name in ("init_scale", "lr", "recurrent_norm"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
                raise ValueError(
                    f"{name} must be a positive finite number or None, but got {value=}."
                )
            if not (math.isfinite(float(value)) and float(value) > 0):
                raise ValueError(
                    f"{name} must be a positive finite number or None, but got {value=}."
                )

    @classmethod
    def from_params(cls, params: Mapping[str, Any], num_layers: int = 1) -> NetworkDescription:
        """From a built-in task's parameters ``cell``, ``hidden_size``, ``init_scale``, ``lr``."""
        return cls(
            cell=str(params["cell"]),
            hidden_size=int(params["hidden_size"]),
            num_layers=int(num_layers),
            init_scale=float(params["init_scale"]),
            lr=float(params["lr"]),
        )

    @classmethod
    def from_module(cls, rnn: Any, lr: float | None) -> NetworkDescription:
        """From a ``torch.nn.RNN``/``GRU``/``LSTM`` itself, as it is now.

        The initialisation scale is read back from the recurrent weights of the first layer:
        for ``U(-a, a)`` entries the standard deviation is ``a / sqrt(3)``, so
        ``init_scale = sqrt(3) * std * sqrt(H)``, exact in expectation at initialisation and a
        measure of the weights' scale in the same units afterwards.

        Args:
            rnn: The recurrent module (``nn.RNN``, ``nn.GRU`` or ``nn.LSTM``).
            lr: The learning rate it is trained with (not stored in the module), or None.

        Raises:
            TypeError: ``rnn`` is not one of those modules.
        """
        import torch
        from torch import nn

        kinds = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "rnn"}
        cell = next((name for kind, name in kinds.items() if isinstance(rnn, kind)), None)
        if cell is None:
            raise TypeError(f"rnn must be an nn.RNN, nn.GRU or nn.LSTM but got {type(rnn)=}.")
        weight = rnn.weight_hh_l0.detach().to(torch.float64)
        hidden_size = int(rnn.hidden_size)
        std = float(weight.std(unbiased=False))
        norm = float(torch.linalg.matrix_norm(weight, ord=2))
        scale = math.sqrt(3.0) * std * math.sqrt(hidden_size)
        return cls(
            cell=cell,
            hidden_size=hidden_size,
            num_layers=int(rnn.num_layers),
            init_scale=scale if math.isfinite(scale) and scale > 0 else None,
            lr=None if lr is None else float(lr),
            recurrent_norm=norm if math.isfinite(norm) and norm > 0 else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The description as a JSON object (unknown fields as null)."""
        return {
            "cell": self.cell,
            "hidden_size": None if self.hidden_size is None else int(self.hidden_size),
            "num_layers": None if self.num_layers is None else int(self.num_layers),
            "init_scale": None if self.init_scale is None else float(self.init_scale),
            "lr": None if self.lr is None else float(self.lr),
            "recurrent_norm": None if self.recurrent_norm is None else float(self.recurrent_norm),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NetworkDescription:
        """Read ``to_json``'s object back (missing keys are unknown fields).

        Raises:
            ValueError: ``data`` is not an object, or a field is out of range.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a network description must be a JSON object but got {data!r}.")
        fields = ("cell", "hidden_size", "num_layers", "init_scale", "lr", "recurrent_norm")
        return cls(**{name: data.get(name) for name in fields})

    def known(self) -> bool:
        """Whether any field is known."""
        return any(v is not None for v in self.to_json().values())


def hyperparameter_features(networks: Sequence[NetworkDescription]) -> np.ndarray:
    """The generic hyperparameter encoding, an ``n x 8`` float64 array.

    Columns ``HYPERPARAMETER_NAMES``: one-hot cell, ``log H``, ``log num_layers``,
    ``log init_scale``, ``log10 lr``, and the recurrent spectral norm; NaN where a field is
    unknown (an unknown cell makes all three one-hot columns NaN).
    """
    out = np.full((len(networks), len(HYPERPARAMETER_NAMES)), np.nan)
    for row, net in enumerate(networks):
        if net.cell is not None:
            out[row, :3] = [net.cell == name for name in CELL_NAMES]
        if net.hidden_size is not None:
            out[row, 3] = math.log(net.hidden_size)
        if net.num_layers is not None:
            out[row, 4] = math.log(net.num_layers)
        if net.init_scale is not None:
            out[row, 5] = math.log(net.init_scale)
        if net.lr is not None:
            out[row, 6] = math.log10(net.lr)
        if net.recurrent_norm is not None:
            out[row, 7] = net.recurrent_norm
    return out


def top_fraction(spectrum: Sequence[float] | np.ndarray, dim: int, fraction: float) -> np.ndarray:
    """The exponents at normalised index ``u < fraction`` of a spectrum of a ``dim``-state.

    Args:
        spectrum: The exponents in descending order, nats per step; the full spectrum or its
            top ``k`` (thin basis), NaN-padded or not.
        dim: ``D``, the state dimension the spectrum belongs to.
        fraction: Share of the spectrum kept, in ``(0, 1]``.

    Returns:
        The first ``ceil(fraction * D)`` exponents (at least 1), float64; NaN stays NaN.

    Raises:
        ValueError: If ``fraction`` is outside ``(0, 1]`` or the spectrum holds fewer exponents
            than that share of ``dim``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1] but got {fraction=}.")
    keep = max(1, math.ceil(fraction * dim - 1e-9))
    values = np.asarray(spectrum, dtype=np.float64)
    if values.shape[0] < keep:
        raise ValueError(
            f"a spectrum of a {dim=} state needs {keep} exponents for {fraction=} "
            f"but has {values.shape[0]}."
        )
    return values[:keep]


def spectrum_features(
    spectra: Sequence[Sequence[float] | np.ndarray | None],
    dims: Sequence[int],
    *,
    grid_size: int = 8,
    fraction: float = 0.25,
) -> np.ndarray:
    """The spectrum inputs of the prior, an ``n x (G + 2)`` float64 array.

    Columns: the top ``fraction`` of each spectrum resampled on ``G`` points of normalised index
    (clipped to [-10, 10] nats per step, as AeLLE does), then ``lambda_1`` (clipped) and
    ``log D``. A missing spectrum (None, or NaN only) gives NaN but ``log D``; NaN beside
    finite exponents (a diverged direction) reads as the clipped expanding end, 10.

    Args:
        spectra: ``n`` spectra, descending, nats per step (full or top-``k``), or None.
        dims: ``n`` state dimensions ``D``.
        grid_size: ``G``.
        fraction: Share of each spectrum used (see ``top_fraction``).
    """
    if len(spectra) != len(dims):
        raise ValueError(
            f"spectra and dims must have the same length but got {len(spectra)=}, {len(dims)=}."
        )
    out = np.full((len(spectra), grid_size + 2), np.nan)
    for row, (spectrum, dim) in enumerate(zip(spectra, dims, strict=True)):
        out[row, -1] = math.log(dim)
        if spectrum is None:
            continue
        top = top_fraction(spectrum, int(dim), fraction)
        if np.isnan(top).all():
            continue
        grid, _ = preprocess_spectra([top], grid_size, _CLIP)
        out[row, :grid_size] = grid[0]
        out[row, grid_size] = float(np.clip(np.nan_to_num(top[0], nan=_CLIP[1]), *_CLIP))
    return out


def _oriented(values: np.ndarray, direction: Literal["maximize", "minimize"]) -> np.ndarray:
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize' but got {direction=}.")
    return np.asarray(values, dtype=np.float64) * (1.0 if direction == "maximize" else -1.0)


def study_ranks(values: np.ndarray, direction: Literal["maximize", "minimize"]) -> np.ndarray:
    """Each trial's percentile among its study's trials at the same step, 1 = best.

    Args:
        values: ``n x E`` (or ``n``) raw values of one study; NaN where a trial has no value.
        direction: The study's direction.

    Returns:
        Same shape, ``(rank - 0.5) / m`` with average ranks for ties over the ``m`` finite values
        of each column, in ``(0, 1)``; NaN where the value is NaN.
    """
    oriented = _oriented(values, direction)
    flat = oriented.ndim == 1
    columns = oriented[:, None] if flat else oriented
    out = np.full(columns.shape, np.nan)
    for j in range(columns.shape[1]):
        finite = np.isfinite(columns[:, j])
        if finite.any():
            out[finite, j] = (rankdata(columns[finite, j]) - 0.5) / finite.sum()
    return out[:, 0] if flat else out


def study_zscores(values: np.ndarray, direction: Literal["maximize", "minimize"]) -> np.ndarray:
    """Each trial's robust z-score against its study's trials at the same step, higher = better.

    ``(v - median) / (1.4826 * MAD)`` per column, oriented by ``direction`` and clipped to
    ``[-5, 5]``; a column whose MAD is 0 uses the standard deviation, and a constant column
    gives 0. NaN stays NaN.

    Args:
        values: ``n x E`` (or ``n``) raw values of one study.
        direction: The study's direction.
    """
    oriented = _oriented(values, direction)
    flat = oriented.ndim == 1
    columns = oriented[:, None] if flat else oriented
    out = np.full(columns.shape, np.nan)
    for j in range(columns.shape[1]):
        finite = np.isfinite(columns[:, j])
        if not finite.any():
            continue
        column = columns[finite, j]
        centre = np.median(column)
        scale = _MAD_TO_STD * np.median(np.abs(column - centre))
        if scale <= 0:
            scale = float(column.std())
        out[finite, j] = 0.0 if scale <= 0 else np.clip((column - centre) / scale, -5, 5)
    return out[:, 0] if flat else out


def final_quantile(
    final: np.ndarray,
    direction: Literal["maximize", "minimize"],
    tie_break: np.ndarray | None = None,
) -> np.ndarray:
    """The prior's target: each trial's final value as a quantile within its study, 1 = best.

    Args:
        final: ``n`` final values of one study (non-finite counts as the worst).
        direction: The study's direction.
        tie_break: Optional ``n`` values, lower is better (e.g. the final validation loss),
            ordering trials whose final values are equal (many trials of a recall task reach
            accuracy 1.0); remaining ties share their average rank.

    Returns:
        ``n`` floats ``(rank - 0.5) / n`` in ``(0, 1)``.
    """
    oriented = _oriented(final, direction)
    oriented = np.where(np.isfinite(oriented), oriented, -np.inf)
    n = oriented.shape[0]
    if tie_break is None:
        return (rankdata(oriented) - 0.5) / n
    second = -np.asarray(tie_break, dtype=np.float64)
    second = np.where(np.isfinite(second), second, -np.inf)
    order = np.lexsort((second, oriented))  # ascending: worst first
    keys = list(zip(oriented[order], second[order], strict=True))
    ranks = np.empty(n)
    start = 0
    while start < n:  # average ranks over exact ties of both keys
        stop = start
        while stop + 1 < n and keys[stop + 1] == keys[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return (ranks - 0.5) / n


def curve_features(
    values: np.ndarray,
    direction: Literal["maximize", "minimize"],
    step: int,
    val_loss: np.ndarray | None = None,
) -> np.ndarray:
    """The learning curve up to ``step``, normalised within its study: an ``n x 4`` array.

    Columns: the rank and robust z-score (``study_ranks``, ``study_zscores``) of the value at
    ``step``, its rank change since the step before (0 at step 0), and the rank of the
    validation loss at ``step`` (lower loss = higher rank; NaN without ``val_loss``), which
    orders trials whose accuracies tie.

    Args:
        values: ``n x E`` raw values per step of one study (step 0: at initialisation).
        direction: The study's direction.
        step: The current step ``s``; only columns ``0 .. s`` are read.
        val_loss: Optional ``n x E`` validation losses (lower is better).
    """
    values = np.asarray(values, dtype=np.float64)
    if not 0 <= step < values.shape[1]:
        raise ValueError(f"step must be in [0, {values.shape[1]}) but got {step=}.")
    ranks = study_ranks(values[:, : step + 1], direction)
    z = study_zscores(values[:, step], direction)
    change = ranks[:, step] - ranks[:, step - 1] if step > 0 else np.zeros(values.shape[0])
    loss_rank = np.full(values.shape[0], np.nan)
    if val_loss is not None:
        loss_rank = study_ranks(np.asarray(val_loss, dtype=np.float64)[:, step], "minimize")
    return np.column_stack([ranks[:, step], z, change, loss_rank])


CURVE_NAMES: tuple[str, ...] = ("value_rank", "value_z", "rank_change", "val_loss_rank")

#: The input groups a prior can read.
INPUT_GROUPS: tuple[str, ...] = ("hyperparameters", "spectrum", "curve")


@dataclass(frozen=True)
class PriorInputs:
    """Rows of prior inputs at one step, from one or many studies.

    Attributes:
        hyperparameters: ``n x 8`` (``hyperparameter_features``).
        spectra: ``n`` spectra (the top ``fraction`` kept by ``top_fraction``), nats per step.
        dims: ``n`` state dimensions ``D`` of the networks the spectra belong to.
        curve: ``n x 4`` (``curve_features``).
    """

    hyperparameters: np.ndarray
    spectra: list[np.ndarray]
    dims: np.ndarray
    curve: np.ndarray

    def __len__(self) -> int:
        return int(self.hyperparameters.shape[0])

    def subset(self, index: np.ndarray) -> PriorInputs:
        """The rows ``index`` (integer positions or a boolean mask)."""
        positions = np.arange(len(self))[index]
        return PriorInputs(
            self.hyperparameters[positions],
            [self.spectra[i] for i in positions],
            self.dims[positions],
            self.curve[positions],
        )

    @staticmethod
    def concatenate(parts: Sequence[PriorInputs]) -> PriorInputs:
        """Rows of several studies stacked."""
        return PriorInputs(
            np.concatenate([p.hyperparameters for p in parts]),
            [s for p in parts for s in p.spectra],
            np.concatenate([p.dims for p in parts]),
            np.concatenate([p.curve for p in parts]),
        )

    def matrix(self, inputs: Sequence[str], *, grid_size: int = _GRID_SIZE) -> np.ndarray:
        """The chosen groups side by side, an ``n x F`` float64 array (NaN where unknown)."""
        _check_inputs(inputs)
        blocks = []
        if "hyperparameters" in inputs:
            blocks.append(self.hyperparameters)
        if "spectrum" in inputs:
            # The spectra are already cut to their top fraction: keep all of them.
            blocks.append(
                spectrum_features(
                    self.spectra, [len(s) for s in self.spectra], grid_size=grid_size, fraction=1.0
                )[:, :-1]
            )
            blocks.append(np.log(self.dims.astype(np.float64))[:, None])
        if "curve" in inputs:
            blocks.append(self.curve)
        return np.concatenate(blocks, axis=1)


def _check_inputs(inputs: Sequence[str]) -> None:
    if isinstance(inputs, str) or not inputs or any(g not in INPUT_GROUPS for g in inputs):
        raise ValueError(
            f"inputs must be a non-empty list of {list(INPUT_GROUPS)} but got {inputs=}."
        )


# Shared by the boosted-tree regressor and the P(top) classifier: small, regularised trees, since
# a corpus holds a few hundred configurations per task.
_TREE_PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
}


class CrossTaskPrior:
    """Predict a trial's final quantile within its study from inputs that transfer across tasks.

    Two models share one interface: ``model="hgb"`` fits scikit-learn's
    ``HistGradientBoostingRegressor`` on ``PriorInputs.matrix(inputs)`` (missing values handled
    natively); ``model="aelle"`` fits the package's ``AeLLE`` with the spectra as its spectra
    (when ``"spectrum"`` is in ``inputs``; without it, a features-only ``AeLLE``) and the
    hyperparameter and curve groups as its head's features. Both also fit a
    ``HistGradientBoostingClassifier`` for the probability that a trial ends in its study's
    top ``top_fraction`` (``predict_top_probability``).

    Args:
        inputs: Input groups, a subset of ``INPUT_GROUPS``.
        model: ``"hgb"`` or ``"aelle"``.
        top_fraction: Share of a study counted as its top, in ``(0, 1)``.
        seed: Seeds both models.
        aelle_params: Extra ``AeLLE`` parameters (``model="aelle"``).

    Attributes:
        columns_: Which columns of ``PriorInputs.matrix(inputs)`` the models read (those with at
            least two distinct finite values in training); the others are set to NaN (the
            training median) before the AeLLE head reads them, so a column the corpus never
            knew (the recurrent norm of recorded tables) or never varied (the number of layers
            of one-layer networks) cannot move a prediction.
        regressor_: The fitted regressor (``HistGradientBoostingRegressor`` or ``AeLLE``).
        classifier_: The fitted ``HistGradientBoostingClassifier`` (not kept by ``save``).
        calibration_: None, or ``(x, y)``: increasing breakpoints of an isotonic map from the
            predicted quantile ``x`` to the probability ``y`` of ending in the study's top
            ``top_fraction`` (``set_calibration``); kept by ``save``.
        info_: Provenance kept by ``save`` and ``load`` (the tables and command of a shipped
            prior); empty unless set.
    """

    def __init__(
        self,
        *,
        inputs: Sequence[str] = INPUT_GROUPS,
        model: Literal["hgb", "aelle"] = "hgb",
        top_fraction: float = 0.1,
        seed: int = 0,
        aelle_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.inputs = tuple(inputs)
        self.model = model
        self.top_fraction = top_fraction
        self.seed = seed
        self.aelle_params = dict(aelle_params or {})
        self.calibration_: tuple[np.ndarray, np.ndarray] | None = None
        # Free-form provenance written by ``save`` (what the prior was trained on).
        self.info_: dict[str, Any] = {}

    def _check(self) -> None:
        _check_inputs(self.inputs)
        if self.model not in ("hgb", "aelle"):
            raise ValueError(f"model must be 'hgb' or 'aelle' but got {self.model=}.")
        if not 0 < self.top_fraction < 1:
            raise ValueError(f"top_fraction must be in (0, 1) but got {self.top_fraction=}.")

    def _head_features(self, rows: PriorInputs) -> np.ndarray | None:
        """The AeLLE head's features; columns unknown in training (``columns_``) set to NaN."""
        groups = [g for g in ("hyperparameters", "curve") if g in self.inputs]
        if not groups:
            return None
        matrix = rows.matrix(groups)
        matrix[:, ~self.columns_[_head_mask(self.inputs, self.columns_.size)]] = np.nan
        return matrix

    def _spectra(self, rows: PriorInputs) -> list[np.ndarray] | None:
        return rows.spectra if "spectrum" in self.inputs else None

    def fit(self, rows: PriorInputs, target: np.ndarray) -> CrossTaskPrior:
        """Fit on ``n`` rows and their targets (``final_quantile``, in ``[0, 1]``)."""
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        self._check()
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (len(rows),) or not np.isfinite(target).all():
            raise ValueError(f"target must be {len(rows)} finite values but got {target.shape=}.")
        matrix = rows.matrix(self.inputs)
        # Columns no training row knows (the recurrent norm of recorded tables) carry nothing
        # and break the binning of the boosted trees; a column with one value in training (the
        # number of layers of a corpus of one-layer networks) teaches no weight what other
        # values mean, and AeLLE would read any other value as an extreme. Leave both out.
        self.columns_ = np.array(
            [np.unique(column[np.isfinite(column)]).size >= 2 for column in matrix.T],
            dtype=bool,
        )
        if self.model == "hgb":
            self.regressor_: Any = HistGradientBoostingRegressor(
                max_iter=200, random_state=self.seed, **_TREE_PARAMS
            ).fit(matrix[:, self.columns_], target)
        else:
            from optuna_lyap.aelle._estimator import AeLLE

            params = {"seed": self.seed, "min_labels_for_validation": 50, **self.aelle_params}
            self.regressor_ = AeLLE(**params).fit(
                self._spectra(rows), target, self._head_features(rows)
            )
        top = target >= 1 - self.top_fraction
        self.classifier_ = HistGradientBoostingClassifier(
            max_iter=150, random_state=self.seed, **_TREE_PARAMS
        ).fit(matrix[:, self.columns_], top)
        return self

    def predict(self, rows: PriorInputs) -> np.ndarray:
        """The predicted final quantile of each row, ``n`` floats (higher = better)."""
        if self.model == "hgb":
            matrix = rows.matrix(self.inputs)[:, self.columns_]
            return np.asarray(self.regressor_.predict(matrix), dtype=float)
        return np.asarray(
            self.regressor_.predict(self._spectra(rows), self._head_features(rows)), dtype=float
        )

    def set_calibration(self, predicted: np.ndarray, top: np.ndarray) -> None:
        """Fit the isotonic map from predicted quantile to P(top ``top_fraction``).

        Uses scikit-learn's ``IsotonicRegression`` (increasing, outputs clipped to [0, 1])
        and keeps its breakpoints; ``calibrated_top_probability`` interpolates between them
        with ``np.interp`` (constant beyond the ends). Fit it on out-of-sample predictions
        (e.g. leave one task out) so the probability is honest for an unseen study.

        Args:
            predicted: ``m`` predicted quantiles.
            top: ``m`` booleans, whether each trial ended in its study's top.

        Raises:
            ValueError: Lengths differ, fewer than 2 finite predictions, or non-finite values.
        """
        from sklearn.isotonic import IsotonicRegression

        x = np.asarray(predicted, dtype=np.float64)
        y = np.asarray(top, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1 or x.size < 2 or not np.isfinite(x).all():
            raise ValueError(
                f"predicted and top must be equal-length 1-D finite arrays of at least 2 "
                f"values but got {x.shape=}, {y.shape=}."
            )
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        iso.fit(x, y)
        self.calibration_ = (
            np.asarray(iso.X_thresholds_, dtype=np.float64),
            np.asarray(iso.y_thresholds_, dtype=np.float64),
        )

    def calibrated_top_probability(self, predicted: np.ndarray) -> np.ndarray:
        """P(top ``top_fraction``) of predicted quantiles through ``calibration_``; NaN if none."""
        predicted = np.asarray(predicted, dtype=np.float64)
        if self.calibration_ is None:
            return np.full(predicted.shape, np.nan)
        x, y = self.calibration_
        return np.interp(predicted, x, y)

    def predict_top_probability(self, rows: PriorInputs) -> np.ndarray:
        """``n`` probabilities that each trial ends in its study's top ``top_fraction``.

        The fitted classifier where there is one, else the calibration of the predicted
        quantile (``calibration_``).

        Raises:
            ValueError: Neither a classifier nor a calibration.
        """
        if not hasattr(self, "classifier_"):
            if self.calibration_ is not None:
                return self.calibrated_top_probability(self.predict(rows))
            raise ValueError(
                "this prior has no classifier and no calibration (a loaded prior keeps only "
                "predict and its calibration)."
            )
        proba = self.classifier_.predict_proba(rows.matrix(self.inputs)[:, self.columns_])
        classes = list(self.classifier_.classes_)
        return proba[:, classes.index(True)] if True in classes else np.zeros(len(rows))

    def _config(self) -> dict[str, Any]:
        return {
            "inputs": list(self.inputs),
            "top_fraction": self.top_fraction,
            "seed": self.seed,
            "columns": [bool(c) for c in self.columns_],
            "calibration": None
            if self.calibration_ is None
            else {"x": self.calibration_[0].tolist(), "y": self.calibration_[1].tolist()},
            "info": self.info_,
        }

    def _aelle_bytes(self) -> Any:
        import torch

        if self.model != "aelle" or not hasattr(self, "regressor_"):
            raise ValueError(f"only a fitted model='aelle' prior can be saved but got {self!r}.")
        buffer = io.BytesIO()
        # Without the fit's wall time: a bundle's bytes, and so its digest, depend only on the
        # data, the settings and the seed.
        self.regressor_.save(buffer, with_fit_time=False)
        return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)

    @classmethod
    def _from_config(cls, config: Mapping[str, Any], aelle: Any) -> CrossTaskPrior:
        from optuna_lyap.aelle._estimator import AeLLE

        prior = cls(
            inputs=config["inputs"],
            model="aelle",
            top_fraction=config["top_fraction"],
            seed=config["seed"],
        )
        prior._check()
        prior.columns_ = np.asarray(config["columns"], dtype=bool)
        calibration = config.get("calibration")
        if calibration is not None:
            x = np.asarray(calibration["x"], dtype=np.float64)
            y = np.asarray(calibration["y"], dtype=np.float64)
            if x.shape != y.shape or x.ndim != 1 or x.size < 1 or np.any(np.diff(x) < 0):
                raise ValueError(f"its calibration is not increasing breakpoints: {calibration}")
            prior.calibration_ = (x, y)
        prior.regressor_ = AeLLE.load(io.BytesIO(aelle.numpy().tobytes()))
        width = prior.columns_.size
        head = int(_head_mask(prior.inputs, width).sum())
        if prior.regressor_.n_features_in_ != head or prior.regressor_.uses_spectra_ != (
            "spectrum" in prior.inputs
        ):
            raise ValueError(f"its AeLLE does not read the inputs {prior.inputs}")
        prior.info_ = dict(config.get("info") or {})
        return prior

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a fitted ``model="aelle"`` prior to one file, loadable without unpickling.

        The file holds a JSON config (inputs, top fraction, the feature names the columns stand
        for, the calibration and ``info``) and the AeLLE's own file (tensors plus JSON) as
        bytes, all read back by ``torch.load(weights_only=True)``. The classifier of
        ``predict_top_probability`` is not saved (boosted trees have no format but pickle).

        Args:
            path: The file to write.

        Raises:
            ValueError: If the prior is not a fitted ``model="aelle"`` prior.
        """
        import torch

        blob = self._aelle_bytes()
        config = {
            "format": _SAVE_FORMAT,
            "version": _SAVE_VERSION,
            "hyperparameter_names": list(HYPERPARAMETER_NAMES),
            "curve_names": list(CURVE_NAMES),
            **self._config(),
        }
        torch.save({"config": json.dumps(config), "aelle": blob}, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CrossTaskPrior:
        """Read a prior written by ``save`` (``predict`` works; ``predict_top_probability``
        only through a saved calibration).

        Raises:
            ValueError: If the file is not a saved prior of this format version, or its feature
                names differ from this version's.
        """
        import torch

        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or "config" not in blob or "aelle" not in blob:
            raise ValueError(f"{path!r} is not a file written by CrossTaskPrior.save.")
        config = json.loads(blob["config"])
        if config.get("format") != _SAVE_FORMAT or config.get("version") != _SAVE_VERSION:
            raise ValueError(
                f"{path!r} holds format {config.get('format')!r} version "
                f"{config.get('version')!r}; this version reads {_SAVE_FORMAT!r} {_SAVE_VERSION}."
            )
        names = (tuple(config["hyperparameter_names"]), tuple(config["curve_names"]))
        if names != (HYPERPARAMETER_NAMES, CURVE_NAMES):
            raise ValueError(f"{path!r} was trained on other feature columns: {names}.")
        return cls._from_config(config, blob["aelle"])

    def __repr__(self) -> str:
        return f"CrossTaskPrior(inputs={self.inputs}, model={self.model!r}, seed={self.seed})"


def _head_mask(inputs: Sequence[str], width: int | None = None) -> np.ndarray:
    """Which columns of ``PriorInputs.matrix(inputs)`` are the AeLLE head's features."""
    mask: list[bool] = []
    for group in INPUT_GROUPS:
        if group not in inputs:
            continue
        if group == "hyperparameters":
            mask += [True] * len(HYPERPARAMETER_NAMES)
        elif group == "spectrum":
            mask += [False] * (_GRID_SIZE + 2)
        else:
            mask += [True] * len(CURVE_NAMES)
    out = np.asarray(mask, dtype=bool)
    if width is not None and out.size != width:
        raise ValueError(f"{width} columns do not fit the inputs {tuple(inputs)}")
    return out


#: The input sets a bundle holds, in ``PriorBundle.select``'s order of preference: more groups
#: first; among sets of equal size, those with the curve (the strongest single input after the
#: first epoch on most recorded tasks), then those with hyperparameters.
INPUT_SETS: tuple[tuple[str, ...], ...] = (
    ("hyperparameters", "spectrum", "curve"),
    ("hyperparameters", "curve"),
    ("spectrum", "curve"),
    ("hyperparameters", "spectrum"),
    ("hyperparameters",),
)

_BUNDLE_FORMAT = "optuna_lyap.PriorBundle"
_BUNDLE_VERSION = 1

#: The file the package ships (``load_shipped_prior``).
SHIPPED_PATH = SHIPPED_DIR / "prior.pt"


def _canonical(groups: Sequence[str]) -> tuple[str, ...]:
    _check_inputs(groups)
    return tuple(g for g in INPUT_GROUPS if g in groups)


class PriorBundle:
    """Several fitted ``CrossTaskPrior(model="aelle")`` models keyed by (step, input groups).

    Saved as ONE file that ``torch.load(weights_only=True)`` reads (no pickled objects): a JSON
    config (format name and version, the feature names, spectrum fraction, ``info`` and per
    model its inputs, columns and calibration of P(top 10%)) beside each model's ``AeLLE``
    file as bytes.

    Args:
        models: ``{(step, groups): prior}``; ``step`` a non-negative integer (the model reads
            the curve and spectrum at that step: 0 = at initialisation), ``groups`` a subset
            of ``INPUT_GROUPS`` (stored in ``INPUT_GROUPS`` order), each prior a fitted
            ``model="aelle"`` prior whose ``inputs`` are those groups.
        info: Provenance, JSON-able (tables, command).
        spectrum_fraction: Share of each spectrum the models read (``top_fraction``).

    Raises:
        ValueError: A key or model that does not fit the rules above.
    """

    def __init__(
        self,
        models: Mapping[tuple[int, Sequence[str]], CrossTaskPrior],
        info: Mapping[str, Any] | None = None,
        *,
        spectrum_fraction: float = 0.25,
    ) -> None:
        self.models: dict[tuple[int, tuple[str, ...]], CrossTaskPrior] = {}
        for (step, groups), prior in models.items():
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
                raise ValueError(f"a model step must be a non-negative integer but got {step=}.")
            key = (int(step), _canonical(groups))
            if not isinstance(prior, CrossTaskPrior) or _canonical(prior.inputs) != key[1]:
                raise ValueError(f"the model for {key} must be a CrossTaskPrior on {key[1]}.")
            self.models[key] = prior
        if not 0 < spectrum_fraction <= 1:
            raise ValueError(f"spectrum_fraction must be in (0, 1] but got {spectrum_fraction=}.")
        self.spectrum_fraction = float(spectrum_fraction)
        self.info: dict[str, Any] = dict(info or {})
        self._digest: str | None = None

    def select(self, step: int, available: set[str] | frozenset[str]) -> CrossTaskPrior | None:
        """The model to use at ``step`` with the input groups ``available``.

        Among the model steps ``<= step``, the largest that has a model whose groups are all
        in ``available``; at that step, the first such set in ``INPUT_SETS`` order (more groups
        first, then sets with the curve, then with hyperparameters; sets outside
        ``INPUT_SETS`` after those, larger first).

        Returns:
            The model, or None when none fits (``step`` below every model step, or no set
            within ``available``).
        """
        available = set(available)
        steps = sorted({s for s, _ in self.models if s <= step}, reverse=True)
        for model_step in steps:
            sets = [g for s, g in self.models if s == model_step and set(g) <= available]
            if sets:
                sets.sort(key=_preference)
                return self.models[(model_step, sets[0])]
        return None

    def key_of(self, prior: CrossTaskPrior) -> tuple[int, tuple[str, ...]]:
        """The ``(step, groups)`` key a model of this bundle is stored under."""
        for key, model in self.models.items():
            if model is prior:
                return key
        raise ValueError(f"{prior!r} is not a model of this bundle.")

    def _blob(self) -> dict[str, Any]:
        entries = []
        tensors = {}
        for i, ((step, groups), prior) in enumerate(sorted(self.models.items())):
            entries.append({"step": step, "name": f"m{i}", **prior._config()})
            tensors[f"m{i}"] = prior._aelle_bytes()
            entries[-1]["inputs"] = list(groups)
        config = {
            "format": _BUNDLE_FORMAT,
            "version": _BUNDLE_VERSION,
            "hyperparameter_names": list(HYPERPARAMETER_NAMES),
            "curve_names": list(CURVE_NAMES),
            "spectrum_fraction": self.spectrum_fraction,
            "info": self.info,
            "models": entries,
        }
        return {"config": json.dumps(config), "models": tensors}

    def to_bytes(self) -> bytes:
        """The file ``save`` writes, as bytes."""
        import torch

        buffer = io.BytesIO()
        torch.save(self._blob(), buffer)
        return buffer.getvalue()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the bundle to ``path`` (see the class docstring for what is inside)."""
        data = self.to_bytes()
        Path(path).write_bytes(data)
        self._digest = _short_sha256(data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PriorBundle:
        """Read a bundle written by ``save``.

        Raises:
            FileNotFoundError: No file at ``path``.
            ValueError: The file is not a bundle of this format version (truncated, foreign,
                other feature columns, a model that does not fit its config); the message
                names the file.
        """
        data = Path(path).read_bytes()
        try:
            bundle = cls._from_bytes(data)
        except ValueError as err:
            raise ValueError(f"{os.fspath(path)!r} is not a readable prior bundle: {err}") from err
        bundle._digest = _short_sha256(data)
        return bundle

    @classmethod
    def _from_bytes(cls, data: bytes) -> PriorBundle:
        import torch

        try:
            blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:  # torch reports damaged files in many ways
            # The first sentence only: torch's own advice (load with weights_only=False) is not
            # what a user holding a file that is not a prior should do.
            first = str(err).strip().split(". ")[0].splitlines()[0][:120] if str(err) else ""
            raise ValueError(f"not a torch file ({type(err).__name__}: {first})") from err
        if not isinstance(blob, dict) or set(blob) != {"config", "models"}:
            found = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
            raise ValueError(f"it holds {found}, not PriorBundle.save's config and models")
        try:
            config = json.loads(blob["config"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"its config is not JSON ({err})") from err
        if not isinstance(config, dict):
            raise ValueError("its config is not a JSON object")
        if config.get("format") != _BUNDLE_FORMAT or config.get("version") != _BUNDLE_VERSION:
            raise ValueError(
                f"it holds format {config.get('format')!r} version {config.get('version')!r}; "
                f"this version reads {_BUNDLE_FORMAT!r} {_BUNDLE_VERSION}"
            )
        names = (
            tuple(config.get("hyperparameter_names", ())),
            tuple(config.get("curve_names", ())),
        )
        if names != (HYPERPARAMETER_NAMES, CURVE_NAMES):
            raise ValueError(f"it was trained on other feature columns: {names}")
        models: dict[tuple[int, Sequence[str]], CrossTaskPrior] = {}
        try:
            for entry in config["models"]:
                prior = CrossTaskPrior._from_config(entry, blob["models"][entry["name"]])
                models[(int(entry["step"]), tuple(entry["inputs"]))] = prior
            return cls(models, config.get("info"), spectrum_fraction=config["spectrum_fraction"])
        except (KeyError, TypeError, RuntimeError) as err:
            raise ValueError(
                f"its models do not fit its config ({type(err).__name__}: {err})"
            ) from err

    def digest(self) -> str:
        """The first 16 hex digits of the SHA-256 of the saved file's bytes."""
        if self._digest is None:
            self._digest = _short_sha256(self.to_bytes())
        return self._digest

    def __repr__(self) -> str:
        keys = ", ".join(f"{s}:{'+'.join(g)}" for s, g in sorted(self.models))
        return f"PriorBundle([{keys}])"


def _preference(groups: tuple[str, ...]) -> tuple[int, int]:
    if groups in INPUT_SETS:
        return (0, INPUT_SETS.index(groups))
    return (1, -len(groups))


def _short_sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def load_shipped_prior() -> PriorBundle:
    """The prior bundle shipped with the package (``optuna_lyap/aelle/weights/prior.pt``).

    Read once per process and cached (the same object on every call). Its ``info`` names the
    tables it was trained on and the command that trained it (``benchmarks/prior_train.py``).

    Raises:
        ValueError: The shipped file is missing or unreadable (a broken installation).
    """
    if not SHIPPED_PATH.exists():
        raise ValueError(f"the shipped prior {str(SHIPPED_PATH)!r} is missing from the package.")
    return PriorBundle.load(SHIPPED_PATH)
