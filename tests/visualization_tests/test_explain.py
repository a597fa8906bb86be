"""``explain``: the note of a pruned or completed trial, from every kind of decision record."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

import optuna_lyap
from optuna_lyap._storage import record_prediction
from optuna_lyap.visualization import explain, pruned_by


def _study_with(
    records: dict[int, dict[str, Any]] | None,
    *,
    pruned_at: int | None = 2,
    n_complete: int = 4,
    spectra: bool = True,
    pruner: optuna.pruners.BasePruner | None = None,
) -> tuple[optuna.Study, optuna.trial.FrozenTrial]:
    """A study of ``n_complete`` completed trials, then one trial with ``records``, pruned at
    ``pruned_at`` (None: completed)."""
    study = optuna.create_study(direction="maximize", pruner=pruner or optuna.pruners.NopPruner())
    for i in range(n_complete):
        t = study.ask()
        for step in range(4):
            t.report(0.5 + 0.1 * i + 0.01 * step, step)
        study.tell(t, 0.6 + 0.1 * i)
    t = study.ask()
    last = 3 if pruned_at is None else pruned_at
    for step in range(last + 1):
        t.report(0.2 + 0.01 * step, step)
    if spectra:
        optuna_lyap.report_spectrum(t, np.array([-0.3, -0.8]), 0)
        optuna_lyap.report_spectrum(t, np.array([0.05, -0.6]), 1)
    for step, record in (records or {}).items():
        record_prediction(study, t, step, record)
    if pruned_at is None:
        study.tell(t, 0.25)
    else:
        study.tell(t, state=TrialState.PRUNED)
    return study, study.trials[-1]


MODEL = {
    "predicted": 0.31,
    "predicted_std": 0.04,
    "inputs": "spectrum+curve",
    "rank_corr": 0.62,
    "raw_rank_corr": 0.41,
    "gate_share": 0.93,
    "gate_open": True,
    "n_train": 12,
}


def test_rung_rule_names_step_rung_rank_and_bar():
    record = {
        "pruned": True,
        "rule": "rung",
        "step": 2,
        "rung": 1,
        "score_kind": "raw",
        "score": 0.22,
        "rank": 7,
        "n_competitors": 9,
        "n_promoted": 3,
        "bar": 0.55,
        "direction": "maximize",
    }
    study, trial = _study_with({2: record})
    text = explain(study, trial)
    assert text.startswith(f"### Trial {trial.number}: pruned at step 2")
    assert "successive halving on the raw value" in text
    assert "rung 1" in text and "ranked 7 of 9, top 3 promoted" in text
    assert "0.22" in text and "0.55" in text
    assert pruned_by(record, None) == "rung"


def test_model_rung_gives_the_prediction_and_the_evidence_it_was_trusted():
    record = {
        "pruned": True,
        "rule": "model_rung",
        "rung": 0,
        "score_kind": "predicted",
        "score": 0.31,
        "rank": 5,
        "n_competitors": 6,
        "n_promoted": 2,
        "bar": 0.7,
        **MODEL,
    }
    text = explain(*_study_with({2: record}))
    assert "ranking by the predicted final value" in text
    assert "predicted final value 0.31 ranked 5 of 6" in text
    assert "0.31 ± 0.04" in text and "spectrum+curve" in text and "12 completed trials" in text
    assert "trusted" in text and "not trusted" not in text
    assert "0.62 against the raw value's 0.41" in text and "93%" in text


# A trial pruned at its rung by its raw value: last of four, one promoted.
RAW_RUNG = {
    "pruned": True,
    "rule": "rung",
    "score_kind": "raw",
    "score": 0.2,
    "rank": 4,
    "n_competitors": 4,
    "n_promoted": 1,
    "bar": 0.6,
}


def test_closed_gate_says_the_model_was_not_trusted():
    record = {**RAW_RUNG, **MODEL, "gate_open": False, "gate_share": 0.2}
    text = explain(*_study_with({2: record}))
    assert "not trusted" in text and "20% of bootstrap resamples" in text


def test_an_unfitted_model_says_why_none_could_decide():
    record = {**RAW_RUNG, "gate_share_bound": 0.42, "gate": 0.9, "gate_open": False, "n_train": 10}
    text = explain(*_study_with({2: record}))
    assert "**Model.** The study's own model was not fitted on its training set of 10" in text
    assert "in at most 42% of bootstrap resamples, below the gate's 90%" in text
    # A raw value no model can beat in any resample says so, not "at most 0%".
    text = explain(*_study_with({2: {**record, "gate_share_bound": 0.0}}))
    assert "out-rank the raw value in no bootstrap resample, so it could not" in text


@pytest.mark.parametrize(
    ("record", "words"),
    [
        (
            {
                "pruned": True,
                "rule": "screen",
                "score_kind": "predicted",
                "rank": 8,
                "n_competitors": 8,
                "bar": 0.5,
                **MODEL,
            },
            ["step-0 screen", "ranked 8 of 8"],
        ),
        (
            {"pruned": True, "rule": "fallback", "fallback": "MedianPruner"},
            ["fallback pruner (MedianPruner)"],
        ),
        (
            {"pruned": True, "rule": "threshold", "bar": 0.6, **MODEL},
            ["prediction threshold", "0.6"],
        ),
    ],
)
def test_other_rank_rule_records(record: dict[str, Any], words: list[str]):
    text = explain(*_study_with({2: record}))
    for word in words:
        assert word in text


def test_threshold_rule_records_of_the_current_pruner():
    record = {
        "pruned": True,
        "rule": "model",
        "predicted": 0.3,
        "predicted_std": 0.05,
        "threshold": 0.62,
        "p_worse": 0.97,
        "inputs": "curve",
        "rank_corr": 0.5,
        "raw_rank_corr": 0.3,
        "n_train": 8,
    }
    study, trial = _study_with({2: record})
    text = explain(study, trial)
    assert "pruned at step 2 by the model's threshold rule" in text
    assert "0.62" in text and "97%" in text and "0.3 ± 0.05" in text
    assert "; trusted" in text  # the model acted, so it passed the gate


def test_a_record_with_only_a_rule_still_explains():
    text = explain(*_study_with({2: {"pruned": True, "rule": "rung"}}))
    assert "pruned at step 2" in text and "successive halving" in text


def test_earlier_records_are_listed_with_their_verdict():
    early = {
        "pruned": False,
        "rule": "fallback",
        "predicted": 0.927,
        "predicted_std": 0.1,
        "threshold": 0.5,
        "p_worse": 0.1,
        "inputs": "spectrum",
        "rank_corr": 0.1,
        "raw_rank_corr": 0.4,
        "n_train": 6,
    }
    study, trial = _study_with({1: early}, pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    text = explain(study, trial)
    # The case of the report: a prediction of 0.927 beside a prune the median rule made.
    assert "pruned at step 2 by MedianPruner" in text
    assert "**Step 1.**" in text and "let it continue" in text and "0.927" in text
    assert "not trusted" in text


def test_median_rule_without_a_record_gets_its_bar():
    study, trial = _study_with(None, pruner=optuna.pruners.MedianPruner())
    text = explain(study, trial)
    # The completed trials reported 0.52, 0.62, 0.72, 0.82 at step 2: median 0.67.
    assert "median of the 4 trials completed" in text and "0.67" in text
    assert "best val" not in text and "objective value up to step 2, 0.22" in text


def test_lyapunov_pruner_fallback_without_a_record_says_so():
    pruner = optuna_lyap.LyapunovPruner(fallback=optuna.pruners.MedianPruner())
    study, trial = _study_with(None, pruner=pruner)
    text = explain(study, trial)
    assert "fallback of LyapunovPruner, MedianPruner, not by the model" in text
    assert pruned_by(None, study.pruner) == "fallback (MedianPruner)"


def test_plain_pruner_is_named_with_the_last_value():
    study, trial = _study_with(None, pruner=optuna.pruners.SuccessiveHalvingPruner())
    text = explain(study, trial)
    assert "Pruned at step 2 by SuccessiveHalvingPruner" in text and "0.22" in text
    assert pruned_by(None, study.pruner) == "SuccessiveHalvingPruner"


def test_completed_trial_note_and_dynamics_section():
    study, trial = _study_with({1: {**MODEL, "rule": "kept", "pruned": False}}, pruned_at=None)
    text = explain(study, trial.number)
    assert "completed" in text and "0.25" in text
    assert "**Model.** Predicted final value 0.31" in text
    assert "**Dynamics at step 1.** chaotic" in text
    assert "Moved from ordered to chaotic" in text


def test_metric_name_from_the_study():
    study, trial = _study_with(None, pruner=optuna.pruners.MedianPruner())
    study.set_metric_names(["val_accuracy"])
    assert "val_accuracy" in explain(study, trial)


def test_unknown_trial_number_is_a_clear_error():
    study, _ = _study_with(None)
    with pytest.raises(ValueError, match="trial=99"):
        explain(study, 99)


def test_percentile_rule_gives_the_percentile_optuna_used():
    study, trial = _study_with(None, pruner=optuna.pruners.PercentilePruner(25.0))
    text = explain(study, trial)
    # Maximising, PercentilePruner(25) bars at the 75th percentile of 0.52 .. 0.82: 0.745.
    assert "75th percentile of the 4 trials completed" in text and "0.745" in text


def test_rung_without_a_rank_gives_the_competitors():
    record = {"pruned": True, "rule": "rung", "rung": 0, "score_kind": "raw", "score": 0.2,
              "n_competitors": 1}  # fmt: skip
    text = explain(*_study_with({2: record}))
    assert "its objective value 0.2 among 1 trials at this rung" in text


def test_prunes_are_counted_by_rule():
    from optuna_lyap.visualization import prunes_by_rule

    study, _ = _study_with({2: {"pruned": True, "rule": "rung"}})
    assert prunes_by_rule(study) == {"rung": 1}
    study, _ = _study_with(None, pruner=optuna.pruners.MedianPruner())
    assert prunes_by_rule(study) == {"MedianPruner": 1}


def test_explain_takes_a_trial_or_its_number_and_names_anything_else():
    study = optuna.create_study()
    trial = study.ask()
    trial.report(0.5, 0)
    by_number = explain(study, trial.number)
    assert by_number.startswith("### Trial 0")
    assert explain(study, np.int64(0)) == by_number
    assert explain(study, trial) == by_number  # the running optuna.Trial an objective holds
    with pytest.raises(ValueError, match="no trial with that number"):
        explain(study, 7)
    # A string or a bool is no trial number, though int("0") and True == 1 would pass for one.
    for bad in ("0", True, 0.0):
        with pytest.raises(ValueError, match=r"trial must be .*but got trial="):
            explain(study, bad)


# --- Notes a user reads once -------------------------------------------------------------------

ALONE_BY_SAMPLER = {
    "rule": "rung",
    "rung": 0,
    "score_kind": "raw",
    "score": 0.2,
    "rank": 5,
    "n_competitors": 5,
    "n_promoted": 2,
    "prior_quantile": 0.81,
    "prior_top10": 0.92,
    "prior_model_step": 1,
    "prior_decides": False,
    "prior_decides_by": "sampler",
}
DISCLAIMER = "the completed trials the prior would be judged on are no sample"


def _many_pruned(n: int) -> tuple[optuna.Study, list[optuna.trial.FrozenTrial]]:
    """``n`` trials pruned at step 2 by the raw value, each with the prior's records at steps 1
    and 2 saying it ranks no rung alone under this sampler."""
    study = optuna.create_study(direction="maximize")
    for _ in range(n):
        t = study.ask()
        for step in range(3):
            t.report(0.2, step)
        record_prediction(study, t, 1, {**ALONE_BY_SAMPLER, "pruned": False})
        record_prediction(study, t, 2, {**ALONE_BY_SAMPLER, "pruned": True})
        study.tell(t, state=TrialState.PRUNED)
    return study, study.trials


def test_what_holds_for_the_whole_study_is_said_once():
    from optuna_lyap.visualization import explain_study, study_note

    study, trials = _many_pruned(14)
    text = explain_study(study, trials, None)
    assert text.startswith("### About this study")
    assert text.count(DISCLAIMER) == 1
    assert text.count("LyapunovPruner(prior_decides=True)") == 1
    # Each trial points to it, once per note, instead of repeating it.
    notes = text.split("### Trial ")[1:]
    assert len(notes) == 14
    for note in notes:
        assert note.count('see "About this study"') == 1
    # The study's note (the dashboard's) is the same preface.
    preface = study_note(study)
    assert preface is not None and preface.rstrip() in text


def test_a_single_trial_note_says_the_study_wide_reason_once_at_its_end():
    study, trials = _many_pruned(1)
    note = explain(study, trials[0])
    assert note.count(DISCLAIMER) == 1
    assert note.rstrip().endswith("rank all the same.")
    assert note.count("see the end of this note") == 1
    # Without the preface (the dashboard's trial notes): only the reference.
    alone = explain(study, trials[0], preface=False)
    assert DISCLAIMER not in alone and alone.count('see "About this study"') == 1


def test_no_preface_when_nothing_holds_for_the_whole_study():
    from optuna_lyap.visualization import explain_study, study_note

    study, trial = _study_with({2: {"rule": "rung", "pruned": True, "rank": 5}})
    assert study_note(study) is None
    assert explain_study(study, [trial], None).startswith("### Trial 4")
    assert explain_study(study, [], None) == ""


def test_the_prior_paragraph_names_another_steps_model_in_plain_words():
    record = {"rule": "rung", "pruned": True, "prior_quantile": 0.4, "prior_model_step": 2}
    note = explain(*_study_with({4: record}, pruned_at=4))
    assert "**Prior, step 4.**" in note
    assert "the prior has no model for step 4, so its model for step 2 read this step" in note
    same = explain(*_study_with({4: {**record, "prior_model_step": 4}}, pruned_at=4))
    assert "**Prior, step 4.**" in same and "model for step" not in same


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"prior_decides": False, "prior_decides_by": "argument"},
            'the prior ranks no rung alone in this study (see "About this study")',
        ),
        (
            {"prior_gate_share": 0.41, "prior_gate_open": False},
            "out-ranked the raw value in only 41% of bootstrap resamples",
        ),
        ({}, "too few completed trials carry its prediction"),
    ],
    ids=["forbidden", "gate-closed", "unjudged"],
)
def test_a_pruned_trial_the_prior_rated_well_says_why_the_prior_did_not_count(
    fields: dict[str, Any], reason: str
):
    record = {"rule": "rung", "pruned": True, "rung": 0, "rank": 4, "n_competitors": 5,
              "prior_quantile": 0.9, "prior_top10": 0.92, **fields}  # fmt: skip
    note = explain(*_study_with({2: record}), preface=False)
    # Said once, in the paragraph of the prior's prediction at the step that pruned it.
    prior = note.split("**Prior, step 2.**", 1)[1].split("\n", 1)[0]
    assert "chance of ending in the top 10% 0.92" in prior
    assert "It did not count in the decision that pruned the trial: " in prior
    assert reason in prior and note.count(reason) == 1
    # Where the prior ranked the rung, it did count: no such sentence.
    ranked = explain(*_study_with({2: {**record, "rule": "prior_rung"}}))
    assert "did not count" not in ranked


def test_every_rule_the_storage_names_has_a_sentence() -> None:
    from optuna_lyap._storage import LEGACY_RULES, RULES
    from optuna_lyap.visualization._explain import RULE_NAMES

    assert set(RULE_NAMES) == {*RULES, *LEGACY_RULES}
