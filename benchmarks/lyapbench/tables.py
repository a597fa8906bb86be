"""Recorded tables: where they lie, what a replay on one optimises, and how a trial picks a row.

A table (``benchmarks/lyapbench/record.py``) holds, for every recorded configuration, its
validation metric, losses, Lyapunov spectra and seconds per epoch. The grids of
``benchmarks/data/*.jsonl.gz`` have one categorical per axis; the corpus of
``benchmarks/data/corpus/*.jsonl.gz`` is a random design over a continuous box.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection

from benchmarks.lyapbench.record import load_table, read_records
from optuna_lyap.pruners import curve_features

__all__ = [
    "AXES",
    "CORPUS_SPACE",
    "DATA",
    "RESULTS",
    "ROOT",
    "TOP_SHARE",
    "ConfigurationSpace",
    "budget_of",
    "curve_columns",
    "is_grid",
    "load_table",
    "lookup",
    "objective_of",
    "read_records",
    "recorded_params",
    "recorded_spectrum",
    "spectra_at",
    "cached_table",
    "table_paths",
    "top_configurations",
]

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
DATA = BENCHMARKS / "data"
RESULTS = BENCHMARKS / "results"
# The hyperparameters of every recorded configuration, in the order a trial suggests them.
AXES = ("cell", "hidden_size", "init_scale", "lr")
# A trial is a hit when its final objective is in the table's best TOP_SHARE.
TOP_SHARE = 0.02
# The random design of the corpus tables (benchmarks/data/README.md).
CORPUS_SPACE = {
    "cell": CategoricalDistribution(("rnn", "gru", "lstm")),
    "hidden_size": IntDistribution(8, 128, log=True),
    "init_scale": FloatDistribution(0.25, 8.0, log=True),
    "lr": FloatDistribution(3e-4, 3e-2, log=True),
}


def table_paths() -> dict[str, Path]:
    """Every replayable table by task name: the grids, then the corpus."""
    paths = sorted(DATA.glob("*.jsonl.gz")) + sorted((DATA / "corpus").glob("*.jsonl.gz"))
    return {p.name.split(".")[0]: p for p in paths}


_TABLES: dict[str, dict[str, Any]] = {}


def cached_table(name_or_path: str | Path) -> dict[str, Any]:
    """The table of a task name (``table_paths``) or of a file, loaded once per process."""
    key = str(name_or_path)
    if key not in _TABLES:
        paths = table_paths()
        _TABLES[key] = load_table(paths[key] if key in paths else Path(key))
    return _TABLES[key]


def is_grid(table: dict[str, Any]) -> bool:
    """Whether ``table`` is a grid (one categorical per axis) rather than a random design."""
    return table["meta"].get("design") != "random"


def objective_of(table: dict[str, Any]) -> tuple[str, np.ndarray, str]:
    """The name, ``(n, E + 1)`` values and direction of what a replay on ``table`` optimises.

    The table's metric, unless more than ``TOP_SHARE`` of the table ties at its best final
    value; then the validation loss (minimised), which still ranks those. On ``copy`` (76 of
    288 configurations copy perfectly) and ``copy_long`` this is the validation loss.
    """
    direction = table["meta"]["direction"]
    sign = 1.0 if direction == "maximize" else -1.0
    finals = np.nan_to_num(sign * table["values"][:, -1], nan=-np.inf)
    if np.mean(finals >= finals.max() - 1e-12) > TOP_SHARE:
        return "val_loss", table["val_loss"], "minimize"
    return table["meta"]["metric"], table["values"], direction


def top_configurations(table: dict[str, Any], share: float = TOP_SHARE) -> np.ndarray:
    """``n`` booleans: whether a configuration's final objective is in the table's best ``share``
    (a diverged, NaN final is never)."""
    _, values, direction = objective_of(table)
    sign = 1.0 if direction == "maximize" else -1.0
    scores = np.nan_to_num(sign * values[:, -1], nan=-np.inf)
    return np.asarray(scores >= np.quantile(scores, 1.0 - share) - 1e-12)


def budget_of(table: dict[str, Any], trainings: float) -> int:
    """A study's budget in epochs: ``trainings`` full trainings of ``table``'s epochs."""
    return int(trainings * (table["values"].shape[1] - 1))


def lookup(table: dict[str, Any]) -> dict[tuple[Any, ...], int]:
    """Each recorded configuration's index, by its ``AXES`` values."""
    return {tuple(table[a][i].item() for a in AXES): i for i in range(len(table["index"]))}


def recorded_params(table: dict[str, Any], i: int) -> dict[str, Any]:
    """The hyperparameters configuration ``i`` was recorded with."""
    return {a: table[a][i].item() for a in AXES}


def recorded_spectrum(
    table: dict[str, Any], i: int, step: int, finite_only: bool = True
) -> SimpleNamespace:
    """The recorded spectrum of configuration ``i`` at ``step``, with its state dimension ``dim``.

    Corpus tables keep the top 64 exponents of a larger ``D``; ``report_spectrum`` and
    :class:`~benchmarks.lyapbench.replay.TableSampler` read ``D`` from ``dim``. With
    ``finite_only`` (the held-out replays), the non-finite exponents are dropped where some are
    finite; without it (the grid replays), the stored exponents are given as they are, so a
    spectrum with a NaN stays non-finite.
    """
    dim = int(table["dim"][i])
    exponents = table["spectra"][i, step, : min(dim, table["spectra"].shape[2])]
    if finite_only and np.isfinite(exponents).any():
        exponents = exponents[np.isfinite(exponents)]
    return SimpleNamespace(exponents=exponents, dim=dim)


def spectra_at(table: dict[str, Any], epoch: int) -> list[np.ndarray]:
    """Every configuration's recorded spectrum at ``epoch``, each cut to its ``dim``."""
    return [table["spectra"][i, epoch, : table["dim"][i]] for i in range(len(table["dim"]))]


def curve_columns(values: np.ndarray, epoch: int, direction: str) -> np.ndarray:
    """``n x 2``: each configuration's curve features at ``epoch``, as the pruner computes them."""
    study_direction = StudyDirection[direction.upper()]
    return np.stack(
        [curve_features(dict(enumerate(row)), epoch, study_direction) for row in values]
    )


class ConfigurationSpace:
    """How a trial of a replay picks its recorded configuration.

    Grid tables: one categorical per axis, the configuration with exactly those values.
    Random-design tables: ``CORPUS_SPACE``; a suggestion trains the *nearest recorded
    configuration*: the same cell, the smallest Euclidean distance in standardised log
    coordinates (each of ``log hidden_size``, ``log init_scale``, ``log lr`` divided by its
    standard deviation over the table), as surrogate-free tabular benchmarks of continuous
    spaces do.

    Args:
        table: A table from :func:`load_table`.
    """

    def __init__(self, table: dict[str, Any]) -> None:
        self.grid = is_grid(table)
        self.cells = np.asarray(table["cell"]).astype(str)
        if self.grid:
            self.lookup = lookup(table)
            self.distributions = {
                a: CategoricalDistribution(tuple(table["meta"]["grid"][a])) for a in AXES
            }
        else:
            self.logs = np.log(
                np.stack([np.asarray(table[a], dtype=np.float64) for a in AXES[1:]], axis=1)
            )
            self.scale = self.logs.std(axis=0)
            self.scale[self.scale == 0] = 1.0
            self.distributions = dict(CORPUS_SPACE)

    def index(self, params: dict[str, Any]) -> int:
        """The recorded configuration a trial with ``params`` trains.

        Raises:
            ValueError: On a random design, when no recorded configuration has the cell.
        """
        if self.grid:
            return self.lookup[tuple(params[a] for a in AXES)]
        same = np.flatnonzero(self.cells == str(params["cell"]))
        if len(same) == 0:
            raise ValueError(f"no recorded configuration has cell {params['cell']!r}")
        point = np.log([float(params[a]) for a in AXES[1:]])
        d = (((self.logs[same] - point) / self.scale) ** 2).sum(axis=1)
        return int(same[int(np.argmin(d))])

    def suggest(self, trial: optuna.Trial) -> int:
        """Suggest every axis on ``trial`` and return the recorded configuration it trains."""
        params: dict[str, Any] = {}
        for a in AXES:
            d = self.distributions[a]
            if isinstance(d, CategoricalDistribution):
                params[a] = trial.suggest_categorical(a, d.choices)
            elif isinstance(d, IntDistribution):
                params[a] = trial.suggest_int(a, d.low, d.high, log=d.log)
            else:
                params[a] = trial.suggest_float(a, d.low, d.high, log=d.log)
        return self.index(params)
