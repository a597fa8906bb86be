"""Several worker processes share one study and its sampler's decisions through the storage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests.pruners_tests.storages import storage_url, study_factory

ROOT = Path(__file__).resolve().parents[2]
N_WORKERS = 2
N_TRIALS = 7  # per worker


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["journal", "postgres", "redis"])
def test_workers_share_a_study_with_the_sampler(kind: str, tmp_path: Path) -> None:
    with study_factory(kind, tmp_path) as make:
        study = make(direction="maximize")
        location = storage_url(kind, tmp_path)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "tests.samplers_tests._worker", kind, location]
        workers = [
            subprocess.Popen(
                [*command, study.study_name, str(N_TRIALS), str(seed)],
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
            assert "could not" not in output, output

        trials = study.get_trials(deepcopy=False)
        assert len(trials) == N_WORKERS * N_TRIALS
        assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
        assert any("lyap_screen_predicted" in t.user_attrs for t in trials)
        for t in trials:
            assert t.state != TrialState.PRUNED or "lyap_predicted" in t.user_attrs
