"""Held-out replays: epochs and seconds to a top-2% trial on tasks the prior never saw.

Every recorded table (the three grids of ``benchmarks/data`` and the random-design corpus of
``benchmarks/data/corpus``) is replayed as an HPO study by the one replay loop
(:func:`benchmarks.lyapbench.replay.replay`): a trial asks the sampler for a configuration,
reads its recorded epochs one by one, reports the objective per epoch and the spectrum at steps
0 and 1 (``optuna_lyap.report_spectrum``), and stops when the pruner says so. The budget is 40
full trainings (``40 x E`` epochs).

**Held out.** Our methods get a cross-task prior (``PriorBundle``) trained on every table but
the replayed one (leave one task out), with the code ``benchmarks/build_prior.py`` uses; the
bundles are cached under ``benchmarks/results/heldout/priors/<task>.pt`` (``--priors``), and
every run records the digest of the bundle it replayed.

**Search spaces** (:class:`~benchmarks.lyapbench.tables.ConfigurationSpace`). Grid tables: one
categorical per axis. Corpus tables were
recorded as a random design of 200 (or fewer) configurations, so the replayed space is the
design's continuous one: ``cell`` categorical, ``hidden_size`` int on a log scale in 8-128,
``init_scale`` float log in 0.25-8, ``lr`` float log in 3e-4..3e-2. A suggestion trains the
*nearest recorded configuration*: the same cell, the smallest Euclidean distance in
standardised log coordinates (each of ``log hidden_size``, ``log init_scale``, ``log lr``
divided by its standard deviation over the table), as surrogate-free tabular benchmarks of
continuous spaces do. The trial keeps the suggested params (what the sampler proposed, so TPE
models its own proposals), and stores the recorded configuration it trained as the system attr
the prior reads for the network (``optuna_lyap:network``) and as user attrs
(``recorded_index`` and ``recorded_<axis>``), so the prior reads the network actually trained.

**Objective.** The table's metric, except where the table's best final value is shared by more
than its top 2% (accuracy 1.0 on ``copy`` and ``copy_long``): there the validation loss
(:func:`~benchmarks.lyapbench.tables.objective_of`).

**Methods** (the held-out family of :data:`benchmarks.lyapbench.methods.METHODS`): ``tpe``
(no pruner), ``tpe+sha`` (``SuccessiveHalvingPruner(
min_resource=1)``), ``tpe+sha_auto`` (its defaults), ``tpe+hyperband`` (``HyperbandPruner(
min_resource=1)``), ``tpe+median`` (``MedianPruner(n_startup_trials=5, n_warmup_steps=1)``),
``tpe+topk_epoch1`` (``TopKAfterFirstEpoch``); ``ours`` =
``LyapunovSampler(TPE, prior=...)`` screening candidates with their recorded spectra at
initialisation + ``LyapunovPruner(prior=...)``; ``ours_pruner_only`` (TPE + our pruner) and
``ours_sampler_only`` (our sampler + ``SuccessiveHalvingPruner(min_resource=1)``), so the
source of a gain shows; a diagnostic, ``ours_sampler_nop`` (our sampler, no pruner); a
variant, ``ours_prior_rungs`` (TPE + ``LyapunovPruner(prior=..., prior_decides=True)``: the
prior's gate judged with TPE too, the default before ``prior_decides`` existed), and
``ours_prior_by_sampler`` (``prior_decides=None``: judged only with an independent sampler, the
default of round 15); an
option, ``ours_blend`` and ``ours_blend_30`` (TPE + ``LyapunovPruner(prior=...,
prior_weight=0.5`` or ``0.3)``, rungs ranked by a rank blend of the raw value and the prior
wherever no gate opens).
``--sampler random`` replays every method on ``RandomSampler`` instead of TPE (runs in
``runs/random/``, summary in ``heldout_summary_random``).

**Cost** (:mod:`benchmarks.lyapbench.cost`). Epochs: every epoch a trial trains counts one
(step 0 none). Seconds: the recorded training + evaluation seconds of those epochs; for our
pruner also the recorded spectrum seconds at steps 0 and 1 (where reached) and the evaluation
at step 0; for our sampler, for every trial it screened with spectra, ``n_candidates`` spectra
at initialisation at the table's mean step-0 spectrum time.

Usage (from the repository's root)::

    python -m benchmarks.suites.heldout --methods tpe tpe+sha tpe+sha_auto tpe+hyperband \\
        tpe+topk_epoch1 --seeds 20 --resume          # the baselines
    python -m benchmarks.suites.heldout --train-priors      # leave-one-task-out priors
    python -m benchmarks.suites.heldout --methods ours ours_pruner_only ours_sampler_only \\
        --seeds 20 --resume
    python -m benchmarks.suites.heldout --summarise-only    # tables from every stored run
    python -m benchmarks.suites.heldout --summarise-only \\
        --runs-dir benchmarks/results/archive/heldout_runs --out /tmp/heldout_summary.json

Runs are stored per (task, method) in ``benchmarks/results/heldout/<commit>/runs/``
(``--runs-dir``) as each seed finishes (``--resume`` skips stored seeds), each file with its
metadata (:mod:`benchmarks.lyapbench.runs`); the summary goes beside them,
``heldout_summary[_<sampler>].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.methods import (
    BLEND_WEIGHTS,
    HELDOUT_BASELINES,
    HELDOUT_METHODS,
    HELDOUT_OURS,
    PriorBundle,
    Setting,
    record_network,
    replay_method,
)
from benchmarks.lyapbench.report import (
    BAR_RATIO,
    bar_table,
    baselines_against_the_rest,
    best_by_epochs,
    heldout_summary,
    meets_bar,
    per_seed,
    shown,
)
from benchmarks.lyapbench.tables import (
    DATA,
    RESULTS,
    ROOT,
    budget_of,
    cached_table,
    objective_of,
    table_paths,
    top_configurations,
)

SUITE = "heldout"
MODULE = "benchmarks.suites.heldout"
RUNS = runfiles.results_dir(SUITE) / "runs"
# The leave-one-task-out priors (``--train-priors``), by held-out task; not keyed by commit:
# each run records the digest of the bundle it replayed.
PRIORS = RESULTS / SUITE / "priors"
# The base samplers replayed (``--sampler``). Method names say ``tpe``; with ``random`` every
# method runs on ``optuna.samplers.RandomSampler`` instead and is shown as ``random+...``.
SAMPLERS = ("tpe", "random")
BASELINES = HELDOUT_BASELINES
OURS = HELDOUT_OURS
METHODS = HELDOUT_METHODS
# The held-out runs of the archive (before results were keyed by commit).
ARCHIVED_RUNS = RESULTS / "archive" / "heldout_runs"
# A study's budget: this many full trainings' epochs (``--budget-trainings``).
BUDGET_TRAININGS = 40.0

__all__ = [
    "BAR_RATIO",
    "BASELINES",
    "BLEND_WEIGHTS",
    "BUDGET_TRAININGS",
    "METHODS",
    "OURS",
    "SAMPLERS",
    "baselines_against_the_rest",
    "bar_table",
    "best_by_epochs",
    "budget_of",
    "load_runs",
    "meets_bar",
    "objective_of",
    "per_seed",
    "prior_path",
    "run_one",
    "runs_path",
    "save_run",
    "shown",
    "summarise",
    "table_paths",
]


def _table(task: str) -> dict[str, Any]:
    return cached_table(task)


def run_one(
    task: str,
    method: str,
    seed: int,
    budget: int,
    sampler: str = "tpe",
    pruner: BasePruner | None = None,
) -> dict[str, Any]:
    """One HPO run on one table; the finished trials and our decision records.

    ``pruner`` replaces ``method``'s (which then only names the sampler) when given.
    """
    table = cached_table(task)
    prior = str(prior_path(task)) if method in OURS else None
    setting = Setting(table=table, seed=seed, base=sampler, prior=prior)
    done = replay_method(
        method, setting, budget, f"heldout-{seed}", pruner, on_trial=record_network
    )
    top = top_configurations(table)
    trials = []
    for t in done.study.trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        i = int(t.user_attrs["recorded_index"])
        stop = -1 if t.state == TrialState.COMPLETE else int(t.last_step or 0)
        entry: dict[str, Any] = {"i": i, "stop": stop, "top": bool(top[i])}
        if method in OURS:
            entry.update(decision_summary(t))
        trials.append(entry)
    run: dict[str, Any] = {
        "seed": seed,
        "trace": done.trace,
        "trials": trials,
        "cpu_seconds": done.cpu_seconds,
    }
    if done.pruner_cpu_seconds is not None:
        run["pruner_cpu_seconds"] = done.pruner_cpu_seconds
    return run


def prior_path(task: str) -> Path:
    return PRIORS / f"{task}.pt"


def decision_summary(trial: FrozenTrial) -> dict[str, Any]:
    """Our decision records on one trial: the rule and scorer at each recorded step, and
    whether the sampler screened candidates for it (and with which inputs)."""
    from optuna_lyap.pruners import load_predictions

    out: dict[str, Any] = {}
    records = load_predictions(trial)
    out["records"] = {
        str(step): {k: r.get(k) for k in ("rule", "scorer", "inputs", "predicted") if k in r}
        for step, r in records.items()
    }
    screen = {k: v for k, v in trial.user_attrs.items() if k.startswith("lyap_screen")}
    screen.update({k: v for k, v in trial.system_attrs.items() if "screen" in k})
    out["screen"] = {k: v for k, v in screen.items() if isinstance(v, (int, float, str, bool))}
    return out


def _job(job: tuple[str, str, int, int, str]) -> tuple[str, str, int, dict[str, Any]]:
    task, method, seed, budget, sampler = job
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return task, method, seed, run_one(task, method, seed, budget, sampler)


def runs_path(task: str, method: str, sampler: str = "tpe", runs: Path | None = None) -> Path:
    """TPE's runs lie in ``runs`` (default ``RUNS``), every other sampler's in a folder of its
    own below it."""
    runs = RUNS if runs is None else runs
    folder = runs if sampler == "tpe" else runs / sampler
    return folder / f"{task}__{method}.json.gz"


def load_runs(
    task: str, method: str, sampler: str = "tpe", runs: Path | None = None
) -> dict[str, Any] | None:
    """The stored runs of one (task, method), or None."""
    payload: dict[str, Any] | None = runfiles.load_json(runs_path(task, method, sampler, runs))
    return payload


def save_run(
    task: str,
    method: str,
    budget: int,
    run: dict[str, Any],
    command: str,
    sampler: str = "tpe",
) -> None:
    payload = load_runs(task, method, sampler) or {"budget_epochs": budget, "runs": {}}
    if payload["budget_epochs"] != budget:
        payload = {"budget_epochs": budget, "runs": {}}
    payload["command"] = command
    if method in OURS:
        payload["prior"] = os.path.relpath(prior_path(task), ROOT)
        # Per run: a retraining on another machine can give other float bits (and digest)
        # for the same tables and settings, so each run names the bundle it replayed.
        run = {**run, "prior_digest": runfiles.prior_digest(prior_path(task))}
    payload["runs"][str(run["seed"])] = run
    payload["meta"] = runfiles.metadata(
        command,
        seeds=[int(s) for s in payload["runs"]],
        prior=prior_path(task) if method in OURS else None,
    )
    runfiles.save_json(runs_path(task, method, sampler), payload)


def train_loto_prior(held_out: str, out: Path) -> dict[str, Any]:
    """Train a ``PriorBundle`` on every table but ``held_out`` and save it to ``out``.

    Runs ``benchmarks/build_prior.py``'s own training (``main``) with ``--no-calibration``, as
    the shipped bundle was trained, and ``--no-reports`` (the shipped bundle's reports are left
    alone), on a folder of links to the other tables. Returns provenance for the priors'
    ``manifest.json``.
    """
    import shutil

    from benchmarks import build_prior

    # A fixed folder, not a temporary one: its path is part of the command stored in the
    # bundle, so a retraining on the same tables, from the same directory, writes the same
    # bytes (and digest).
    folder = out.parent / f".tables-without-{held_out}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "corpus").mkdir(parents=True)
    try:
        for task, path in table_paths().items():
            if task != held_out:
                os.symlink(path, folder / path.relative_to(DATA))
        out.parent.mkdir(parents=True, exist_ok=True)
        started = time.time()
        # Paths as the command line would give them from the repository's root.
        data, dest = (os.path.relpath(p, ROOT) for p in (folder, out))
        build_prior.main(["--data", data, "--out", dest, "--no-calibration", "--no-reports"])
        seconds = time.time() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    bundle = PriorBundle.load(out)
    return {
        "held_out": held_out,
        "file": os.path.relpath(out, ROOT),
        "digest": bundle.digest(),
        "trained_on": bundle.info.get("tables"),
        "seconds": round(seconds, 1),
    }


def _train_job(task: str) -> dict[str, Any]:
    torch.set_num_threads(1)
    return train_loto_prior(task, prior_path(task))


def summarise(
    tasks: list[str],
    trainings: float,
    out: Path,
    sampler: str = "tpe",
    seeds: int | None = None,
) -> dict[str, Any]:
    """Write the summary tables of the stored runs (``RUNS``) to ``out`` (JSON) and its ``.md``
    (:func:`benchmarks.lyapbench.report.heldout_summary`)."""
    return heldout_summary(
        tasks,
        trainings,
        out,
        lambda task, method, s: load_runs(task, method, s),
        runfiles.command_line(MODULE),
        sampler,
        seeds,
    )


def main(argv: list[str] | None = None) -> None:
    global RUNS, PRIORS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=list(BASELINES), choices=METHODS)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget-trainings", type=float, default=BUDGET_TRAININGS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--resume", action="store_true", help="skip seeds already stored")
    parser.add_argument(
        "--seed-list",
        nargs="+",
        type=int,
        default=None,
        help="replay exactly these seeds, replacing their stored runs (instead of --seeds)",
    )
    parser.add_argument("--train-priors", action="store_true", help="(re)train the LOTO priors")
    parser.add_argument(
        "--runs-dir", default=None, help="where the runs are stored and read (default: by commit)"
    )
    parser.add_argument(
        "--priors", default=None, help=f"folder of the LOTO priors (default {PRIORS})"
    )
    parser.add_argument("--summarise-only", action="store_true")
    parser.add_argument(
        "--summary-seeds",
        type=int,
        default=None,
        help="summarise seeds 0..N-1 only (default: every stored seed)",
    )
    parser.add_argument(
        "--sampler",
        default="tpe",
        choices=SAMPLERS,
        help="base sampler of every method (runs of other than tpe lie in heldout_runs/<it>/)",
    )
    parser.add_argument(
        "--out", default=None, help="summary file (default heldout_summary[_<sampler>].json)"
    )
    args = parser.parse_args(argv)
    if args.runs_dir is not None:
        RUNS = Path(args.runs_dir)
    if args.priors is not None:
        PRIORS = Path(args.priors)
    if args.out is None:
        suffix = "" if args.sampler == "tpe" else f"_{args.sampler}"
        args.out = str(RUNS.parent / f"heldout_summary{suffix}.json")
    tasks = args.tasks or list(table_paths())
    command = runfiles.command_line(MODULE, argv)
    if args.train_priors:
        manifest_path = PRIORS / "manifest.json"
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        manifest["command"] = command
        manifest.setdefault("priors", {})
        with ProcessPoolExecutor(args.workers) as pool:
            for info in pool.map(_train_job, tasks):
                manifest["priors"][info["held_out"]] = info
                manifest["meta"] = runfiles.metadata(command)
                print(f"prior without {info['held_out']}: {info['seconds']}s", flush=True)
                manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
        return
    if not args.summarise_only:
        jobs = []
        # The slowest groups first, so two workers stay busy to the end.
        for method in args.methods:
            for task in tasks:
                budget = budget_of(_table(task), args.budget_trainings)
                stored = load_runs(task, method, args.sampler) if args.resume else None
                done = set()
                if stored is not None and stored["budget_epochs"] == budget:
                    done = {int(s) for s in stored["runs"]}
                wanted = (
                    args.seed_list
                    if args.seed_list is not None
                    else range(args.first_seed, args.first_seed + args.seeds)
                )
                for seed in wanted:
                    if args.seed_list is not None or seed not in done:
                        jobs.append((task, method, seed, budget, args.sampler))
        started = time.time()
        with ProcessPoolExecutor(args.workers) as pool:
            pending = {pool.submit(_job, j) for j in jobs}
            n = 0
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task, method, seed, run = fut.result()
                    save_run(task, method, run_budget(task, args), run, command, args.sampler)
                    n += 1
                    print(
                        f"[{n}/{len(jobs)}] {time.time() - started:.0f}s {task} {method} "
                        f"seed {seed}: cpu {run['cpu_seconds']:.1f}s, {len(run['trace'])} trials",
                        flush=True,
                    )
    summarise(tasks, args.budget_trainings, Path(args.out), args.sampler, args.summary_seeds)


def run_budget(task: str, args: argparse.Namespace) -> int:
    return budget_of(_table(task), args.budget_trainings)


if __name__ == "__main__":
    main()
