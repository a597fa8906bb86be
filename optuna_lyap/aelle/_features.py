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

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import rankdata

from optuna_lyap._numeric import MAD_TO_STD
from optuna_lyap.aelle._preprocessing import preprocess_spectra

CELL_NAMES: tuple[str, ...] = ("rnn", "gru", "lstm")

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

    Example:
        >>> import torch
        >>> from optuna_lyap.aelle import NetworkDescription
        >>> params = {"cell": "gru", "hidden_size": 32, "init_scale": 1.0, "lr": 1e-3}
        >>> NetworkDescription.from_params(params)  # doctest: +NORMALIZE_WHITESPACE
        NetworkDescription(cell='gru', hidden_size=32, num_layers=1, init_scale=1.0, lr=0.001,
                           recurrent_norm=None)
        >>> net = NetworkDescription.from_module(torch.nn.LSTM(3, 16), lr=1e-2)
        >>> net.cell, net.hidden_size, net.recurrent_norm is not None
        ('lstm', 16, True)
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
    return _by_column(values, direction, lambda column: (rankdata(column) - 0.5) / column.size)


def study_zscores(values: np.ndarray, direction: Literal["maximize", "minimize"]) -> np.ndarray:
    """Each trial's robust z-score against its study's trials at the same step, higher = better.

    ``(v - median) / (1.4826 * MAD)`` per column, oriented by ``direction`` and clipped to
    ``[-5, 5]``; a column whose MAD is 0 uses the standard deviation, and a constant column
    gives 0. NaN stays NaN.

    Args:
        values: ``n x E`` (or ``n``) raw values of one study.
        direction: The study's direction.
    """
    return _by_column(values, direction, _robust_zscores)


def _robust_zscores(column: np.ndarray) -> np.ndarray:
    """:func:`study_zscores` of one column's finite values."""
    centre = np.median(column)
    scale = MAD_TO_STD * np.median(np.abs(column - centre))
    if scale <= 0:
        scale = float(column.std())
    if scale <= 0:
        return np.zeros(column.shape)
    return np.clip((column - centre) / scale, -5, 5)


def _by_column(
    values: np.ndarray,
    direction: Literal["maximize", "minimize"],
    score: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """``score`` of each column's finite values, oriented by ``direction`` (higher = better);
    NaN where a value is NaN. ``values`` is ``n x E`` or ``n`` (then so is the result)."""
    oriented = _oriented(values, direction)
    flat = oriented.ndim == 1
    columns = oriented[:, None] if flat else oriented
    out = np.full(columns.shape, np.nan)
    for j in range(columns.shape[1]):
        finite = np.isfinite(columns[:, j])
        if finite.any():
            out[finite, j] = score(columns[finite, j])
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


def curve_rank_features(
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

#: The input groups a prior can read. ``"hyperparameters"`` is what the in-study model calls its
#: ``"params"`` input (``optuna_lyap._prediction._inputs.ParamsInput``), here in a generic
#: encoding that means the same on any task. Both spellings are stored (this one in a bundle's
#: JSON ``inputs`` and in the ``prior_inputs`` of the pruner's trial records, ``"params"`` in the
#: in-study records' ``inputs``), so each keeps its own: renaming either would change what old
#: files and studies hold.
INPUT_GROUPS: tuple[str, ...] = ("hyperparameters", "spectrum", "curve")


@dataclass(frozen=True)
class PriorInputs:
    """Rows of prior inputs at one step, from one or many studies.

    Attributes:
        hyperparameters: ``n x 8`` (``hyperparameter_features``).
        spectra: ``n`` spectra (the top ``fraction`` kept by ``top_fraction``), nats per step.
        dims: ``n`` state dimensions ``D`` of the networks the spectra belong to.
        curve: ``n x 4`` (``curve_rank_features``).
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
        check_input_groups(inputs)
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


def check_input_groups(inputs: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``inputs`` is a non-empty sequence of ``INPUT_GROUPS``."""
    if isinstance(inputs, str) or not inputs or any(g not in INPUT_GROUPS for g in inputs):
        raise ValueError(
            f"inputs must be a non-empty list of {list(INPUT_GROUPS)} but got {inputs=}."
        )


def head_feature_mask(inputs: Sequence[str], width: int | None = None) -> np.ndarray:
    """Which columns of ``PriorInputs.matrix(inputs)`` an AeLLE head reads as features.

    The hyperparameter and curve columns are the head's; the spectrum group's ``G + 2``
    columns are not (AeLLE reads the spectra themselves).

    Args:
        inputs: The input groups of the matrix.
        width: The matrix's width, when known, to check against.

    Raises:
        ValueError: ``width`` is not the width of ``inputs``' matrix.
    """
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
