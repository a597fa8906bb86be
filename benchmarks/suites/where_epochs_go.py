"""Where do the epochs go before a replayed study first completes a top-2% trial?

Reads the stored grid runs (``benchmarks/suites/grids.py``, runs that record their trials) and
splits, per run, the epochs spent before the first completed top-2% trial into:

- ``completed top 10%``: full trainings of configurations in the table's top 10% (not top 2%);
- ``completed rest``: full trainings of configurations outside the top 10%;
- ``pruned``: the epochs pruned trials trained before they were stopped;

with the number of top-2% proposals pruned on the way, the index of the first trial that
proposed a top-2% configuration, and two columns about repeats: the sampler proposes grid
points, so TPE proposes some configurations again and again (each trial a new training, as in
a real study of a categorical space). ``repeats`` is the share of those epochs spent on
configurations an earlier trial of the run had already proposed; ``distinct`` the number of
different configurations tried before the hit. Medians (means for the counts) over the stored
seeds.

Usage::

    python -m benchmarks.suites.where_epochs_go      # every stored TPE group
    python -m benchmarks.suites.where_epochs_go --methods median successive_halving lyapunov_hybrid
    python -m benchmarks.suites.where_epochs_go \
        --runs-dir benchmarks/results/archive/replay_runs_r9 \
        --out /tmp/where_epochs_go_r9.md            # round 9, per sampler

Writes ``benchmarks/results/where_epochs_go.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.tables import DATA, RESULTS, load_table, top_configurations
from benchmarks.suites import grids
from benchmarks.suites.grids import load_runs, stored_methods


def split_run(run: dict[str, Any], top2: np.ndarray, top10: np.ndarray, n_epochs: int) -> dict:
    """One run's epochs before its first completed top-2% trial, by kind of trial."""
    out: dict[str, Any] = {
        "completed_top10": 0,
        "completed_rest": 0,
        "pruned": 0,
        "top2_pruned": 0,
        "first_top2_trial": None,
        "hit": False,
        "repeat_epochs": 0,
        "distinct": 0,
    }
    seen: set[int] = set()
    for k, record in enumerate(run["trials"]):
        i, stop = record[0], record[1]
        if not (stop == -1 and top2[i]):
            if i in seen:
                out["repeat_epochs"] += n_epochs if stop == -1 else stop
            seen.add(i)
        if top2[i] and out["first_top2_trial"] is None:
            out["first_top2_trial"] = k
        if stop == -1 and top2[i]:
            out["hit"] = True
            break
        if stop == -1:
            out["completed_top10" if top10[i] else "completed_rest"] += n_epochs
        else:
            out["pruned"] += stop
            out["top2_pruned"] += int(top2[i])
    out["distinct"] = len(seen)
    return out


def _spent(row: dict[str, Any]) -> int:
    return int(row["completed_top10"] + row["completed_rest"] + row["pruned"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--methods", nargs="+", default=None, help="default: every stored one")
    parser.add_argument(
        "--out", default=str(runfiles.results_dir("where_epochs_go") / "where_epochs_go.md")
    )
    parser.add_argument(
        "--runs-dir",
        default=str(RESULTS / "archive" / "replay_runs"),
        help="the stored grid runs to read (the grid suite's --runs-dir; default: archived)",
    )
    args = parser.parse_args(argv)
    grids.RUNS = Path(args.runs_dir)

    paths = sorted(DATA.glob("*.jsonl.gz"))
    if args.tasks:
        paths = [DATA / f"{t}.jsonl.gz" for t in args.tasks]
    lines = [
        "`" + runfiles.command_line("benchmarks.suites.where_epochs_go", argv) + "`",
        "",
        f"Sampler `{args.sampler}`. Epochs spent before the first completed top-2% trial "
        "(medians over seeds; runs that never get there count their whole budget); top-2% "
        "proposals pruned before it (mean per run); the trial that first proposed a top-2% "
        "configuration (median); the share of those epochs spent on configurations the run had "
        "proposed before (repeats) and the number of distinct ones tried (medians).",
        "",
        "| task | method | completed top 10% | completed rest | pruned | top-2% pruned | "
        "first top-2% proposal | seeds reaching | repeats | distinct |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for path in paths:
        table = load_table(path)
        task = path.name.split(".")[0]
        top2, top10 = top_configurations(table, 0.02), top_configurations(table, 0.10)
        n_epochs = table["values"].shape[1] - 1
        for method in args.methods or stored_methods(task, args.sampler):
            payload = load_runs(task, args.sampler, method)
            if payload is None or any("trials" not in r for r in payload["runs"]):
                continue
            rows = [split_run(r, top2, top10, n_epochs) for r in payload["runs"]]
            first = [r["first_top2_trial"] for r in rows if r["first_top2_trial"] is not None]
            lines.append(
                f"| {task} | {method} | "
                f"{np.median([r['completed_top10'] for r in rows]):.0f} | "
                f"{np.median([r['completed_rest'] for r in rows]):.0f} | "
                f"{np.median([r['pruned'] for r in rows]):.0f} | "
                f"{np.mean([r['top2_pruned'] for r in rows]):.1f} | "
                f"{np.median(first) if first else float('nan'):.0f} | "
                f"{np.mean([r['hit'] for r in rows]):.2f} | "
                f"{np.median([r['repeat_epochs'] / max(1, _spent(r)) for r in rows]):.2f} | "
                f"{np.median([r['distinct'] for r in rows]):.0f} |"
            )
    print("\n".join(lines))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
