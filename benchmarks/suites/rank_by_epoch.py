"""At which epoch does each input rank the final values? Held-out Spearman per epoch, per table.

For each recorded table (``lyapbench/record.py``) and each epoch ``e``, AeLLE models with the
pruner's settings (``LyapunovPruner``'s default ensemble, 2 members and 150 steps) are fitted
on ``--n-train`` random configurations to predict the final value of the replay's objective
(``objective_of``: the validation loss on ``copy``) from

- ``spectrum``: the Lyapunov spectrum at epoch ``e`` (what ``lyapunov_spectrum`` uses);
- ``curve``: the learning curve up to ``e`` (latest and best value, what ``curve_only`` uses);
- ``hybrid``: both (what ``lyapunov_hybrid`` uses);

and scored by the Spearman correlation of their predictions with the final values of the other
configurations (mean and std over ``--splits`` random splits): positive is a good predictor
for either direction. Two raw scores need no fit, over all configurations: the objective at
epoch ``e`` against the final one, and the largest exponent at ``e`` against the final score
(the final value, negated for ``minimize``: positive means a larger exponent goes with a better
network).

Usage::

    python -m benchmarks.suites.rank_by_epoch                       # every table, epochs 0-5
    python -m benchmarks.suites.rank_by_epoch --tasks copy --epochs 0 1 2 --splits 3

Writes ``rank_by_epoch.json`` and ``.md`` under ``benchmarks/results/rank_by_epoch/<commit>/``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optuna.distributions import CategoricalDistribution

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.methods import BENCHMARK_AELLE_PARAMS as _DEFAULT_AELLE_PARAMS
from benchmarks.lyapbench.methods import ParamEncoder, rank_correlation
from benchmarks.lyapbench.tables import (
    AXES,
    DATA,
    curve_columns,
    load_table,
    objective_of,
    spectra_at,
    top_configurations,
)
from optuna_lyap.aelle import AeLLE

RESULTS = runfiles.results_dir("rank_by_epoch")

INPUTS = ("spectrum", "curve", "hybrid", "params", "all")
# What each input name feeds the model: the spectrum, the curve features, the hyperparameters.
FEEDS = {
    "spectrum": ("spectrum",),
    "curve": ("curve",),
    "hybrid": ("spectrum", "curve"),
    "params": ("params",),
    "all": ("spectrum", "curve", "params"),
}
KEEP = 0.2  # recall: the share of held-out top-2% configurations among the best-predicted 20%


def param_columns(table: dict[str, Any]) -> np.ndarray:
    """``n x p``: each configuration's hyperparameters as the pruner encodes the replay's
    (one categorical per grid axis, so one-hot)."""
    grid = table["meta"]["grid"]
    encoder = ParamEncoder({a: CategoricalDistribution(grid[a]) for a in AXES})
    return np.stack(
        [encoder.encode({a: table[a][i].item() for a in AXES}) for i in range(len(table["index"]))]
    )


def held_out_scores(
    table: dict[str, Any],
    epoch: int,
    inputs: str,
    n_train: int,
    seed: int,
    target_epoch: int | None = None,
) -> tuple[float, float]:
    """One fit's held-out Spearman with the finals, and its recall of the top-2% configurations.

    The model is fitted on ``n_train`` random configurations and scored on the others; the
    recall is the share of the held-out top-2% configurations among the best-predicted
    ``KEEP`` of the held-out ones. ``target_epoch`` fits the model on the value at that epoch
    instead of the final one (a label a pruned trial can pay for); it is still scored against
    the final values.
    """
    _, values, direction = objective_of(table)
    finals = values[:, -1]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(finals))
    train, test = order[:n_train], order[n_train:]
    feeds = FEEDS[inputs]
    spectra = spectra_at(table, epoch) if "spectrum" in feeds else None
    columns = []
    if "curve" in feeds:
        columns.append(curve_columns(values, epoch, direction))
    if "params" in feeds:
        columns.append(param_columns(table))
    features = np.concatenate(columns, axis=1) if columns else None
    model = AeLLE(**_DEFAULT_AELLE_PARAMS, seed=seed)
    model.fit(
        None if spectra is None else [spectra[i] for i in train],
        (finals if target_epoch is None else values[:, target_epoch])[train],
        None if features is None else features[train],
    )
    predicted = model.predict(
        None if spectra is None else [spectra[i] for i in test],
        None if features is None else features[test],
    )
    sign = 1.0 if direction == "maximize" else -1.0
    recall = top_recall(sign * np.asarray(predicted), top_configurations(table)[test])
    return rank_correlation(predicted, finals[test]), recall


def raw_spearman(table: dict[str, Any], epoch: int) -> dict[str, float]:
    """The objective and the largest exponent at ``epoch`` as rankers of the final values."""
    _, values, direction = objective_of(table)
    sign = 1.0 if direction == "maximize" else -1.0
    finals = sign * values[:, -1]
    return {
        "raw_value": rank_correlation(sign * values[:, epoch], finals),
        "raw_lambda1": rank_correlation(table["spectra"][:, epoch, 0], finals),
    }


def top_recall(scores: np.ndarray, top: np.ndarray) -> float:
    """The share of the ``top`` configurations among the best-scored ``KEEP`` of them (higher
    scores are better; NaN scores last)."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    kept = order[: max(1, round(KEEP * len(scores)))]
    return float(top[kept].sum() / top.sum()) if top.any() else math.nan


def raw_recall(table: dict[str, Any], epoch: int) -> float:
    """The top-2% recall of keeping the best ``KEEP`` of all configurations by their value at
    ``epoch`` (nothing is fitted, so over all of them)."""
    _, values, direction = objective_of(table)
    sign = 1.0 if direction == "maximize" else -1.0
    return top_recall(sign * values[:, epoch], top_configurations(table))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None, help="tables in benchmarks/data")
    parser.add_argument("--epochs", type=int, nargs="+", default=[0, 1, 2, 3, 5])
    parser.add_argument("--n-train", type=int, default=40)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument(
        "--target-epoch",
        type=int,
        default=None,
        help="fit on the value at this epoch instead of the final one",
    )
    parser.add_argument("--out", default=str(RESULTS / "rank_by_epoch.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    paths = sorted(DATA.glob("*.jsonl.gz"))
    if args.tasks:
        paths = [DATA / f"{t}.jsonl.gz" for t in args.tasks]
    started = time.time()
    result: dict[str, Any] = {
        "command": runfiles.command_line("benchmarks.suites.rank_by_epoch", argv),
        "meta": runfiles.metadata(runfiles.command_line("benchmarks.suites.rank_by_epoch", argv)),
        "n_train": args.n_train,
        "target_epoch": args.target_epoch,
        "splits": args.splits,
        "tasks": {},
    }
    lines = [
        f"`{result['command'].strip()}`",
        "",
        f"Held-out Spearman with the final value ({args.n_train} training configurations"
        + (
            ""
            if args.target_epoch is None
            else f" labelled by their epoch-{args.target_epoch} value"
        )
        + ", "
        f"mean +- std over {args.splits} splits; raw scores over all configurations). "
        "hybrid = spectrum + curve; all = spectrum + curve + hyperparameters.",
        "",
        "| task | objective | epoch | " + " | ".join(INPUTS) + " | raw value | raw lambda_1 |",
        "|---|---|---:|" + "---|" * len(INPUTS) + "---:|---:|",
    ]
    recall_lines = [
        "",
        f"Recall of the top 2%: the share of the held-out top-2% configurations among the "
        f"best-predicted {KEEP:.0%} of the held-out ones (mean over the splits; keeping "
        f"{KEEP:.0%} at random recalls {KEEP:.2f}).",
        "",
        "| task | epoch | " + " | ".join(INPUTS) + " | raw value |",
        "|---|---:|" + "---:|" * len(INPUTS) + "---:|",
    ]
    for path in paths:
        table = load_table(path)
        task = path.name.split(".")[0]
        metric, _, _ = objective_of(table)
        per_epoch: dict[str, Any] = {}
        for epoch in args.epochs:
            cells: dict[str, Any] = {}
            for inputs in INPUTS:
                scores = [
                    held_out_scores(table, epoch, inputs, args.n_train, seed, args.target_epoch)
                    for seed in range(args.splits)
                ]
                rhos = [rho for rho, _ in scores]
                cells[inputs] = {
                    "mean": float(np.mean(rhos)),
                    "std": float(np.std(rhos)),
                    "top2pct_recall": float(np.nanmean([r for _, r in scores])),
                }
            cells.update(raw_spearman(table, epoch))
            cells["raw_top2pct_recall"] = raw_recall(table, epoch)
            per_epoch[str(epoch)] = cells
            lines.append(
                f"| {task} | {metric} | {epoch} | "
                + " | ".join(f"{cells[i]['mean']:+.2f} +- {cells[i]['std']:.2f}" for i in INPUTS)
                + f" | {cells['raw_value']:+.2f} | {cells['raw_lambda1']:+.2f} |"
            )
            recall_lines.append(
                f"| {task} | {epoch} | "
                + " | ".join(f"{cells[i]['top2pct_recall']:.2f}" for i in INPUTS)
                + f" | {cells['raw_top2pct_recall']:.2f} |"
            )
            print(lines[-1], recall_lines[-1], flush=True)
        result["tasks"][task] = {"objective": metric, "epochs": per_epoch}
    result["seconds"] = time.time() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text("\n".join(lines + recall_lines) + "\n")


if __name__ == "__main__":
    main()
