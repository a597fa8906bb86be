"""Why trials were pruned, what their dynamics were, and figures of a study in optuna-dashboard.

:class:`DashboardCallback` writes a note on every finished trial (:func:`explain`'s text) and
keeps the study's figures current; the figure functions and :func:`explain` work on any study.
"""

from __future__ import annotations

from optuna_lyap.visualization._callback import GRAPH_IDS, DashboardCallback, format_cost
from optuna_lyap.visualization._embedding import (
    EmbeddingData,
    embedding_data,
    plot_embedding,
    publish_embedding,
    write_png,
)
from optuna_lyap.visualization._explain import (
    explain,
    explain_study,
    metric_name,
    pruned_by,
    prunes_by_rule,
)
from optuna_lyap.visualization._figures import (
    epochs_spent,
    plot_epochs,
    plot_predictions,
    plot_spectra,
    plot_trial_spectra,
)
from optuna_lyap.visualization._study_note import study_note

__all__ = [
    "GRAPH_IDS",
    "DashboardCallback",
    "EmbeddingData",
    "embedding_data",
    "epochs_spent",
    "explain",
    "explain_study",
    "format_cost",
    "metric_name",
    "plot_embedding",
    "plot_epochs",
    "plot_predictions",
    "plot_spectra",
    "plot_trial_spectra",
    "pruned_by",
    "prunes_by_rule",
    "publish_embedding",
    "study_note",
    "write_png",
]
