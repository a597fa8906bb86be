"""Workers of one study fit each training set once and load it everywhere else."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from optuna_lyap._prediction._store import claim_study_name
from optuna_lyap.pruners import load_predictions
from tests._support.workers import fits_and_loads, run_workers
from tests.pruners_tests.storages import storage_url, study_factory

N_WORKERS = 4
N_TRIALS = 6  # per worker


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["postgres", "journal"])
def test_each_training_set_is_fitted_once_across_workers(kind: str, tmp_path: Path) -> None:
    with study_factory(kind, tmp_path) as make:
        study = make(direction="maximize")
        location = storage_url(kind, tmp_path)
        argv = [
            [kind, location, study.study_name, str(N_TRIALS), str(s)] for s in range(N_WORKERS)
        ]
        outputs = run_workers("tests.prediction_tests._worker", argv)

        fitted, loaded = fits_and_loads(outputs)
        assert fitted, "no predictor was fitted"
        assert max(fitted.values()) == 1, fitted  # no training set fitted twice
        assert set(loaded) <= set(fitted) and sum(loaded.values()) >= 1
        trials = study.get_trials(deepcopy=False)
        assert len(trials) == N_WORKERS * N_TRIALS
        assert TrialState.FAIL not in {t.state for t in trials}
        assert "model" in [r["rule"] for t in trials for r in load_predictions(t).values()]
        names = {s.study_name for s in study._storage.get_all_studies()}
        assert not names & {claim_study_name(d) for d in fitted}  # no claim is left behind
