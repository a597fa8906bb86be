"""Leave-one-task-out evaluation of the cross-task prior on every recorded table.

Each recorded table is one study. For every held-out task and step ``s`` (0 = at
initialisation, 1, 2), a prior (``optuna_lyap.aelle.CrossTaskPrior``) is fitted on the
other tasks' rows at step ``s`` and ranks the held-out task's configurations. Target: the final
value's quantile within its own table (ties broken by the final validation loss). Inputs:
hyperparameters in a generic encoding, the top quarter of the spectrum at step ``s`` on the
normalised-index grid, and the curve up to ``s`` ranked within the table.

Reported per task and step: the Spearman correlation of each ranking with the final quantile,
and the top-10% recall keeping the best 20% (the share of the table's top 10% among the 20%
ranked best), for the raw value at step ``s`` (ties broken by the validation loss), a curve-only
model, hyperparameters, spectrum, both, all three, and AeLLE on all three; and a reliability
table of the predicted P(top 10%) pooled over held-out tasks.

Usage::

    python -m benchmarks.suites.prior_loto                       # every table, writes results
    python -m benchmarks.suites.prior_loto --no-aelle --steps 0  # quicker look
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
from scipy.stats import spearmanr

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.methods import (
    CrossTaskPrior,
    NetworkDescription,
    PriorInputs,
    curve_rank_features,
    final_quantile,
    hyperparameter_features,
    top_fraction,
)
from benchmarks.lyapbench.record import load_table
from benchmarks.lyapbench.tables import DATA

RESULTS = runfiles.results_dir("prior_loto")

# (name, model, inputs); "raw" is the value at the step itself.
METHODS: list[tuple[str, str, tuple[str, ...]]] = [
    ("curve", "hgb", ("curve",)),
    ("hp", "hgb", ("hyperparameters",)),
    ("spectrum", "hgb", ("spectrum",)),
    ("hp+spectrum", "hgb", ("hyperparameters", "spectrum")),
    ("all", "hgb", ("hyperparameters", "spectrum", "curve")),
    ("all (AeLLE)", "aelle", ("hyperparameters", "spectrum", "curve")),
]

BINS = (0.0, 0.05, 0.1, 0.2, 0.4, 1.0)


def table_paths(min_configs: int, data: Path = DATA) -> list[Path]:
    """The main tables of ``data`` (default ``benchmarks/data``) and every corpus table."""
    return sorted(data.glob("*.jsonl.gz")) + sorted((data / "corpus").glob("*.jsonl.gz"))


def study_rows(table: dict[str, Any], step: int, fraction: float) -> PriorInputs:
    """The prior's inputs for every configuration of one table at ``step``."""
    meta = table["meta"]
    networks = [
        NetworkDescription.from_params(
            {key: table[key][i] for key in ("cell", "hidden_size", "init_scale", "lr")},
            num_layers=int(meta.get("task_config", {}).get("num_layers", 1)),
        )
        for i in range(len(table["index"]))
    ]
    spectra = []
    for i, dim in enumerate(table["dim"]):
        known = table["spectra"][i, step]
        spectra.append(top_fraction(known[: int(dim)], int(dim), fraction))
    curve = curve_rank_features(table["values"], meta["direction"], step, table["val_loss"])
    return PriorInputs(hyperparameter_features(networks), spectra, table["dim"].copy(), curve)


def raw_ranking(table: dict[str, Any], step: int) -> np.ndarray:
    """The value at ``step`` as a score (higher = better), validation loss breaking ties."""
    values = table["values"][:, step]
    direction = table["meta"]["direction"]
    return final_quantile(values, direction, tie_break=table["val_loss"][:, step])


def top_recall(
    score: np.ndarray, target: np.ndarray, top: float = 0.1, keep: float = 0.2
) -> float:
    """Share of the true top ``top`` among the ``keep`` share ranked best by ``score``."""
    n = len(target)
    true_top = set(np.argsort(-target, kind="stable")[: max(1, math.ceil(top * n))])
    kept = set(np.argsort(-score, kind="stable")[: max(1, math.ceil(keep * n))])
    return len(true_top & kept) / len(true_top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--min-configs", type=int, default=30, help="skip smaller tables")
    parser.add_argument("--fraction", type=float, default=0.25, help="share of each spectrum")
    parser.add_argument("--no-aelle", action="store_true", help="skip the AeLLE model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="prior_loto", help="results file stem")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    tables: dict[str, dict[str, Any]] = {}
    for path in table_paths(args.min_configs):
        table = load_table(path)
        name = table["meta"]["task"]
        if len(table["index"]) < args.min_configs:
            print(f"skip {name}: {len(table['index'])} configurations", flush=True)
            continue
        tables[name] = table
    names = sorted(tables)
    methods = [m for m in METHODS if not (args.no_aelle and m[1] == "aelle")]
    targets = {
        name: final_quantile(
            t["values"][:, -1], t["meta"]["direction"], tie_break=t["val_loss"][:, -1]
        )
        for name, t in tables.items()
    }

    results: list[dict[str, Any]] = []
    reliability: dict[int, list[tuple[float, bool]]] = {s: [] for s in args.steps}
    started = time.perf_counter()
    for step in args.steps:
        rows = {name: study_rows(tables[name], step, args.fraction) for name in names}
        for held_out in names:
            train_names = [n for n in names if n != held_out]
            train = PriorInputs.concatenate([rows[n] for n in train_names])
            train_target = np.concatenate([targets[n] for n in train_names])
            target = targets[held_out]
            scores = {"raw": raw_ranking(tables[held_out], step)}
            for label, model, inputs in methods:
                prior = CrossTaskPrior(inputs=inputs, model=model, seed=args.seed)
                prior.fit(train, train_target)
                scores[label] = prior.predict(rows[held_out])
                if label == "all":
                    proba = prior.predict_top_probability(rows[held_out])
                    top = target >= 0.9
                    reliability[step] += list(zip(proba.tolist(), top.tolist(), strict=True))
            for label, score in scores.items():
                rho = float(spearmanr(score, target).statistic)
                results.append(
                    {
                        "task": held_out,
                        "n": len(target),
                        "step": step,
                        "method": label,
                        "spearman": round(rho, 4),
                        "top10_recall_at20": round(top_recall(score, target), 4),
                    }
                )
            line = "  ".join(
                f"{r['method']} {r['spearman']:+.2f}/{r['top10_recall_at20']:.2f}"
                for r in results
                if r["task"] == held_out and r["step"] == step
            )
            print(f"step {step} {held_out:>12}: {line}", flush=True)

    calibration = {}
    for step, pairs in reliability.items():
        proba = np.array([p for p, _ in pairs])
        hit = np.array([h for _, h in pairs], dtype=float)
        rows_out = []
        for low, high in zip(BINS[:-1], BINS[1:], strict=True):
            inside = (proba >= low) & ((proba < high) | (high == BINS[-1]))
            if inside.any():
                rows_out.append(
                    {
                        "bin": f"[{low:.2f}, {high:.2f})",
                        "n": int(inside.sum()),
                        "mean_predicted": round(float(proba[inside].mean()), 3),
                        "observed": round(float(hit[inside].mean()), 3),
                    }
                )
        calibration[str(step)] = rows_out

    command = runfiles.command_line("benchmarks.suites.prior_loto", argv)
    payload = {
        "command": command,
        "meta": runfiles.metadata(command),
        "tables": {name: len(tables[name]["index"]) for name in names},
        "steps": args.steps,
        "fraction": args.fraction,
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
        "calibration": calibration,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(payload, indent=1) + "\n")
    markdown = _markdown(payload, [m[0] for m in methods])
    (RESULTS / f"{args.out}.md").write_text(markdown)
    print(markdown)


def _markdown(payload: dict[str, Any], labels: list[str]) -> str:
    columns = ["raw", *labels]
    lines = [
        "# Cross-task prior, leave one task out",
        "",
        f"`{payload['command']}` ({payload['seconds']} s). Tables (configurations): "
        + ", ".join(f"{k} ({v})" for k, v in payload["tables"].items())
        + ".",
        "",
        "Each cell: Spearman with the final quantile / top-10% recall keeping the best 20%. "
        "`raw` is the value at the step (validation loss breaking ties); the others are fitted "
        "on the other tasks only.",
        "",
        "| task | step | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    results = payload["results"]
    for step in payload["steps"]:
        for task in payload["tables"]:
            cells = []
            for label in columns:
                match = [
                    r
                    for r in results
                    if r["task"] == task and r["step"] == step and r["method"] == label
                ]
                r = match[0]
                cells.append(f"{r['spearman']:+.2f} / {r['top10_recall_at20']:.2f}")
            lines.append(f"| {task} | {step} | " + " | ".join(cells) + " |")
    lines += ["", "Reliability of P(top 10%) (`all` inputs, pooled over held-out tasks):", ""]
    lines += ["| step | bin | n | mean predicted | observed |", "|---|---|---|---|---|"]
    for step, rows in payload["calibration"].items():
        for row in rows:
            lines.append(
                f"| {step} | {row['bin']} | {row['n']} | {row['mean_predicted']:.3f} "
                f"| {row['observed']:.3f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
