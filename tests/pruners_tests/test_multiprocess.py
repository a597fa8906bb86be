"""Several worker processes share one study through a journal file, PostgreSQL or Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from optuna_lyap.pruners import load_predictions
from tests.pruners_tests.storages import storage_url, study_factory

ROOT = Path(__file__).resolve().parents[2]
N_WORKERS = 2
N_TRIALS = 8  # per worker


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["journal", "postgres", "redis"])
def test_workers_share_a_study_with_the_pruner(kind: str, tmp_path: Path) -> None:
    with study_factory(kind, tmp_path) as make:
        study = make(direction="maximize")
        location = storage_url(kind, tmp_path)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.pruners_tests._worker",
                    kind,
                    location,
                    study.study_name,
                    str(N_TRIALS),
                    str(seed),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for seed in range(N_WORKERS)
        ]
        try:
            outputs = [w.communicate(timeout=240)[0] for w in workers]
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
        for worker, output in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, output

        trials = study.get_trials(deepcopy=False)
        states = [t.state for t in trials]
        assert len(trials) == N_WORKERS * N_TRIALS
        assert TrialState.FAIL not in states and TrialState.RUNNING not in states
        assert states.count(TrialState.COMPLETE) >= 3
        assert states.count(TrialState.PRUNED) >= 1
        records = [r for t in trials for r in load_predictions(t).values()]
        # The workers reached rung decisions with a fitted model (whether its gate opened
        # depends on a handful of labels; the worker's low gate lets its training sets be fitted).
        assert any("gate_share" in r for r in records)
        assert {r["rule"] for r in records} <= {"predict", "rung", "model_rung"}
        # Within the warm-up (step 0) the prior only predicts.
        assert all(r["step"] == 0 and not r["pruned"] for r in records if r["rule"] == "predict")
