"""A short built-in study trained on CUDA, its spectra checked against the same trials on the CPU.

Runs ``--n-trials`` trials of a built-in task with ``make_objective(device="cuda")`` (models,
probes and spectra on the GPU), then rebuilds each trial's model on the CPU, trains it the
same number of epochs and compares the spectra at every recorded step. Prints and saves one
JSON file: the CUDA and CPU seconds and, per step, the largest exponent difference. At step 0
both devices hold the same weights, so only float32 rounding separates them; later steps also
carry the two devices' training differences.

Usage::

    python -m benchmarks.speed.cuda_study --out benchmarks/results/gpu_check/cuda_study.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import optuna
import torch

import optuna_lyap
from optuna_lyap.tasks import get_task, make_objective


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--task", default="sdigits")
    parser.add_argument("--n-trials", type=int, default=4)
    parser.add_argument("--n-epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("cuda_study needs a CUDA device; torch.cuda.is_available() is False.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    for device in ("cuda", "cpu"):
        task = get_task(args.task, seed=0)
        study = optuna.create_study(
            direction=task.direction, sampler=optuna.samplers.RandomSampler(seed=0)
        )
        objective = make_objective(task, n_epochs=args.n_epochs, device=device, seed=0)
        start = time.perf_counter()
        study.optimize(objective, n_trials=args.n_trials)
        seconds = time.perf_counter() - start
        spectra = [optuna_lyap.load_spectra(t) for t in study.trials]
        rows.append({"device": device, "seconds": seconds, "spectra": spectra})
    cuda, cpu = rows
    differences: dict[int, list[float]] = {}
    for a, b in zip(cuda["spectra"], cpu["spectra"], strict=True):
        for step in sorted(set(a) & set(b)):
            x, y = np.asarray(a[step], dtype=float), np.asarray(b[step], dtype=float)
            differences.setdefault(step, []).append(float(np.nanmax(np.abs(x - y))))
    payload = {
        "task": args.task,
        "n_trials": args.n_trials,
        "n_epochs": args.n_epochs,
        "device_name": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda_seconds": cuda["seconds"],
        "cpu_seconds": cpu["seconds"],
        "max_exponent_difference_by_step": {s: max(d) for s, d in differences.items()},
    }
    text = json.dumps(payload, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
