"""Where is the signal: rank trained RNNs by their epoch-1 spectrum, their learning curve, or both.

Trains a few dozen small RNNs (random cell, hidden size, initialisation scale and learning rate)
of a built-in task, records the validation metric at initialisation (epoch 0) and after epoch 1,
the full Lyapunov spectrum after epoch 1, and the metric after the last epoch. Then, over
repeated random train/test splits of those networks, it fits ``AeLLE`` on the training part with
one input set at a time and reports the held-out Spearman correlation between the prediction
and the final metric:

- ``spectrum``: the epoch-1 spectrum alone;
- ``curve``: the learning curve so far alone, features = the metric at epochs 0 and 1;
- ``both``: the spectrum with the curve as features;
- ``both+unlabelled``: the same, with the held-out networks' spectra and curves given to ``fit``
  without their targets (as a pruner sees the spectra of running trials);
- ``hparams``: the four hyperparameters as features (cell one-hot, log sizes and rates);

next to two raw scores that need no fitting: the epoch-1 metric itself and the largest exponent.
A recorded table (``benchmarks/lyapbench/record.py``) can be read instead of training
(``--table``).

Usage::

    python -m benchmarks.suites.aelle_real              # copy and sines, ~10 min one core
    python -m benchmarks.suites.aelle_real --tasks copy --n-configs 60 --epochs 8
    python -m benchmarks.suites.aelle_real --table benchmarks/data/sdigits.jsonl.gz
    python -m benchmarks.suites.aelle_real --from-data benchmarks/results/aelle_real_data.json.gz

Writes ``benchmarks/results/aelle_real.json`` and ``.md`` (the tables) and, after training,
``aelle_real_data.json.gz`` (the recorded networks, to re-run the analysis without training).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

import optuna_lyap
from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.record import load_table
from optuna_lyap import AeLLE
from optuna_lyap.tasks import get_task

RESULTS = runfiles.results_dir("aelle_real")
CELLS = ("rnn", "gru", "lstm")
INPUT_SETS = ("spectrum", "curve", "both", "both+unlabelled", "hparams")


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def draw_params(task: Any, rng: np.random.Generator) -> dict[str, Any]:
    """One configuration from the task's search space, log-uniform like ``suggest_params``."""
    low, high = task.hidden_size_range
    return {
        "cell": str(rng.choice(task.cells)),
        "hidden_size": int(round(_log_uniform(rng, low, high))),
        "init_scale": _log_uniform(rng, *task.init_scale_range),
        "lr": _log_uniform(rng, *task.lr_range),
    }


def record_task(
    name: str, n_configs: int, n_epochs: int, seed: int, n_probes: int
) -> dict[str, Any]:
    """Train ``n_configs`` networks of task ``name``; keep what the analysis needs.

    Returns:
        JSON-ready dict: ``task``, ``direction``, ``metric``, ``n_epochs``, and per network
        ``params``, ``values`` (metric at epochs 0..n_epochs), ``spectrum`` (epoch 1, None for
        non-finite entries) and ``seconds``.
    """
    task = get_task(name, seed=seed, n_epochs=n_epochs)
    rng = np.random.default_rng(seed)
    networks = []
    start = time.perf_counter()
    for index in range(n_configs):
        params = draw_params(task, rng)
        began = time.perf_counter()
        model = task.build_model(params, seed=seed * 100_003 + index)
        optimizer = task.make_optimizer(model, params)
        values = [task.evaluate(model)]
        spectrum = None
        for epoch in range(1, n_epochs + 1):
            task.train_epoch(model, optimizer)
            values.append(task.evaluate(model))
            if epoch == 1:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # diverged: NaN spectrum
                    spectrum = optuna_lyap.lyapunov_spectrum(
                        model.rnn, task.probe_inputs(model, n=n_probes), seed=0
                    ).numpy()
        assert spectrum is not None
        networks.append(
            {
                "params": params,
                "values": [float(v) for v in values],
                "spectrum": [float(v) if math.isfinite(v) else None for v in spectrum],
                "seconds": round(time.perf_counter() - began, 3),
            }
        )
        print(
            f"  [{name} {index + 1}/{n_configs}] {params['cell']} H={params['hidden_size']} "
            f"scale={params['init_scale']:.2f} lr={params['lr']:.1e}: "
            f"epoch1 {values[1]:.3f} final {values[-1]:.3f} lambda1 {spectrum[0]:+.3f} "
            f"({time.perf_counter() - start:.0f}s)",
            flush=True,
        )
    return {
        "task": name,
        "direction": task.direction,
        "metric": task.metric,
        "n_epochs": n_epochs,
        "seed": seed,
        "networks": networks,
    }


def _load_recorded_table(path: Path) -> dict[str, Any]:
    """A ``benchmarks/lyapbench/record.py`` table in the form ``record_task`` returns."""
    table = load_table(path)
    meta = table["meta"]
    task = get_task(meta["task"], seed=0)
    networks = []
    for row in range(len(table["index"])):
        dim = int(table["dim"][row])
        networks.append(
            {
                "params": {
                    key: (table[key][row].item())
                    for key in ("cell", "hidden_size", "init_scale", "lr")
                },
                "values": table["values"][row].tolist(),
                "spectrum": [
                    None if math.isnan(v) else v for v in table["spectra"][row, 1, :dim].tolist()
                ],
            }
        )
    return {
        "task": f"{meta['task']} (recorded table {path.name})",
        "direction": task.direction,
        "metric": task.metric,
        "n_epochs": int(meta["n_epochs"]),
        "seed": meta.get("seed"),
        "networks": networks,
    }


def _inputs(data: dict[str, Any]) -> dict[str, Any]:
    nets = data["networks"]
    spectra = [np.array([math.nan if v is None else v for v in n["spectrum"]]) for n in nets]
    values = np.array([n["values"] for n in nets], dtype=np.float64)
    params = [n["params"] for n in nets]
    hparams = np.array(
        [
            [float(p["cell"] == c) for c in CELLS]
            + [math.log(p["hidden_size"]), math.log(p["init_scale"]), math.log(p["lr"])]
            for p in params
        ]
    )
    return {
        "spectra": spectra,
        "curve": values[:, :2],
        "final": values[:, -1],
        "hparams": hparams,
        "lambda1": np.array([s[0] if np.isfinite(s[0]) else math.inf for s in spectra]),
    }


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b)[0])


def evaluate(
    data: dict[str, Any], n_train_sizes: list[int], n_repeats: int
) -> list[dict[str, Any]]:
    """Held-out Spearman of each input set with the final metric, over random splits.

    Returns:
        One row per (n_train, input set or raw score): mean and standard deviation of the
        Spearman correlation over ``n_repeats`` splits, and the mean fit time in seconds.
    """
    x = _inputs(data)
    n = len(x["final"])
    rows = []
    for n_train in n_train_sizes:
        if n_train >= n - 5:
            continue
        scores: dict[str, list[float]] = {
            k: [] for k in (*INPUT_SETS, "raw_epoch1", "raw_lambda1")
        }
        times: dict[str, list[float]] = {k: [] for k in INPUT_SETS}
        for repeat in range(n_repeats):
            order = np.random.default_rng(1000 + repeat).permutation(n)
            train, test = order[:n_train], order[n_train:]
            y_test = x["final"][test]
            scores["raw_epoch1"].append(_rho(x["curve"][test, 1], y_test))
            scores["raw_lambda1"].append(_rho(x["lambda1"][test], y_test))
            for name in INPUT_SETS:
                spectra = x["spectra"] if name.startswith(("spectrum", "both")) else None
                features = None if name == "spectrum" else x["curve"]
                if name == "hparams":
                    features = x["hparams"]
                # The unlabelled variant also fits on the test networks, with NaN targets.
                fit_rows = np.concatenate([train, test]) if name.endswith("unlabelled") else train
                targets = x["final"][fit_rows].copy()
                targets[len(train) :] = math.nan
                began = time.perf_counter()
                model = AeLLE(seed=repeat).fit(
                    None if spectra is None else [spectra[i] for i in fit_rows],
                    targets,
                    features=None if features is None else features[fit_rows],
                )
                times[name].append(time.perf_counter() - began)
                prediction = model.predict(
                    None if spectra is None else [spectra[i] for i in test],
                    features=None if features is None else features[test],
                )
                scores[name].append(_rho(prediction, y_test))
        for name, values in scores.items():
            rows.append(
                {
                    "n_train": n_train,
                    "n_test": n - n_train,
                    "inputs": name,
                    "spearman_mean": round(float(np.mean(values)), 3),
                    "spearman_std": round(float(np.std(values)), 3),
                    "fit_seconds": round(float(np.mean(times[name])), 2)
                    if name in times
                    else None,
                }
            )
            print(
                f"  n_train={n_train:3d} {name:12s} Spearman {np.mean(values):+.3f} "
                f"+- {np.std(values):.3f}",
                flush=True,
            )
    return rows


def _markdown(results: list[dict[str, Any]], command: str, env: dict[str, Any]) -> str:
    lines = [
        "# AeLLE on real spectra: held-out Spearman with the final metric",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {env['machine']}, torch {env['torch']}, {env['threads']} torch thread(s).",
        "",
        "Spearman between the prediction (or the raw score) and the metric after the last "
        "epoch, on the networks not used for fitting; mean +- std over random splits. "
        "`spectrum` = epoch-1 Lyapunov spectrum; `curve` = metric at epochs 0 and 1; "
        "`both` = spectrum + curve; `both+unlabelled` = the same, also fitted on the held-out "
        "networks without their targets; `hparams` = cell, hidden size, init scale, "
        "learning rate; "
        "`raw_epoch1` = the epoch-1 metric itself; `raw_lambda1` = the largest exponent at "
        "epoch 1. For a metric to minimise, a positive correlation still means a good ranking.",
        "",
    ]
    for result in results:
        finals = np.array([n["values"][-1] for n in result["data"]["networks"]])
        lines += [
            f"## {result['data']['task']}",
            "",
            f"{len(finals)} networks, {result['data']['n_epochs']} epochs, metric "
            f"`{result['data']['metric']}` ({result['data']['direction']}); final values: "
            f"median {np.median(finals):.3f}, range {finals.min():.3f} to {finals.max():.3f}."
            + (
                f" Recording took {result['record_seconds']:.0f} s."
                if result.get("record_seconds")
                else ""
            ),
            "",
            "| n_train | inputs | Spearman (mean +- std) | fit time (s) |",
            "|---:|---|---|---:|",
        ]
        for row in result["rows"]:
            fit = "" if row["fit_seconds"] is None else f"{row['fit_seconds']:.2f}"
            lines.append(
                f"| {row['n_train']} | {row['inputs']} | {row['spearman_mean']:+.3f} +- "
                f"{row['spearman_std']:.3f} | {fit} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["copy", "sines"])
    parser.add_argument("--n-configs", type=int, default=80)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-probes", type=int, default=15)
    parser.add_argument("--n-train", type=int, nargs="+", default=[20, 40, 60])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--table", type=Path, help="evaluate a recorded table instead")
    parser.add_argument("--from-data", type=Path, help="re-analyse a saved recording")
    parser.add_argument("--out", type=Path, default=RESULTS / "aelle_real")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    command = runfiles.command_line("benchmarks.suites.aelle_real", argv)

    results: list[dict[str, Any]] = []
    if args.table is not None:
        datasets = [(_load_recorded_table(args.table), None)]
    elif args.from_data is not None:
        with gzip.open(args.from_data, "rt") as handle:
            datasets = [(d, d.get("record_seconds")) for d in json.load(handle)]
    else:
        datasets = []
        for name in args.tasks:
            print(f"recording {name}", flush=True)
            began = time.perf_counter()
            data = record_task(name, args.n_configs, args.epochs, args.seed, args.n_probes)
            data["record_seconds"] = round(time.perf_counter() - began, 1)
            datasets.append((data, data["record_seconds"]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(args.out.with_name(args.out.name + "_data.json.gz"), "wt") as handle:
            json.dump([d for d, _ in datasets], handle)
    for data, record_seconds in datasets:
        print(f"evaluating {data['task']}", flush=True)
        began = time.perf_counter()
        rows = evaluate(data, args.n_train, args.repeats)
        results.append(
            {
                "data": data,
                "rows": rows,
                "record_seconds": record_seconds,
                "evaluate_seconds": round(time.perf_counter() - began, 1),
            }
        )
    env = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    summary = {
        "command": command,
        "meta": runfiles.metadata(command),
        "environment": env,
        "results": [
            {
                "task": r["data"]["task"],
                "metric": r["data"]["metric"],
                "direction": r["data"]["direction"],
                "n_networks": len(r["data"]["networks"]),
                "n_epochs": r["data"]["n_epochs"],
                "record_seconds": r["record_seconds"],
                "evaluate_seconds": r["evaluate_seconds"],
                "rows": r["rows"],
            }
            for r in results
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    markdown = _markdown(results, command, env)
    args.out.with_suffix(".md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
