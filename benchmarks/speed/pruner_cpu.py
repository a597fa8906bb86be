"""The default pruner's own CPU per study against the training time of the epochs it spends.

Replays ``LyapunovPruner()`` with TPE and a leave-one-task-out prior (the ``ours_pruner_only``
method of ``suites/heldout.py``) on the three grids, one seed at a time in one process, and
divides the
pruner's process time (its ``prune`` calls: fits, predictions, the prior, decisions) by the
recorded training and evaluation seconds of the epochs the study spent. Each replay's trace is
checked against the stored ``heldout_runs/<task>__ours_pruner_only`` run of the same seed, so a
change that saves CPU is shown to change no decision.

Usage::

    python -m benchmarks.suites.heldout --train-priors --tasks copy sdigits sines   # once
    python -m benchmarks.speed.pruner_cpu --seeds 100
    python -m benchmarks.speed.pruner_cpu --seeds 50 --fit-always   # as before fits were skipped

Writes ``benchmarks/results/pruner_cpu.json`` and ``.md`` (``pruner_cpu_fit_always`` with
``--fit-always``, which fits every training set, also those no model could make count).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from benchmarks.lyapbench import runs as runfiles
from benchmarks.suites import heldout
from optuna_lyap import LyapunovPruner

RESULTS = runfiles.results_dir("pruner_cpu")
# The stored held-out runs read here: the archived ones, which the documented claims rest on.
STORED_RUNS = heldout.ARCHIVED_RUNS

TASKS = ("copy", "sdigits", "sines")
# The bar: the pruner's CPU per study at most this share of the training time it spends.
BAR = 0.10


def training_seconds(table: dict[str, Any], run: dict[str, Any]) -> float:
    """Recorded training + evaluation seconds of every epoch ``run``'s trials trained."""
    epoch = np.nan_to_num(table["train_seconds"] + table["eval_seconds"])
    n_epochs = epoch.shape[1] - 1
    total = 0.0
    for t in run["trials"]:
        last = n_epochs if t["stop"] == -1 else t["stop"]
        total += float(epoch[t["i"], 1 : last + 1].sum())
    return total


def measure(task: str, seeds: range) -> dict[str, Any]:
    table = heldout._table(task)
    budget = heldout.budget_of(table, heldout.BUDGET_TRAININGS)
    stored = heldout.load_runs(task, "ours_pruner_only", runs=STORED_RUNS)
    stored_runs = {} if stored is None else stored["runs"]
    shares, cpu, same, compared = [], [], 0, 0
    for seed in seeds:
        run = heldout.run_one(task, "ours_pruner_only", seed, budget)
        shares.append(run["pruner_cpu_seconds"] / training_seconds(table, run))
        cpu.append(run["pruner_cpu_seconds"])
        old = stored_runs.get(str(seed))
        if old is not None:
            compared += 1
            same += [list(x) for x in run["trace"]] == [list(x) for x in old["trace"]]
    a = np.array(shares)
    return {
        "task": task,
        "seeds": len(a),
        "median_share": float(np.median(a)),
        "p90_share": float(np.quantile(a, 0.9)),
        "max_share": float(a.max()),
        "over_bar": int((a > BAR).sum()),
        "median_cpu_seconds": float(np.median(cpu)),
        "traces_compared": compared,
        "traces_identical": same,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument(
        "--fit-always",
        action="store_true",
        help="fit every training set, as the pruner did before it skipped fits no model could "
        "make count (the decisions are the same)",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.out is None:
        name = "pruner_cpu_fit_always" if args.fit_always else "pruner_cpu"
        args.out = str(RESULTS / f"{name}.json")
    if args.fit_always:
        # A bound of 1 lets every training set through to its fit.
        LyapunovPruner._gate_bound = lambda self, *args: 1.0  # type: ignore[method-assign]
    missing = [t for t in args.tasks if not heldout.prior_path(t).exists()]
    if missing:
        sys.exit(
            f"no held-out prior for {', '.join(missing)}: run "
            "python -m benchmarks.suites.heldout --train-priors --tasks " + " ".join(missing)
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore")
    command = runfiles.command_line("benchmarks.speed.pruner_cpu", argv)
    started = time.time()
    # One warm-up replay, so the first study does not pay the imports and first forward passes.
    heldout.run_one(args.tasks[0], "ours_pruner_only", 10**6, 40)
    rows = [measure(task, range(args.seeds)) for task in args.tasks]
    out = Path(args.out)
    summary = {
        "command": command,
        "meta": runfiles.metadata(command),
        "bar": BAR,
        "rows": rows,
        "seconds": time.time() - started,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    lines = [
        "# The default pruner's CPU against the training time it spends",
        "",
        f"`{command}` ({time.time() - started:.0f} s). TPE, `LyapunovPruner()` "
        + ("(every training set fitted) " if args.fit_always else "")
        + "with a prior that never saw the table, 40 full trainings of budget; per study, the "
        "pruner's process time over the recorded training and evaluation seconds of the epochs "
        "spent.",
        "",
    ]
    header = ["task", "studies", "median", "90th percentile", "max", "studies over 10%",
              "median pruner CPU (s)", "traces identical to the stored runs"]  # fmt: skip
    lines += runfiles.markdown_table(
        header,
        (
            [r["task"], r["seeds"], f"{r['median_share']:.1%}", f"{r['p90_share']:.1%}",
             f"{r['max_share']:.1%}", r["over_bar"], f"{r['median_cpu_seconds']:.2f}",
             f"{r['traces_identical']} of {r['traces_compared']}"]  # fmt: skip
            for r in rows
        ),
    )
    runfiles.write_markdown(out, lines)


if __name__ == "__main__":
    main()
