"""Several worker processes share one study and its sampler's decisions through the storage."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests._support.workers import fits_and_loads, run_workers
from tests.pruners_tests.storages import storage_url, study_factory

N_WORKERS = 2
N_TRIALS = 7  # per worker


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["journal", "postgres"])
def test_workers_share_a_study_with_the_sampler(kind: str, tmp_path: Path) -> None:
    with study_factory(kind, tmp_path) as make:
        study = make(direction="maximize")
        location = storage_url(kind, tmp_path)
        outputs = run_workers(
            "tests.samplers_tests._worker",
            [
                [kind, location, study.study_name, str(N_TRIALS), str(seed)]
                for seed in range(N_WORKERS)
            ],
        )
        for output in outputs:
            assert "could not" not in output, output

        trials = study.get_trials(deepcopy=False)
        assert len(trials) == N_WORKERS * N_TRIALS
        assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
        assert any("lyap_screen_predicted" in t.user_attrs for t in trials)
        for t in trials:
            assert t.state != TrialState.PRUNED or "lyap_predicted" in t.user_attrs
        # The workers share seed and settings: each training set is fitted by one of them.
        fitted, _ = fits_and_loads(outputs)
        assert fitted and set(fitted.values()) == {1}
