"""Workers of one study fit each training set once and load it everywhere else."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from optuna_lyap._prediction._store import claim_study_name
from optuna_lyap.pruners import load_predictions
from tests._support.workers import PRUNER_WORKER, fits_and_loads, workers_on_one_study

N_WORKERS = 4
N_TRIALS = 6  # per worker


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgres", "mysql", "journal"])
def test_each_training_set_is_fitted_once_across_workers(kind: str, tmp_path: Path) -> None:
    with workers_on_one_study(PRUNER_WORKER, kind, tmp_path, N_WORKERS, N_TRIALS) as run:
        study, outputs = run.study, run.outputs
        fitted, loaded = fits_and_loads(outputs)
        assert fitted, "no predictor was fitted"
        assert max(fitted.values()) == 1, fitted  # no training set fitted twice
        assert set(loaded) <= set(fitted) and sum(loaded.values()) >= 1
        trials = study.get_trials(deepcopy=False)
        assert len(trials) == N_WORKERS * N_TRIALS
        assert TrialState.FAIL not in {t.state for t in trials}
        records = [r for t in trials for r in load_predictions(t).values()]
        assert any("predicted" in r and "gate_share" in r for r in records)  # models judged
        names = {s.study_name for s in study._storage.get_all_studies()}
        assert not names & {claim_study_name(d) for d in fitted}  # no claim is left behind
