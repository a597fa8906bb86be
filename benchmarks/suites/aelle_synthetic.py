"""AeLLE on a synthetic spectrum family: accuracy against training size, and fit time.

The family (``tests/aelle_tests/_synthetic.py``): spectra ``lambda(u) = a - s * u**c`` plus
noise at normalised index ``u``, of lengths 8 to 64 mixed; the target peaks at ``a = 0`` and at a
middling ``s``, so it is monotone in no single exponent. Reports the held-out Spearman correlation
(400 test spectra) for several training sizes and seeds, next to a ridge regression and a
nearest-neighbour regression on the same resampled grid, and the time ``fit`` takes on one torch
thread, with and without unlabelled spectra.

Usage::

    python -m benchmarks.suites.aelle_synthetic

Writes ``benchmarks/results/aelle_synthetic.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV
from sklearn.neighbors import KNeighborsRegressor

from benchmarks.lyapbench import runs as runfiles
from optuna_lyap import AeLLE
from tests.aelle_tests._synthetic import spectrum_family

RESULTS = runfiles.results_dir("aelle_synthetic")
SIZES = (20, 40, 80, 160)
SEEDS = range(5)


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b)[0])


def _grid_inputs(model: AeLLE, spectra: list[np.ndarray]) -> np.ndarray:
    lengths = np.array([[math.log(len(s))] for s in spectra])
    return np.concatenate([model.resample(spectra), lengths], axis=1)


def accuracy() -> list[dict[str, Any]]:
    """Held-out Spearman of AeLLE and two baselines for each training size."""
    test_spectra, test_targets, _ = spectrum_family(400, seed=10_000)
    rows = []
    for n in SIZES:
        scores: dict[str, list[float]] = {
            "AeLLE": [],
            "AeLLE + 200 unlabelled": [],
            "ridge on grid": [],
            "5-NN on grid": [],
        }
        seconds = []
        for seed in SEEDS:
            spectra, targets, _ = spectrum_family(n + 200, seed=seed)
            train_spectra, train_targets = spectra[:n], targets[:n]
            began = time.process_time()
            model = AeLLE(seed=seed).fit(train_spectra, train_targets)
            seconds.append(time.process_time() - began)
            scores["AeLLE"].append(_rho(model.predict(test_spectra), test_targets))
            partial = targets.copy()
            partial[n:] = math.nan
            semi = AeLLE(seed=seed).fit(spectra, partial)
            scores["AeLLE + 200 unlabelled"].append(_rho(semi.predict(test_spectra), test_targets))
            x_train = _grid_inputs(model, train_spectra)
            x_test = _grid_inputs(model, test_spectra)
            ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x_train, train_targets)
            scores["ridge on grid"].append(_rho(ridge.predict(x_test), test_targets))
            knn = KNeighborsRegressor(n_neighbors=5).fit(x_train, train_targets)
            scores["5-NN on grid"].append(_rho(knn.predict(x_test), test_targets))
        for name, values in scores.items():
            rows.append(
                {
                    "n_train": n,
                    "model": name,
                    "spearman_mean": round(float(np.mean(values)), 3),
                    "spearman_min": round(float(np.min(values)), 3),
                    "fit_cpu_seconds": round(float(np.mean(seconds)), 2)
                    if name == "AeLLE"
                    else None,
                }
            )
            print(f"  n={n:3d} {name:24s} {np.mean(values):.3f} (min {np.min(values):.3f})")
    return rows


def fit_times() -> list[dict[str, Any]]:
    """Wall and CPU seconds of ``fit`` with the default settings (median of 3 runs)."""
    rows = []
    AeLLE(seed=0, max_steps=5).fit(*spectrum_family(10, seed=0)[:2])  # pay one-off imports
    for n_labelled, n_unlabelled in ((40, 0), (40, 160), (200, 0), (60, 400)):
        spectra, targets, _ = spectrum_family(n_labelled + n_unlabelled, seed=1)
        targets[n_labelled:] = math.nan
        wall, cpu = [], []
        for _ in range(3):
            began, began_cpu = time.perf_counter(), time.process_time()
            AeLLE(seed=0).fit(spectra, targets)
            wall.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
        rows.append(
            {
                "n_labelled": n_labelled,
                "n_unlabelled": n_unlabelled,
                "wall_seconds": round(float(np.median(wall)), 2),
                "cpu_seconds": round(float(np.median(cpu)), 2),
            }
        )
        print(f"  fit {n_labelled} labelled + {n_unlabelled} unlabelled: {rows[-1]}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args(argv)  # no options; --help describes the run and exits
    torch.set_num_threads(1)
    began = time.perf_counter()
    timing = fit_times()
    rows = accuracy()
    env = {
        "machine": platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "total_seconds": round(time.perf_counter() - began, 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "aelle_synthetic"
    command = runfiles.command_line("benchmarks.suites.aelle_synthetic", [])
    summary: dict[str, Any] = {
        "command": command,
        "meta": runfiles.metadata(command),
        "environment": env,
    }
    summary |= {"fit_times": timing, "accuracy": rows}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [
        "# AeLLE on a synthetic spectrum family",
        "",
        "Command: `python -m benchmarks.suites.aelle_synthetic` "
        f"({env['machine']}, torch {env['torch']}, 1 thread; {env['total_seconds']:.0f} s).",
        "",
        "Held-out Spearman (400 test spectra of lengths 8-64, target monotone in no single "
        f"exponent), mean and worst of {len(SEEDS)} seeds; default settings.",
        "",
        "| n_train | model | Spearman mean | worst seed | fit CPU s |",
        "|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        fit = "" if row["fit_cpu_seconds"] is None else f"{row['fit_cpu_seconds']:.2f}"
        lines.append(
            f"| {row['n_train']} | {row['model']} | {row['spearman_mean']:.3f} | "
            f"{row['spearman_min']:.3f} | {fit} |"
        )
    lines += [
        "",
        "Fit time, default settings, one torch thread (median of 3; the machine was shared, so "
        "CPU seconds are the steadier number):",
        "",
        "| labelled | unlabelled | wall s | CPU s |",
        "|---:|---:|---:|---:|",
    ]
    for row in timing:
        lines.append(
            f"| {row['n_labelled']} | {row['n_unlabelled']} | {row['wall_seconds']:.2f} | "
            f"{row['cpu_seconds']:.2f} |"
        )
    runfiles.write_markdown(out, lines)


if __name__ == "__main__":
    main()
