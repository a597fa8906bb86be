"""The latent embedding of a study's spectra, coloured by the trials' final values."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from optuna_lyap._prediction import trial_targets
from optuna_lyap._storage import spectrum_at
from optuna_lyap.aelle import AeLLE
from optuna_lyap.visualization._explain import metric_name

# UMAP needs this many points (AeLLE.embed falls back to PCA below it).
_UMAP_MIN_POINTS = 16

AUTO_UMAP_POINTS = 200
"""``method="auto"`` embeds this many points or more with UMAP, fewer with PCA.

UMAP's cost hardly depends on the size of a study's map: its first run in a process compiles
numba code (37 s and 794 MB for 20 points, against 6.8 s for PCA, measured with
``optuna-lyap embed``), and on a few dozen points its 15-neighbour graph shows little that the
first two principal components of the 4-number latent code do not. From a few hundred points,
clusters that PCA lays over each other are what UMAP separates, and the compile is a small
share of the study it maps."""


@dataclass(frozen=True)
class EmbeddingData:
    """Points of the embedding.

    Attributes:
        xy: An ``n x 2`` array of embedded coordinates.
        values: ``n`` final values as targets (NaN for trials that did not complete; an
            infinite value, a diverged run, is the worst finite one: see
            ``optuna_lyap._prediction.final_targets``).
        numbers: ``n`` trial numbers.
        states: ``n`` trial state names (``"COMPLETE"``, ``"PRUNED"``, ...).
        method: ``"umap"`` or ``"pca"`` (what was actually used).
        metric: The name of the study's objective (see ``optuna_lyap.explain``).
    """

    xy: np.ndarray
    values: np.ndarray
    numbers: np.ndarray
    states: list[str]
    method: str
    metric: str = "objective value"


def embedding_data(
    study: optuna.Study,
    *,
    step: int = 1,
    method: str = "umap",
    seed: int = 0,
    aelle_params: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> EmbeddingData:
    """Fit an AeLLE on every trial's spectrum at ``step`` and embed the latent codes in 2-D.

    Completed trials label the prediction head with their final values; pruned and running
    trials' spectra train the reconstruction only, and are embedded too.

    Args:
        study: The study.
        step: Each trial's latest spectrum at or before this step is read.
        method: ``"umap"`` or ``"pca"`` (see :meth:`optuna_lyap.AeLLE.embed`), or ``"auto"``:
            UMAP for :data:`AUTO_UMAP_POINTS` points or more, PCA below.
        seed: Seed of the AeLLE fit and of UMAP.
        aelle_params: Keyword arguments of the :class:`~optuna_lyap.AeLLE` (``seed`` is set by
            ``seed``); None: AeLLE's defaults. Only the first ensemble member is embedded, so
            ``{"n_models": 1}`` costs a fraction and draws the same kind of map.
        progress: Called with a line of text before each slow stage (the fit, UMAP), e.g.
            ``print``. UMAP compiles its numba code on its first run in a process, which is
            slow.

    Raises:
        ValueError: fewer than two completed trials with a spectrum at or before ``step``, or
            ``method`` not ``"umap"``, ``"pca"`` or ``"auto"``.
    """
    if method not in ("umap", "pca", "auto"):
        raise ValueError(f"method must be 'umap', 'pca' or 'auto', but got {method=!r}.")
    spectra, trials = [], []
    for t in study.get_trials(deepcopy=False):
        found = spectrum_at(t, step)
        if found is None:
            continue
        spectra.append(found[1])
        trials.append(t)
    values = trial_targets(trials, study.direction)
    numbers = [t.number for t in trials]
    states = [t.state.name for t in trials]
    if method == "auto":
        method = "umap" if len(spectra) >= AUTO_UMAP_POINTS else "pca"
    labelled = int(np.isfinite(values).sum())
    if labelled < 2:
        raise ValueError(
            f"study {study.study_name!r} has {labelled} completed trials with a spectrum at or "
            f"before step {step}; at least 2 are needed to fit the embedding."
        )
    params = {**(aelle_params or {}), "seed": seed}
    if progress is not None:
        progress(f"fitting an AeLLE on {len(spectra)} spectra at step {step}")
    ae = AeLLE(**params).fit(spectra, values)
    if progress is not None and method == "umap" and len(spectra) >= _UMAP_MIN_POINTS:
        progress(
            f"embedding {len(spectra)} latent codes with UMAP (its first run in a process "
            "compiles numba code first, which is slow; --method pca skips it)"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xy = ae.embed(spectra, method=method)
    used = "pca" if method == "umap" and any("PCA" in str(w.message) for w in caught) else method
    return EmbeddingData(xy, values, np.array(numbers), states, used, metric_name(study))


def plot_embedding(data: EmbeddingData, *, step: int = 1) -> Any:
    """A plotly scatter of :func:`embedding_data`'s points.

    Completed trials are coloured by their final value (the colour bar names the metric),
    pruned trials are grey crosses, other trials (running, failed) light circles; hovering a
    point gives its trial number, state and value. The legend sits above the plot, clear of
    the colour bar.
    """
    import plotly.graph_objects as go

    figure = go.Figure()
    done = np.isfinite(data.values)
    states = np.array(data.states)
    groups = (
        ("pruned", (states == "PRUNED") & ~done, {"color": "grey", "size": 8, "symbol": "x"}),
        (
            "running or failed",
            (states != "PRUNED") & ~done,
            {"color": "lightgrey", "size": 7, "symbol": "circle-open"},
        ),
    )
    for name, mask, marker in groups:
        if mask.any():
            figure.add_trace(
                go.Scatter(
                    x=data.xy[mask, 0],
                    y=data.xy[mask, 1],
                    mode="markers",
                    name=name,
                    marker=marker,
                    customdata=np.stack([data.numbers[mask], states[mask]], axis=1),
                    hovertemplate="trial %{customdata[0]} (%{customdata[1]})<extra></extra>",
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
                "size": 10,
                "colorbar": {"title": {"text": f"final {data.metric}"}},
            },
            customdata=data.numbers[done],
            hovertemplate=(
                f"trial %{{customdata}} (complete)<br>final {data.metric}: "
                "%{marker.color:.4g}<extra></extra>"
            ),
        )
    )
    figure.update_layout(
        title=f"AeLLE latent map ({data.method.upper()}), spectra at step {step}<br><sup>"
        f"colour: final {data.metric}; grey crosses: pruned trials</sup>",
        xaxis_title=f"{data.method} 1",
        yaxis_title=f"{data.method} 2",
        legend={"orientation": "h", "x": 0.0, "y": 1.02, "xanchor": "left", "yanchor": "bottom"},
    )
    return figure


def write_png(data: EmbeddingData, path: str | Path, *, step: int = 1) -> None:
    """The same scatter as a PNG (matplotlib, so no browser is needed), trial numbers on the
    points, pruned trials as grey crosses, the legend below the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = np.isfinite(data.values)
    pruned = (np.array(data.states) == "PRUNED") & ~done
    other = ~done & ~pruned
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=120)
    if pruned.any():
        ax.scatter(
            data.xy[pruned, 0], data.xy[pruned, 1], c="grey", marker="x", s=30, label="pruned"
        )
    if other.any():
        ax.scatter(
            data.xy[other, 0],
            data.xy[other, 1],
            facecolors="none",
            edgecolors="lightgrey",
            s=24,
            label="running or failed",
        )
    points = ax.scatter(
        data.xy[done, 0],
        data.xy[done, 1],
        c=data.values[done],
        cmap="viridis",
        s=34,
        label="completed",
    )
    for (x, y), number in zip(data.xy, data.numbers, strict=True):
        ax.annotate(str(number), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7)
    fig.colorbar(points, ax=ax, label=f"final {data.metric}")
    ax.set_title(
        f"AeLLE latent embedding ({data.method.upper()}), spectra at step {step}", fontsize=10
    )
    ax.set_xlabel(f"{data.method} 1")
    ax.set_ylabel(f"{data.method} 2")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def publish_embedding(
    study: optuna.Study,
    *,
    step: int = 1,
    method: str = "umap",
    seed: int = 0,
    aelle_params: Mapping[str, Any] | None = None,
) -> None:
    """Save the embedding figure in the study so optuna-dashboard shows it beside its plots.

    Its ``graph_object_id`` is ``lyap-embedding-step{step}``: publishing again replaces it.
    Arguments and errors as in :func:`embedding_data`.
    """
    from optuna_dashboard import save_plotly_graph_object

    data = embedding_data(study, step=step, method=method, seed=seed, aelle_params=aelle_params)
    figure = plot_embedding(data, step=step)
    save_plotly_graph_object(study, figure, graph_object_id=f"lyap-embedding-step{step}")
