"""``DashboardCallback``: notes on finished trials and study figures in optuna-dashboard."""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from types import SimpleNamespace
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._checks import check_int
from optuna_lyap.visualization._explain import NOTE_TITLE, explain, metric_name
from optuna_lyap.visualization._figures import (
    plot_epochs,
    plot_predictions,
    plot_spectra,
    plot_trial_spectra,
)
from optuna_lyap.visualization._study_note import STUDY_NOTE_TITLE, study_note

GRAPH_IDS = ("lyap-predictions", "lyap-embedding", "lyap-spectra", "lyap-epochs")
"""The ``graph_object_id`` of each figure :meth:`DashboardCallback.publish` saves."""

# Only the first member is embedded (see embedding_data): one member, a short fit.
_EMBEDDING_AELLE_PARAMS = {"n_models": 1, "max_steps": 150}
_SEPARATOR = "\n\n---\n\n"
# Below this many labels a latent map coloured by final value shows little, and its AeLLE fit
# would be most of the callback's cost in a short study.
_EMBEDDING_MIN_COMPLETED = 5


def _trial_handle(study: optuna.Study, trial: FrozenTrial) -> Any:
    """What ``optuna_dashboard.save_note`` reads from a trial (it takes a running Trial, whose
    constructor would call the sampler; a finished trial only needs its ids)."""
    return SimpleNamespace(storage=study._storage, study=study, _trial_id=trial._trial_id)


class DashboardCallback:
    """Explain each finished trial and keep the study's figures current in optuna-dashboard.

    When a trial finishes, its dashboard note is set to :func:`~optuna_lyap.explain`'s text
    (why it was pruned or kept, the numbers compared, its dynamics diagnosis); with an
    ``artifact_store``, a PNG of the trial's spectra is uploaded as a study artifact and shown
    in the note. Every ``figures_every`` trials (by trial number, so several workers on one
    storage share the work) the study-level figures are saved with
    ``optuna_dashboard.save_plotly_graph_object`` under :data:`GRAPH_IDS`: predictions against
    final values, the AeLLE latent embedding, spectra of the best trials against pruned ones,
    and epochs spent against a run without pruning (the latent map once 5 trials completed).
    Call :meth:`publish` once after ``optimize`` for the final figures.

    It never fails a study: any error is turned into a warning. ``seconds_`` (wall clock),
    ``cpu_seconds_`` (this process's CPU time) and ``calls_`` (trials seen) count what it cost,
    so the cost can be reported.

    A note written by someone else is kept: the explanation is appended below it.

    Example:
        >>> import optuna
        >>> from optuna_lyap import DashboardCallback
        >>> callback = DashboardCallback(figures_every=0)
        >>> study = optuna.create_study()
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2, callbacks=[callback])
        >>> callback.calls_
        2
        >>> callback.publish(study)  # the final figures, for optuna-dashboard
        ['lyap-epochs']

    Args:
        figures_every: Refresh the figures after every trial whose ``number + 1`` is a
            multiple of this (default 10: the embedding refits an AeLLE each time). 0 never
            refreshes them from the callback.
        notes: Write a note on each finished (complete or pruned) trial.
        embedding_step: The spectrum step of the embedding (each trial's latest at or before
            it); None: 1.
        embedding_method: ``"pca"`` (default; immediate) or ``"umap"`` (slow on its first run).
        artifact_store: An ``optuna.artifacts`` store (e.g. ``FileSystemArtifactStore(dir)``)
            for each trial's spectrum PNG; None: no image. The dashboard shows it when served
            with the same store (``optuna-dashboard --artifact-dir dir``).
        pruner: The pruner that ran the trials, named when a trial was pruned without a
            decision record; None: ``study.pruner``.

    Raises:
        ValueError: ``figures_every`` negative, or ``embedding_method`` unknown.
    """

    def __init__(
        self,
        *,
        figures_every: int = 10,
        notes: bool = True,
        embedding_step: int | None = None,
        embedding_method: str = "pca",
        artifact_store: Any | None = None,
        pruner: BasePruner | None = None,
    ) -> None:
        self._figures_every = check_int("figures_every", figures_every, 0)
        if embedding_method not in ("pca", "umap"):
            raise ValueError(
                f"embedding_method must be 'pca' or 'umap', but got {embedding_method=!r}."
            )
        self._notes = bool(notes)
        self._embedding_step = 1 if embedding_step is None else embedding_step
        self._embedding_method = embedding_method
        self._artifact_store = artifact_store
        self._pruner = pruner
        self._published_at: int | None = None
        self.seconds_ = 0.0
        self.cpu_seconds_ = 0.0
        self.calls_ = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        start, cpu = time.perf_counter(), time.process_time()
        try:
            if self._notes and trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
                self.write_note(study, trial)
        except Exception as err:  # the dashboard must never fail a study
            warnings.warn(
                f"DashboardCallback could not write the note of trial {trial.number}: "
                f"{type(err).__name__}: {err}",
                RuntimeWarning,
                stacklevel=2,
            )
        finally:
            self.seconds_ += time.perf_counter() - start
            self.cpu_seconds_ += time.process_time() - cpu
            self.calls_ += 1
        if self._figures_every and (trial.number + 1) % self._figures_every == 0:
            self.publish(study)

    def cost(self, wall_seconds: float, cpu_seconds: float) -> dict[str, float]:
        """What this callback cost, beside what the whole ``optimize`` took.

        Args:
            wall_seconds: The wall-clock seconds of the ``optimize`` call (and final publish).
            cpu_seconds: This process's CPU seconds over the same span.

        Returns:
            ``seconds``, ``cpu_seconds`` (the callback's), ``trials`` (calls),
            ``wall_seconds`` and ``study_cpu_seconds`` (as given).
        """
        return {
            "seconds": self.seconds_,
            "cpu_seconds": self.cpu_seconds_,
            "trials": self.calls_,
            "wall_seconds": wall_seconds,
            "study_cpu_seconds": cpu_seconds,
        }

    def write_note(self, study: optuna.Study, trial: FrozenTrial) -> str:
        """Write ``trial``'s note now and return its text."""
        from optuna_dashboard import get_note, save_note

        # What holds for the whole study is said once, in the study's note (write_study_note).
        body = explain(study, trial, pruner=self._pruner or study.pruner, preface=False)
        image = self._upload_spectrum(study, trial)
        if image is not None:
            body += f"\n{image}\n"
        handle = _trial_handle(study, trial)
        body = _below_own_words(get_note(handle), NOTE_TITLE.format(number=trial.number), body)
        save_note(handle, body)
        return body

    def write_study_note(self, study: optuna.Study) -> str | None:
        """Write what holds for the whole study (:func:`~optuna_lyap.visualization.study_note`)
        as the study's note, below any words of the user's; return it (None: nothing to say,
        and nothing is written)."""
        from optuna_dashboard import get_note, save_note

        body = study_note(study)
        if body is None:
            return None
        body = _below_own_words(get_note(study), STUDY_NOTE_TITLE, body)
        save_note(study, body)
        return body

    def _upload_spectrum(self, study: optuna.Study, trial: FrozenTrial) -> str | None:
        if self._artifact_store is None:
            return None
        import matplotlib.pyplot as plt
        from optuna.artifacts import upload_artifact

        figure = plot_trial_spectra(trial, metric=metric_name(study))
        if figure is None:
            return None
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, f"spectrum-trial-{trial.number}.png")
            figure.savefig(path)
            plt.close(figure)
            artifact_id = upload_artifact(
                artifact_store=self._artifact_store,
                file_path=path,
                study_or_trial=study,
                mimetype="image/png",
            )
        # The dashboard serves a study's artifacts at this path.
        return f"![spectra of trial {trial.number}](/artifacts/{study._study_id}/{artifact_id})"

    def publish(self, study: optuna.Study) -> list[str]:
        """Save every figure the study can draw now; return their ``graph_object_id`` values.

        A figure that fails is skipped with a warning; the others are still saved. Nothing is
        redrawn when no trial finished since this callback last published (then it returns
        the empty list). Its time counts in ``seconds_``.
        """
        start, cpu = time.perf_counter(), time.process_time()
        try:
            finished = len(
                study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            )
            if finished == self._published_at:
                return []
            self._published_at = finished
            return self._publish(study)
        finally:
            self.seconds_ += time.perf_counter() - start
            self.cpu_seconds_ += time.process_time() - cpu

    def _publish(self, study: optuna.Study) -> list[str]:
        from optuna_dashboard import save_plotly_graph_object

        from optuna_lyap.visualization._embedding import embedding_data, plot_embedding

        def embedding() -> Any:
            completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if len(completed) < _EMBEDDING_MIN_COMPLETED:
                return None
            try:
                data = embedding_data(
                    study,
                    step=self._embedding_step,
                    method=self._embedding_method,
                    aelle_params=_EMBEDDING_AELLE_PARAMS,
                )
            except ValueError:  # fewer than two completed trials with a spectrum
                return None
            return plot_embedding(data, step=self._embedding_step)

        makers = {
            "lyap-predictions": lambda: plot_predictions(study),
            "lyap-embedding": embedding,
            "lyap-spectra": lambda: plot_spectra(study),
            "lyap-epochs": lambda: plot_epochs(study),
        }
        saved = []
        if self._notes:
            try:
                self.write_study_note(study)
            except Exception as err:
                warnings.warn(
                    f"DashboardCallback could not write the study's note: "
                    f"{type(err).__name__}: {err}",
                    RuntimeWarning,
                    stacklevel=2,
                )
        for graph_id, make in makers.items():
            try:
                figure = make()
                if figure is not None:
                    save_plotly_graph_object(study, figure, graph_object_id=graph_id)
                    saved.append(graph_id)
            except Exception as err:
                warnings.warn(
                    f"DashboardCallback could not draw {graph_id!r}: {type(err).__name__}: {err}",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return saved


def _below_own_words(previous: str | None, title: str, body: str) -> str:
    """``body`` below the user's words in ``previous``, replacing an explanation written
    earlier under ``title``."""
    if previous and not previous.startswith(title):
        own = previous.split(f"{_SEPARATOR}{title}", 1)[0]
        return f"{own}{_SEPARATOR}{body}"
    return body


def format_cost(cost: dict[str, float]) -> str:
    """One line for a summary from :meth:`DashboardCallback.cost`."""
    share = cost["seconds"] / cost["wall_seconds"] if cost["wall_seconds"] else 0.0
    cpu_share = (
        cost["cpu_seconds"] / cost["study_cpu_seconds"] if cost["study_cpu_seconds"] else 0.0
    )
    per_trial = cost["seconds"] / max(cost["trials"], 1)
    return (
        f"notes and figures took {cost['seconds']:.2f} s ({per_trial:.3f} s a trial): "
        f"{share:.1%} of the {cost['wall_seconds']:.1f} s wall time, {cpu_share:.1%} of the CPU "
        "time"
    )
