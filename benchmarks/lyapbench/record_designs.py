"""Record the cross-design corpus: every design of ``lyapbench/designs.py``, trained to the end.

One table per design, ``benchmarks/data/designs/<design>.jsonl.gz``, in the format of
``benchmarks/lyapbench/record.py`` (a meta line, then one gzip member per configuration,
appended as it finishes) with three more fields per configuration: ``setting`` (the canonical
settings it was built from), ``network`` (the network as ``LyapunovMonitor`` describes it from
its weights at initialisation) and ``params`` named as the design names them.

The recording goes in passes: the first ``--passes`` value of configurations of every design,
then the next, so that an early stop still leaves every design in the corpus. Running the same
command again resumes where it stopped. Long: run it in the background, one process, niced::

    nohup nice -n 19 python -m benchmarks.lyapbench.record_designs > record_designs.log 2>&1 &
    python -m benchmarks.lyapbench.record_designs --designs gunpoint_sgd --passes 2 \
        --out /tmp/d  # a probe
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import optuna_lyap
from benchmarks.lyapbench import designs as design_lib
from benchmarks.lyapbench.record import (
    SPECTRUM_OPTIONS,
    _append_line,
    _finite_or_none,
    library_versions,
    read_records,
    record_epochs,
)
from optuna_lyap.aelle import NetworkDescription
from optuna_lyap.tasks import SequenceTask

FORMAT_VERSION = 1
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "designs"
DEFAULT_PASSES = (20, 50, 100)
SPECTRUM_EPOCHS = (0, 1, 2, 3)
MAX_K = 64
N_PROBES = 15


def _commit() -> str | None:
    """The recording code's commit (imported here, as ``record`` does: ``runs`` reads the
    recorder's module through ``tables``)."""
    from benchmarks.lyapbench.runs import commit

    return commit()[0]


def _spectrum(model: nn.Module, task: SequenceTask, k: int | None) -> list[float | None] | None:
    """The spectrum in eval mode (dropout off), or None where it cannot be computed."""
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            spectrum = optuna_lyap.lyapunov_spectrum(
                model.rnn, task.probe_inputs(model, N_PROBES), **{**SPECTRUM_OPTIONS, "k": k}
            )
        return _finite_or_none(spectrum.numpy(), digits=6)
    except (RuntimeError, ValueError, torch.linalg.LinAlgError):
        return None
    finally:
        model.train(was_training)


def record_config(
    design: design_lib.Design, task: SequenceTask, index: int, params: dict[str, Any]
) -> dict[str, Any]:
    """Train configuration ``index`` of ``design`` for its budget and record every epoch."""
    setting = design.canonical(params)
    model_seed = int(np.random.SeedSequence([design.seed, index]).generate_state(1)[0])
    model, trainer = design_lib.build(task, setting, model_seed)
    optimizer = design_lib.make_optimizer(model, setting)
    per_layer = model.rnn.hidden_size * (2 if isinstance(model.rnn, nn.LSTM) else 1)
    dim = model.rnn.num_layers * per_layer
    k = min(dim, MAX_K)
    network = NetworkDescription.from_module(model.rnn, setting.lr).to_json()

    def spectrum_of(epoch: int) -> list[float | None] | None:
        if epoch in SPECTRUM_EPOCHS and not model.diverged:
            return _spectrum(model, trainer, k)
        return None

    epochs = record_epochs(trainer, model, optimizer, design.n_epochs, spectrum_of)
    return {
        "kind": "config",
        "index": index,
        "params": params,
        "setting": dataclasses.asdict(setting),
        "network": network,
        "model_seed": model_seed,
        "dim": dim,
        **epochs,
    }


def _meta(design: design_lib.Design, task: SequenceTask, argv: Sequence[str]) -> dict[str, Any]:
    source: dict[str, Any] = {"kind": design.task[0]}
    if design.task[0] in ("uea", "series"):
        wheel = design_lib.aeon_wheel()
        source.update(wheel=wheel.name, sha256=design_lib.file_sha256(wheel))
    return {
        "kind": "meta",
        "format": FORMAT_VERSION,
        "design": design.to_json(),
        "task": task.name,
        "task_config": task.options(),
        "metric": task.metric,
        "direction": task.direction,
        "worst_value": task.worst_value,
        "n_epochs": design.n_epochs,
        "spectrum_epochs": list(SPECTRUM_EPOCHS),
        "max_k": MAX_K,
        "n_probes": N_PROBES,
        "probe_length": task.probe_length,
        "spectrum": SPECTRUM_OPTIONS,
        "data_source": source,
        "command": "python -m " + shlex.join(["benchmarks.lyapbench.record_designs", *argv]),
        "commit": _commit(),
        "versions": library_versions(),
    }


def record_design(design: design_lib.Design, stop: int, out_dir: Path, argv: Sequence[str]) -> int:
    """Record configurations ``0 .. stop - 1`` of ``design`` not yet in its table.

    Returns:
        How many configurations were recorded now.

    Raises:
        SystemExit: The table exists with another design (a changed definition must not be
            mixed into an old table).
    """
    path = out_dir / f"{design.name}.jsonl.gz"
    task = design.make_task()
    done: set[int] = set()
    if path.exists():
        meta, records = read_records(path)
        if meta.get("design") != design.to_json():
            raise SystemExit(f"{path} was recorded with another definition of {design.name}.")
        done = {r["index"] for r in records}
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        _append_line(path, _meta(design, task, argv))
    recorded = 0
    for index, params in enumerate(design.draw_configs(stop)):
        if index in done:
            continue
        start = time.perf_counter()
        record = record_config(design, task, index, params)
        _append_line(path, record)
        recorded += 1
        final = record["values"][-1]
        print(
            f"{design.name} #{index}: {time.perf_counter() - start:.1f} s, final {final}, "
            f"diverged {record['diverged'][-1]}",
            flush=True,
        )
    return recorded


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--designs",
        nargs="+",
        default=design_lib.design_names(),
        choices=design_lib.design_names(),
    )
    parser.add_argument(
        "--passes",
        nargs="+",
        type=int,
        default=list(DEFAULT_PASSES),
        help="configurations per design after each pass (increasing)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the tables")
    args = parser.parse_args(argv)
    if any(p < 1 for p in args.passes) or sorted(args.passes) != args.passes:
        raise SystemExit(f"--passes must be increasing positive integers but got {args.passes}.")
    torch.set_num_threads(1)
    for stop in args.passes:
        for name in args.designs:
            print(
                f"== {name} up to {stop} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
                flush=True,
            )
            record_design(design_lib.DESIGNS[name], stop, args.out, argv)
    print(f"== done {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}", flush=True)


if __name__ == "__main__":
    main()
