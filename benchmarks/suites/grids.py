"""Grid replays: which method finds a top network of a recorded grid for the fewest epochs?

Every configuration of a grid table (``benchmarks/data/*.jsonl.gz``) was trained to the end
once; a replayed trial reads its recorded epochs instead of training
(:func:`benchmarks.lyapbench.replay.replay`). The budget is 40 full trainings.

Samplers (``--samplers``): ``tpe`` is Optuna's TPE; ``random`` Optuna's RandomSampler;
``lyapunov`` is :class:`~optuna_lyap.LyapunovSampler` over the same TPE, screening 8 candidates
per trial by their recorded spectrum at initialisation and showing TPE pruned trials at their
predicted value. Methods (``--methods``): the grid family of
:data:`benchmarks.lyapbench.methods.METHODS` (``lyapunov`` is the default pruner; the legacy
``curve_only``, ``lyapunov_spectrum`` and ``lyapunov_hybrid`` rebuild the removed threshold
rule's runs on the current pruner).

Per task, sampler and method, over ``--seeds`` seeds (:func:`benchmarks.lyapbench.report.
grid_summary`): epochs and seconds to a top-2% trial, the best value at fractions of the
budget, the anytime curves (PNG) and, for our pruners, the Spearman correlation of their
predictions with the final values, per step.

Usage (from the repository's root)::

    python -m benchmarks.suites.grids --tasks sdigits --seeds 5 --methods median lyapunov
    python -m benchmarks.suites.grids --samplers lyapunov --methods median lyapunov
    python -m benchmarks.suites.grids --methods lyapunov_hybrid --rank --variant rank
    python -m benchmarks.suites.grids --summarise-only     # rebuild the summary
    python -m benchmarks.suites.grids --summarise-only \
        --runs-dir benchmarks/results/archive/replay_runs_r9 --out /tmp/hpo_summary_r9.json

Each (task, sampler, method) group's runs are stored in
``benchmarks/results/grids/<commit>/runs/`` (``--runs-dir``) with their metadata
(:mod:`benchmarks.lyapbench.runs`); the summary (``hpo_summary.json``, ``.md`` and
``hpo_anytime_<task>[_<sampler>_sampler].png``) goes beside them (``--out``).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.pruners import BasePruner
from optuna.trial import TrialState

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.methods import (
    BASE_SAMPLERS,
    GRID_METHODS,
    GRID_OURS,
    Setting,
    replay_method,
)
from benchmarks.lyapbench.report import grid_report
from benchmarks.lyapbench.tables import (
    DATA,
    ConfigurationSpace,
    cached_table,
    load_table,
)
from optuna_lyap.pruners import load_predictions

SUITE = "grids"
MODULE = "benchmarks.suites.grids"
METHODS = GRID_METHODS
OURS = GRID_OURS
SAMPLERS = BASE_SAMPLERS
RUNS = runfiles.results_dir(SUITE) / "runs"


def replay_grid(
    table: dict[str, Any],
    method: str,
    sampler: str,
    seed: int,
    budget: int,
    rule: dict[str, Any] | None = None,
    pruner: BasePruner | None = None,
) -> dict[str, Any]:
    """One HPO run on a grid table; returns the trace of finished trials and the predictions.

    ``pruner`` replaces ``method``'s when given (``method`` still says how to read its records).

    The run's ``trials``: per finished trial, its configuration, the step it was pruned at
    (-1: completed), for ours the rule that decided there (``""`` without a record), and
    whether the sampler screened candidates for it (1) or not (0).
    """
    setting = Setting(table=table, seed=seed, base=sampler, rule=rule)
    # A fixed name: HyperbandPruner assigns brackets by hashing it with the trial number.
    done = replay_method(method, setting, budget, f"replay-{seed}", pruner, finite_spectra=False)
    study = done.study
    space = ConfigurationSpace(table)
    predictions = []
    finals = {t.number: t.value for t in study.trials if t.state == TrialState.COMPLETE}
    if method in OURS:
        for t in study.trials:
            if t.number in finals:
                for step, record in load_predictions(t).items():
                    if record.get("predicted") is not None:
                        predictions.append((step, record["predicted"], finals[t.number]))
    trials = []
    for t in study.trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        i = space.index(t.params)
        step = -1 if t.state == TrialState.COMPLETE else int(t.last_step or 0)
        record = load_predictions(t).get(step, {}) if method in OURS else {}
        screened = int("lyap_screen_predicted" in t.user_attrs)
        trials.append([i, step, record.get("rule", ""), screened])
    # RankRule with a model: which score decided at step 1 ("model" or "raw"), per trial there.
    rank_by = [t.user_attrs["rank_by_1"] for t in study.trials if "rank_by_1" in t.user_attrs]
    run: dict[str, Any] = {"trace": done.trace, "predictions": predictions, "trials": trials}
    if done.pruner_cpu_seconds is not None:
        run["pruner_cpu_seconds"] = done.pruner_cpu_seconds
    if method in OURS:
        # Every decision record, by the rule that made it ("rung", "model_rung", ...).
        rules = [r.get("rule", "") for t in study.trials for r in load_predictions(t).values()]
        run["rules"] = {k: rules.count(k) for k in sorted(set(rules))}
    if rank_by:
        run["rank_by_step1"] = {k: rank_by.count(k) for k in ("model", "raw")}
    return run


def _run_job(
    job: tuple[str, str, str, int, int, dict[str, Any]],
) -> tuple[str, str, str, int, dict[str, Any]]:
    path, method, sampler, seed, budget, rule = job
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = cached_table(path)
    started = time.process_time()
    run = replay_grid(table, method, sampler, seed, budget, rule)
    run["cpu_seconds"] = time.process_time() - started
    return path, method, sampler, seed, run


def runs_path(task: str, sampler: str, method: str) -> Path:
    """Where the runs of one (task, sampler, method) are kept, so tables can grow by parts.

    ``method`` may carry a variant after ``@`` (``lyapunov_hybrid@no_step0``): the same
    method with other pruner arguments, kept apart.
    """
    return RUNS / f"{task}__{sampler}__{method}.json.gz"


def save_runs(task: str, sampler: str, method: str, payload: dict[str, Any]) -> None:
    runfiles.save_json(runs_path(task, sampler, method), payload)


def load_runs(task: str, sampler: str, method: str) -> dict[str, Any] | None:
    payload: dict[str, Any] | None = runfiles.load_json(runs_path(task, sampler, method))
    return payload


def stored_methods(task: str, sampler: str) -> list[str]:
    """The methods (and variants) with stored runs for ``task`` and ``sampler``, in order."""
    prefix = f"{task}__{sampler}__"
    names = [p.name[len(prefix) : -len(".json.gz")] for p in RUNS.glob(f"{prefix}*.json.gz")]
    return sorted(names, key=lambda n: (METHODS.index(n.split("@")[0]), n))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None, help="tables in benchmarks/data")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--samplers", nargs="+", default=["tpe"], choices=SAMPLERS)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--budget-trainings",
        type=float,
        default=40.0,
        help="budget in full trainings (epochs = this x n_epochs); default 40",
    )
    parser.add_argument("--quantile", type=float, default=0.25, help="our pruners' quantile")
    parser.add_argument("--confidence", type=float, default=0.75, help="our pruners' confidence")
    parser.add_argument(
        "--model-steps", type=int, nargs="+", default=None, help="our pruners' model_steps"
    )
    parser.add_argument(
        "--min-unpruned-share", type=float, default=None, help="our pruners' protected share"
    )
    parser.add_argument(
        "--use-params",
        action="store_true",
        help="offer our pruners the hyperparameters as an input too",
    )
    parser.add_argument(
        "--fallback",
        default="median",
        choices=("median", "successive_halving"),
        help="our pruners' fallback rule",
    )
    parser.add_argument(
        "--prior",
        action="store_true",
        help="give our pruners an AeLLE fitted on benchmarks/data/prior/<task>_seed1.jsonl.gz",
    )
    parser.add_argument(
        "--rank",
        action="store_true",
        help="our pruners rank trials at steps 1 and 4 by their prediction (RankRule)",
    )
    parser.add_argument(
        "--rescue",
        type=float,
        default=None,
        help="with --rank: the raw value ranks, the prediction only rescues (its share)",
    )
    parser.add_argument("--gate", type=float, default=None, help="lyapunov's gate")
    parser.add_argument(
        "--screen-fraction", type=float, default=None, help="lyapunov's step-0 screen"
    )
    parser.add_argument(
        "--variant", default="", help="name for these pruner arguments (stored apart)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--resume", action="store_true", help="skip groups already stored with --seeds runs"
    )
    parser.add_argument(
        "--summarise-only", action="store_true", help="rebuild the summary from stored runs"
    )
    parser.add_argument(
        "--out", default=None, help="summary file (default: hpo_summary.json beside the runs)"
    )
    parser.add_argument(
        "--runs-dir", default=None, help="where each group's runs are stored and read"
    )
    args = parser.parse_args(argv)
    if args.runs_dir is not None:
        global RUNS
        RUNS = Path(args.runs_dir)
    if args.out is None:
        args.out = str(RUNS.parent / "hpo_summary.json")
    rule: dict[str, Any] = {"quantile": args.quantile, "confidence": args.confidence}
    if args.model_steps is not None:
        rule["model_steps"] = tuple(args.model_steps)
    if args.min_unpruned_share is not None:
        rule["min_unpruned_share"] = args.min_unpruned_share
    if args.use_params:
        rule["use_params"] = True
    if args.fallback != "median":
        rule["fallback"] = args.fallback
    if args.prior:
        rule["prior"] = "prior"  # resolved per task in run_all
    if args.gate is not None:
        rule["gate"] = args.gate
    if args.screen_fraction is not None:
        rule["screen_fraction"] = args.screen_fraction
    if args.rank:
        rule["rank"] = {"rescue": args.rescue}
    elif args.rescue is not None:
        parser.error("--rescue needs --rank")

    paths = sorted(DATA.glob("*.jsonl.gz"))
    if args.tasks:
        paths = [DATA / f"{t}.jsonl.gz" for t in args.tasks]
    tables = {p.name.split(".")[0]: load_table(p) for p in paths}
    budgets = {
        task: int(args.budget_trainings * (table["values"].shape[1] - 1))
        for task, table in tables.items()
    }
    if not args.summarise_only:
        run_all(args, tables, budgets, rule)
    write_summary(tables, budgets, Path(args.out))


def run_all(
    args: argparse.Namespace,
    tables: dict[str, dict[str, Any]],
    budgets: dict[str, int],
    rule: dict[str, Any],
) -> None:
    """Replay every (task, sampler, method, seed) asked for and store each group's runs."""
    command = runfiles.command_line(MODULE)
    jobs = []
    for task in tables:
        for sampler in args.samplers:
            for method in args.methods:
                name = f"{method}@{args.variant}" if args.variant else method
                stored = load_runs(task, sampler, name)
                if args.resume and stored is not None and len(stored["runs"]) == args.seeds:
                    continue  # this group is done
                for seed in range(args.seeds):
                    path = str(DATA / f"{task}.jsonl.gz")
                    job_rule = dict(rule)
                    if "prior" in rule:
                        job_rule["prior"] = str(DATA / "prior" / f"{task}_seed1.jsonl.gz")
                    jobs.append((path, method, sampler, seed, budgets[task], job_rule))
    started = time.time()
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    if not jobs:
        return
    with ProcessPoolExecutor(args.workers) as pool:
        for n, (path, method, sampler, _seed, run) in enumerate(pool.map(_run_job, jobs), 1):
            task = Path(path).name.split(".")[0]
            group = results.setdefault((task, method, sampler), [])
            group.append(run)
            if len(group) == args.seeds:
                payload = {
                    "command": command,
                    "meta": runfiles.metadata(
                        command,
                        seeds=range(args.seeds),
                        prior="shipped" if method in OURS or sampler == "lyapunov" else None,
                    ),
                    "budget_epochs": budgets[task],
                    "rule": rule if method in OURS else None,
                    "runs": group,
                }
                name = f"{method}@{args.variant}" if args.variant else method
                save_runs(task, sampler, name, payload)
            if n % 20 == 0 or n == len(jobs):
                print(f"[{n}/{len(jobs)}] {time.time() - started:.0f}s", file=sys.stderr)


def write_summary(tables: dict[str, dict[str, Any]], budgets: dict[str, int], out: Path) -> None:
    """Summarise every stored group of runs (``RUNS``) of these tables: JSON, a markdown table,
    plots (:func:`benchmarks.lyapbench.report.grid_report`)."""
    grid_report(
        tables, budgets, out, stored_methods, load_runs, runfiles.command_line(MODULE), SAMPLERS
    )


if __name__ == "__main__":
    main()
