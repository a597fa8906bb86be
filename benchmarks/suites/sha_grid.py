"""Does any one successive-halving setting meet the pruner's bar on every held-out table?

The default ``LyapunovPruner()`` makes ``SuccessiveHalvingPruner(min_resource=1,
reduction_factor=4)``'s decisions wherever its model's gate stays shut, which on the held-out
replays is almost everywhere (``docs/benchmarks.md``, rounds 10-11). Its bar is to be within
10% of the best baseline's median epochs to a top-2% trial on every table, reaching one in at
least as many seeds. This script asks whether another of Optuna's settings would do that: it
replays ``SuccessiveHalvingPruner(min_resource=m, reduction_factor=r)`` for ``m`` in
``{1, 2, "auto"}`` and ``r`` in ``{2, 3, 4}`` on the tables of ``suites/heldout.py``, with that
script's replay, budget and seeds, and sets each against the best of its stored baselines over
the same seeds (the archived runs).

Usage::

    python -m benchmarks.suites.sha_grid                # TPE; 100 seeds on the grids, 20 elsewhere
    python -m benchmarks.suites.sha_grid --summarise-only

Writes ``benchmarks/results/sha_grid/<commit>/sha_grid.json`` (every run's epochs and seconds to
a top-2% trial, ``null`` where it never got there) and ``sha_grid.md`` (the table). Needs the runs
of the baselines over the same seeds (its ``--seeds 100`` on ``copy sdigits sines``).
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import optuna

from benchmarks.lyapbench import report
from benchmarks.lyapbench import runs as runfiles
from benchmarks.suites import heldout

OUT = runfiles.results_dir("sha_grid") / "sha_grid.json"
# The stored held-out runs read here: the archived ones, which the documented claims rest on.
STORED_RUNS = heldout.ARCHIVED_RUNS

MIN_RESOURCES = ("1", "2", "auto")
REDUCTION_FACTORS = (2, 3, 4)
SETTINGS = [f"sha_{m}_{r}" for m in MIN_RESOURCES for r in REDUCTION_FACTORS]
GRIDS = ("copy", "sdigits", "sines")


def pruner_of(setting: str) -> optuna.pruners.SuccessiveHalvingPruner:
    """``"sha_<min_resource>_<reduction_factor>"`` as Optuna's pruner."""
    _, m, r = setting.split("_")
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource="auto" if m == "auto" else int(m), reduction_factor=int(r)
    )


def n_seeds(task: str, grid_seeds: int, corpus_seeds: int) -> int:
    return grid_seeds if task in GRIDS else corpus_seeds


def _job(job: tuple[str, str, int, str]) -> tuple[str, list[float | None]]:
    task, setting, seed, sampler = job
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = heldout._table(task)
    budget = heldout.budget_of(table, 40.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = heldout.run_one(task, "tpe+sha", seed, budget, sampler, pruner=pruner_of(setting))
    epochs, seconds = heldout.per_seed(table, "tpe+sha", run)
    return f"{sampler}:{task}:{setting}:{seed}", [epochs, seconds]


def _median(xs: list[float | None]) -> float:
    return float(np.median([math.inf if x is None else x for x in xs]))


def _share(xs: list[float | None]) -> float:
    return float(np.mean([x is not None for x in xs]))


def summarise(runs: dict[str, Any], sampler: str, grid_seeds: int, corpus_seeds: int) -> str:
    """The Markdown table: per table, the best stored baseline's median epochs [share], and
    each setting's median over it [share]; a cell is "met" when within 1.10 and reaching in at
    least as many seeds."""
    head = "| table | seeds | best baseline, epochs [share] | " + " | ".join(SETTINGS) + " |"
    lines = [head, "|" + "---|" * (3 + len(SETTINGS))]
    for task in heldout.table_paths():
        table = heldout._table(task)
        seeds = range(n_seeds(task, grid_seeds, corpus_seeds))
        base: dict[str, dict[str, Any]] = {}
        for method in heldout.BASELINES:
            stored = heldout.load_runs(task, method, sampler, runs=STORED_RUNS)
            if stored is None or not all(str(s) in stored["runs"] for s in seeds):
                continue
            hits = [heldout.per_seed(table, method, stored["runs"][str(s)]) for s in seeds]
            base[method] = {
                "epochs": [h[0] for h in hits],
                "epochs_to_top2pct": report._median_inf([h[0] for h in hits]),
                "share_reaching": _share([h[0] for h in hits]),
                "seconds_to_top2pct": report._median_inf([h[1] for h in hits]),
            }
        if not base:
            continue
        best = heldout.best_by_epochs(base)
        best_median, best_share = _median(base[best]["epochs"]), base[best]["share_reaching"]
        cells = []
        for setting in SETTINGS:
            got = [runs.get(f"{sampler}:{task}:{setting}:{s}") for s in seeds]
            if any(g is None for g in got):
                cells.append("not run")
                continue
            xs = [g[0] for g in got]
            median, share = _median(xs), _share(xs)
            if math.isinf(median):
                ratio = "never"
                met = math.isinf(best_median) and share >= best_share
            else:
                ratio = f"{median / best_median:.2f}"
                met = median <= 1.10 * best_median and share >= best_share
            cells.append(f"{ratio} [{share:.2f}]{' met' if met else ''}")
        shown = "never" if math.isinf(best_median) else f"{best_median:.0f}"
        name = heldout.shown(best, sampler)
        lines.append(
            f"| {task} | {len(seeds)} | {name}, {shown} [{best_share:.2f}] | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sampler", default="tpe", choices=heldout.SAMPLERS)
    parser.add_argument("--grid-seeds", type=int, default=100)
    parser.add_argument("--corpus-seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--summarise-only", action="store_true")
    args = parser.parse_args(argv)
    payload = json.loads(OUT.read_text()) if OUT.exists() else {"runs": {}}
    runs = payload["runs"]
    if not args.summarise_only:
        jobs = [
            (task, setting, seed, args.sampler)
            for task in heldout.table_paths()
            for setting in SETTINGS
            for seed in range(n_seeds(task, args.grid_seeds, args.corpus_seeds))
            if f"{args.sampler}:{task}:{setting}:{seed}" not in runs
        ]
        with ProcessPoolExecutor(args.workers) as pool:
            for k, (key, result) in enumerate(pool.map(_job, jobs, chunksize=8), start=1):
                runs[key] = result
                if k % 100 == 0 or k == len(jobs):
                    payload["meta"] = runfiles.metadata(
                        runfiles.command_line("benchmarks.suites.sha_grid", argv)
                    )
                    OUT.parent.mkdir(parents=True, exist_ok=True)
                    OUT.write_text(json.dumps(payload) + "\n")
                    print(f"[{k}/{len(jobs)}]", flush=True)
    text = summarise(runs, args.sampler, args.grid_seeds, args.corpus_seeds)
    suffix = "" if args.sampler == "tpe" else f"_{args.sampler}"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_name(f"sha_grid{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
