"""Several worker processes tune one study on PostgreSQL, pruned by the trials' dynamics.

Each worker is a separate process, as it would be on separate machines: it opens the shared
storage, loads the study and runs its share of the trials of a built-in task. Every trial stores
its Lyapunov spectrum at initialisation (step 0) and after the first epoch (step 1);
``LyapunovPruner`` fits its predictor on the completed trials found in the storage, so every
worker reaches the same decisions. At the end the script prints what pruning bought.

    python examples/multi_worker_postgres.py \\
        --storage postgresql+psycopg2://postgres@127.0.0.1:5432/test --task copy --trials 48

    # the same study without pruning, to compare the epochs spent and the best value
    python examples/multi_worker_postgres.py --storage ... --task copy --trials 48 --no-prune

    optuna-dashboard postgresql+psycopg2://postgres@127.0.0.1:5432/test   # to look at it

Any Optuna storage URL works (``sqlite:///study.db`` too); PostgreSQL is what several machines
would share. Workers send heartbeats, and a trial whose worker dies is retried once.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import warnings

import numpy as np
import optuna
import torch
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from scipy.stats import spearmanr

from optuna_lyap import InStudyModel, LyapunovPruner, load_predictions
from optuna_lyap.tasks import get_task, make_objective


def open_storage(url: str) -> RDBStorage:
    # Heartbeats are marked experimental in Optuna; they are what makes a dead worker's trial
    # come back, so use them and keep the console quiet.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return RDBStorage(
        url,
        heartbeat_interval=20,
        grace_period=60,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
    )


def make_pruner(prune: bool) -> optuna.pruners.BasePruner:
    if not prune:
        return optuna.pruners.NopPruner()
    # Smaller models than AeLLE's defaults: epochs of the built-in tasks take well under a
    # second here, and the pruner refits whenever a trial completes.
    return LyapunovPruner(
        model=InStudyModel(
            aelle_params={"n_models": 3, "max_steps": 200}, cv_folds=3, n_startup_trials=8
        ),
    )


def work(url: str, study_name: str, task_name: str, n_trials: int, seed: int, prune: bool) -> None:
    """One worker process: run ``n_trials`` trials of the shared study."""
    torch.set_num_threads(1)  # the workers share the machine's cores
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    task = get_task(task_name, seed=0)
    study = optuna.load_study(
        study_name=study_name,
        storage=open_storage(url),
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=make_pruner(prune),
    )
    study.optimize(make_objective(task, spectrum_steps=(0, 1), seed=0), n_trials=n_trials)


def summarise(study: optuna.Study) -> dict[str, float | int | None]:
    """Share pruned, epochs spent, best value, and how well early predictions ranked."""
    trials = study.get_trials(deepcopy=False)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    # For each completed trial, the earliest prediction the pruner made for it.
    early, finals = [], []
    for t in completed:
        records = load_predictions(t)
        if records and t.value is not None:
            early.append(records[min(records)]["predicted"])
            finals.append(t.value)
    # Undefined (None) with fewer than 3 such trials or when they all ended on the same value.
    rho = None
    if len(early) >= 3 and np.ptp(early) > 0 and np.ptp(finals) > 0:
        rho = float(spearmanr(early, finals).statistic)
    return {
        "trials": len(trials),
        "completed": len(completed),
        "pruned": len(pruned),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "share_pruned": len(pruned) / max(len(trials), 1),
        "epochs": int(sum(t.user_attrs.get("epochs_trained", 0) for t in trials)),
        "best_value": study.best_value if completed else None,
        "early_prediction_spearman": rho,
        "n_early_predictions": len(early),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--storage", required=True, help="an RDB URL, e.g. postgresql+psycopg2://")
    parser.add_argument("--task", default="copy", help="a built-in task (optuna_lyap.tasks)")
    parser.add_argument("--trials", type=int, default=48, help="trials over all workers")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--study-name", default=None)
    parser.add_argument("--no-prune", action="store_true", help="run without pruning")
    args = parser.parse_args()

    task = get_task(args.task, seed=0)
    name = args.study_name or f"{args.task}-{'nop' if args.no_prune else 'lyap'}-{time.time():.0f}"
    study = optuna.create_study(
        study_name=name, storage=open_storage(args.storage), direction=task.direction
    )
    shares = np.diff(np.linspace(0, args.trials, args.workers + 1).round().astype(int))
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=work,
            args=(args.storage, name, args.task, int(n), args.seed + i, not args.no_prune),
        )
        for i, n in enumerate(shares)
    ]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    summary = summarise(study)
    summary["wall_seconds"] = round(time.perf_counter() - start, 1)
    print(f"study {name!r} on task {args.task!r}:")
    for key, value in summary.items():
        print(f"  {key}: {value}")


if __name__ == "__main__":
    main()
