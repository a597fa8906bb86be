"""The latent embedding of a study's spectra, coloured by the trials' final values."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from optuna_lyap._storage import spectrum_at
from optuna_lyap.aelle import AeLLE


@dataclass(frozen=True)
class EmbeddingData:
    """Points of the embedding.

    Attributes:
        xy: An ``n x 2`` array of embedded coordinates.
        values: ``n`` final values (NaN for trials that did not complete).
        numbers: ``n`` trial numbers.
        states: ``n`` trial state names (``"COMPLETE"``, ``"PRUNED"``, ...).
        method: ``"umap"`` or ``"pca"`` (what was actually used).
    """

    xy: np.ndarray
    values: np.ndarray
    numbers: np.ndarray
    states: list[str]
    method: str


def embedding_data(
    study: optuna.Study, *, step: int = 1, method: str = "umap", seed: int = 0
) -> EmbeddingData:
    """Fit an AeLLE on every trial's spectrum at ``step`` and embed the latent codes in 2-D.

    Completed trials label the prediction head with their final values; pruned and running
    trials' spectra train the reconstruction only, and are embedded too.

    Raises:
        ValueError: fewer than two completed trials with a spectrum at or before ``step``.
    """
    if method not in ("umap", "pca"):
        raise ValueError(f"method must be 'umap' or 'pca', but got {method=!r}.")
    spectra, values, numbers, states = [], [], [], []
    for t in study.get_trials(deepcopy=False):
        found = spectrum_at(t, step)
        if found is None:
            continue
        spectra.append(found[1])
        complete = t.state == TrialState.COMPLETE and t.value is not None
        values.append(float(t.value) if complete else math.nan)  # type: ignore[arg-type]
        numbers.append(t.number)
        states.append(t.state.name)
    labelled = int(np.isfinite(values).sum()) if values else 0
    if labelled < 2:
        raise ValueError(
            f"study {study.study_name!r} has {labelled} completed trials with a spectrum at or "
            f"before step {step}; at least 2 are needed to fit the embedding."
        )
    ae = AeLLE(seed=seed).fit(spectra, np.array(values))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xy = ae.embed(spectra, method=method)
    used = "pca" if method == "umap" and any("PCA" in str(w.message) for w in caught) else method
    return EmbeddingData(xy, np.array(values), np.array(numbers), states, used)


def plot_embedding(data: EmbeddingData, *, step: int = 1) -> Any:
    """A plotly scatter of :func:`embedding_data`'s points, coloured by final value."""
    import plotly.graph_objects as go

    done = np.isfinite(data.values)
    hover = [f"trial {n} ({s.lower()})" for n, s in zip(data.numbers, data.states, strict=True)]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=data.xy[~done, 0],
            y=data.xy[~done, 1],
            mode="markers",
            name="not completed",
            marker={"color": "lightgrey", "size": 7},
            text=[h for h, d in zip(hover, done, strict=True) if not d],
        )
    )
    figure.add_trace(
        go.Scatter(
            x=data.xy[done, 0],
            y=data.xy[done, 1],
            mode="markers",
            name="completed",
            marker={
                "color": data.values[done],
                "colorscale": "Viridis",
                "size": 9,
                "colorbar": {"title": "final value"},
            },
            text=[f"{h}: {v:.4g}" for h, v, d in zip(hover, data.values, done, strict=True) if d],
        )
    )
    figure.update_layout(
        title=f"AeLLE latent embedding ({data.method.upper()}) of spectra at step {step}",
        xaxis_title=f"{data.method} 1",
        yaxis_title=f"{data.method} 2",
    )
    return figure


def write_png(data: EmbeddingData, path: str | Path, *, step: int = 1) -> None:
    """The same scatter as a PNG (matplotlib, so no browser is needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = np.isfinite(data.values)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    ax.scatter(data.xy[~done, 0], data.xy[~done, 1], c="lightgrey", s=18, label="not completed")
    points = ax.scatter(
        data.xy[done, 0], data.xy[done, 1], c=data.values[done], cmap="viridis", s=28
    )
    fig.colorbar(points, ax=ax, label="final value")
    ax.set_title(f"AeLLE latent embedding ({data.method.upper()}), step {step}")
    ax.set_xlabel(f"{data.method} 1")
    ax.set_ylabel(f"{data.method} 2")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def publish_embedding(
    study: optuna.Study, *, step: int = 1, method: str = "umap", seed: int = 0
) -> None:
    """Save the embedding figure in the study so optuna-dashboard shows it beside its plots."""
    from optuna_dashboard import save_plotly_graph_object

    data = embedding_data(study, step=step, method=method, seed=seed)
    figure = plot_embedding(data, step=step)
    save_plotly_graph_object(study, figure, graph_object_id=f"lyap-embedding-step{step}")
