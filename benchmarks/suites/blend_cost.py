"""The prior blend's CPU against the default pruner's, on the same seeds in one process.

For each grid and each seed, ``benchmarks/suites/heldout.py``'s ``run_one`` replays the study once
per method (TPE, the held-out prior, a budget of ``heldout.BUDGET_TRAININGS`` full trainings,
as the stored runs): the default pruner (``ours_pruner_only``) and each blend of
``heldout.BLEND_WEIGHTS``, in that order. The median over seeds of
the process CPU of the whole run and of the pruner alone (``process_time`` inside ``prune``)
is reported per method. Measured in one process on one machine, so the ratio is comparable,
which per-run CPU stored by runs made on other days is not. One discarded run first takes
the one-time costs (imports, loading the bundle).

Needs the held-out priors (``python -m benchmarks.suites.heldout --train-priors``).

Usage::

    python -m benchmarks.suites.blend_cost --seeds 5      # about three minutes

Writes ``benchmarks/results/blend_cost.json`` and ``blend_cost.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import optuna

from benchmarks.lyapbench import runs as runfiles
from benchmarks.suites import heldout

OUT = runfiles.results_dir("blend_cost") / "blend_cost.json"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["copy", "sdigits", "sines"])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, but got {args.seeds}.")
    missing = [t for t in args.tasks if not heldout.prior_path(t).exists()]
    if missing:
        raise SystemExit(
            f"no held-out prior for {missing}; train them with "
            "`python -m benchmarks.suites.heldout --train-priors`."
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    methods = ["ours_pruner_only", *heldout.BLEND_WEIGHTS]
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for task in args.tasks:
        budget = heldout.budget_of(heldout._table(task), heldout.BUDGET_TRAININGS)
        heldout.run_one(task, methods[-1], 0, budget)  # discarded: one-time costs
        for method in methods:
            runs = [heldout.run_one(task, method, seed, budget) for seed in range(args.seeds)]
            rows.append(
                {
                    "task": task,
                    "method": method,
                    "seeds": args.seeds,
                    "cpu_seconds_median": statistics.median(r["cpu_seconds"] for r in runs),
                    "pruner_cpu_seconds_median": statistics.median(
                        r["pruner_cpu_seconds"] for r in runs
                    ),
                }
            )
            print(rows[-1], flush=True)
    command = runfiles.command_line("benchmarks.suites.blend_cost", argv)
    meta = runfiles.metadata(command, seeds=range(args.seeds))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"command": command, "meta": meta, "rows": rows}, indent=1) + "\n")
    default = {
        r["task"]: r["pruner_cpu_seconds_median"] for r in rows if r["method"] == methods[0]
    }
    lines = [
        "# Prior blend: pruner CPU against the default's",
        "",
        f"`{command.strip()}` ({time.perf_counter() - started:.0f} s, one process). Median "
        "over seeds; TPE, held-out priors.",
        "",
        "| task | method | run CPU (s) | pruner CPU (s) | pruner CPU / default's |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["pruner_cpu_seconds_median"] / default[r["task"]]
        lines.append(
            f"| {r['task']} | {r['method']} | {r['cpu_seconds_median']:.2f} "
            f"| {r['pruner_cpu_seconds_median']:.2f} | {ratio:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    OUT.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
