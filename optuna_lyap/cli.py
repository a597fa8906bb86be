"""The ``optuna-lyap`` command: run, join, inspect and watch studies of built-in tasks.

Subcommands:

- ``run``: create (or resume) a study of a built-in task and optimise it, then print a summary;
- ``worker``: join an existing study on a shared storage and run trials beside other workers;
- ``fit``: train an AeLLE on a study's stored spectra and save it for a later study's pruner;
- ``embed``: write the AeLLE latent embedding of a study's trials as HTML and PNG;
- ``dashboard``: serve optuna-dashboard on the study's storage.

A study made by ``run`` stores its settings (task, epochs, seed, pruner, sampler, spectrum
steps) in the study's user attrs under ``optuna_lyap``, so ``worker`` builds the same objective.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from optuna_lyap import tasks as builtin_tasks
from optuna_lyap import use_threads

CONFIG_KEY = "optuna_lyap"
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


class CLIError(Exception):
    """An error the user can act on: printed as one line, exit status 2."""


# --- Building blocks -------------------------------------------------------------------------


def make_pruner(name: str, *, n_startup_trials: int, seed: int) -> optuna.pruners.BasePruner:
    """The pruner called ``name`` (one of ``PRUNERS``), with the settings ``run`` uses."""
    from optuna import pruners

    warmup = 1  # step 0 is the untrained network: never prune on it alone
    if name == "lyapunov":
        from optuna_lyap import LyapunovPruner

        return LyapunovPruner(n_startup_trials=n_startup_trials, n_warmup_steps=warmup, seed=seed)
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


def make_sampler(
    name: str, *, task: builtin_tasks.SequenceTask, n_startup_trials: int, seed: int
) -> optuna.samplers.BaseSampler:
    """The sampler called ``name`` (one of ``SAMPLERS``), seeded."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "lyapunov":
        from optuna_lyap.samplers import LyapunovSampler

        def model_factory(params: dict[str, Any]) -> Any:
            return task.build_model(params, seed=seed)

        return LyapunovSampler(
            optuna.samplers.TPESampler(seed=seed),
            model_factory=model_factory,
            probe_inputs=lambda model: task.probe_inputs(model),
            n_startup_trials=n_startup_trials,
            seed=seed,
        )
    raise CLIError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """Open ``url`` (an RDB URL, or a path ending in ``.log``/``.jsonl`` for a journal file)."""
    try:
        if url.endswith((".log", ".jsonl")) and "://" not in url:
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(url))
        if url.startswith("redis://"):
            from optuna.storages.journal import JournalRedisBackend

            return optuna.storages.JournalStorage(JournalRedisBackend(url))
        if url.startswith("sqlite"):
            return optuna.storages.RDBStorage(url)
        # Server databases serve several workers: a killed worker's trial is failed and
        # retried once its heartbeat goes stale.
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=30,
            failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=1),
        )
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CLIError(f"cannot open storage {url!r}: {reason}") from err


def load_study(storage: optuna.storages.BaseStorage, url: str, name: str) -> optuna.Study:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError as err:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        known = ", ".join(names) if names else "none"
        raise CLIError(f"no study named {name!r} in {url!r} (studies there: {known})") from err


def study_config(study: optuna.Study) -> dict[str, Any]:
    config = study.user_attrs.get(CONFIG_KEY)
    if not isinstance(config, dict):
        raise CLIError(
            f"study {study.study_name!r} was not created by 'optuna-lyap run', so its task and "
            "settings are unknown"
        )
    return config


def build_study(
    storage: optuna.storages.BaseStorage, study_name: str, config: dict[str, Any]
) -> tuple[optuna.Study, Any]:
    """The study with this process's pruner and sampler, and the task's objective."""
    task = builtin_tasks.get_task(config["task"], seed=config["seed"])
    pruner = make_pruner(
        config["pruner"], n_startup_trials=config["n_startup_trials"], seed=config["seed"]
    )
    sampler = make_sampler(
        config["sampler"],
        task=task,
        n_startup_trials=config["n_startup_trials"],
        seed=config["seed"],
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


# --- The summary ------------------------------------------------------------------------------


def summarize(study: optuna.Study) -> dict[str, Any]:
    """Counts, best trial, epochs spent, and how well early predictions ranked final values."""
    from optuna_lyap import load_predictions
    from optuna_lyap.pruners._predictor import rank_correlation

    config = study.user_attrs.get(CONFIG_KEY, {})
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): 0 for state in TrialState}
    for t in trials:
        counts[t.state.name.lower()] += 1
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    spent = sum(int(t.user_attrs.get("epochs_trained", 0)) for t in finished)
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
    }
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        summary["best_value"] = best.value
        summary["best_params"] = best.params
    # The earliest recorded prediction of each completed trial, against its final value.
    pairs = []
    for t in completed:
        records = load_predictions(t)
        if records:
            first = records[min(records)]
            if first.get("predicted") is not None and t.value is not None:
                pairs.append((min(records), first["predicted"], t.value))
    if pairs:
        steps, predicted, final = (np.array(v, dtype=float) for v in zip(*pairs, strict=True))
        summary["prediction"] = {
            "n": len(pairs),
            "median_step": float(np.median(steps)),
            "spearman": rank_correlation(predicted, final),
        }
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "-" if value is None else str(value)

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
    pred = summary["prediction"]
    if pred is None:
        rows.append(("prediction quality", "no predictions recorded"))
    else:
        rows.append(
            (
                "prediction quality",
                f"Spearman {fmt(pred['spearman'])} between the earliest prediction (median step "
                f"{fmt(pred['median_step'])}) and the final value, {pred['n']} completed trials",
            )
        )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


# --- Subcommands ------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    storage = open_storage(args.storage)
    task = builtin_tasks.get_task(args.task, seed=args.seed)
    config = {
        "task": args.task,
        "n_epochs": task.n_epochs if args.n_epochs is None else args.n_epochs,
        "seed": args.seed,
        "pruner": args.pruner,
        "sampler": args.sampler,
        "n_startup_trials": args.n_startup_trials,
        "spectrum_steps": [0, 1],
    }
    name = args.study_name or f"{args.task}-{args.pruner}-{args.sampler}"
    existing = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if name in existing:
        previous = study_config(load_study(storage, args.storage, name))
        if previous["task"] != args.task:
            raise CLIError(
                f"study {name!r} already exists for task {previous['task']!r}; pick another "
                "--study-name or the same --task"
            )
        config = previous  # resuming: keep the settings the study was made with
    study, objective = build_study(storage, name, config)
    study.set_user_attr(CONFIG_KEY, config)
    print(
        f"study {name!r} on {args.storage}: task {config['task']}, {config['n_epochs']} epochs a "
        f"trial, pruner {config['pruner']}, sampler {config['sampler']}",
        file=sys.stderr,
    )
    study.optimize(
        objective,
        n_trials=args.n_trials,
        show_progress_bar=not args.no_progress,
        catch=(RuntimeError, ValueError),
    )
    summary = summarize(study)
    print(format_summary(summary))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    storage = open_storage(args.storage)
    config = study_config(load_study(storage, args.storage, args.study_name))
    study, objective = build_study(storage, args.study_name, config)
    study.optimize(
        objective,
        n_trials=args.n_trials,
        show_progress_bar=not args.no_progress,
        catch=(RuntimeError, ValueError),
    )
    print(format_summary(summarize(study)))
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from optuna_lyap.pruners import fit_aelle

    storage = open_storage(args.storage)
    study = load_study(storage, args.storage, args.study_name)
    try:
        ae = fit_aelle(study, args.step, seed=args.seed)
    except ValueError as err:
        raise CLIError(str(err)) from err
    ae.save(args.output)
    print(f"saved an AeLLE fitted on {args.study_name!r} at step {args.step} to {args.output}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from optuna_lyap.visualization import embedding_data, plot_embedding, write_png

    storage = open_storage(args.storage)
    study = load_study(storage, args.storage, args.study_name)
    try:
        data = embedding_data(study, step=args.step, method=args.method, seed=args.seed)
    except ValueError as err:
        raise CLIError(str(err)) from err
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    html, png = out.with_suffix(".html"), out.with_suffix(".png")
    plot_embedding(data, step=args.step).write_html(html)
    write_png(data, png, step=args.step)
    print(f"embedded {len(data.numbers)} trials ({data.method}); wrote {html}, {png}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    import optuna_dashboard

    storage = open_storage(args.storage)
    print(f"optuna-dashboard on http://{args.host}:{args.port} (Ctrl-C stops it)", file=sys.stderr)
    optuna_dashboard.run_server(storage, host=args.host, port=args.port)
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
            help="storage URL (sqlite:///file.db, postgresql://..., redis://...) or a journal "
            f"file path ending in .log (default: {DEFAULT_STORAGE})",
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

    run = sub.add_parser("run", help="create or resume a study and optimise it")
    storage_arg(run)
    run.add_argument("--study-name", default=None, help="default: TASK-PRUNER-SAMPLER")
    run.add_argument(
        "--task", default="sdigits", choices=sorted(builtin_tasks.list_tasks()), help=task_help
    )
    run.add_argument("--n-trials", type=_positive, default=20, help="trials to run (default 20)")
    run.add_argument("--n-epochs", type=_positive, default=None, help="epochs of full training")
    run.add_argument("--pruner", default="lyapunov", choices=PRUNERS, help="default: lyapunov")
    run.add_argument("--sampler", default="tpe", choices=SAMPLERS, help="default: tpe")
    run.add_argument(
        "--n-startup-trials", type=_positive, default=8, help="trials before models act"
    )
    run.add_argument("--seed", type=_non_negative, default=0)
    threads_arg(run)
    run.add_argument("--json", default=None, help="also write the summary to this JSON file")
    progress_args(run)
    run.set_defaults(func=cmd_run)

    worker = sub.add_parser("worker", help="join an existing study and run trials")
    storage_arg(worker, required=True)
    worker.add_argument("--study-name", required=True)
    worker.add_argument("--n-trials", type=_positive, default=None, help="default: until killed")
    threads_arg(worker)
    progress_args(worker)
    worker.set_defaults(func=cmd_worker)

    fit = sub.add_parser("fit", help="train an AeLLE on a study's spectra and save it")
    storage_arg(fit)
    fit.add_argument("--study-name", required=True)
    fit.add_argument("--step", type=_non_negative, default=1, help="spectrum step (default 1)")
    fit.add_argument("--output", required=True, help="where to save the model (a directory)")
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

    dash = sub.add_parser("dashboard", help="serve optuna-dashboard on the storage")
    storage_arg(dash)
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--port", type=_positive, default=8080)
    dash.set_defaults(func=cmd_dashboard)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        with use_threads(args.threads) if getattr(args, "threads", None) else nullcontext():
            return int(args.func(args))
    except CLIError as err:
        print(f"optuna-lyap {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
