"""Torch threads for the package's own calls: one thread (the default policy) against torch's
setting, on spectra from small to large networks and on an AeLLE fit.

Each case is timed with the two settings alternating, ``--repeats`` times, and the medians are
compared, so that both see the same machine load (record the load too: on a shared machine it
dominates). Usage::

    python -m benchmarks.speed.bench_threads --torch-threads 2 --repeats 5

Writes ``threads_cpu.json`` and ``.md`` (``benchmarks/results/bench_threads/<commit>/``) after
every case; ``--only`` reruns some cases and keeps the others' rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

import optuna_lyap
from benchmarks.lyapbench import runs as runfiles
from optuna_lyap import AeLLE, lyapunov_spectrum

RESULTS = runfiles.results_dir("bench_threads")

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
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="run only the cases whose label starts with one of these; the results file keeps "
        "the other cases' rows from earlier runs",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)

    cases: list[tuple[str, Callable[[], object]]] = [
        (label, _spectrum_case(*spec)) for label, *spec in SPECTRA
    ]
    cases.append(("AeLLE fit, 40 spectra, defaults", _aelle_case()))
    if args.only is not None:
        cases = [(label, call) for label, call in cases if label.startswith(tuple(args.only))]

    path = RESULTS / "threads_cpu.json"
    kept = json.loads(path.read_text())["rows"] if args.only is not None and path.exists() else []
    rows: list[dict] = []
    for label, call in cases:
        load_before = os.getloadavg()
        call()  # warm-up: first-call allocations and imports
        one, torch_setting = [], []
        for _ in range(args.repeats):
            one.append(_time(call, 1))
            torch_setting.append(_time(call, None))
        row = {
            "case": label,
            "repeats": args.repeats,
            "torch_threads": args.torch_threads,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
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
        _write(kept, rows)  # after every case: a long case cut short keeps the others


def _write(kept: list[dict], rows: list[dict]) -> None:
    done = {r["case"] for r in rows}
    order = [label for label, *_ in SPECTRA] + ["AeLLE fit, 40 spectra, defaults"]
    merged = sorted(
        [r for r in kept if r["case"] not in done] + rows, key=lambda r: order.index(r["case"])
    )
    meta = {
        **runfiles.metadata(runfiles.command_line("benchmarks.speed.bench_threads")),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "threads_cpu.json").write_text(json.dumps({"meta": meta, "rows": merged}, indent=2))
    lines = [
        f"`python -m benchmarks.speed.bench_threads` on {meta['cpu_count']} CPUs, torch "
        f"{meta['torch']}, with other jobs loading the machine (load average over 1 minute, "
        "before and after each case). Medians over the repeats, the two settings alternating.",
        "",
        "| case | 1 thread (s) | torch's threads (s) | 1 thread faster by | repeats | load |",
        "|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {r['case']} | {r['one_thread_s']:.3f} | {r['torch_threads_s']:.3f} "
        f"({r['torch_threads']}) | x{r['speed_up']:.2f} | {r['repeats']} | "
        f"{r['load_average_before'][0]:.1f} / {r['load_average_after'][0]:.1f} |"
        for r in merged
    ]
    (RESULTS / "threads_cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
