"""What the shipped prior adds to LyapunovPruner's CPU: the same replays with and without it.

Each seed replays one recorded table (``benchmarks/suites/grids.py``'s ``replay``: TPE, the default
``LyapunovPruner(seed=seed)``, a budget of 40 full trainings) twice, with ``prior="shipped"``
(the default) and with ``prior=None``, alternating which runs first. The pruner's CPU seconds
(``process_time`` inside ``prune``) are divided by the recorded training and evaluation seconds
of the epochs the run spent (``replay.training_seconds``). One discarded run first takes the
process's one-time costs (imports, loading the bundle), which a long study pays once; the
replay's own ``--seeds`` summary charges them to the first run of each worker.

Usage::

    python -m benchmarks.suites.prior_pruner_cost --task sdigits --seeds 3

Writes ``benchmarks/results/prior_pruner_cost_<task>.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.cost import training_seconds
from benchmarks.lyapbench.methods import lyapunov_pruner
from benchmarks.lyapbench.tables import cached_table
from benchmarks.suites.grids import replay_grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="sdigits")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = cached_table(args.task)
    budget = int(40 * (table["values"].shape[1] - 1))
    arms = {"shipped": {}, "none": {"prior": None}}

    def run(arm: str, seed: int) -> dict[str, Any]:
        pruner = lyapunov_pruner(seed=seed, **arms[arm])
        out = replay_grid(table, "lyapunov", "tpe", seed, budget, {}, pruner=pruner)
        train = float(np.sum(training_seconds(table, out)))
        return {
            "seed": seed,
            "pruner_cpu_seconds": out["pruner_cpu_seconds"],
            "training_seconds": train,
            "share": out["pruner_cpu_seconds"] / train,
            "rules": out["rules"],
            "epochs": out["trace"][-1][0] if out["trace"] else 0,
            "trials": out["trials"],
        }

    run("shipped", 10_000)  # discarded: one-time costs
    results: dict[str, list[dict[str, Any]]] = {"shipped": [], "none": []}
    for seed in range(args.seeds):
        for arm in ("shipped", "none") if seed % 2 == 0 else ("none", "shipped"):
            results[arm].append(run(arm, seed))
    same = [
        a["trials"] == b["trials"]
        for a, b in zip(results["shipped"], results["none"], strict=True)
    ]

    print("| seed | pruner CPU s (prior) | (no prior) | training s | share (prior) | (no prior) |")
    print("|---|---|---|---|---|---|")
    for a, b in zip(results["shipped"], results["none"], strict=True):
        print(
            f"| {a['seed']} | {a['pruner_cpu_seconds']:.2f} | {b['pruner_cpu_seconds']:.2f} | "
            f"{a['training_seconds']:.1f} | {a['share']:.3f} | {b['share']:.3f} |"
        )
    summary = {
        arm: {
            "share_median": float(np.median([r["share"] for r in rows])),
            "share_max": float(np.max([r["share"] for r in rows])),
            "pruner_cpu_seconds_median": float(np.median([r["pruner_cpu_seconds"] for r in rows])),
        }
        for arm, rows in results.items()
    }
    print(
        f"median share: {summary['shipped']['share_median']:.3f} with the prior, "
        f"{summary['none']['share_median']:.3f} without; same decisions on "
        f"{sum(same)}/{len(same)} seeds"
    )
    default = runfiles.results_dir("prior_pruner_cost") / f"prior_pruner_cost_{args.task}.json"
    out = Path(args.out) if args.out else default
    command = runfiles.command_line("benchmarks.suites.prior_pruner_cost", argv)
    payload = {
        "command": command,
        "meta": runfiles.metadata(command, seeds=range(args.seeds), prior="shipped"),
        "task": args.task,
        "budget_epochs": budget,
        "summary": summary,
        "same_decisions": same,
        "runs": {
            arm: [{k: v for k, v in r.items() if k != "trials"} for r in rows]
            for arm, rows in results.items()
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
