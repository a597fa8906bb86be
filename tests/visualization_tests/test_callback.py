"""``DashboardCallback`` and the study figures: notes, published figures, never a failed study."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna_dashboard import get_note

import optuna_lyap
from optuna_lyap._storage import record_prediction
from optuna_lyap.visualization import (
    GRAPH_IDS,
    DashboardCallback,
    epochs_spent,
    plot_epochs,
    plot_predictions,
    plot_spectra,
)
from optuna_lyap.visualization._callback import _trial_handle

N_EPOCHS = 4


def _objective(trial: optuna.Trial) -> float:
    """Later trials do better; spectra at steps 0 and 1; a prediction record at step 1."""
    x = trial.suggest_float("x", 0.0, 1.0)
    rng = np.random.default_rng(trial.number)
    value = 0.0
    for step in range(N_EPOCHS + 1):
        trial.set_user_attr("epochs_trained", step)
        if step <= 1:
            dim = int(rng.integers(6, 12))
            spectrum = np.sort(rng.normal(-0.4 + 0.3 * x, 0.2, dim))[::-1]
            optuna_lyap.report_spectrum(trial, spectrum, step)
        value = x * (step + 1) / (N_EPOCHS + 1)
        if step == 1:
            record_prediction(
                trial.study,
                trial,
                step,
                {"pruned": False, "rule": "rung", "predicted": x, "predicted_std": 0.1},
            )
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return value


def _run(callback: DashboardCallback, n_trials: int = 10) -> optuna.Study:
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
    )
    study.set_metric_names(["accuracy"])
    study.optimize(_objective, n_trials=n_trials, callbacks=[callback])
    return study


def _graph_ids(study: optuna.Study) -> set[str]:
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {gid for gid in GRAPH_IDS if any(gid in key for key in attrs)}


def test_every_finished_trial_gets_a_note_and_the_study_its_figures(tmp_path: Path):
    callback = DashboardCallback(
        figures_every=10, artifact_store=FileSystemArtifactStore(tmp_path)
    )
    study = _run(callback)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the synthetic study must prune some trials"
    for t in study.trials:
        note = get_note(_trial_handle(study, t))
        assert note.startswith(f"### Trial {t.number}")
        assert "**Dynamics at step 1.**" in note
        assert f"(/artifacts/{study._study_id}/" in note
    for t in pruned:
        note = get_note(_trial_handle(study, t))
        assert f"pruned at step {t.last_step} by MedianPruner" in note
        assert "median of the" in note and "accuracy" in note
    assert _graph_ids(study) == set(GRAPH_IDS)
    assert len(list(tmp_path.iterdir())) == len(study.trials)  # one spectrum PNG a trial
    assert callback.calls_ == 10 and callback.seconds_ > 0


def test_a_users_own_note_is_kept():
    study = optuna.create_study()
    trial = study.ask()
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    optuna_dashboard.save_note(trial, "my own words")
    study.tell(trial, 1.0)
    frozen = study.trials[0]
    DashboardCallback()(study, frozen)
    note = get_note(_trial_handle(study, frozen))
    assert note.startswith("my own words") and "### Trial 0: completed" in note
    DashboardCallback()(study, frozen)  # rewriting replaces our part, not the user's
    note = get_note(_trial_handle(study, frozen))
    assert note.count("### Trial 0") == 1


def test_the_callback_never_fails_a_study(monkeypatch: pytest.MonkeyPatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("optuna_lyap.visualization._callback.explain", broken)
    monkeypatch.setattr("optuna_lyap.visualization._callback.plot_spectra", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = _run(DashboardCallback(figures_every=2), n_trials=4)
    assert len(study.trials) == 4
    messages = [str(w.message) for w in caught]
    assert any("could not write the note" in m and "boom" in m for m in messages)
    assert any("could not draw 'lyap-spectra'" in m for m in messages)
    assert "lyap-epochs" in _graph_ids(study)  # the other figures are still saved


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="figures_every"):
        DashboardCallback(figures_every=-1)
    with pytest.raises(ValueError, match="embedding_method"):
        DashboardCallback(embedding_method="tsne")


def test_figures_name_metric_and_step_and_hover_trial_numbers():
    study = _run(DashboardCallback(notes=False, figures_every=0))
    predictions = plot_predictions(study)
    assert "accuracy" in predictions.layout.title.text
    assert (
        "step 1" in predictions.layout.title.text and "Spearman" in predictions.layout.title.text
    )
    assert "trial %{customdata[0]}" in predictions.data[0].hovertemplate

    spectra = plot_spectra(study)
    assert "step 1" in spectra.layout.title.text and "accuracy" in spectra.layout.title.text
    names = [trace.name for trace in spectra.data]
    assert any("pruned at step" in n for n in names) and any("accuracy" in n for n in names)

    epochs = plot_epochs(study)
    numbers, spent, without, n_epochs = epochs_spent(study)
    assert n_epochs == N_EPOCHS and without[-1] == N_EPOCHS * len(study.trials)
    assert spent[-1] == sum(t.user_attrs["epochs_trained"] for t in study.trials)
    assert f"{spent[-1]} of {without[-1]}" in epochs.layout.title.text
    assert sorted(numbers) == [t.number for t in study.trials]
    json.dumps(epochs.to_plotly_json(), default=str)


def test_figures_need_two_points():
    study = optuna.create_study()
    assert plot_predictions(study) is None
    assert plot_spectra(study) is None
    assert plot_epochs(study) is None
    assert DashboardCallback().publish(study) == []


def test_the_latent_map_waits_for_five_completed_trials():
    callback = DashboardCallback(notes=False, figures_every=0)
    study = _run(callback, n_trials=4)
    assert "lyap-embedding" not in callback.publish(study)
    assert callback.publish(study) == []  # nothing finished since: nothing redrawn


def test_cost_line_gives_per_trial_and_shares():
    from optuna_lyap.visualization import format_cost

    callback = DashboardCallback()
    callback.seconds_, callback.cpu_seconds_, callback.calls_ = 2.0, 1.0, 20
    cost = callback.cost(100.0, 40.0)
    assert cost["trials"] == 20 and cost["study_cpu_seconds"] == 40.0
    line = format_cost(cost)
    assert "0.100 s a trial" in line and "2.0% of the 100.0 s wall time" in line
    assert "2.5% of the CPU time" in line


def test_the_study_note_says_once_what_every_trial_note_would_repeat():
    study = optuna.create_study(direction="maximize")
    alone = {"pruned": False, "rule": "rung", "prior_quantile": 0.8, "prior_top10": 0.9,
             "prior_decides": False, "prior_decides_by": "sampler"}  # fmt: skip
    callback = DashboardCallback(figures_every=0)
    for value in (0.1, 0.2, 0.3):
        trial = study.ask()
        trial.report(value, 1)
        record_prediction(study, trial, 1, alone)
        study.tell(trial, value)
        callback(study, study.trials[-1])
    notes = [get_note(_trial_handle(study, t)) for t in study.trials]
    assert all(note.count('see "About this study"') == 1 for note in notes)
    assert not any("no sample of the trials" in note for note in notes)
    # The reason itself is in the study's note, once; the user's words there are kept.
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    optuna_dashboard.save_note(study, "my study")
    callback.publish(study)
    study_note = get_note(study)
    assert study_note.startswith("my study")
    assert study_note.count("### About this study") == 1
    assert study_note.count("no sample of the trials") == 1


def _prior_only_objective(trial: optuna.Trial) -> float:
    """As the default pruner records: the prior's quantile, no in-study prediction."""
    x = trial.suggest_float("x", 0.0, 1.0)
    rng = np.random.default_rng(trial.number)
    for step in range(2):
        trial.set_user_attr("epochs_trained", step)
        optuna_lyap.report_spectrum(trial, np.sort(rng.normal(-0.4 + 0.3 * x, 0.2, 8))[::-1], step)
        record = {"pruned": False, "rule": "rung", "prior_quantile": x, "prior_top10": x / 2}
        record_prediction(trial.study, trial, step, record)
        trial.report(x * (step + 1), step)
    return x


def test_the_four_figures_the_readme_promises_with_the_default_records():
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    callback = DashboardCallback(figures_every=0)
    study.optimize(_prior_only_objective, n_trials=6, callbacks=[callback])
    assert set(callback.publish(study)) == set(GRAPH_IDS)
    assert len(GRAPH_IDS) == 4
    figure = plot_predictions(study)
    assert figure is not None and "Prior's predicted quantile" in figure.layout.title.text
    assert "Spearman 1.00" in figure.layout.title.text  # the quantile is x, the value x


def test_the_summary_attr_is_listed_first_of_ours_on_every_storage(tmp_path: Path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    for storage in (
        f"sqlite:///{tmp_path / 'a.db'}",
        JournalStorage(JournalFileBackend(str(tmp_path / "a.log"))),
    ):
        study = optuna.create_study(direction="maximize", storage=storage, study_name="s")
        study.optimize(_prior_only_objective, n_trials=1)
        attrs = optuna.load_study(study_name="s", storage=storage).trials[0].user_attrs
        ours = [k for k in attrs if k.startswith("lyap")]
        assert ours[0] == "lyap", ours
        # The prediction first, then the regime, in one line.
        line = attrs["lyap"]
        assert line.startswith("prior: final quantile") and "regime" in line
        assert line.index("prior") < line.index("regime")
