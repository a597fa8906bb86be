"""Designs for a corpus across model families, optimisers, search boxes, budgets and data.

A *design* is what a user's own HPO problem fixes: the data, the model family (cells, layers,
dropout, initialisation, an embedding front end for tokens), the optimiser, the search box with
the user's own parameter names, and the training budget. The first tables of the corpus
(``benchmarks/data/*.jsonl.gz``, ``corpus/``) share one design: a one-layer RNN/GRU/LSTM with
uniform initialisation, Adam with clipping and four hyperparameters over nearly one box. The
designs here differ from it, and from each other, in the ways users' problems differ, so that a
prior can be evaluated leave-one-design-out.

Each design draws its own configurations from its own seed (``draw_configs``), so no two designs
share a configuration. ``canonical`` maps a design's parameters, named as a user names them
(``units``, ``learning_rate``, ``arch``, ...), to the settings the model and optimiser are built
from; the recorder stores both, and the network as ``LyapunovMonitor`` describes it from its
weights.

Real data come from the UEA/UCR archive files and the small series that ship inside the ``aeon``
wheel on PyPI (read from the wheel itself; nothing is installed or downloaded at run time beyond
``pip download`` of that wheel, see ``aeon_wheel``).

Notation: ``N`` sequences, ``T`` time steps, ``I`` input features, ``S`` scored steps.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from optuna_lyap.tasks import SequenceData, SequenceModel, SequenceTask, get_task, init_uniform_

AEON_VERSION = "1.6.0"
AEON_WHEEL = f"aeon-{AEON_VERSION}-py3-none-any.whl"
_WHEEL_DIR = Path(__file__).resolve().parents[1] / "data" / "designs" / "_wheels"
_DATA_ROOT = "aeon/datasets/data"


# -- data -------------------------------------------------------------------------------------


def aeon_wheel() -> Path:
    """The ``aeon`` wheel whose data files the real-data designs read.

    ``OPTUNA_LYAP_AEON_WHEEL`` names a wheel file; otherwise the wheel is looked for in
    ``benchmarks/data/designs/_wheels/`` (git-ignored) and fetched there with
    ``pip download --no-deps aeon==1.6.0`` when missing.
    """
    named = os.environ.get("OPTUNA_LYAP_AEON_WHEEL")
    if named:
        return Path(named)
    path = _WHEEL_DIR / AEON_WHEEL
    if not path.exists():
        _WHEEL_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                str(_WHEEL_DIR),
                f"aeon=={AEON_VERSION}",
            ],
            check=True,
        )
    return path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file (recorded with every table that reads the wheel)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_ts(text: str) -> tuple[np.ndarray, list[str]]:
    """Read a ``.ts`` file of the UEA/UCR archive with equal-length series.

    Args:
        text: The file's contents: ``#`` comments, ``@`` header lines, then ``@data`` and one
            case per line, its dimensions separated by ``:`` and the label last.

    Returns:
        ``(X, labels)``: ``X`` an ``N x T x I`` float64 array (``?`` as NaN), ``labels`` the
        ``N`` label strings (class names, or target values for regression files).

    Raises:
        ValueError: No ``@data`` section, or cases of different lengths or dimensions.
    """
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data")
    except StopIteration:
        raise ValueError("a .ts file needs an @data line; none was found.") from None
    cases, labels = [], []
    for line in lines[start + 1 :]:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        *dims, label = line.split(":")
        series = [[math.nan if v == "?" else float(v) for v in d.split(",")] for d in dims]
        cases.append(series)
        labels.append(label.strip())
    shapes = {(len(c), len(c[0])) for c in cases}
    if len(shapes) != 1 or any(len(d) != len(c[0]) for c in cases for d in c):
        raise ValueError(f"cases must share their length and dimensions but got {sorted(shapes)}.")
    return np.asarray(cases, dtype=np.float64).transpose(0, 2, 1), labels


def read_csv_series(text: str) -> np.ndarray:
    """The last column of a two-column CSV with a header line, as a float64 vector."""
    rows = [line.split(",") for line in text.splitlines()[1:] if line.strip()]
    return np.asarray([float(row[-1]) for row in rows], dtype=np.float64)


def _wheel_text(member: str) -> str:
    with zipfile.ZipFile(aeon_wheel()) as wheel:
        return wheel.read(f"{_DATA_ROOT}/{member}").decode()


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every array by the training array's per-feature mean and std (last axis)."""
    axes = tuple(range(train.ndim - 1))
    mean = np.nanmean(train, axis=axes, keepdims=True)
    std = np.nanstd(train, axis=axes, keepdims=True)
    std[std == 0] = 1.0
    return [np.nan_to_num((a - mean) / std) for a in (train, *others)]


class UEATask(SequenceTask):
    """A UEA/UCR data set from the ``aeon`` wheel: classify (or regress) each whole series.

    The archive's TRAIN split trains, its TEST split is the validation split. Each channel is
    standardised with the training split's statistics; the model is scored at the last step.

    Args:
        dataset: Folder inside ``aeon/datasets/data`` (e.g. ``"GunPoint"``).
        stem: File stem of its ``_TRAIN.ts`` / ``_TEST.ts`` files (``None``: ``dataset``).
        problem: ``"classification"`` (accuracy) or ``"regression"`` (normalised MSE).
        stride: Keep every ``stride``-th time step (long series made cheaper).
        log1p: Apply ``log(1 + x)`` to the inputs first (heavy-tailed counts).
        **kwargs: Common options, see ``SequenceTask``.
    """

    def __init__(
        self,
        *,
        dataset: str,
        stem: str | None = None,
        problem: str = "classification",
        stride: int = 1,
        log1p: bool = False,
        **kwargs: Any,
    ) -> None:
        if problem not in ("classification", "regression"):
            raise ValueError(f"problem must be 'classification' or 'regression', got {problem=}.")
        if stride < 1:
            raise ValueError(f"stride must be a positive integer but got {stride=}.")
        self.dataset = dataset
        self.stem = stem
        self.problem = problem  # type: ignore[misc]
        self.stride = stride
        self.log1p = log1p
        self.name = f"uea:{dataset}"  # type: ignore[misc]
        self.metric = "val_accuracy" if problem == "classification" else "val_nmse"  # type: ignore[misc]
        self.direction = "maximize" if problem == "classification" else "minimize"  # type: ignore[misc]
        super().__init__(**kwargs)

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
        prefix = f"{self.dataset}/{self.stem or self.dataset}"
        train, train_labels = parse_ts(_wheel_text(f"{prefix}_TRAIN.ts"))
        val, val_labels = parse_ts(_wheel_text(f"{prefix}_TEST.ts"))
        return train, val, train_labels, val_labels

    @property
    def input_size(self) -> int:  # type: ignore[override]
        return int(self._arrays[0].shape[2])

    @property
    def output_size(self) -> int:  # type: ignore[override]
        if self.problem == "regression":
            return 1
        return len(set(self._arrays[2]) | set(self._arrays[3]))

    def _generate(self, rng: np.random.Generator) -> tuple[SequenceData, SequenceData]:
        train, val, train_labels, val_labels = self._arrays
        train, val = train[:, :: self.stride], val[:, :: self.stride]
        if self.log1p:
            train, val = np.log1p(np.maximum(train, 0)), np.log1p(np.maximum(val, 0))
        train, val = _standardise(train, val)
        if self.problem == "classification":
            classes = sorted(set(train_labels) | set(val_labels))
            encode = {label: i for i, label in enumerate(classes)}
            y_train = torch.tensor([[encode[v]] for v in train_labels], dtype=torch.int64)
            y_val = torch.tensor([[encode[v]] for v in val_labels], dtype=torch.int64)
        else:
            targets = _standardise(
                np.asarray(train_labels, dtype=np.float64)[:, None],
                np.asarray(val_labels, dtype=np.float64)[:, None],
            )
            y_train = torch.from_numpy(targets[0].astype(np.float32))[:, None]
            y_val = torch.from_numpy(targets[1].astype(np.float32))[:, None]
        x_train = torch.from_numpy(train.astype(np.float32))
        x_val = torch.from_numpy(val.astype(np.float32))
        return SequenceData(x_train, y_train), SequenceData(x_val, y_val)


class SeriesForecastTask(SequenceTask):
    """One short real series (``Airline.csv``, ``Lynx.csv`` in the wheel): forecast the next value.

    The series is log-transformed, cut into overlapping windows of ``window`` steps whose next
    value is the target, and split in time: the first ``train_share`` of windows train, the
    rest validate. Scaled by the training windows' statistics; scored with the normalised MSE.

    Args:
        series: ``"Airline"`` or ``"Lynx"`` (file stem in ``aeon/datasets/data/<series>/``).
        window: Input steps per example.
        train_share: Share of the windows (earliest first) used for training.
        **kwargs: Common options, see ``SequenceTask``.
    """

    metric = "val_nmse"
    direction = "minimize"
    problem = "regression"
    input_size = 1
    output_size = 1

    def __init__(
        self, *, series: str, window: int = 24, train_share: float = 0.75, **kwargs: Any
    ) -> None:
        if window < 2:
            raise ValueError(f"window must be an integer >= 2 but got {window=}.")
        if not 0 < train_share < 1:
            raise ValueError(f"train_share must be in (0, 1) but got {train_share=}.")
        self.series = series
        self.window = window
        self.train_share = train_share
        self.name = f"series:{series}"  # type: ignore[misc]
        super().__init__(**kwargs)

    def _generate(self, rng: np.random.Generator) -> tuple[SequenceData, SequenceData]:
        raw = read_csv_series(_wheel_text(f"{self.series}/{self.series}.csv"))
        values = np.log(np.maximum(raw, 1))
        n = len(values) - self.window
        windows = np.stack([values[i : i + self.window + 1] for i in range(n)])
        cut = int(round(n * self.train_share))
        mean, std = windows[:cut].mean(), windows[:cut].std() or 1.0
        windows = (windows - mean) / std
        x = torch.from_numpy(windows[:, :-1, None].astype(np.float32))
        y = torch.from_numpy(windows[:, -1:, None].astype(np.float32))
        return SequenceData(x[:cut], y[:cut]), SequenceData(x[cut:], y[cut:])


# -- model family and optimiser ---------------------------------------------------------------


class DesignModel(SequenceModel):
    """``SequenceModel`` with stacked layers, dropout and a choice of initialisation.

    Dropout acts between stacked recurrent layers (PyTorch's ``dropout`` argument) and on the
    recurrent outputs before the readout; the spectrum is always computed in eval mode, where
    dropout is off.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        num_layers: int,
        dropout: float,
        vocab_size: int | None,
        embedding_dim: int,
    ) -> None:
        super().__init__(
            cell,
            input_size,
            hidden_size,
            output_size,
            num_layers=num_layers,
            vocab_size=vocab_size,
            embedding_dim=embedding_dim,
        )
        rnn_class = type(self.rnn)
        self.rnn = rnn_class(
            self.rnn.input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.output_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(self.rnn_inputs(x))
        return self.readout(self.output_dropout(states))


def _init_orthogonal_(model: DesignModel, gain: float, generator: torch.Generator) -> None:
    """Recurrent matrices orthogonal per gate block times ``gain``; input weights Xavier; zero
    biases (the usual orthogonal initialisation of recurrent networks)."""
    hidden = model.rnn.hidden_size
    with torch.no_grad():
        for name, param in model.rnn.named_parameters():
            if name.startswith("weight_hh"):
                for block in param.split(hidden, dim=0):
                    nn.init.orthogonal_(block, gain=gain, generator=generator)
            elif name.startswith("weight_ih"):
                nn.init.xavier_uniform_(param, generator=generator)
            else:
                param.zero_()


@dataclass(frozen=True)
class Setting:
    """The canonical settings one configuration is built and trained from.

    ``init`` is ``"default"`` (PyTorch's own), ``"uniform"`` (``U(-a, a)`` with ``a = scale /
    sqrt(H)``, the first corpus's family) or ``"orthogonal"`` (gain ``scale``).
    """

    cell: str
    hidden_size: int
    num_layers: int = 1
    dropout: float = 0.0
    init: str = "default"
    scale: float = 1.0
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    batch_size: int = 32
    grad_clip: float | None = 1.0  # None: no clipping
    embedding_dim: int = 16


def build(task: SequenceTask, setting: Setting, seed: int) -> tuple[DesignModel, SequenceTask]:
    """A model for ``setting`` and a copy of ``task`` that trains it with its batch and clip.

    Draws nothing from the global generators: construction runs under a forked RNG seeded with
    ``seed``, the initialisation and minibatch order use generators seeded from it.
    """
    states = np.random.SeedSequence(seed).generate_state(2, np.uint64)
    init_seed, order_seed = (int(s) >> 1 for s in states)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)  # PyTorch's default initialisation, made reproducible
        model = DesignModel(
            setting.cell,
            task.input_size,
            setting.hidden_size,
            task.output_size,
            num_layers=setting.num_layers,
            dropout=setting.dropout,
            vocab_size=task.vocab_size,
            embedding_dim=setting.embedding_dim,
        )
    generator = torch.Generator().manual_seed(init_seed)
    if setting.init == "uniform":
        init_uniform_(model, setting.scale, generator)
    elif setting.init == "orthogonal":
        _init_orthogonal_(model, setting.scale, generator)
    elif setting.init != "default":
        raise ValueError(f"init must be default, uniform or orthogonal but got {setting.init=}.")
    model.generator.manual_seed(order_seed)
    trainer = copy.copy(task)  # shares the generated data (cached on the instance)
    trainer.batch_size = int(setting.batch_size)
    trainer.grad_clip = math.inf if setting.grad_clip is None else float(setting.grad_clip)
    return model, trainer


def make_optimizer(model: nn.Module, setting: Setting) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (with ``momentum``) over all of ``model``'s parameters."""
    params = model.parameters()
    if setting.optimizer == "adam":
        return torch.optim.Adam(params, lr=setting.lr, weight_decay=setting.weight_decay)
    if setting.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=setting.lr, weight_decay=setting.weight_decay)
    if setting.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=setting.lr, momentum=setting.momentum, weight_decay=setting.weight_decay
        )
    raise ValueError(f"optimizer must be adam, adamw or sgd but got {setting.optimizer=}.")


# -- search boxes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Dim:
    """One dimension of a search box.

    ``kind``: ``"cat"`` (``values`` drawn uniformly), ``"log"`` / ``"int_log"`` (log-uniform in
    ``values = (low, high)``, the second rounded to an integer) or ``"uniform"``.
    """

    kind: str
    values: tuple[Any, ...]

    def draw(self, rng: np.random.Generator) -> Any:
        if self.kind == "cat":
            value = self.values[int(rng.integers(len(self.values)))]
            return value.item() if isinstance(value, np.generic) else value
        low, high = self.values
        if self.kind == "uniform":
            return float(f"{rng.uniform(low, high):.4g}")
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
        return int(round(value)) if self.kind == "int_log" else float(f"{value:.4g}")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "values": list(self.values)}


def cat(*values: Any) -> Dim:
    return Dim("cat", tuple(values))


def log(low: float, high: float) -> Dim:
    return Dim("log", (low, high))


def int_log(low: int, high: int) -> Dim:
    return Dim("int_log", (low, high))


def uniform(low: float, high: float) -> Dim:
    return Dim("uniform", (low, high))


@dataclass(frozen=True)
class Design:
    """One user's problem: data, model family, optimiser, search box (their names) and budget.

    Attributes:
        name: The design's name (its table is ``<name>.jsonl.gz``).
        description: One line for the data README.
        task: ``(factory name, options)``: ``"builtin"`` with ``name`` (a registered task),
            ``"uea"`` (``UEATask`` options) or ``"series"`` (``SeriesForecastTask`` options).
        space: The search box, keyed by the design's own parameter names.
        names: Canonical ``Setting`` field -> the design's parameter name.
        fixed: ``Setting`` fields the design fixes.
        n_epochs: Training budget in epochs.
        seed: Seeds the configurations, the data and the models (distinct per design).
    """

    name: str
    description: str
    task: tuple[str, dict[str, Any]]
    space: dict[str, Dim]
    names: dict[str, str]
    fixed: dict[str, Any] = field(default_factory=dict)
    n_epochs: int = 10
    seed: int = 0

    def make_task(self) -> SequenceTask:
        kind, options = self.task
        options = {**options, "seed": self.seed, "n_epochs": self.n_epochs}
        if kind == "builtin":
            options = dict(options)
            return get_task(options.pop("name"), **options)
        if kind == "uea":
            return UEATask(**options)
        if kind == "series":
            return SeriesForecastTask(**options)
        raise ValueError(f"task kind must be builtin, uea or series but got {kind!r}.")

    def draw_configs(self, n: int) -> list[dict[str, Any]]:
        """``n`` configurations; configuration ``i`` comes from ``default_rng([seed, i])``."""
        configs = []
        for index in range(n):
            rng = np.random.default_rng([self.seed, index])
            configs.append({key: dim.draw(rng) for key, dim in self.space.items()})
        return configs

    def canonical(self, params: Mapping[str, Any]) -> Setting:
        """The ``Setting`` a configuration (the design's names) is built from."""
        values = {field_: params[name] for field_, name in self.names.items()}
        return Setting(**{**self.fixed, **values})

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "task": {"kind": self.task[0], **self.task[1]},
            "space": {key: dim.to_json() for key, dim in self.space.items()},
            "names": self.names,
            "fixed": self.fixed,
            "n_epochs": self.n_epochs,
            "seed": self.seed,
        }


def design_from_json(data: Mapping[str, Any]) -> Design:
    """A ``Design`` from ``Design.to_json``'s object (the form stored in every table's meta).

    Raises:
        KeyError: A field is missing.
    """
    task = dict(data["task"])
    kind = task.pop("kind")
    space = {key: Dim(dim["kind"], tuple(dim["values"])) for key, dim in data["space"].items()}
    return Design(
        data["name"],
        data["description"],
        (kind, task),
        space,
        dict(data["names"]),
        dict(data["fixed"]),
        n_epochs=int(data["n_epochs"]),
        seed=int(data["seed"]),
    )


# The designs are data: ``designs.json`` beside this module, one ``Design.to_json`` object
# each, in recording order. Edit a design there only with a new name: its tables refuse to
# resume under another definition.
DESIGNS: dict[str, Design] = {
    d.name: d
    for d in map(
        design_from_json, json.loads((Path(__file__).parent / "designs.json").read_text())
    )
}


def design_names() -> list[str]:
    return list(DESIGNS)


def describe(designs: Sequence[str] | None = None) -> str:
    """A Markdown table of the designs (for ``benchmarks/data/README.md``)."""
    rows = ["| design | what | epochs | seed | parameters |", "|---|---|---|---|---|"]
    for name in designs or DESIGNS:
        d = DESIGNS[name]
        rows.append(
            f"| `{d.name}` | {d.description} | {d.n_epochs} | {d.seed} | "
            + ", ".join(f"`{k}`" for k in d.space)
            + " |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the designs as the Markdown table of ``benchmarks/data/README.md``."""
    import argparse

    parser = argparse.ArgumentParser(description="List the corpus designs as a Markdown table.")
    parser.add_argument("designs", nargs="*", help=f"some of {design_names()} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.designs) - set(DESIGNS))
    if unknown:
        parser.error(f"unknown designs {unknown}; choose from {design_names()}.")
    print(describe(args.designs or None))


if __name__ == "__main__":
    main()
