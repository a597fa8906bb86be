"""Replay HPO methods on recorded tables: which finds a top network for the fewest epochs?

Every configuration of a table (``benchmarks/record.py``) was trained to the end once, with its
validation metric and Lyapunov spectrum stored per epoch. A replayed trial asks the sampler for
a configuration (one categorical per grid axis, so TPE sees the real search space), then reads
its recorded epochs one by one: it stores the spectrum on steps 0 and 1 (as ``LyapunovMonitor``
would), reports the metric, and stops when the pruner says so. Epoch ``e`` costs one epoch;
step 0 (the untrained network) costs none. A run ends when the epoch budget is spent.

Per task and method, over ``--seeds`` seeds:

- ``epochs_to_top2pct``: cumulative epochs until a trial COMPLETES with a final value in the
  table's top 2% (median over seeds; null when fewer than half the seeds get there);
- the anytime curve: best completed final value against cumulative epochs (median and
  quartiles over seeds), saved as PNG;
- ``best_at_budget``: the best completed final value at fixed fractions of the budget;
- for our predictors, the Spearman correlation of the recorded predictions with the final
  values, per step.

Usage::

    python benchmarks/replay.py                      # all tables in benchmarks/data, 20 seeds
    python benchmarks/replay.py --tasks sdigits --seeds 5 --methods median lyapunov_hybrid

Writes ``benchmarks/results/hpo_summary.json``, ``hpo_anytime_<task>.png`` and
``hpo_summary.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

import optuna_lyap
from optuna_lyap.pruners import load_predictions
from optuna_lyap.pruners._predictor import rank_correlation

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from record import load_table  # noqa: E402

RESULTS = HERE / "results"
DATA = HERE / "data"
AXES = ("cell", "hidden_size", "init_scale", "lr")
SPECTRUM_STEPS = (0, 1)


class TopKAfterFirstEpoch(BasePruner):
    """Keep a trial after its first epoch only if its value ranks in the best ``share`` so far.

    The "top-K after one epoch" rule: every trial pays one epoch, and only those whose epoch-1
    value is among the best ``share`` of all epoch-1 values seen train on.
    """

    def __init__(self, share: float = 0.2, n_startup_trials: int = 5) -> None:
        self._share = share
        self._n_startup = n_startup_trials

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if trial.last_step != 1:
            return False
        others = [
            t.intermediate_values[1]
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and 1 in t.intermediate_values
        ]
        if len(others) < self._n_startup:
            return False
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        scores = sign * np.array(others)
        bar = np.quantile(scores, 1.0 - self._share)
        return bool(sign * trial.intermediate_values[1] < bar)


def make_pruner(name: str, seed: int) -> BasePruner:
    p = optuna.pruners
    warm = 1  # never prune the untrained network on its chance-level value
    lyap = {"n_startup_trials": 5, "n_warmup_steps": warm, "seed": seed}
    table: dict[str, Callable[[], BasePruner]] = {
        "nop": p.NopPruner,
        "median": lambda: p.MedianPruner(n_startup_trials=5, n_warmup_steps=warm),
        "percentile25": lambda: p.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=warm),
        "successive_halving": lambda: p.SuccessiveHalvingPruner(min_resource=1),
        "hyperband": lambda: p.HyperbandPruner(min_resource=1),
        "patient_median": lambda: p.PatientPruner(
            p.MedianPruner(n_startup_trials=5, n_warmup_steps=warm), patience=1
        ),
        "topk_epoch1": TopKAfterFirstEpoch,
        "curve_only": lambda: optuna_lyap.LyapunovPruner(
            use_spectrum=False, use_curve=True, **lyap
        ),
        "lyapunov_spectrum": lambda: optuna_lyap.LyapunovPruner(
            use_spectrum=True, use_curve=False, **lyap
        ),
        "lyapunov_hybrid": lambda: optuna_lyap.LyapunovPruner(
            use_spectrum=True, use_curve=True, **lyap
        ),
    }
    return table[name]()


METHODS = (
    "nop",
    "median",
    "percentile25",
    "successive_halving",
    "hyperband",
    "patient_median",
    "topk_epoch1",
    "curve_only",
    "lyapunov_spectrum",
    "lyapunov_hybrid",
)
OURS = ("curve_only", "lyapunov_spectrum", "lyapunov_hybrid")


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    tpe = optuna.samplers.TPESampler(seed=seed)
    if name == "tpe":
        return tpe
    if name == "lyapunov":
        from optuna_lyap.samplers import LyapunovSampler

        return LyapunovSampler(tpe, seed=seed)
    raise ValueError(f"sampler must be 'tpe' or 'lyapunov', but got {name!r}.")


def replay(
    table: dict[str, Any], method: str, sampler: str, seed: int, budget: int
) -> dict[str, Any]:
    """One HPO run on a table; returns the trace of finished trials and the predictions."""
    meta = table["meta"]
    grid = meta["grid"]
    values, spectra, dims = table["values"], table["spectra"], table["dim"]
    n_epochs = values.shape[1] - 1
    lookup = {tuple(table[a][i].item() for a in AXES): i for i in range(len(table["index"]))}
    spent = 0
    trace: list[tuple[int, float | None]] = []  # (cumulative epochs at the end, final or None)

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        key = tuple(trial.suggest_categorical(a, grid[a]) for a in AXES)
        i = lookup[key]
        for step in range(n_epochs + 1):
            if step > 0:
                spent += 1
            trial.set_user_attr("epochs_trained", step)
            if step in SPECTRUM_STEPS:
                optuna_lyap.report_spectrum(trial, spectra[i, step, : dims[i]], step)
            trial.report(float(values[i, step]), step)
            if trial.should_prune():
                trace.append((spent, None))
                raise optuna.TrialPruned()
        trace.append((spent, float(values[i, -1])))
        return float(values[i, -1])

    def stop_at_budget(study: optuna.Study, trial: FrozenTrial) -> None:
        if spent >= budget:
            study.stop()

    study = optuna.create_study(
        direction=meta["direction"],
        sampler=make_sampler(sampler, seed),
        pruner=make_pruner(method, seed),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, callbacks=[stop_at_budget], n_trials=100 * budget)

    predictions = []
    if method in OURS:
        finals = {t.number: t.value for t in study.trials if t.state == TrialState.COMPLETE}
        for t in study.trials:
            if t.number in finals:
                for step, record in load_predictions(t).items():
                    if record.get("predicted") is not None:
                        predictions.append((step, record["predicted"], finals[t.number]))
    return {"trace": trace, "predictions": predictions}


def _run_job(job: tuple[str, str, str, int, int]) -> tuple[str, str, str, int, dict[str, Any]]:
    path, method, sampler, seed, budget = job
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = _tables_cache(path)
    return path, method, sampler, seed, replay(table, method, sampler, seed, budget)


_TABLES: dict[str, dict[str, Any]] = {}


def _tables_cache(path: str) -> dict[str, Any]:
    if path not in _TABLES:
        _TABLES[path] = load_table(path)
    return _TABLES[path]


def summarise(
    table: dict[str, Any], runs: list[dict[str, Any]], budget: int
) -> tuple[dict[str, Any], np.ndarray]:
    """Headline numbers of one method on one table, and its anytime curves (seeds x budget)."""
    maximize = table["meta"]["direction"] == "maximize"
    finals = table["values"][:, -1]
    sign = 1.0 if maximize else -1.0
    top = np.quantile(sign * finals, 0.98)  # the table's top 2% in score units
    hits, curves = [], np.full((len(runs), budget + 1), np.nan)
    n_trials, n_complete = [], []
    for r, run in enumerate(runs):
        trace = run["trace"]
        n_trials.append(len(trace))
        n_complete.append(sum(v is not None for _, v in trace))
        hit = next((e for e, v in trace if v is not None and sign * v >= top - 1e-12), None)
        hits.append(hit)
        best = -math.inf
        last = 0
        for epochs, value in trace:
            epochs = min(epochs, budget)
            curves[r, last:epochs] = best if math.isfinite(best) else np.nan
            if value is not None:
                best = max(best, sign * value)
            last = epochs
        curves[r, last:] = best if math.isfinite(best) else np.nan
    reached = [h for h in hits if h is not None]
    # Seeds that never get there count as beyond the budget: the median over all seeds.
    median = float(np.median([h if h is not None else math.inf for h in hits]))
    epochs_to_top = median if math.isfinite(median) else None
    fractions = (0.1, 0.25, 0.5, 1.0)
    best_at = {}
    for frac in fractions:
        col = curves[:, int(frac * budget)]
        ok = col[np.isfinite(col)]
        best_at[str(frac)] = None if len(ok) == 0 else float(sign * np.median(ok))
    summary: dict[str, Any] = {
        "epochs_to_top2pct": epochs_to_top,
        "share_of_seeds_reaching_top2pct": len(reached) / len(runs),
        "epochs_to_top2pct_per_seed": hits,
        "best_at_budget": best_at,
        "median_trials": float(np.median(n_trials)),
        "median_completed": float(np.median(n_complete)),
    }
    preds = [p for run in runs for p in run["predictions"]]
    if preds:
        per_step = {}
        for step in sorted({p[0] for p in preds}):
            rows = np.array([(p[1], p[2]) for p in preds if p[0] == step])
            rho = rank_correlation(rows[:, 0], rows[:, 1])
            per_step[str(step)] = {"spearman": rho, "n": len(rows)}
        summary["prediction_spearman_by_step"] = per_step
    return summary, sign * curves


def plot_anytime(task: str, curves: dict[str, np.ndarray], path: Path, maximize: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for name, c in curves.items():
        x = np.arange(c.shape[1])
        sign = 1.0 if maximize else -1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            med = np.nanmedian(sign * c, axis=0) * sign
            lo = np.nanpercentile(sign * c, 25, axis=0) * sign
            hi = np.nanpercentile(sign * c, 75, axis=0) * sign
        style = "-" if name.startswith(("lyapunov", "curve")) else "--"
        (line,) = ax.plot(x, med, style, label=name, lw=1.6)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.1)
    ax.set_xlabel("cumulative epochs")
    ax.set_ylabel("best final value found (median, quartiles over seeds)")
    ax.set_title(f"{task}: anytime performance")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None, help="tables in benchmarks/data")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--samplers", nargs="+", default=["tpe"], choices=("tpe", "lyapunov"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--budget-trainings",
        type=float,
        default=40.0,
        help="budget in full trainings (epochs = this x n_epochs); default 40",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "hpo_summary.json"))
    args = parser.parse_args(argv)

    paths = sorted(DATA.glob("*.jsonl.gz"))
    if args.tasks:
        paths = [DATA / f"{t}.jsonl.gz" for t in args.tasks]
    tables = {p.name.split(".")[0]: load_table(p) for p in paths}
    jobs = []
    budgets = {}
    for task, table in tables.items():
        budgets[task] = int(args.budget_trainings * (table["values"].shape[1] - 1))
        for sampler in args.samplers:
            for method in args.methods:
                for seed in range(args.seeds):
                    jobs.append(
                        (str(DATA / f"{task}.jsonl.gz"), method, sampler, seed, budgets[task])
                    )
    started = time.time()
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for n, (path, method, sampler, _seed, run) in enumerate(pool.map(_run_job, jobs), 1):
            task = Path(path).name.split(".")[0]
            results.setdefault((task, method, sampler), []).append(run)
            if n % 20 == 0 or n == len(jobs):
                print(f"[{n}/{len(jobs)}] {time.time() - started:.0f}s", file=sys.stderr)

    summary: dict[str, Any] = {
        "command": "python benchmarks/replay.py " + " ".join(argv or sys.argv[1:]),
        "seeds": args.seeds,
        "tasks": {},
    }
    lines = [
        "| task | sampler | method | epochs to top-2% (median) | seeds reaching | "
        "best @25% | best @100% | trials | completed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, table in tables.items():
        maximize = table["meta"]["direction"] == "maximize"
        finals = table["values"][:, -1]
        entry: dict[str, Any] = {
            "metric": table["meta"]["metric"],
            "direction": table["meta"]["direction"],
            "n_configs": len(finals),
            "n_epochs": table["values"].shape[1] - 1,
            "budget_epochs": budgets[task],
            "top2pct_threshold": float(np.quantile(finals, 0.98 if maximize else 0.02)),
            "methods": {},
        }
        for sampler in args.samplers:
            curves = {}
            for method in args.methods:
                runs = results[(task, method, sampler)]
                stats, c = summarise(table, runs, budgets[task])
                name = method if sampler == "tpe" else f"{method}+lyapunov_sampler"
                entry["methods"][name] = stats
                curves[name] = c
                e2t = stats["epochs_to_top2pct"]
                lines.append(
                    f"| {task} | {sampler} | {method} | {'-' if e2t is None else f'{e2t:.0f}'} | "
                    f"{stats['share_of_seeds_reaching_top2pct']:.2f} | "
                    f"{_fmt(stats['best_at_budget']['0.25'])} | "
                    f"{_fmt(stats['best_at_budget']['1.0'])} | {stats['median_trials']:.0f} | "
                    f"{stats['median_completed']:.0f} |"
                )
            suffix = "" if sampler == "tpe" else "_lyapunov_sampler"
            plot_anytime(task, curves, RESULTS / f"hpo_anytime_{task}{suffix}.png", maximize)
        summary["tasks"][task] = entry
    print("\n".join(lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    Path(args.out).with_suffix(".md").write_text(
        f"`{summary['command'].strip()}`\n\n" + "\n".join(lines) + "\n"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
