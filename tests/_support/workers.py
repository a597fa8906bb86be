"""Run worker processes of one shared study, and read what they logged.

The workers themselves are ``tests/_support/pruner_worker.py`` and ``sampler_worker.py``
(``python -m tests._support.pruner_worker KIND LOCATION NAME N_TRIALS SEED``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna

from tests._support.storages import storage_url, study_factory

ROOT = Path(__file__).resolve().parents[2]
PRUNER_WORKER = "tests._support.pruner_worker"
SAMPLER_WORKER = "tests._support.sampler_worker"

# The AeLLE models the workers fit, even smaller than the in-process tests' models: these runs
# check coordination, not accuracy.
TINY_AELLE = {"n_models": 1, "max_steps": 60, "hidden_dim": 8, "head_hidden_dim": 0}

# What optuna_lyap._prediction._store logs at DEBUG level, one line per predictor.
_FITTED = re.compile(r"fitted predictor ([0-9a-f]{64})")
_LOADED = re.compile(r"loaded predictor ([0-9a-f]{64})")


def run_workers(module: str, argv: Sequence[Sequence[str]], timeout: float = 240) -> list[str]:
    """Run ``python -m module *args`` for every ``args`` in ``argv``, all at once, from the
    repository root with this checkout first on the path.

    Returns:
        Each worker's stdout and stderr. The call fails when a worker exits non-zero or is
        still running after ``timeout`` seconds (it is then killed).
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as folder:
        logs = [Path(folder, f"worker{i}.log") for i in range(len(argv))]
        processes = []
        for args, log in zip(argv, logs, strict=True):
            with log.open("w") as out:
                command = [sys.executable, "-m", module, *args]
                processes.append(
                    subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
                )
        deadline = time.monotonic() + timeout
        codes = []
        for process in processes:
            try:
                codes.append(process.wait(max(deadline - time.monotonic(), 0.0)))
            except subprocess.TimeoutExpired:
                codes.append(None)
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        outputs = [log.read_text() for log in logs]
    for code, output in zip(codes, outputs, strict=True):
        assert code == 0, output
    return outputs


def fits_and_loads(outputs: Sequence[str]) -> tuple[Counter[str], Counter[str]]:
    """How often each predictor digest was fitted, and loaded, over the workers' logs."""
    fitted: Counter[str] = Counter()
    loaded: Counter[str] = Counter()
    for output in outputs:
        fitted.update(_FITTED.findall(output))
        loaded.update(_LOADED.findall(output))
    return fitted, loaded


@dataclass
class WorkerRun:
    """A study and what the workers that shared it printed."""

    study: optuna.Study
    outputs: list[str]


@contextmanager
def workers_on_one_study(
    module: str, kind: str, tmp_path: Path, n_workers: int, n_trials: int
) -> Iterator[WorkerRun]:
    """Create a maximising study on a ``kind`` storage, run ``n_workers`` workers of ``module``
    on it (argv: kind, location, study name, ``n_trials``, seed = worker index) and yield the
    study with the workers' outputs; the study is deleted afterwards."""
    with study_factory(kind, tmp_path) as make:
        study = make(direction="maximize")
        location = storage_url(kind, tmp_path)
        argv = [
            [kind, location, study.study_name, str(n_trials), str(seed)]
            for seed in range(n_workers)
        ]
        yield WorkerRun(study, run_workers(module, argv))
