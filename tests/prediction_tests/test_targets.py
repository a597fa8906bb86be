"""``final_targets``: the one rule that turns trials' final values into targets."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_lyap._prediction import final_targets, trial_targets


@pytest.mark.parametrize(
    ("direction", "worst"),
    [(StudyDirection.MINIMIZE, 3.0), ("minimize", 3.0), (StudyDirection.MAXIMIZE, 1.0),
     ("maximize", 1.0)],
)  # fmt: skip
def test_an_infinite_value_is_the_worst_finite_one(direction: object, worst: float) -> None:
    y = final_targets([1.0, math.inf, 3.0, -math.inf, None, math.nan, 2.0], direction)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [1.0, worst, 3.0, worst, math.nan, math.nan, 2.0])


def test_with_no_finite_value_an_infinite_one_is_no_label() -> None:
    y = final_targets([math.inf, -math.inf, None], "minimize")
    assert np.isnan(y).all()
    assert final_targets([], "maximize").shape == (0,)


def test_trial_targets_label_complete_trials_only() -> None:
    study = optuna.create_study(direction="minimize")
    for value in (0.5, math.inf, 0.2):
        study.tell(study.ask(), value)
    pruned = study.ask()
    pruned.report(0.1, 0)
    study.tell(pruned, state=TrialState.PRUNED)
    y = trial_targets(study.trials, study.direction)
    np.testing.assert_array_equal(y, [0.5, 0.5, 0.2, math.nan])
