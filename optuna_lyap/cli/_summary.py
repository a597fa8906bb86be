"""The summary ``run`` and ``worker`` print: counts, best trial, epochs spent, and how well
the earliest predictions ranked the final values.

The rank statistic is the package's one Spearman correlation
(:func:`optuna_lyap._prediction.rank_correlation`), and final values become targets by the
package's one rule (:func:`optuna_lyap._prediction.final_targets`: an infinite value counts as
the worst finite one).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from optuna_lyap._prediction import direction_sign, rank_correlation, trial_targets
from optuna_lyap._storage import CONFIG_KEY, USER_ATTR_EPOCHS


def summarize(study: optuna.Study) -> dict[str, Any]:
    """Counts, best trial, epochs spent, and how well early predictions ranked final values."""
    from optuna_lyap.visualization import prunes_by_rule

    config = study.user_attrs.get(CONFIG_KEY, {})
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): 0 for state in TrialState}
    for t in trials:
        counts[t.state.name.lower()] += 1
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    spent = sum(int(t.user_attrs.get(USER_ATTR_EPOCHS, 0)) for t in finished)
    n_epochs = config.get("n_epochs")
    summary: dict[str, Any] = {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "counts": {k: v for k, v in counts.items() if v},
        "epochs_spent": spent,
        "epochs_without_pruning": None if n_epochs is None else len(finished) * n_epochs,
        "best_value": None,
        "best_params": None,
        "prediction": None,
        "prior_prediction": None,
        "no_prediction_reason": None,
    }
    summary["pruned_by"] = prunes_by_rule(study)
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        summary["best_value"] = best.value
        summary["best_params"] = best.params
    # The earliest recorded prediction of each completed trial, against its final value (a
    # step-0 record of the prior alone carries no "predicted": the next one counts).
    summary["prediction"] = _earliest_rank_corr(completed, "predicted", 1.0, study.direction)
    # The prior's quantile is higher for better trials: rank it against oriented final values.
    sign = direction_sign(study.direction)
    summary["prior_prediction"] = _earliest_rank_corr(
        completed, "prior_quantile", sign, study.direction
    )
    if summary["prediction"] is None:
        summary["no_prediction_reason"] = _why_no_predictions(config, len(completed))
    return summary


def _earliest_rank_corr(
    completed: list[optuna.trial.FrozenTrial],
    field: str,
    sign: float,
    direction: optuna.study.StudyDirection,
) -> dict[str, Any] | None:
    """Spearman's correlation between each completed trial's earliest finite ``field`` in its
    decision records and ``sign *`` its final value as a target (``final_targets``); None
    where no trial has one."""
    from optuna_lyap import load_predictions

    pairs = []
    for t, target in zip(completed, trial_targets(completed, direction), strict=True):
        if not math.isfinite(target):
            continue
        for step, record in load_predictions(t).items():
            value = record.get(field)
            if isinstance(value, (int, float)) and math.isfinite(value):
                pairs.append((step, float(value), sign * float(target)))
                break
    if not pairs:
        return None
    steps = sorted(p[0] for p in pairs)
    predicted, final = [p[1] for p in pairs], [p[2] for p in pairs]
    if len(pairs) < 3:
        rho, why = None, f"needs 3 completed trials with a prediction, has {len(pairs)}"
    elif len(set(predicted)) == 1 or len(set(final)) == 1:
        rho, why = None, "undefined: all predictions or all final values are equal"
    else:
        rho, why = rank_correlation(np.array(predicted), np.array(final)), None
        if not math.isfinite(rho):
            rho, why = None, "undefined for these values"
    return {
        "n": len(pairs),
        "median_step": float(steps[len(steps) // 2]),
        "spearman": rho,
        "spearman_undefined": why,
    }


def _why_no_predictions(config: dict[str, Any], n_completed: int) -> str:
    pruner = config.get("pruner")
    if pruner is None:
        return "the study was not made by 'optuna-lyap run'"
    if pruner != "lyapunov":
        return f"the {pruner!r} pruner makes no predictions (the lyapunov pruner does)"
    startup = config.get("n_startup_trials", 0)
    if n_completed < startup:
        return (
            f"the model starts after {startup} completed trials (--n-startup-trials) and "
            f"{n_completed} have completed"
        )
    return (
        "no completed trial was judged by the model yet (it judges trials from step 1, once "
        "it is fitted)"
    )


def _rank_quality(stats: dict[str, Any], what: str) -> str:
    """One summary cell: the Spearman correlation of ``what`` with the final values, or why it
    was not measured."""
    if stats["spearman"] is None:
        return f"Spearman not measured: {stats['spearman_undefined']}"
    return (
        f"Spearman {_fmt(stats['spearman'])} between {what} (median step "
        f"{_fmt(stats['median_step'])}) and the final value, {stats['n']} completed trials"
    )


def _fmt(value: Any) -> str:
    """A summary number: 4 significant digits for floats, "-" for None."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def format_summary(summary: dict[str, Any]) -> str:
    fmt = _fmt
    rows = [
        ("study", summary["study"]),
        ("direction", summary["direction"]),
        ("trials", ", ".join(f"{k} {v}" for k, v in summary["counts"].items()) or "none"),
        ("best value", fmt(summary["best_value"])),
        (
            "best params",
            "-"
            if not summary["best_params"]
            else ", ".join(f"{k}={fmt(v)}" for k, v in summary["best_params"].items()),
        ),
        (
            "epochs spent",
            f"{summary['epochs_spent']} (without pruning: "
            f"{fmt(summary['epochs_without_pruning'])})",
        ),
    ]
    if summary.get("pruned_by"):
        rows.append(
            (
                "pruned, by rule",
                ", ".join(f"{rule}: {n}" for rule, n in summary["pruned_by"].items()),
            )
        )
    pred = summary["prediction"]
    if pred is None:
        rows.append(
            (
                "prediction quality",
                f"no in-study model predictions recorded: {summary['no_prediction_reason']}",
            )
        )
    else:
        rows.append(("prediction quality", _rank_quality(pred, "the earliest prediction")))
    prior = summary.get("prior_prediction")
    if prior is not None:
        rows.append(
            ("prior quality", _rank_quality(prior, "the prior's earliest predicted quantile"))
        )
    if summary.get("dashboard"):
        from optuna_lyap.visualization import format_cost

        rows.append(("dashboard", format_cost(summary["dashboard"])))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
