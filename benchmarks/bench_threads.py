"""Torch threads for the package's own calls: one thread (the default policy) against torch's
setting, on spectra from small to large networks and on an AeLLE fit.

Each case is timed with the two settings alternating, ``--repeats`` times, and the medians are
compared, so that both see the same machine load (record the load too: on a shared machine it
dominates). Usage::

    python benchmarks/bench_threads.py --torch-threads 2 --repeats 5

Writes ``benchmarks/results/threads_cpu.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import optuna_lyap
from optuna_lyap import AeLLE, lyapunov_spectrum

RESULTS = Path(__file__).resolve().parent / "results"

# (label, cell, hidden size, layers, B, T, warmup): the README's snippet, the quickstart's
# networks, and the largest size in the spectrum benchmark.
SPECTRA = [
    ("GRU-16 (quickstart), B=15 T=30", "gru", 16, 1, 15, 30, 0),
    ("GRU-48 (quickstart), B=15 T=30", "gru", 48, 1, 15, 30, 0),
    ("LSTM-32 x2 (README), B=15 T=200", "lstm", 32, 2, 15, 200, 50),
    ("LSTM-128, B=15 T=100", "lstm", 128, 1, 15, 100, 0),
    ("LSTM-256, B=15 T=100", "lstm", 256, 1, 15, 100, 0),
]


def _spectrum_case(
    cell: str, hidden: int, layers: int, batch: int, steps: int, warmup: int
) -> Callable[[], object]:
    torch.manual_seed(0)
    module = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    model = module(4, hidden, num_layers=layers, batch_first=True)
    inputs = torch.randn(batch, steps, 4)
    return lambda: lyapunov_spectrum(model, inputs, warmup=warmup, seed=0)


def _aelle_case() -> Callable[[], object]:
    rng = np.random.default_rng(0)
    spectra = [np.sort(rng.normal(-1.0, 0.5, d))[::-1] for d in rng.integers(8, 64, 40)]
    targets = np.array([s[0] for s in spectra])
    return lambda: AeLLE(seed=0).fit(spectra, targets)


def _time(call: Callable[[], object], threads: int | None) -> float:
    with optuna_lyap.use_threads(threads):
        start = time.perf_counter()
        call()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch-threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-large", action="store_true", help="leave out LSTM-256")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)

    cases: list[tuple[str, Callable[[], object]]] = [
        (label, _spectrum_case(*spec))
        for label, *spec in SPECTRA
        if not (args.skip_large and "256" in label)
    ]
    cases.append(("AeLLE fit, 40 spectra, defaults", _aelle_case()))

    load_before = os.getloadavg()
    rows = []
    for label, call in cases:
        call()  # warm-up: first-call allocations and imports
        one, torch_setting = [], []
        for _ in range(args.repeats):
            one.append(_time(call, 1))
            torch_setting.append(_time(call, None))
        row = {
            "case": label,
            "one_thread_s": statistics.median(one),
            "torch_threads_s": statistics.median(torch_setting),
            "one_thread_all_s": one,
            "torch_threads_all_s": torch_setting,
        }
        row["speed_up"] = row["torch_threads_s"] / row["one_thread_s"]
        rows.append(row)
        print(
            f"{label:36s} 1 thread {row['one_thread_s']:8.3f} s   "
            f"{args.torch_threads} threads {row['torch_threads_s']:8.3f} s   "
            f"x{row['speed_up']:.2f}",
            flush=True,
        )
    load_after = os.getloadavg()

    meta = {
        "torch_threads": args.torch_threads,
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "torch": torch.__version__,
        "command": "python benchmarks/bench_threads.py "
        f"--torch-threads {args.torch_threads} --repeats {args.repeats}"
        + (" --skip-large" if args.skip_large else ""),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "threads_cpu.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"`{meta['command']}` on {meta['cpu_count']} CPUs, torch {meta['torch']}; load average "
        f"(1/5/15 min) {', '.join(f'{x:.1f}' for x in load_before)} before, "
        f"{', '.join(f'{x:.1f}' for x in load_after)} after. Medians of {args.repeats} runs, "
        "the two settings alternating.",
        "",
        f"| case | 1 thread (s) | {args.torch_threads} threads (s) | 1 thread faster by |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['case']} | {r['one_thread_s']:.3f} | {r['torch_threads_s']:.3f} | "
        f"x{r['speed_up']:.2f} |"
        for r in rows
    ]
    (RESULTS / "threads_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
