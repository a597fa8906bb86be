"""At which epoch does each input rank the final values? Held-out Spearman per epoch, per table.

For each recorded table (``benchmarks/record.py``) and each epoch ``e``, AeLLE models with the
pruner's settings (``LyapunovPruner``'s default ensemble, 2 members and 150 steps) are fitted
on ``--n-train`` random configurations to predict the final value of the replay's objective
(``replay.objective_of``: the validation loss on ``copy``) from

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

    python benchmarks/rank_by_epoch.py                       # every table, epochs 0-5
    python benchmarks/rank_by_epoch.py --tasks copy --epochs 0 1 2 --splits 3

Writes ``benchmarks/results/rank_by_epoch.json`` and ``rank_by_epoch.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from optuna.study import StudyDirection

from optuna_lyap.aelle import AeLLE
from optuna_lyap.pruners import curve_features
from optuna_lyap.pruners._lyapunov import _DEFAULT_AELLE_PARAMS
from optuna_lyap.pruners._predictor import rank_correlation

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from record import load_table  # noqa: E402
from replay import DATA, RESULTS, objective_of  # noqa: E402

INPUTS = ("spectrum", "curve", "hybrid")


def curve_columns(values: np.ndarray, epoch: int, direction: str) -> np.ndarray:
    """``n x 2``: each configuration's curve features at ``epoch``, as the pruner computes them."""
    study_direction = StudyDirection[direction.upper()]
    return np.stack(
        [curve_features(dict(enumerate(row)), epoch, study_direction) for row in values]
    )


def spectra_at(table: dict[str, Any], epoch: int) -> list[np.ndarray]:
    return [table["spectra"][i, epoch, : table["dim"][i]] for i in range(len(table["dim"]))]


def held_out_spearman(
    table: dict[str, Any], epoch: int, inputs: str, n_train: int, seed: int
) -> float:
    """Spearman of one fit's predictions with the finals of the configurations it did not see."""
    _, values, direction = objective_of(table)
    finals = values[:, -1]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(finals))
    train, test = order[:n_train], order[n_train:]
    spectra = spectra_at(table, epoch) if inputs in ("spectrum", "hybrid") else None
    curve = curve_columns(values, epoch, direction) if inputs in ("curve", "hybrid") else None
    model = AeLLE(**_DEFAULT_AELLE_PARAMS, seed=seed)
    model.fit(
        None if spectra is None else [spectra[i] for i in train],
        finals[train],
        None if curve is None else curve[train],
    )
    predicted = model.predict(
        None if spectra is None else [spectra[i] for i in test],
        None if curve is None else curve[test],
    )
    return rank_correlation(predicted, finals[test])


def raw_spearman(table: dict[str, Any], epoch: int) -> dict[str, float]:
    """The objective and the largest exponent at ``epoch`` as rankers of the final values."""
    _, values, direction = objective_of(table)
    sign = 1.0 if direction == "maximize" else -1.0
    finals = sign * values[:, -1]
    return {
        "raw_value": rank_correlation(sign * values[:, epoch], finals),
        "raw_lambda1": rank_correlation(table["spectra"][:, epoch, 0], finals),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None, help="tables in benchmarks/data")
    parser.add_argument("--epochs", type=int, nargs="+", default=[0, 1, 2, 3, 5])
    parser.add_argument("--n-train", type=int, default=40)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS / "rank_by_epoch.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    paths = sorted(DATA.glob("*.jsonl.gz"))
    if args.tasks:
        paths = [DATA / f"{t}.jsonl.gz" for t in args.tasks]
    started = time.time()
    result: dict[str, Any] = {
        "command": "python benchmarks/rank_by_epoch.py " + " ".join(argv or sys.argv[1:]),
        "n_train": args.n_train,
        "splits": args.splits,
        "tasks": {},
    }
    lines = [
        f"`{result['command'].strip()}`",
        "",
        f"Held-out Spearman with the final value ({args.n_train} training configurations, "
        f"mean +- std over {args.splits} splits; raw scores over all configurations).",
        "",
        "| task | objective | epoch | spectrum | curve | hybrid | raw value | raw lambda_1 |",
        "|---|---|---:|---|---|---|---:|---:|",
    ]
    for path in paths:
        table = load_table(path)
        task = path.name.split(".")[0]
        metric, _, _ = objective_of(table)
        per_epoch: dict[str, Any] = {}
        for epoch in args.epochs:
            cells: dict[str, Any] = {}
            for inputs in INPUTS:
                rhos = [
                    held_out_spearman(table, epoch, inputs, args.n_train, seed)
                    for seed in range(args.splits)
                ]
                cells[inputs] = {"mean": float(np.mean(rhos)), "std": float(np.std(rhos))}
            cells.update(raw_spearman(table, epoch))
            per_epoch[str(epoch)] = cells
            lines.append(
                f"| {task} | {metric} | {epoch} | "
                + " | ".join(f"{cells[i]['mean']:+.2f} +- {cells[i]['std']:.2f}" for i in INPUTS)
                + f" | {cells['raw_value']:+.2f} | {cells['raw_lambda1']:+.2f} |"
            )
            print(lines[-1], flush=True)
        result["tasks"][task] = {"objective": metric, "epochs": per_epoch}
    result["seconds"] = time.time() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
