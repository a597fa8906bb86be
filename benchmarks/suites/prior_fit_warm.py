"""Is ``optuna-lyap fit --on-shipped`` worse than the shipped prior alone on held-out trials?

Each ``benchmarks/data/prior/<task>_seed1`` table (60 configurations recorded as an earlier
study would be: another seed, data split and grid order than the main tables; the shipped
prior never saw these rows, only other recordings of the same tasks) is split at random into
two studies of 30 trials. ``fit_prior`` (what ``optuna-lyap fit`` runs) is fitted on study A,
once on A alone and once warm-started from the shipped bundle (``--on-shipped``); study B is
held out. On B, each prior predicts every trial at steps 0, 1 and 2 from everything a live
trial has by then (hyperparameters, spectrum, curve: ``TrialPrior.predict_trials``), and the
Spearman correlation of the predicted quantile with B's final values is reported. Five splits
per table (seeds 0-4), all reported; the warm start's pseudo-count is the package default (50),
fixed before this was run.

Usage::

    python -m benchmarks.suites.prior_fit_warm [--splits 5] [--steps 0 1 2]

Writes ``prior_fit_warm.{json,md}`` under ``benchmarks/results/prior_fit_warm/<commit>/``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.methods import (
    NETWORK_ATTR,
    PSEUDO_COUNT,
    VAL_LOSS_ATTR,
    NetworkDescription,
    TrialPrior,
    fit_prior,
    load_shipped_prior,
    rank_correlation,
)
from benchmarks.lyapbench.record import load_table
from benchmarks.lyapbench.tables import DATA
from optuna_lyap import report_spectrum

TABLES = sorted((DATA / "prior").glob("*_seed1.jsonl.gz"))
RESULTS = runfiles.results_dir("prior_fit_warm")


DISTRIBUTIONS = {
    "cell": CategoricalDistribution(["rnn", "gru", "lstm"]),
    "hidden_size": IntDistribution(1, 4096),
    "init_scale": FloatDistribution(1e-6, 1e6),
    "lr": FloatDistribution(1e-9, 10.0),
}


def table_study(table: dict[str, Any], rows: np.ndarray, name: str) -> optuna.Study:
    """An in-memory study of the table's ``rows``, as a live study would have recorded them:
    the params, the network description ``LyapunovMonitor`` writes, the metric at every epoch,
    the spectrum at epochs 0-2, the validation loss at every epoch, and the final metric."""
    meta = table["meta"]
    study = optuna.create_study(study_name=name, direction=meta["direction"])
    layers = int(meta.get("task_config", {}).get("num_layers", 1))
    for i in rows:
        params = {key: table[key][i].item() for key in DISTRIBUTIONS}
        study.enqueue_trial(params)
        trial = study.ask(DISTRIBUTIONS)
        study._storage.set_trial_system_attr(
            trial._trial_id,
            NETWORK_ATTR,
            NetworkDescription.from_params(params, num_layers=layers).to_json(),
        )
        dim = int(table["dim"][i])
        for step in range(table["values"].shape[1]):
            value = table["values"][i, step]
            if np.isfinite(value):
                trial.report(float(value), step)
            loss = table["val_loss"][i, step]
            if np.isfinite(loss):
                trial.set_user_attr(VAL_LOSS_ATTR.format(step=step), float(loss))
            if step <= 2 and np.isfinite(table["spectra"][i, step, :dim]).any():
                report_spectrum(trial, table["spectra"][i, step, :dim], step)
        final = table["values"][i, -1]
        if np.isfinite(final):
            study.tell(trial, float(final))
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return study


def held_out_spearman(prior: TrialPrior, study: optuna.Study, step: int) -> float:
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    reported = [t for t in trials if step in t.intermediate_values]
    predictions = prior.predict_trials(reported, step, study.direction)
    predicted = np.array(
        [predictions[t.number].quantile for t in reported if t.number in predictions]
    )
    final = np.array([t.value for t in reported if t.number in predictions], dtype=float)
    sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
    return rank_correlation(predicted, sign * final)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shipped_bundle = load_shipped_prior()
    shipped = TrialPrior(shipped_bundle)
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    for path in TABLES:
        table = load_table(path)
        name = path.name.split(".")[0]
        n = len(table["index"])
        for split in range(args.splits):
            order = np.random.default_rng(split).permutation(n)
            half = n // 2
            parts = {}
            for label, rows in (("A", order[:half]), ("B", order[half:])):
                parts[label] = table_study(table, rows, f"{name}-{label}")
            own = TrialPrior(fit_prior([parts["A"]], steps=args.steps, seed=split))
            warm = TrialPrior(
                fit_prior([parts["A"]], steps=args.steps, shipped=shipped_bundle, seed=split)
            )
            for step in args.steps:
                row = {
                    "table": name,
                    "split": split,
                    "step": step,
                    "shipped": held_out_spearman(shipped, parts["B"], step),
                    "study_only": held_out_spearman(own, parts["B"], step),
                    "on_shipped": held_out_spearman(warm, parts["B"], step),
                }
                results.append(row)
                print(
                    f"{name} split {split} step {step}: shipped {row['shipped']:+.3f} "
                    f"study-only {row['study_only']:+.3f} on-shipped {row['on_shipped']:+.3f}",
                    flush=True,
                )
    seconds = time.perf_counter() - start
    lines = [
        "# `fit --on-shipped` against the shipped prior on held-out trials",
        "",
        "Command: `python -m benchmarks.suites.prior_fit_warm"
        + (f" --splits {args.splits}" if args.splits != 5 else "")
        + (f" --steps {' '.join(map(str, args.steps))}" if args.steps != [0, 1, 2] else "")
        + "`",
        f"({seconds:.0f} s). Spearman of the predicted final quantile with the final value on"
        " study B (30 held-out trials) of each `prior/<task>_seed1` table, after fitting on"
        f" study A (the other 30); pseudo-count {PSEUDO_COUNT:g}. Mean over {args.splits}"
        " random splits (min-max in brackets); 'wins' counts splits where on-shipped >=",
        "shipped.",
        "",
        "| table | step | shipped | study only | on-shipped | on-shipped >= shipped |",
        "|---|---|---|---|---|---|",
    ]

    def cell(values: list[float]) -> str:
        array = np.array(values, dtype=float)
        return f"{np.nanmean(array):+.3f} [{np.nanmin(array):+.2f}, {np.nanmax(array):+.2f}]"

    for name in sorted({r["table"] for r in results}):
        for step in args.steps:
            rows = [r for r in results if r["table"] == name and r["step"] == step]
            wins = sum(r["on_shipped"] >= r["shipped"] for r in rows)
            lines.append(
                f"| {name} | {step} | {cell([r['shipped'] for r in rows])} | "
                f"{cell([r['study_only'] for r in rows])} | "
                f"{cell([r['on_shipped'] for r in rows])} | {wins}/{len(rows)} |"
            )
    overall = {
        key: float(np.nanmean([r[key] for r in results]))
        for key in ("shipped", "study_only", "on_shipped")
    }
    lines += [
        "",
        f"All tables and steps: shipped {overall['shipped']:+.3f}, study only "
        f"{overall['study_only']:+.3f}, on-shipped {overall['on_shipped']:+.3f}.",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "prior_fit_warm.json").write_text(
        json.dumps(
            {
                "meta": runfiles.metadata(
                    runfiles.command_line("benchmarks.suites.prior_fit_warm", argv),
                    prior="shipped",
                ),
                "results": results,
                "overall": overall,
                "seconds": seconds,
            },
            indent=1,
        )
    )
    (RESULTS / "prior_fit_warm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
