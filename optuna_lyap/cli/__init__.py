"""The ``optuna-lyap`` command: run, join, inspect and watch studies of built-in tasks.

Subcommands:

- ``run``: create (or resume) a study of a built-in task and optimise it, then print a summary;
- ``worker``: join an existing study on a shared storage and run trials beside other workers;
- ``fit``: build a prior bundle from earlier studies (or, ``--format aelle``, train an AeLLE on
  one study's spectra) and save it for a later study's pruner and sampler;
- ``embed``: write the AeLLE latent embedding of a study's trials as HTML and PNG;
- ``explain``: print why trials were pruned or kept, the notes the dashboard shows;
- ``dashboard``: serve optuna-dashboard on the study's storage.

A study made by ``run`` stores its settings (task, epochs, seed, pruner, sampler, spectrum
steps) in the study's user attrs under ``optuna_lyap``, so ``worker`` builds the same objective.
Every process samples with its own seed stream (see :mod:`optuna_lyap.cli._workers`), while the
pruner and the models keep the study's seed so that every worker decides alike.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from optuna_lyap import tasks as builtin_tasks
from optuna_lyap import use_threads
from optuna_lyap._storage import CONFIG_KEY, USER_ATTR_EPOCHS
from optuna_lyap.cli._workers import (
    GRACE_BEATS,
    HEARTBEAT_INTERVAL,
    Interrupted,
    PerTrialSeededSampler,
    StopRequests,
    TrialKeeper,
    random_sampler,
    retry,
    tpe_sampler,
)

DEFAULT_STORAGE = "sqlite:///optuna_lyap.db"
PRUNERS = (
    "lyapunov",
    "median",
    "percentile",
    "successive-halving",
    "hyperband",
    "patient",
    "none",
)
SAMPLERS = ("tpe", "random", "lyapunov")
JOURNAL_SUFFIXES = (".log", ".jsonl")
# Storage drivers that are install extras, by the module a missing one raises about.
DRIVER_EXTRAS = {
    "psycopg2": "pip install 'optuna-lyap[postgres]' (or psycopg2-binary)",
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg (version 3).
    "psycopg": "write the URL as postgresql+psycopg2://... after pip install "
    "'optuna-lyap[postgres]', or pip install psycopg",
    "redis": "pip install 'optuna-lyap[redis]' (or redis)",
    "pymysql": "pip install 'optuna-lyap[mysql]' (or PyMySQL)",
    "MySQLdb": "pip install mysqlclient, or use a mysql+pymysql:// URL",
}


# Settings that studies made by older versions of ``run`` do not store, with the value those
# studies ran with (``study_config`` fills them in).
UNSTORED_SETTINGS = {"prior_weight": 0.0}


class CLIError(Exception):
    """An error the user can act on: printed as one line, exit status 2."""


# --- Building blocks -------------------------------------------------------------------------


def make_pruner(
    name: str,
    *,
    n_startup_trials: int,
    seed: int,
    prior: Any = None,
    aelle: Any = None,
    prior_weight: float = 0.0,
) -> optuna.pruners.BasePruner:
    """The pruner called ``name`` (one of ``PRUNERS``), with the settings ``run`` uses.

    ``prior`` (a ``PriorBundle``) and ``aelle`` (a fitted AeLLE), for ``lyapunov`` only,
    predict from the first trial; None leaves the pruner's default (the shipped prior).
    ``prior_weight`` (``--prior-weight``, in ``[0, 1]``, default 0) is
    ``LyapunovPruner(prior_weight=...)``: the weight of the prior's rank in each rung's
    ranking where no gate opens (``docs/pruner.md``).

    Raises:
        CLIError: For a prior or a ``prior_weight > 0`` given to another pruner than
            ``lyapunov``, or a prior or weight the pruner refuses.
    """
    from optuna import pruners

    if (prior is not None or aelle is not None) and name != "lyapunov":
        raise CLIError(
            f"--prior gives a fitted AeLLE to the lyapunov pruner, but the study's pruner is "
            f"{name!r}"
        )
    check_prior_weight(prior_weight, name)
    warmup = 1  # step 0 is the untrained network: never prune on it alone
    if name == "lyapunov":
        from optuna_lyap import LyapunovPruner

        extra = {} if prior is None else {"prior": prior}
        try:
            return LyapunovPruner(
                n_startup_trials=n_startup_trials,
                n_warmup_steps=warmup,
                seed=seed,
                aelle=aelle,
                prior_weight=prior_weight,
                **extra,
            )
        except ValueError as err:
            raise CLIError(f"cannot use the prior model: {err}") from err
    if name == "median":
        return pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=warmup)
    if name == "percentile":
        return pruners.PercentilePruner(
            25.0, n_startup_trials=n_startup_trials, n_warmup_steps=warmup
        )
    if name == "successive-halving":
        return pruners.SuccessiveHalvingPruner(min_resource=1)
    if name == "hyperband":
        return pruners.HyperbandPruner(min_resource=1)
    if name == "patient":
        return pruners.PatientPruner(
            pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=warmup),
            patience=1,
        )
    if name == "none":
        return pruners.NopPruner()
    raise CLIError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")


def check_prior_weight(prior_weight: float | None, pruner: str | None) -> None:
    """Refuse a ``prior_weight > 0`` for a pruner other than ``lyapunov`` (None: the default,
    lyapunov).

    Raises:
        CLIError: Naming the weight and the pruner.
    """
    if prior_weight and pruner not in (None, "lyapunov"):
        raise CLIError(
            f"--prior-weight {prior_weight} blends the prior into the lyapunov pruner's rungs, "
            f"but the pruner is {pruner!r}; leave --prior-weight at 0 or use --pruner lyapunov"
        )


def make_sampler(
    name: str,
    *,
    task: builtin_tasks.SequenceTask,
    n_startup_trials: int,
    seed: int,
    stream_seed: int,
    prior: Any = None,
) -> optuna.samplers.BaseSampler:
    """The sampler called ``name`` (one of ``SAMPLERS``).

    Parameters are proposed from the per-trial stream of ``stream_seed`` (so processes do not
    repeat each other); what every worker must agree on (the LyapunovSampler's model fits and
    candidate networks) uses the study's ``seed``. ``prior`` (a ``PriorBundle``, for
    ``lyapunov``) screens candidates; None: the shipped prior. The task's search space is
    given to the sampler, so it screens from the first trial.
    """
    if name == "tpe":
        return PerTrialSeededSampler(tpe_sampler, stream_seed)
    if name == "random":
        return PerTrialSeededSampler(random_sampler, stream_seed)
    if name == "lyapunov":
        from optuna_lyap.samplers import LyapunovSampler

        def model_factory(params: dict[str, Any]) -> Any:
            return task.build_model(params, seed=seed)

        return LyapunovSampler(
            PerTrialSeededSampler(tpe_sampler, stream_seed),
            model_factory=model_factory,
            probe_inputs=lambda model: task.probe_inputs(model),
            n_startup_trials=n_startup_trials,
            seed=seed,
            search_space=task_search_space(task),
            prior="shipped" if prior is None else prior,
        )
    raise CLIError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def task_search_space(task: builtin_tasks.SequenceTask) -> dict[str, Any]:
    """The distributions ``task.suggest_params`` draws from, by parameter name."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    return {
        "cell": CategoricalDistribution(list(task.cells)),
        "hidden_size": IntDistribution(*task.hidden_size_range, log=True),
        "init_scale": FloatDistribution(*task.init_scale_range, log=True),
        "lr": FloatDistribution(*task.lr_range, log=True),
    }


def is_journal_file(url: str) -> bool:
    return "://" not in url and url.endswith(JOURNAL_SUFFIXES)


def storage_file(url: str) -> str | None:
    """The file a storage URL keeps its data in (SQLite, journal file), else None."""
    if is_journal_file(url):
        return url
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        database = make_url(url).database
        return None if not database or database == ":memory:" else database
    return None


def open_storage(url: str, *, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """Open ``url``: an RDB URL, ``redis://...``, or a journal file path ending in ``.log``.

    Args:
        url: The ``--storage`` argument.
        must_exist: Refuse to create a storage file (commands that only read a study).

    Raises:
        CLIError: For a path that is no storage URL, a missing file when ``must_exist``, a
            missing database driver (naming the install extra), or a storage that cannot be
            opened.
    """
    if "://" not in url and not is_journal_file(url):
        hint = f"sqlite:///{url}" if url.endswith((".db", ".sqlite", ".sqlite3")) else None
        raise CLIError(
            f"--storage {url!r} is neither a storage URL nor a journal file path ending in "
            + " or ".join(JOURNAL_SUFFIXES)
            + (f"; for an SQLite file write {hint}" if hint else "")
        )
    path = storage_file(url)
    if must_exist and path is not None and not Path(path).is_file():
        raise CLIError(f"no storage file {path!r} (from --storage {url!r}); is the path right?")
    try:
        with warnings.catch_warnings():
            # Optuna marks the Redis journal and RDB heartbeats experimental; heartbeats are
            # what fails and retries a killed worker's trial, so both are used on purpose.
            warnings.simplefilter("ignore", ExperimentalWarning)
            if is_journal_file(url):
                from optuna.storages.journal import JournalFileBackend

                return optuna.storages.JournalStorage(JournalFileBackend(url))
            if url.startswith("redis://"):
                from optuna.storages.journal import JournalRedisBackend

                return optuna.storages.JournalStorage(JournalRedisBackend(url))
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_INTERVAL,
                grace_period=GRACE_BEATS * HEARTBEAT_INTERVAL,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=1
                ),
            )
    except Exception as err:
        missing = _missing_module(err)
        if missing is not None:
            raise CLIError(
                f"storage {url!r} needs the {missing!r} package: {DRIVER_EXTRAS[missing]}"
            ) from err
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CLIError(f"cannot open storage {url!r}: {reason}") from err


def _missing_module(err: BaseException) -> str | None:
    """The storage driver whose absence caused ``err`` (Optuna re-raises it as its cause)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError):
            name = (seen.name or "").split(".")[0]
            return name if name in DRIVER_EXTRAS else None
        seen = seen.__cause__ or seen.__context__
    return None


def load_study(storage: optuna.storages.BaseStorage, url: str, name: str) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError as err:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        known = ", ".join(names) if names else "none"
        raise CLIError(f"no study named {name!r} in {url!r} (studies there: {known})") from err


def study_config(study: optuna.Study) -> dict[str, Any]:
    """The settings ``run`` stored with ``study``, with those older versions did not store
    filled in as the study ran them (``UNSTORED_SETTINGS``).

    Raises:
        CLIError: For a study that ``run`` did not create.
    """
    config = study.user_attrs.get(CONFIG_KEY)
    if not isinstance(config, dict):
        raise CLIError(
            f"study {study.study_name!r} was not created by 'optuna-lyap run', so its task and "
            "settings are unknown"
        )
    return {**UNSTORED_SETTINGS, **config}


def load_prior(path: str | None, pruner: str, sampler: str = "tpe") -> tuple[Any, Any]:
    """The file ``fit`` wrote at ``path`` (None: none), as ``(bundle, aelle)``.

    A prior bundle (``fit``'s default) goes to the lyapunov pruner and sampler; an AeLLE
    (``fit --format aelle``) to the lyapunov pruner only. One of them is None.
    """
    if path is None:
        return None, None
    if pruner != "lyapunov" and sampler != "lyapunov":
        raise CLIError(
            f"--prior gives a prior to the lyapunov pruner and sampler, but the study's pruner "
            f"is {pruner!r} and its sampler {sampler!r}"
        )
    if not Path(path).is_file():
        raise CLIError(f"--prior {path!r} is not a file; give the file 'optuna-lyap fit' wrote")
    from optuna_lyap import AeLLE
    from optuna_lyap.aelle._bundle import PriorBundle

    try:
        return PriorBundle.load(path), None
    except Exception as bundle_err:
        try:
            aelle = AeLLE.load(path)
        except Exception:
            reason = str(bundle_err).splitlines()[0] if str(bundle_err) else "unreadable"
            raise CLIError(
                f"cannot read --prior {path!r} ({reason}); give the file 'optuna-lyap fit' wrote"
            ) from bundle_err
    if pruner != "lyapunov":
        raise CLIError(
            f"--prior {path!r} is an AeLLE (fit --format aelle), which only the lyapunov "
            f"pruner reads, but the study's pruner is {pruner!r}"
        )
    return None, aelle


def build_study(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    config: dict[str, Any],
    *,
    stream_seed: int,
    prior: tuple[Any, Any] = (None, None),
) -> tuple[optuna.Study, Any]:
    """The study with this process's pruner and sampler, and the task's objective.

    ``prior`` is :func:`load_prior`'s ``(bundle, aelle)``.
    """
    bundle, aelle = prior
    task = builtin_tasks.get_task(config["task"], seed=config["seed"])
    pruner = make_pruner(
        config["pruner"],
        n_startup_trials=config["n_startup_trials"],
        seed=config["seed"],
        prior=bundle if config["pruner"] == "lyapunov" else None,
        aelle=aelle,
        prior_weight=config["prior_weight"],
    )
    sampler = make_sampler(
        config["sampler"],
        task=task,
        n_startup_trials=config["n_startup_trials"],
        seed=config["seed"],
        stream_seed=stream_seed,
        prior=bundle,
    )
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction=task.direction,
        pruner=pruner,
        sampler=sampler,
        load_if_exists=True,
    )
    objective = builtin_tasks.make_objective(
        task,
        n_epochs=config["n_epochs"],
        spectrum_steps=tuple(config["spectrum_steps"]),
        seed=config["seed"],
    )
    return study, objective


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


# --- The summary ------------------------------------------------------------------------------


def summarize(study: optuna.Study) -> dict[str, Any]:
    """Counts, best trial, epochs spent, and how well early predictions ranked final values."""
    from optuna_lyap.visualization import prunes_by_rule

    config = study.user_attrs.get(CONFIG_KEY, {})
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): 0 for state in TrialState}
    for t in trials:
        counts[t.state.name.lower()] += 1
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    spent = sum(int(t.user_attrs.get(USER_ATTR_EPOCHS, 0)) for t in finished)
    n_epochs = config.get("n_epochs")
    summary: dict[str, Any] = {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "counts": {k: v for k, v in counts.items() if v},
        "epochs_spent": spent,
        "epochs_without_pruning": None if n_epochs is None else len(finished) * n_epochs,
        "best_value": None,
        "best_params": None,
        "prediction": None,
        "prior_prediction": None,
        "no_prediction_reason": None,
    }
    summary["pruned_by"] = prunes_by_rule(study)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        summary["best_value"] = best.value
        summary["best_params"] = best.params
    # The earliest recorded prediction of each completed trial, against its final value (a
    # step-0 record of the prior alone carries no "predicted": the next one counts).
    summary["prediction"] = _earliest_rank_corr(completed, "predicted", 1.0)
    # The prior's quantile is higher for better trials: rank it against oriented final values.
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    summary["prior_prediction"] = _earliest_rank_corr(completed, "prior_quantile", sign)
    if summary["prediction"] is None:
        summary["no_prediction_reason"] = _why_no_predictions(config, len(completed))
    return summary


def _earliest_rank_corr(
    completed: list[optuna.trial.FrozenTrial], field: str, sign: float
) -> dict[str, Any] | None:
    """Spearman's correlation between each completed trial's earliest finite ``field`` in its
    decision records and ``sign *`` its final value; None where no trial has one."""
    from optuna_lyap import load_predictions

    pairs = []
    for t in completed:
        for step, record in load_predictions(t).items():
            value = record.get(field)
            if isinstance(value, (int, float)) and math.isfinite(value) and t.value is not None:
                pairs.append((step, float(value), sign * float(t.value)))
                break
    if not pairs:
        return None
    from scipy.stats import spearmanr

    steps = sorted(p[0] for p in pairs)
    predicted, final = [p[1] for p in pairs], [p[2] for p in pairs]
    if len(pairs) < 3:
        rho, why = None, f"needs 3 completed trials with a prediction, has {len(pairs)}"
    elif len(set(predicted)) == 1 or len(set(final)) == 1:
        rho, why = None, "undefined: all predictions or all final values are equal"
    else:
        rho, why = float(spearmanr(predicted, final).statistic), None
        if not math.isfinite(rho):
            rho, why = None, "undefined for these values"
    return {
        "n": len(pairs),
        "median_step": float(steps[len(steps) // 2]),
        "spearman": rho,
        "spearman_undefined": why,
    }


def _why_no_predictions(config: dict[str, Any], n_completed: int) -> str:
    pruner = config.get("pruner")
    if pruner is None:
        return "the study was not made by 'optuna-lyap run'"
    if pruner != "lyapunov":
        return f"the {pruner!r} pruner makes no predictions (the lyapunov pruner does)"
    startup = config.get("n_startup_trials", 0)
    if n_completed < startup:
        return (
            f"the model starts after {startup} completed trials (--n-startup-trials) and "
            f"{n_completed} have completed"
        )
    return (
        "no completed trial was judged by the model yet (it judges trials from step 1, once "
        "it is fitted)"
    )


def _rank_quality(stats: dict[str, Any], what: str) -> str:
    """One summary cell: the Spearman correlation of ``what`` with the final values, or why it
    was not measured."""
    if stats["spearman"] is None:
        return f"Spearman not measured: {stats['spearman_undefined']}"
    return (
        f"Spearman {_fmt(stats['spearman'])} between {what} (median step "
        f"{_fmt(stats['median_step'])}) and the final value, {stats['n']} completed trials"
    )


def _fmt(value: Any) -> str:
    """A summary number: 4 significant digits for floats, "-" for None."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def format_summary(summary: dict[str, Any]) -> str:
    fmt = _fmt
    rows = [
        ("study", summary["study"]),
        ("direction", summary["direction"]),
        ("trials", ", ".join(f"{k} {v}" for k, v in summary["counts"].items()) or "none"),
        ("best value", fmt(summary["best_value"])),
        (
            "best params",
            "-"
            if not summary["best_params"]
            else ", ".join(f"{k}={fmt(v)}" for k, v in summary["best_params"].items()),
        ),
        (
            "epochs spent",
            f"{summary['epochs_spent']} (without pruning: "
            f"{fmt(summary['epochs_without_pruning'])})",
        ),
    ]
    if summary.get("pruned_by"):
        rows.append(
            (
                "pruned, by rule",
                ", ".join(f"{rule}: {n}" for rule, n in summary["pruned_by"].items()),
            )
        )
    pred = summary["prediction"]
    if pred is None:
        rows.append(
            (
                "prediction quality",
                f"no in-study model predictions recorded: {summary['no_prediction_reason']}",
            )
        )
    else:
        rows.append(("prediction quality", _rank_quality(pred, "the earliest prediction")))
    prior = summary.get("prior_prediction")
    if prior is not None:
        rows.append(
            ("prior quality", _rank_quality(prior, "the prior's earliest predicted quantile"))
        )
    if summary.get("dashboard"):
        from optuna_lyap.visualization import format_cost

        rows.append(("dashboard", format_cost(summary["dashboard"])))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


# --- Subcommands ------------------------------------------------------------------------------


def _warn(command: str, message: str) -> None:
    print(f"optuna-lyap {command}: warning: {message}", file=sys.stderr)


def _exit_status(stop: StopRequests) -> int:
    return 0 if stop.signum is None else 128 + stop.signum


def _artifact_store(directory: str | None) -> Any | None:
    if directory is None:
        return None
    from optuna.artifacts import FileSystemArtifactStore

    Path(directory).mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(directory)


def _optimize_and_summarize(
    study: optuna.Study, objective: Callable[[optuna.Trial], float], args: argparse.Namespace
) -> tuple[StopRequests, dict[str, Any]]:
    """:func:`optimize` with the dashboard callback (unless ``--no-dashboard``); the summary,
    with what the callback cost."""
    import time

    callback = None
    if not args.no_dashboard:
        from optuna_lyap.visualization import DashboardCallback

        callback = DashboardCallback(artifact_store=_artifact_store(args.artifact_dir))
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


def cmd_run(args: argparse.Namespace) -> int:
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
                _warn(
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
        _warn(
            command,
            f"--prior-weight {weight} blends the prior into the rungs, and sampler "
            f"{config['sampler']} reads earlier results: in replays with TPE the blend pruned "
            "more top-2% configurations than it kept (206 against 44 at weight 0.3; "
            "docs/pruner.md). --sampler random, or --prior-weight 0, avoids it",
        )


def cmd_worker(args: argparse.Namespace) -> int:
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


def check_spectrum_step(study: optuna.Study, step: int) -> None:
    """Refuse a ``--step`` at which no trial stored a spectrum, rather than read an earlier one."""
    from optuna_lyap import load_spectra

    steps = sorted({s for t in study.get_trials(deepcopy=False) for s in load_spectra(t)})
    if step not in steps:
        stored = ", ".join(map(str, steps)) if steps else "none"
        raise CLIError(
            f"no trial of {study.study_name!r} stored a spectrum at step {step}; steps with "
            f"spectra: {stored}"
        )


def cmd_fit(args: argparse.Namespace) -> int:
    output = Path(args.output)
    if output.is_dir():
        name = "aelle.pt" if args.format == "aelle" else "prior.pt"
        raise CLIError(
            f"--output {args.output!r} is a directory; give a file path, e.g. "
            f"{str(output / name)!r}"
        )
    storage = open_storage(args.storage, must_exist=True)
    studies = [load_study(storage, args.storage, name) for name in args.studies]
    if args.format == "aelle":
        return _fit_aelle(args, studies, output)
    from optuna_lyap.aelle._bundle import load_shipped_prior
    from optuna_lyap.cli._fit import fit_bundle

    info = {
        "studies": [s.study_name for s in studies],
        # The storage URL is left out: it may hold a password.
        "command": "optuna-lyap fit "
        + " ".join(f"--study {name}" for name in args.studies)
        + "".join(f" --step {step}" for step in args.step or [])
        + (" --on-shipped" if args.on_shipped else "")
        + f" --seed {args.seed}",
        "on_shipped": bool(args.on_shipped),
        "seed": args.seed,
    }
    try:
        bundle = fit_bundle(
            studies,
            steps=args.step,
            shipped=load_shipped_prior() if args.on_shipped else None,
            seed=args.seed,
            info=info,
            progress=lambda line: print(line, file=sys.stderr),
        )
    except ValueError as err:
        raise CLIError(str(err)) from err
    output.parent.mkdir(parents=True, exist_ok=True)
    bundle.save(output)
    fitted = len(bundle.info.get("rows", {}))
    kept = len(bundle.models) - fitted
    print(
        f"saved a prior bundle of {len(bundle.models)} models ({fitted} fitted on "
        f"{', '.join(repr(s.study_name) for s in studies)}"
        + (f", {kept} kept from the shipped prior" if kept else "")
        + f") to {output}"
    )
    return 0


def _fit_aelle(args: argparse.Namespace, studies: list[optuna.Study], output: Path) -> int:
    """``fit --format aelle``: one AeLLE on one study's spectra at one step."""
    from optuna_lyap.pruners import fit_aelle

    if len(studies) != 1:
        raise CLIError(f"--format aelle fits on one study, but {len(studies)} were given")
    steps = args.step or [1]
    if len(steps) != 1:
        raise CLIError(f"--format aelle fits at one --step, but got {steps}")
    study, step = studies[0], steps[0]
    check_spectrum_step(study, step)
    try:
        ae = fit_aelle(study, step, seed=args.seed)
    except ValueError as err:
        raise CLIError(str(err)) from err
    output.parent.mkdir(parents=True, exist_ok=True)
    ae.save(output)
    print(f"saved an AeLLE fitted on {study.study_name!r} at step {step} to {output}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from optuna_lyap.visualization import embedding_data, plot_embedding, write_png

    storage = open_storage(args.storage, must_exist=True)
    study = load_study(storage, args.storage, args.study_name)
    check_spectrum_step(study, args.step)
    try:
        data = embedding_data(
            study,
            step=args.step,
            method=args.method,
            seed=args.seed,
            progress=lambda line: print(line, file=sys.stderr),
        )
    except ValueError as err:
        raise CLIError(str(err)) from err
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    html, png = out.with_suffix(".html"), out.with_suffix(".png")
    # plotly.js goes beside the page once (offline, no CDN), not inside every page.
    plot_embedding(data, step=args.step).write_html(html, include_plotlyjs="directory")
    write_png(data, png, step=args.step)
    print(
        f"embedded {len(data.numbers)} trials ({data.method}); wrote {html} (with "
        f"{out.parent / 'plotly.min.js'}), {png}"
    )
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Print :func:`optuna_lyap.explain`'s Markdown note of each trial asked for (default:
    every pruned trial), as the dashboard shows it."""
    from optuna_lyap.visualization._explain import explain_trial

    storage = open_storage(args.storage, must_exist=True)
    study = load_study(storage, args.storage, args.study_name)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    if args.trials:
        missing = [n for n in args.trials if n not in by_number]
        if missing:
            last = max(by_number, default=None)
            held = "none" if last is None else f"0 to {last}"
            raise CLIError(
                f"study {args.study_name!r} has no trial {', '.join(map(str, missing))} "
                f"(its trial numbers: {held})"
            )
        chosen = [by_number[n] for n in args.trials]
    else:
        chosen = [t for t in by_number.values() if t.state == TrialState.PRUNED]
        if not chosen:
            _warn("explain", f"study {args.study_name!r} has no pruned trial; give trial numbers")
    # The pruner that ran a study made by 'run' is in its settings; of another study, unknown.
    pruner = None
    if isinstance(study.user_attrs.get(CONFIG_KEY), dict):
        config = study_config(study)
        pruner = make_pruner(
            config["pruner"],
            n_startup_trials=config["n_startup_trials"],
            seed=config["seed"],
            prior_weight=config["prior_weight"],
        )
    print("\n\n".join(explain_trial(study, t, pruner).rstrip() for t in chosen))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import optuna_dashboard

    storage = open_storage(args.storage, must_exist=True)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise
            pass

    try:
        server = make_server(
            args.host,
            args.port,
            optuna_dashboard.wsgi(storage, artifact_store=_artifact_store(args.artifact_dir)),
            handler_class=QuietHandler,
        )
    except OSError as err:
        raise CLIError(
            f"cannot listen on {args.host}:{args.port}: {err.strerror or err}; pick another --port"
        ) from err
    print(f"optuna-dashboard on http://{args.host}:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


# --- Parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optuna-lyap",
        description="Hyperparameter search for recurrent networks that reads their dynamics.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    task_help = "; ".join(f"{k}: {v}" for k, v in builtin_tasks.list_tasks().items())

    def storage_arg(p: argparse.ArgumentParser, required: bool = False) -> None:
        p.add_argument(
            "--storage",
            default=None if required else DEFAULT_STORAGE,
            required=required,
            help="storage URL (sqlite:///file.db, postgresql+psycopg2://..., redis://...) or a "
            "journal file path ending in .log"
            + ("" if required else f" (default: {DEFAULT_STORAGE})"),
        )

    def threads_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--threads",
            type=_positive,
            default=1,
            help="torch CPU threads per process (default 1: the built-in models are small, and "
            "extra threads slow them down; run more workers instead)",
        )

    def progress_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    def dashboard_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--no-dashboard",
            action="store_true",
            help="write no trial notes or study figures for optuna-dashboard",
        )
        p.add_argument(
            "--artifact-dir",
            default=None,
            help="also store each trial's spectrum plot here, shown in its note (serve it with "
            "'optuna-lyap dashboard --artifact-dir' or 'optuna-dashboard --artifact-dir')",
        )

    def prior_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--prior",
            default=None,
            metavar="PATH",
            help="a prior bundle saved by 'optuna-lyap fit' (on earlier studies): the lyapunov "
            "pruner and sampler predict with it from the first trial instead of the shipped "
            "prior (an AeLLE from 'fit --format aelle' goes to the lyapunov pruner only)",
        )

    stop_note = (
        "SIGINT (Ctrl-C) or SIGTERM fails the running trial, queues its parameters again and "
        "exits with status 128 + the signal number; a RUNNING trial whose worker died is "
        "failed and queued again by the next worker."
    )

    run = sub.add_parser(
        "run",
        help="create or resume a study and optimise it",
        description="Create a study of a built-in task, or resume it, and optimise it; then "
        "print a summary. Resuming keeps the settings the study was made with. " + stop_note,
    )
    storage_arg(run)
    run.add_argument("--study-name", default=None, help="default: TASK-PRUNER-SAMPLER")
    run.add_argument(
        "--task", default="sdigits", choices=sorted(builtin_tasks.list_tasks()), help=task_help
    )
    run.add_argument(
        "--n-trials",
        type=_positive,
        default=20,
        help="trials this command runs, added to those the study already has (default 20)",
    )
    run.add_argument(
        "--n-epochs", type=_positive, default=None, help="epochs of full training (default: "
        "the task's)",
    )  # fmt: skip
    run.add_argument("--pruner", default=None, choices=PRUNERS, help="default: lyapunov")
    run.add_argument("--sampler", default=None, choices=SAMPLERS, help="default: tpe")
    run.add_argument(
        "--n-startup-trials", type=_positive, default=None, help="trials before models act "
        "(default 8)",
    )  # fmt: skip
    run.add_argument(
        "--prior-weight",
        type=_unit_interval,
        default=None,
        help="lyapunov pruner only: where no gate opens, rank each rung by (1-w) x the raw "
        "value's rank + w x the prior's (default 0: successive halving's ranking). Stored with "
        "a new study, so its workers and resumed runs use the same weight",
    )
    run.add_argument(
        "--seed",
        type=_non_negative,
        default=None,
        help="a new study's seed (default 0); when resuming, the seed of this run's sampler "
        "stream (default: the study's)",
    )
    prior_arg(run)
    threads_arg(run)
    run.add_argument("--json", default=None, help="also write the summary to this JSON file")
    progress_args(run)
    dashboard_args(run)
    run.set_defaults(func=cmd_run)

    worker = sub.add_parser(
        "worker",
        help="join an existing study and run trials",
        description="Join a study made by 'optuna-lyap run' and run trials beside other "
        "workers. " + stop_note,
    )
    storage_arg(worker, required=True)
    worker.add_argument("--study-name", required=True)
    worker.add_argument("--n-trials", type=_positive, default=None, help="default: until stopped")
    worker.add_argument(
        "--seed",
        type=_non_negative,
        default=None,
        help="seed of this worker's sampler stream (default: the study's). Each trial's "
        "parameters are drawn from (seed, trial number), so workers never repeat each other; "
        "the pruner keeps the study's seed, so every worker decides alike",
    )
    prior_arg(worker)
    threads_arg(worker)
    progress_args(worker)
    dashboard_args(worker)
    worker.set_defaults(func=cmd_worker)

    fit = sub.add_parser(
        "fit",
        help="build a prior from earlier studies and save it",
        description="Fit a prior bundle on the completed trials of one or more studies (any "
        "tasks; target: each trial's final quantile within its study), one model per step "
        "and input set the studies support, saved as one file for run/worker --prior. With "
        "--format aelle: an AeLLE on one study's spectra at one step, for the lyapunov pruner.",
    )
    storage_arg(fit)
    fit.add_argument(
        "--study",
        "--study-name",
        dest="studies",
        action="append",
        required=True,
        metavar="NAME",
        help="a study to learn from; repeat for several",
    )
    fit.add_argument(
        "--step",
        type=_non_negative,
        action="append",
        default=None,
        help="a model step (repeatable; default: 0 and every step with stored spectra; "
        "--format aelle: one step with spectra, default 1)",
    )
    fit.add_argument(
        "--format",
        choices=("prior", "aelle"),
        default="prior",
        help="prior: a prior bundle for the pruner and sampler (default); aelle: an AeLLE "
        "for the lyapunov pruner",
    )
    fit.add_argument(
        "--on-shipped",
        action="store_true",
        help="start from the shipped prior: keep its models for what the studies cannot "
        "train, and shrink the others' targets toward its predictions",
    )
    fit.add_argument(
        "--output",
        required=True,
        help="the file to save to (one file; give it to run/worker --prior)",
    )
    fit.add_argument("--seed", type=_non_negative, default=0)
    fit.set_defaults(func=cmd_fit)

    embed = sub.add_parser("embed", help="write the latent embedding as HTML and PNG")
    storage_arg(embed)
    embed.add_argument("--study-name", required=True)
    embed.add_argument("--step", type=_non_negative, default=1, help="spectrum step (default 1)")
    embed.add_argument("--method", choices=("umap", "pca"), default="umap")
    embed.add_argument("--output", default="embedding", help="path stem (default: embedding)")
    embed.add_argument("--seed", type=_non_negative, default=0)
    embed.set_defaults(func=cmd_embed)

    expl = sub.add_parser(
        "explain",
        help="print why trials were pruned or kept (the dashboard's notes), as Markdown",
    )
    storage_arg(expl)
    expl.add_argument("--study-name", required=True)
    expl.add_argument(
        "trials",
        nargs="*",
        type=_non_negative,
        metavar="TRIAL",
        help="trial numbers (default: every pruned trial)",
    )
    expl.set_defaults(func=cmd_explain)

    dash = sub.add_parser("dashboard", help="serve optuna-dashboard on the storage")
    storage_arg(dash)
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--port", type=_port, default=8080)
    dash.add_argument("--artifact-dir", default=None, help="serve the artifacts stored here")
    dash.set_defaults(func=cmd_dashboard)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}") from None
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number in 1..65535, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        # The library's own calls (spectra, AeLLE fits) follow --threads too.
        with use_threads(args.threads) if getattr(args, "threads", None) else nullcontext():
            return int(args.func(args))
    except CLIError as err:
        print(f"optuna-lyap {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


__all__ = ["CLIError", "build_parser", "main", "open_storage", "summarize"]
