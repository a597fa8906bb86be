"""Several worker processes share one study through a journal file, PostgreSQL, MySQL or
Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from optuna_lyap.pruners import load_predictions
from tests._support.workers import PRUNER_WORKER, workers_on_one_study

N_WORKERS = 2
N_TRIALS = 8  # per worker


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["journal", "postgres", "mysql", "redis"])
def test_workers_share_a_study_with_the_pruner(kind: str, tmp_path: Path) -> None:
    with workers_on_one_study(PRUNER_WORKER, kind, tmp_path, N_WORKERS, N_TRIALS) as run:
        study = run.study
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
