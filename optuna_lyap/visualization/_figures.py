"""Study-level plotly figures: predictions against final values, spectra, epochs spent.

Each figure names the metric and the step it reads, and shows trial numbers on hover. Each
returns None where the study holds too little to draw it (fewer than two points).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._prediction import rank_correlation, trial_targets
from optuna_lyap._storage import (
    CONFIG_KEY,
    USER_ATTR_EPOCHS,
    load_predictions,
    load_spectra,
)
from optuna_lyap.visualization._explain import metric_name

_PRUNED_COLOUR = "rgba(150, 150, 150, 0.7)"


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values]


def _earliest(
    trials: list[FrozenTrial], targets: np.ndarray, field: str
) -> list[tuple[int, int, float, Any, float]]:
    """``(number, step, field, predicted_std, target)`` of each trial with a finite target and
    a finite ``field`` in some record (the earliest such record)."""
    rows = []
    for t, target in zip(trials, targets, strict=True):
        if not math.isfinite(target):
            continue
        for step, record in load_predictions(t).items():
            value = record.get(field)
            if isinstance(value, (int, float)) and math.isfinite(value):
                rows.append((t.number, step, float(value), record.get("predicted_std"), target))
                break
    return rows


def plot_predictions(study: optuna.Study) -> Any | None:
    """Each completed trial's earliest recorded prediction against its final value.

    The prediction is the in-study model's predicted final value where the pruner recorded
    one for at least two completed trials; otherwise the prior's predicted final quantile
    (1 is best), which the Lyapunov pruner records from the first trial. Final values are
    read as targets (``optuna_lyap._prediction.final_targets``: an infinite one is the worst
    finite one). The title gives Spearman's rank correlation over the points (the prior's
    against the values oriented so that higher is better).

    Returns:
        A ``plotly.graph_objects.Figure``, or None with fewer than two completed trials with
        either prediction.
    """
    import plotly.graph_objects as go

    metric = metric_name(study)
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    targets = trial_targets(completed, study.direction)
    rows = _earliest(completed, targets, "predicted")
    prior = len(rows) < 2
    if prior:
        rows = _earliest(completed, targets, "prior_quantile")
    if len(rows) < 2:
        return None
    numbers, steps, predicted, stds, final = zip(*rows, strict=True)
    sign = -1.0 if prior and study.direction == StudyDirection.MINIMIZE else 1.0
    rho = rank_correlation(np.array(predicted), sign * np.array(final))
    step_text = ", ".join(f"{s}" for s in sorted(set(steps)))
    what = "the prior's predicted final quantile" if prior else f"predicted final {metric}"
    figure = go.Figure(
        go.Scatter(
            x=predicted,
            y=final,
            mode="markers",
            marker={"size": 9, "color": "#1f77b4"},
            error_x={
                "type": "data",
                "array": [
                    s if isinstance(s, (int, float)) and math.isfinite(s) else 0 for s in stds
                ],
                "visible": not prior,
                "thickness": 1,
            },
            customdata=np.array([numbers, steps], dtype=object).T,
            hovertemplate=(
                f"trial %{{customdata[0]}}<br>{what} at step %{{customdata[1]}}: %{{x:.4g}}"
                f"<br>final {metric}: %{{y:.4g}}<extra></extra>"
            ),
            name="completed trials",
        )
    )
    if not prior:  # a quantile and a value have no common scale: no identity line
        low, high = min(*predicted, *final), max(*predicted, *final)
        figure.add_trace(
            go.Scatter(
                x=[low, high],
                y=[low, high],
                mode="lines",
                line={"dash": "dot", "color": "grey"},
                name="prediction = final",
                hoverinfo="skip",
            )
        )
    rho_text = "n/a" if not math.isfinite(rho) else f"{rho:.2f}"
    title = "Prior's predicted quantile" if prior else "Predicted"
    figure.update_layout(
        title=(
            f"{title} vs final {metric}<br><sup>earliest prediction (step {step_text}), "
            f"Spearman {rho_text}, {len(rows)} completed trials</sup>"
        ),
        xaxis_title=f"{what} (1 is best)" if prior else f"predicted final {metric} (± std)",
        yaxis_title=f"final {metric}",
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _spectrum_step(spectra: dict[int, dict[int, np.ndarray]]) -> int | None:
    """The step most trials reported their last spectrum at (the later one on a tie)."""
    latest = Counter(max(s) for s in spectra.values() if s)
    return None if not latest else max(latest.items(), key=lambda kv: (kv[1], kv[0]))[0]


def plot_spectra(
    study: optuna.Study, *, step: int | None = None, n_best: int = 3, n_pruned: int = 5
) -> Any | None:
    """Spectra of the best completed trials against those of pruned trials, on one axis.

    The x axis is the normalised index ``i / k`` (so networks of different sizes share it), the
    y axis the exponent in nats per step; non-finite exponents are left out of the lines.

    Args:
        study: The study.
        step: The spectrum step; None: the step most trials reported last.
        n_best: How many best completed trials to draw (coloured, best first).
        n_pruned: How many pruned trials to draw (grey, the most recently numbered).

    Returns:
        A ``plotly.graph_objects.Figure``, or None with fewer than two spectra at ``step``.
    """
    import plotly.graph_objects as go

    trials = study.get_trials(deepcopy=False)
    spectra = {t.number: load_spectra(t) for t in trials}
    if step is None:
        step = _spectrum_step(spectra)
        if step is None:
            return None
    metric = metric_name(study)
    completed = [t for t in trials if t.state == TrialState.COMPLETE and step in spectra[t.number]]
    completed.sort(
        key=lambda t: float(t.value),  # type: ignore[arg-type]
        reverse=study.direction == StudyDirection.MAXIMIZE,
    )
    pruned = [t for t in trials if t.state == TrialState.PRUNED and step in spectra[t.number]]
    chosen = [(t, "best") for t in completed[:n_best]] + [
        (t, "pruned") for t in pruned[-n_pruned:]
    ]
    if len(chosen) < 2:
        return None
    figure = go.Figure()
    for t, kind in chosen:
        lam = spectra[t.number][step]
        index = (np.arange(lam.size) + 1) / lam.size
        if kind == "best":
            name = f"trial {t.number}: {metric} {float(t.value):.4g}"  # type: ignore[arg-type]
            line: dict[str, Any] = {"width": 2.5}
        else:
            name = f"trial {t.number}: pruned at step {t.last_step}"
            line = {"width": 1.2, "dash": "dash", "color": _PRUNED_COLOUR}
        figure.add_trace(
            go.Scatter(
                x=index,
                y=_finite_or_none(lam),
                mode="lines",
                line=line,
                name=name,
                hovertemplate=f"{name}<br>i/k %{{x:.2f}}<br>λ %{{y:.4g}} nats/step<extra></extra>",
            )
        )
    figure.add_hline(y=0.0, line={"color": "black", "width": 1})
    figure.update_layout(
        title=f"Lyapunov spectra at step {step}<br><sup>best {min(n_best, len(completed))} "
        f"completed trials (by {metric}) vs {len(chosen) - min(n_best, len(completed))} pruned"
        "</sup>",
        xaxis_title="normalised index i / k",
        yaxis_title="exponent λ_i (nats per step)",
    )
    return figure


def epochs_spent(study: optuna.Study) -> tuple[list[int], list[int], list[int], int] | None:
    """Epochs spent by the finished trials, in the order they finished.

    A trial's epochs are its user attr ``epochs_trained`` (the built-in tasks set it), else its
    last reported step. A run without pruning trains every trial for the study's
    ``n_epochs`` (the ``optuna-lyap run`` setting), else for the most epochs any completed
    trial trained.

    Returns:
        ``(numbers, spent, without_pruning, n_epochs)``: trial numbers and cumulative epochs
        (two lists of the same length), or None when no trial finished.
    """
    finished = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if t.datetime_complete is not None
    ]
    if not finished:
        return None
    finished.sort(key=lambda t: t.datetime_complete)  # type: ignore[arg-type, return-value]

    def epochs(t: FrozenTrial) -> int:
        value = t.user_attrs.get(USER_ATTR_EPOCHS, t.last_step)
        return int(value) if isinstance(value, (int, float)) else 0

    config = study.user_attrs.get(CONFIG_KEY)
    n_epochs = config.get("n_epochs") if isinstance(config, dict) else None
    if not isinstance(n_epochs, int):
        n_epochs = max((epochs(t) for t in finished if t.state == TrialState.COMPLETE), default=0)
    spent = np.cumsum([epochs(t) for t in finished]).tolist()
    without = (np.arange(1, len(finished) + 1) * n_epochs).tolist()
    return [t.number for t in finished], spent, without, n_epochs


def plot_epochs(study: optuna.Study) -> Any | None:
    """Cumulative epochs spent against those a run without pruning would have spent.

    Returns:
        A ``plotly.graph_objects.Figure``, or None when fewer than two trials finished.
    """
    import plotly.graph_objects as go

    found = epochs_spent(study)
    if found is None or len(found[0]) < 2:
        return None
    numbers, spent, without, n_epochs = found
    order = list(range(1, len(numbers) + 1))
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=order,
            y=spent,
            mode="lines+markers",
            name="spent (with pruning)",
            customdata=numbers,
            hovertemplate="after trial %{customdata}: %{y} epochs<extra></extra>",
        )
    )
    figure.add_trace(
        go.Scatter(
            x=order,
            y=without,
            mode="lines",
            line={"dash": "dash", "color": "grey"},
            name=f"without pruning ({n_epochs} a trial)",
            customdata=numbers,
            hovertemplate="after trial %{customdata}: %{y} epochs<extra></extra>",
        )
    )
    saved = without[-1] - spent[-1]
    share = saved / without[-1] if without[-1] else 0.0
    figure.update_layout(
        title=f"Epochs spent: {spent[-1]} of {without[-1]} without pruning<br><sup>"
        f"{share:.0%} saved over {len(numbers)} finished trials</sup>",
        xaxis_title="finished trials (in the order they finished)",
        yaxis_title="cumulative training epochs",
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def plot_trial_spectra(trial: FrozenTrial, *, metric: str = "objective value") -> Any | None:
    """One trial's spectra, one line per reported step (a matplotlib figure, for a PNG).

    Returns:
        A ``matplotlib.figure.Figure``, or None when the trial has no spectrum.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spectra = load_spectra(trial)
    if not spectra:
        return None
    fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
    for step, lam in spectra.items():
        index = (np.arange(lam.size) + 1) / lam.size
        shown = np.where(np.isfinite(lam), lam, np.nan)
        ax.plot(index, shown, marker=".", label=f"step {step}")
    ax.axhline(0.0, color="black", linewidth=0.8)
    value = "" if trial.value is None else f", {metric} {trial.value:.4g}"
    ax.set_title(f"trial {trial.number} ({trial.state.name.lower()}{value})", fontsize=9)
    ax.set_xlabel("normalised index i / k")
    ax.set_ylabel("λ_i (nats per step)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
