"""Run worker processes of one shared study, and read what they logged."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What optuna_lyap._prediction._store logs at DEBUG level, one line per predictor.
_FITTED = re.compile(r"fitted predictor ([0-9a-f]{64})")
_LOADED = re.compile(r"loaded predictor ([0-9a-f]{64})")


def run_workers(module: str, argv: Sequence[Sequence[str]], timeout: float = 240) -> list[str]:
    """Run ``python -m module *args`` once per entry of ``argv``, all at once, from the
    repository root; return their combined stdout and stderr. Fails when one exits non-zero."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for args in argv
    ]
    try:
        outputs = [w.communicate(timeout=timeout)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output
    return outputs


def fits_and_loads(outputs: Sequence[str]) -> tuple[Counter[str], Counter[str]]:
    """How often each predictor digest was fitted, and loaded, over the workers' logs."""
    fitted: Counter[str] = Counter()
    loaded: Counter[str] = Counter()
    for output in outputs:
        fitted.update(_FITTED.findall(output))
        loaded.update(_LOADED.findall(output))
    return fitted, loaded
