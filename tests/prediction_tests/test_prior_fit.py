"""``fit_prior``'s reader: rows and targets of a study's trials (fits are in the slow tests)."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from optuna_lyap._prediction import fit_prior
from optuna_lyap._prediction._prior_fit import study_rows
from tests.cli_tests._prior_studies import make_study


def test_an_infinite_final_value_is_a_row_with_the_worst_target() -> None:
    storage = optuna.storages.InMemoryStorage()
    make_study(storage, "s", 8, seed=0, direction="minimize")  # type: ignore[arg-type]
    study = optuna.load_study(study_name="s", storage=storage)
    finite = study_rows(study, 1, 0.25)
    diverged = study.trials[3]
    frozen = optuna.trial.create_trial(
        params=diverged.params,
        distributions=diverged.distributions,
        value=math.inf,
        intermediate_values=diverged.intermediate_values,
        system_attrs=diverged.system_attrs,
        user_attrs=diverged.user_attrs,
    )
    study.add_trial(frozen)
    rows = study_rows(study, 1, 0.25)
    # The diverged trial is one more row, the worst (final quantile 0, tied with the worst).
    assert len(rows.target) == len(finite.target) + 1
    assert rows.target[-1] == pytest.approx(rows.target.min())
    assert np.isfinite(rows.target).all()
    assert "spectrum" in rows.groups[-1] and "hyperparameters" in rows.groups[-1]


def test_fit_prior_says_what_is_missing() -> None:
    study = optuna.create_study()
    study.tell(study.ask(), 1.0)
    with pytest.raises(ValueError, match="no step and input set has 12 completed trials"):
        fit_prior([study])
    with pytest.raises(ValueError, match="pseudo_count must be positive"):
        fit_prior([study], pseudo_count=0)
