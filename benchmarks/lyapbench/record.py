"""Train a grid of configurations of a built-in task to the end and record every epoch.

For each configuration (cell, hidden size, initialisation scale, learning rate) and each epoch
``e = 0 .. n_epochs`` (0 = at initialisation), the table holds the validation metric, the
validation and training losses, the full Lyapunov spectrum of the recurrent layer on the task's
probe inputs, and the seconds spent training, evaluating and computing the spectrum. HPO methods
are then replayed on the table instead of training again.

The file is gzip-compressed JSON lines: a ``meta`` line, then one line per configuration, each
line its own gzip member, appended as soon as the configuration finishes. A run that stops
(or a ``--start/--stop`` chunk) is resumed by running the same command again: configurations
already in the file are skipped.

Usage::

    python -m benchmarks.lyapbench.record --task sdigits --out benchmarks/data/sdigits.jsonl.gz
    python -m benchmarks.lyapbench.record --task sdigits --out ... --start 0 --stop 40  # a chunk
    python -m benchmarks.lyapbench.record --task copy --option delay=20 --workers 2 --out ...
    python -m benchmarks.lyapbench.record --time 6 --task sdigits --out /tmp/t.jsonl.gz  # timing
    # A random design (the corpus): 240 configurations, spectra at epochs 0-3, k <= 64
    python -m benchmarks.lyapbench.record --task xor --design random --n-configs 240 \
        --spectrum-epochs 0 1 2 3 --max-k 64 --out benchmarks/data/corpus/xor.jsonl.gz

Reading::

    from benchmarks.lyapbench.record import load_table   # from the repository's root
    table = load_table("benchmarks/data/sdigits.jsonl.gz")
    table["values"]   # (n_configs, n_epochs + 1) validation metric
    table["spectra"]  # (n_configs, n_epochs + 1, max dim) exponents, NaN past each ``dim``
"""

from __future__ import annotations

import argparse
import ast
import gzip
import itertools
import json
import math
import multiprocessing
import os
import platform
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import optuna_lyap
from optuna_lyap.tasks import SequenceTask, get_task, list_tasks, trial_seed

FORMAT_VERSION = 1

DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "cell": ("rnn", "gru", "lstm"),
    "hidden_size": (8, 16, 32, 64),
    "init_scale": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    "lr": (3e-4, 1e-3, 3e-3, 1e-2),
}

# The ranges of the random design (``--design random``): the cell uniformly, the others
# log-uniformly (the hidden size rounded to an integer).
DEFAULT_RANGES: dict[str, tuple[Any, ...]] = {
    "cell": ("rnn", "gru", "lstm"),
    "hidden_size": (8, 128),
    "init_scale": (0.25, 8.0),
    "lr": (3e-4, 3e-2),
}

# The spectrum options every recorded table uses (the engine's defaults, seeded basis; ``k``
# becomes ``min(D, --max-k)`` when a cap is given).
SPECTRUM_OPTIONS: dict[str, Any] = {
    "k": None,
    "warmup": 0,
    "qr_interval": 1,
    "state": "full",
    "seed": 0,
}

# Fields of the meta line that must match for a run to resume an existing file.
_RESUME_KEYS = (
    "format",
    "task",
    "task_options",
    "task_config",
    "seed",
    "n_epochs",
    "grid",
    "n_probes",
    "design",
    "spectrum_epochs",
    "max_k",
)

_TIME_KEYS = ("train_seconds", "eval_seconds", "spectrum_seconds")


def grid_configs(grid: Mapping[str, Sequence[Any]], seed: int) -> list[dict[str, Any]]:
    """Every combination of ``grid``, in a random order drawn from ``seed``.

    The shuffled order makes any prefix (a ``--stop`` chunk) an unbiased subset of the grid.
    """
    names = list(grid)
    combos = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]
    order = np.random.default_rng(seed).permutation(len(combos))
    return [combos[i] for i in order]


def random_configs(
    ranges: Mapping[str, Sequence[Any]], n_configs: int, seed: int
) -> list[dict[str, Any]]:
    """``n_configs`` configurations drawn independently from ``ranges`` with ``seed``.

    ``ranges["cell"]`` lists the cells (drawn uniformly); ``hidden_size``, ``init_scale`` and
    ``lr`` are ``(low, high)`` drawn log-uniformly (the hidden size rounded to an integer, the
    others to 4 significant digits). Configuration ``i`` does not depend on ``n_configs``, so a
    longer design extends a shorter one.
    """
    if n_configs < 1:
        raise ValueError(f"n_configs must be a positive integer but got {n_configs=}.")
    for key in ("hidden_size", "init_scale", "lr"):
        low, high = ranges[key]
        if not 0 < low <= high:
            raise ValueError(f"the range of {key} must be 0 < low <= high but got {ranges[key]}.")
    configs = []
    for index in range(n_configs):
        rng = np.random.default_rng([seed, index])
        cells = list(ranges["cell"])
        config: dict[str, Any] = {"cell": str(cells[rng.integers(len(cells))])}
        for key in ("hidden_size", "init_scale", "lr"):
            low, high = (math.log(v) for v in ranges[key])
            value = math.exp(rng.uniform(low, high))
            config[key] = int(round(value)) if key == "hidden_size" else float(f"{value:.4g}")
        configs.append(config)
    return configs


def _finite_or_none(values: Iterable[float], digits: int | None = None) -> list[float | None]:
    out: list[float | None] = []
    for value in values:
        value = float(value)
        if not math.isfinite(value):
            out.append(None)
        else:
            out.append(float(f"{value:.{digits}g}") if digits else value)
    return out


def record_config(
    task: SequenceTask,
    index: int,
    params: dict[str, Any],
    *,
    seed: int,
    n_probes: int,
    spectrum_epochs: Sequence[int] | None = None,
    max_k: int | None = None,
) -> dict[str, Any]:
    """Train one configuration for ``task.n_epochs`` epochs and record every epoch.

    Args:
        task: The task (its ``n_epochs`` is the training length).
        index: Position of the configuration in the grid order; with ``seed`` it seeds the
            model (``trial_seed(seed, index)``, as ``make_objective`` does for trial numbers).
        params: ``cell``, ``hidden_size``, ``init_scale``, ``lr``.
        seed: The table's seed.
        n_probes: Probe sequences for the spectrum.
        spectrum_epochs: Epochs whose spectrum is computed (``None``: every epoch); the others
            hold ``None`` in ``spectra`` and 0 in ``spectrum_seconds``.
        max_k: Largest number of exponents (``None``: the full spectrum, ``k = D``).

    Returns:
        One JSON-ready record (lists of length ``n_epochs + 1``; non-finite numbers as None).
    """
    model = task.build_model(params, seed=trial_seed(seed, index))
    optimizer = task.make_optimizer(model, params)
    # The full state's dimension D (h, and c for an LSTM, in every layer).
    per_layer = model.rnn.hidden_size * (2 if isinstance(model.rnn, nn.LSTM) else 1)
    dim = model.rnn.num_layers * per_layer
    options = dict(SPECTRUM_OPTIONS)
    if max_k is not None and max_k < dim:
        options["k"] = int(max_k)

    def spectrum_of(epoch: int) -> list[float | None] | None:
        if spectrum_epochs is not None and epoch not in spectrum_epochs:
            return None
        with warnings.catch_warnings():
            # A diverged network gives NaN exponents with a warning; the record keeps NaN.
            warnings.simplefilter("ignore", RuntimeWarning)
            spectrum = optuna_lyap.lyapunov_spectrum(
                model.rnn, task.probe_inputs(model, n_probes), **options
            )
        return _finite_or_none(spectrum.numpy(), digits=6)

    epochs = record_epochs(task, model, optimizer, task.n_epochs, spectrum_of)
    return {
        "kind": "config",
        "index": index,
        "params": params,
        "model_seed": trial_seed(seed, index),
        "dim": dim,
        **epochs,
    }


def record_epochs(
    task: SequenceTask,
    model: Any,
    optimizer: torch.optim.Optimizer,
    n_epochs: int,
    spectrum_of: Callable[[int], list[float | None] | None],
) -> dict[str, Any]:
    """Train ``model`` for ``n_epochs`` epochs and record epochs ``0 .. n_epochs``.

    Epoch 0 is the untrained network. Each epoch: one ``task.train_epoch`` (none at epoch 0),
    the metric and validation loss, then ``spectrum_of(epoch)`` (a JSON-ready spectrum, or
    None where none is computed), each timed.

    Returns:
        ``values``, ``val_loss``, ``train_loss`` (null at epoch 0), ``diverged``, ``spectra``
        and the ``*_seconds`` lists, ``n_epochs + 1`` long, non-finite numbers as None.
    """
    values, val_losses, losses, diverged = [], [], [], []
    spectra: list[list[float | None] | None] = []
    times: dict[str, list[float]] = {key: [] for key in _TIME_KEYS}
    for epoch in range(n_epochs + 1):
        start = time.perf_counter()
        losses.append(task.train_epoch(model, optimizer) if epoch > 0 else math.nan)
        trained = time.perf_counter()
        values.append(task.evaluate(model))
        val_losses.append(task.validation_loss(model))
        evaluated = time.perf_counter()
        spectra.append(spectrum_of(epoch))
        done = time.perf_counter()
        diverged.append(bool(model.diverged))
        times["train_seconds"].append(round(trained - start, 4))
        times["eval_seconds"].append(round(evaluated - trained, 4))
        times["spectrum_seconds"].append(round(done - evaluated, 4))
    return {
        "values": _finite_or_none(values),
        "val_loss": _finite_or_none(val_losses),
        "train_loss": _finite_or_none(losses),
        "diverged": diverged,
        "spectra": spectra,
        **times,
    }


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line as its own gzip member, written and synced in one go."""
    data = gzip.compress((json.dumps(record, separators=(",", ":")) + "\n").encode())
    with path.open("ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The records of ``path``; a truncated last member (an interrupted write) is dropped."""
    with gzip.open(path, "rt") as handle:
        try:
            for line in handle:
                if line.endswith("\n"):
                    yield json.loads(line)
        except (EOFError, gzip.BadGzipFile):
            warnings.warn(f"{path}: ignoring a truncated last record.", stacklevel=2)


def read_records(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The meta line and the configuration records of a table, by grid index."""
    lines = list(_read_lines(Path(path)))
    if not lines or lines[0].get("kind") != "meta":
        raise ValueError(f"{path} does not start with a meta line; is it a recorded table?")
    records = {line["index"]: line for line in lines[1:] if line.get("kind") == "config"}
    return lines[0], [records[i] for i in sorted(records)]


def load_table(path: str | Path) -> dict[str, Any]:
    """A recorded table as arrays.

    Returns:
        ``meta`` (dict), ``index`` ``(n,)``, ``cell`` ``(n,)`` str, ``hidden_size`` ``(n,)``,
        ``init_scale`` ``(n,)``, ``lr`` ``(n,)``, ``dim`` ``(n,)`` (spectrum length ``D``),
        ``values`` (the task's metric) / ``val_loss`` (cross-entropy in nats or MSE on the
        validation split) / ``train_loss`` / ``train_seconds`` / ``eval_seconds`` (metric and
        validation loss) / ``spectrum_seconds`` ``(n, E + 1)`` floats (NaN where missing or
        non-finite), ``diverged``
        ``(n, E + 1)`` bool, and ``spectra`` ``(n, E + 1, max D)`` float64 exponents in nats
        per step, descending, NaN beyond each row's ``dim``.
    """
    meta, records = read_records(path)
    n, steps = len(records), meta["n_epochs"] + 1
    width = max((r["dim"] for r in records), default=0)
    table: dict[str, Any] = {"meta": meta}
    table["index"] = np.array([r["index"] for r in records], dtype=np.int64)
    for key in ("cell", "hidden_size", "init_scale", "lr"):
        table[key] = np.array([r["params"][key] for r in records])
    table["dim"] = np.array([r["dim"] for r in records], dtype=np.int64)
    for key in ("values", "val_loss", "train_loss", *_TIME_KEYS):
        missing = [None] * steps  # val_loss is absent from tables recorded before it existed
        table[key] = np.array(
            [[np.nan if v is None else v for v in r.get(key, missing)] for r in records],
            dtype=np.float64,
        ).reshape(n, steps)
    table["diverged"] = np.array([r["diverged"] for r in records], dtype=bool).reshape(n, steps)
    spectra = np.full((n, steps, width), np.nan)
    for row, record in enumerate(records):
        for epoch, spectrum in enumerate(record["spectra"]):
            if spectrum is not None:  # None: an epoch whose spectrum was not computed
                values = [np.nan if v is None else v for v in spectrum]
                spectra[row, epoch, : len(spectrum)] = values
    table["spectra"] = spectra
    return table


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--option takes KEY=VALUE but got {pair!r}.")
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text  # a bare word such as order=pixel
    return options


# One task per worker process, built once by the pool's initializer.
_WORKER_TASK: SequenceTask | None = None


def _init_worker(name: str, seed: int, n_epochs: int, options: dict[str, Any]) -> None:
    global _WORKER_TASK
    torch.set_num_threads(1)
    _WORKER_TASK = get_task(name, seed=seed, n_epochs=n_epochs, **options)


_Job = tuple[int, dict[str, Any], int, int, "list[int] | None", "int | None"]


def _run_in_worker(job: _Job) -> dict[str, Any]:
    index, params, seed, n_probes, spectrum_epochs, max_k = job
    assert _WORKER_TASK is not None
    return record_config(
        _WORKER_TASK,
        index,
        params,
        seed=seed,
        n_probes=n_probes,
        spectrum_epochs=spectrum_epochs,
        max_k=max_k,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--task", required=True, choices=sorted(list_tasks()))
    parser.add_argument("--out", type=Path, help="table file (.jsonl.gz); appended to")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, e.g. order=pixel (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="data split, grid order, models")
    parser.add_argument("--n-epochs", type=int, default=None, help="default: the task's")
    parser.add_argument("--n-probes", type=int, default=15, help="probe sequences per spectrum")
    for key, values in DEFAULT_GRID.items():
        kind = str if key == "cell" else int if key == "hidden_size" else float
        parser.add_argument(
            f"--{key.replace('_', '-')}s",
            dest=key,
            nargs="+",
            type=kind,
            default=list(values),
            help=f"grid values of {key}",
        )
    parser.add_argument(
        "--design",
        choices=("grid", "random"),
        default="grid",
        help="grid: every combination of the grid values; random: --n-configs draws, the cell "
        "from --cells, hidden size, init scale and lr log-uniform in the --*-range bounds",
    )
    parser.add_argument("--n-configs", type=int, default=240, help="size of a random design")
    for key in ("hidden_size", "init_scale", "lr"):
        kind = int if key == "hidden_size" else float
        parser.add_argument(
            f"--{key.replace('_', '-')}-range",
            dest=f"{key}_range",
            nargs=2,
            type=kind,
            default=list(DEFAULT_RANGES[key]),
            metavar=("LOW", "HIGH"),
            help=f"bounds of {key} in a random design",
        )
    parser.add_argument(
        "--spectrum-epochs",
        nargs="+",
        type=int,
        default=None,
        help="epochs whose spectrum is computed (default: every epoch)",
    )
    parser.add_argument(
        "--max-k", type=int, default=None, help="most exponents per spectrum (default: all D)"
    )
    parser.add_argument("--start", type=int, default=0, help="first grid position to run")
    parser.add_argument("--stop", type=int, default=None, help="one past the last position")
    parser.add_argument("--workers", type=int, default=1, help="processes (1: no pool)")
    parser.add_argument(
        "--time",
        type=int,
        default=0,
        metavar="N",
        help="only time N configurations spread over the grid; write nothing",
    )
    return parser


def _meta(
    args: argparse.Namespace, argv: Sequence[str], grid: dict[str, list[Any]], task: SequenceTask
) -> dict:
    return {
        "kind": "meta",
        "format": FORMAT_VERSION,
        "task": task.name,
        "task_options": _parse_options(args.option),
        "task_config": task.options(),
        "metric": task.metric,
        "direction": task.direction,
        "worst_value": task.worst_value,
        "seed": args.seed,
        "n_epochs": task.n_epochs,
        "design": args.design,
        "grid": grid,
        "n_configs": args.n_configs
        if args.design == "random"
        else math.prod(len(v) for v in grid.values()),
        "spectrum_epochs": args.spectrum_epochs,
        "max_k": args.max_k,
        "n_probes": args.n_probes,
        "probe_length": task.probe_length,
        "spectrum": SPECTRUM_OPTIONS,
        "command": shlex.join(["python", "-m", "benchmarks.lyapbench.record", *argv]),
        "commit": _commit(),
        "versions": library_versions(),
    }


def library_versions() -> dict[str, str]:
    """The versions a recorded table's meta line names (the package, torch, numpy, Python)."""
    return {
        "optuna_lyap": optuna_lyap.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _commit() -> dict[str, Any]:
    """The recording code's commit and dirty flag (imported here: ``runs`` reads this module
    through ``tables``)."""
    from benchmarks.lyapbench.runs import commit

    head, dirty = commit()
    return {"commit": head, "dirty": dirty}


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    torch.set_num_threads(1)
    options = _parse_options(args.option)
    task = get_task(args.task, seed=args.seed, n_epochs=args.n_epochs, **options)
    if args.design == "random":
        grid = {"cell": list(args.cell)}
        for key in ("hidden_size", "init_scale", "lr"):
            grid[key] = list(getattr(args, f"{key}_range"))
        configs = random_configs(grid, args.n_configs, args.seed)
    else:
        grid = {key: list(getattr(args, key)) for key in DEFAULT_GRID}
        configs = grid_configs(grid, args.seed)
    if args.max_k is not None and args.max_k < 1:
        raise SystemExit(f"--max-k must be a positive integer but got {args.max_k}.")
    extra = {"spectrum_epochs": args.spectrum_epochs, "max_k": args.max_k}
    meta = _meta(args, argv, grid, task)

    if args.time:
        # Spread the probe from the smallest to the largest models: the largest set the pace.
        by_size = sorted(
            range(len(configs)), key=lambda i: (configs[i]["hidden_size"], configs[i]["cell"])
        )
        picks = [by_size[int(p)] for p in np.linspace(0, len(configs) - 1, args.time).round()]
        for index in picks:
            start = time.perf_counter()
            record = record_config(
                task, int(index), configs[index], seed=args.seed, n_probes=args.n_probes, **extra
            )
            total = time.perf_counter() - start
            spent = {key: round(sum(record[key]), 2) for key in _TIME_KEYS}
            print(
                f"{index:4d} {configs[index]} total {total:.2f}s {spent} "
                f"final {record['values'][-1]}",
                flush=True,
            )
        return

    if args.out is None:
        raise SystemExit("--out is required unless --time is given.")
    done: set[int] = set()
    if args.out.exists():
        old_meta, records = read_records(args.out)
        mismatch = [key for key in _RESUME_KEYS if key in old_meta and old_meta[key] != meta[key]]
        if mismatch:
            raise SystemExit(
                f"{args.out} was recorded with other settings ({mismatch}); "
                "use another --out or the same options."
            )
        done = {r["index"] for r in records}
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        _append_line(args.out, meta)

    stop = len(configs) if args.stop is None else min(args.stop, len(configs))
    jobs = [
        (i, configs[i], args.seed, args.n_probes, args.spectrum_epochs, args.max_k)
        for i in range(args.start, stop)
        if i not in done
    ]
    print(
        f"{task.name}: {len(jobs)} configurations to run ({len(done)} already recorded)",
        flush=True,
    )
    started = time.perf_counter()
    if args.workers > 1:
        context = multiprocessing.get_context("spawn")
        setup = (args.task, args.seed, task.n_epochs, options)
        with context.Pool(args.workers, _init_worker, setup) as pool:
            results: Iterable[dict[str, Any]] = pool.imap_unordered(_run_in_worker, jobs)
            _write_all(args.out, results, len(jobs), started)
    else:
        results = (
            record_config(task, i, p, seed=s, n_probes=n, spectrum_epochs=e, max_k=k)
            for i, p, s, n, e, k in jobs
        )
        _write_all(args.out, results, len(jobs), started)


def _write_all(path: Path, results: Iterable[dict[str, Any]], total: int, started: float) -> None:
    for count, record in enumerate(results, start=1):
        _append_line(path, record)
        seconds = sum(sum(record[key]) for key in _TIME_KEYS)
        print(
            f"[{count}/{total}] config {record['index']} {record['params']} "
            f"final {record['values'][-1]} ({seconds:.1f}s; "
            f"{time.perf_counter() - started:.0f}s elapsed)",
            flush=True,
        )


if __name__ == "__main__":
    main()
