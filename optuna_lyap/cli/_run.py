"""``run`` and ``worker``: optimise a study of a built-in task, alone or beside other workers.

Every process samples with its own seed stream (see :mod:`optuna_lyap.cli._workers`), while the
pruner and the models keep the study's seed so that every worker decides alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from optuna_lyap import tasks as builtin_tasks
from optuna_lyap._storage import CONFIG_KEY
from optuna_lyap.cli._base import (
    STOP_NOTE,
    CLIError,
    Command,
    add_dashboard,
    add_prior,
    add_progress,
    add_storage,
    add_threads,
    non_negative,
    positive,
    unit_interval,
    warn,
)
from optuna_lyap.cli._storage_url import artifact_store, load_study, open_storage
from optuna_lyap.cli._study import (
    PRUNERS,
    SAMPLERS,
    build_study,
    check_prior_weight,
    load_prior,
    study_config,
)
from optuna_lyap.cli._summary import format_summary, summarize
from optuna_lyap.cli._workers import Interrupted, StopRequests, TrialKeeper, retry


def optimize(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    *,
    n_trials: int | None,
    progress: bool,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
) -> StopRequests:
    """Run ``n_trials`` trials (None: until stopped), failing no other worker's trial for good.

    Before the first trial and after each one, RUNNING trials of dead workers are failed and
    queued again. SIGINT and SIGTERM stop the loop: inside a trial at once (the trial fails and
    is queued again), between trials after the current step.

    Args:
        study: The study, with this process's sampler and pruner.
        objective: The task's objective.
        n_trials: Trials to run.
        progress: Show Optuna's progress bar.
        callbacks: More ``study.optimize`` callbacks, run after each trial before the check
            for dead workers' trials.

    Returns:
        The stop requests, to say whether and by which signal the loop was stopped.
    """
    stop = StopRequests()
    journal = isinstance(study._storage, optuna.storages.JournalStorage)
    keeper = TrialKeeper(study, heartbeat=journal)

    def report_recovered() -> None:
        for number, again, reason in keeper.recover():
            queued = "" if again is None else f", queued again as trial {again}"
            print(f"trial {number} failed: {reason}{queued}", file=sys.stderr)

    def kept(trial: optuna.Trial) -> float:
        if stop.signum is not None:  # asked to stop while this trial was being sampled
            stop.interrupted_trial = trial._trial_id
            raise Interrupted(stop.signum)
        keeper.claim(trial)
        stop.in_trial = True
        try:
            return objective(trial)
        except Interrupted:
            stop.interrupted_trial = trial._trial_id
            raise
        finally:
            stop.in_trial = False
            keeper.release()

    def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        report_recovered()
        if stop.signum is not None:
            study.stop()

    stop.install()
    try:
        report_recovered()
        study.optimize(
            kept,
            n_trials=n_trials,
            show_progress_bar=progress,
            catch=(RuntimeError, ValueError),
            callbacks=[*callbacks, after],
        )
    except Interrupted:
        pass
    finally:
        keeper.release()
        stop.restore()
    if stop.signum is not None:
        message = f"stopped by {stop.name}"
        if stop.interrupted_trial is not None:
            failed = study._storage.get_trial(stop.interrupted_trial)
            again = retry(study, failed) if failed.state == TrialState.FAIL else None
            message += f"; trial {failed.number} failed"
            if again is not None:
                message += f" and is queued again as trial {again}"
        print(message, file=sys.stderr)
    return stop


def _exit_status(stop: StopRequests) -> int:
    return 0 if stop.signum is None else 128 + stop.signum


def _optimize_and_summarize(
    study: optuna.Study, objective: Callable[[optuna.Trial], float], args: argparse.Namespace
) -> tuple[StopRequests, dict[str, Any]]:
    """:func:`optimize` with the dashboard callback (unless ``--no-dashboard``); the summary,
    with what the callback cost."""
    import time

    callback = None
    if not args.no_dashboard:
        from optuna_lyap.visualization import DashboardCallback

        callback = DashboardCallback(artifact_store=artifact_store(args.artifact_dir))
    start, cpu = time.perf_counter(), time.process_time()
    from optuna_lyap.pruners import PriorBlendWarning

    with warnings.catch_warnings():
        # _print_header said it as a CLI warning, naming the options.
        warnings.simplefilter("ignore", PriorBlendWarning)
        stop = optimize(
            study,
            objective,
            n_trials=args.n_trials,
            progress=not args.no_progress,
            callbacks=() if callback is None else (callback,),
        )
    if callback is not None:
        callback.publish(study)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    summary = summarize(study)
    if callback is not None:
        summary["dashboard"] = callback.cost(wall, cpu)
    return stop, summary


def _noun(n: int, word: str) -> str:
    """``word`` as ``n`` of it reads: "1 epoch", "10 epochs"."""
    return word if n == 1 else f"{word}s"


def _doing(n_trials: int | None) -> str:
    if n_trials is None:
        return "running trials until stopped"
    return f"running {n_trials} more {_noun(n_trials, 'trial')}"


def _print_header(
    study: optuna.Study, url: str, config: dict[str, Any], doing: str, command: str
) -> None:
    """One line on stderr: the study, the settings every process of it uses, what this does;
    then a warning where the stored prior weight blends with an adaptive sampler."""
    weight, epochs = config["prior_weight"], config["n_epochs"]
    note = f" (prior weight {weight})" if weight else ""
    print(
        f"study {study.study_name!r} on {url}: task {config['task']}, {epochs} "
        f"{_noun(epochs, 'epoch')} a trial, pruner {config['pruner']}{note}, "
        f"sampler {config['sampler']}; {doing} (the study has {len(study.trials)})",
        file=sys.stderr,
    )
    if weight and config["sampler"] != "random":
        # The pruner's own UserWarning says the same in Python's terms; it is silenced in
        # _optimize_and_summarize.
        warn(
            command,
            f"--prior-weight {weight} blends the prior into the rungs, and sampler "
            f"{config['sampler']} reads earlier results: in replays with TPE the blend pruned "
            "more top-2% configurations than it kept (206 against 44 at weight 0.3; "
            "docs/pruner.md). --sampler random, or --prior-weight 0, avoids it",
        )


class RunCommand(Command):
    name = "run"
    help = "create or resume a study and optimise it"
    description = (
        "Create a study of a built-in task, or resume it, and optimise it; then print a "
        "summary. Resuming keeps the settings the study was made with. " + STOP_NOTE
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        task_help = "; ".join(f"{k}: {v}" for k, v in builtin_tasks.list_tasks().items())
        add_storage(parser)
        parser.add_argument("--study-name", default=None, help="default: TASK-PRUNER-SAMPLER")
        parser.add_argument(
            "--task", default="sdigits", choices=sorted(builtin_tasks.list_tasks()), help=task_help
        )
        parser.add_argument(
            "--n-trials",
            type=positive,
            default=20,
            help="trials this command runs, added to those the study already has (default 20)",
        )
        parser.add_argument(
            "--n-epochs",
            type=positive,
            default=None,
            help="epochs of full training (default: the task's)",
        )
        parser.add_argument("--pruner", default=None, choices=PRUNERS, help="default: lyapunov")
        parser.add_argument("--sampler", default=None, choices=SAMPLERS, help="default: tpe")
        parser.add_argument(
            "--n-startup-trials",
            type=positive,
            default=None,
            help="completed trials before an in-study model is fitted (lyapunov pruner and "
            "sampler) or before pruning starts (median, percentile, patient) (default 8)",
        )
        parser.add_argument(
            "--prior-weight",
            type=unit_interval,
            default=None,
            help="lyapunov pruner only: where no gate opens, rank each rung by (1-w) x the raw "
            "value's rank + w x the prior's (default 0: successive halving's ranking). Stored "
            "with a new study, so its workers and resumed runs use the same weight",
        )
        parser.add_argument(
            "--seed",
            type=non_negative,
            default=None,
            help="a new study's seed (default 0); when resuming, the seed of this run's sampler "
            "stream (default: the study's)",
        )
        add_prior(parser)
        add_threads(parser)
        parser.add_argument(
            "--json", default=None, help="also write the summary to this JSON file"
        )
        add_progress(parser)
        add_dashboard(parser)

    def take_action(self, args: argparse.Namespace) -> int:
        # Refused before the storage is opened, so that no new storage file is left behind.
        check_prior_weight(args.prior_weight, args.pruner)
        storage = open_storage(args.storage)
        given = {
            "n_epochs": args.n_epochs,
            "pruner": args.pruner,
            "sampler": args.sampler,
            "n_startup_trials": args.n_startup_trials,
            "prior_weight": args.prior_weight,
        }
        task = builtin_tasks.get_task(args.task, seed=0 if args.seed is None else args.seed)
        config = {
            "task": args.task,
            "n_epochs": task.n_epochs,
            "seed": 0,
            "pruner": "lyapunov",
            "sampler": "tpe",
            "n_startup_trials": 8,
            "prior_weight": 0.0,
            "spectrum_steps": [0, 1],
        }
        config |= {k: v for k, v in given.items() if v is not None}
        if args.seed is not None:
            config["seed"] = args.seed
        name = args.study_name or f"{args.task}-{config['pruner']}-{config['sampler']}"
        existing = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        if name in existing:
            previous = study_config(load_study(storage, args.storage, name))
            if previous["task"] != args.task:
                raise CLIError(
                    f"study {name!r} already exists for task {previous['task']!r}; pick another "
                    "--study-name or the same --task"
                )
            for key, value in given.items():
                stored = previous.get(key)
                if value is not None and stored != value:
                    option = "--" + key.replace("_", "-")
                    warn(
                        "run",
                        f"study {name!r} was made with {option} {stored}; its stored "
                        f"settings win over {option} {value}",
                    )
            config = previous  # resuming: keep the settings the study was made with
        # A resumed run samples from the stream of --seed (default: the study's seed), so it
        # proposes what the study has not tried rather than the first run's trials again.
        stream_seed = config["seed"] if args.seed is None else args.seed
        prior = load_prior(args.prior, config["pruner"], config["sampler"])
        study, objective = build_study(storage, name, config, stream_seed=stream_seed, prior=prior)
        study.set_user_attr(CONFIG_KEY, config)
        _print_header(study, args.storage, config, _doing(args.n_trials), "run")
        stop, summary = _optimize_and_summarize(study, objective, args)
        print(format_summary(summary))
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
        return _exit_status(stop)


class WorkerCommand(Command):
    name = "worker"
    help = "join an existing study and run trials"
    description = (
        "Join a study made by 'optuna-lyap run' and run trials beside other workers. " + STOP_NOTE
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_storage(parser, required=True)
        parser.add_argument("--study-name", required=True)
        parser.add_argument(
            "--n-trials", type=positive, default=None, help="default: until stopped"
        )
        parser.add_argument(
            "--seed",
            type=non_negative,
            default=None,
            help="seed of this worker's sampler stream (default: the study's). Each trial's "
            "parameters are drawn from (seed, trial number), so workers never repeat each "
            "other; the pruner keeps the study's seed, so every worker decides alike",
        )
        add_prior(parser)
        add_threads(parser)
        add_progress(parser)
        add_dashboard(parser)

    def take_action(self, args: argparse.Namespace) -> int:
        storage = open_storage(args.storage, must_exist=True)
        config = study_config(load_study(storage, args.storage, args.study_name))
        stream_seed = config["seed"] if args.seed is None else args.seed
        prior = load_prior(args.prior, config["pruner"], config["sampler"])
        study, objective = build_study(
            storage, args.study_name, config, stream_seed=stream_seed, prior=prior
        )
        _print_header(study, args.storage, config, _doing(args.n_trials), "worker")
        stop, summary = _optimize_and_summarize(study, objective, args)
        print(format_summary(summary))
        return _exit_status(stop)
