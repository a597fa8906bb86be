"""Run worker processes of one shared study, and read what they logged."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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
