"""Several worker processes share one study and its sampler's decisions through the storage."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from tests._support.workers import SAMPLER_WORKER, fits_and_loads, workers_on_one_study


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["journal", "postgres", "mysql", "redis"])
def test_workers_share_a_study_with_the_sampler(kind: str, tmp_path: Path) -> None:
    with workers_on_one_study(SAMPLER_WORKER, kind, tmp_path, 2, 7) as run:
        study, outputs = run.study, run.outputs
        for output in outputs:
            assert "could not" not in output, output

        trials = study.get_trials(deepcopy=False)
        assert len(trials) == 2 * 7  # workers x trials each
        assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
        assert any("lyap_screen_predicted" in t.user_attrs for t in trials)
        for t in trials:
            assert t.state != TrialState.PRUNED or "lyap_predicted" in t.user_attrs
        # The workers share seed and settings: each training set is fitted by one of them.
        fitted, _ = fits_and_loads(outputs)
        assert fitted and set(fitted.values()) == {1}
