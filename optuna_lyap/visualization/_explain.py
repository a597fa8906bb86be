"""Why a trial was pruned or kept, in plain words: the text of its dashboard note.

The decision records are those :class:`~optuna_lyap.LyapunovPruner` writes with
:func:`optuna_lyap._storage.record_prediction`. Two generations are read:

* rank-rule records: ``rule`` in ``"rung"`` (successive halving on the raw value),
  ``"model_rung"`` (successive halving ranking by the predicted final value), ``"prior_rung"``
  (ranking by the shipped prior's predicted quantile), ``"blend_rung"`` (ranking by a blend of
  the raw value's and the prior's ranks), ``"screen"`` and ``"prior_screen"``
  (a step-0 screen by prediction), ``"predict"`` (the prior predicted, nothing was decided),
  ``"fallback"``, ``"threshold"``, with ``rung``, ``scorer``, ``score_kind``, ``score``,
  ``rank``, ``n_competitors``, ``n_promoted``, ``bar``, ``direction`` (and ``prior_weight``
  for ``"blend_rung"``); where a model predicted,
  ``predicted``, ``predicted_std``, ``inputs``, ``rank_corr``, ``raw_rank_corr``,
  ``gate_share``, ``gate_open``, ``n_train``; where the prior predicted, ``prior_quantile``,
  ``prior_top10``, ``prior_inputs``, ``prior_model_step``, ``prior_gate_share``,
  ``prior_gate_open`` (or ``prior_decides``: false where the prior may not rank alone, with
  ``prior_decides_by``: ``"argument"`` or ``"sampler"``, what forbade it);
* threshold-rule records: ``rule`` in ``"model"``, ``"fallback"``, ``"kept"`` with
  ``predicted``, ``predicted_std``, ``threshold``, ``p_worse``, ``inputs``, ``rank_corr``,
  ``raw_rank_corr``, ``n_train``.

Every key may be missing; a sentence is left out rather than guessed. A trial pruned with no
record at its last step was pruned by a rule that writes none (an Optuna pruner, or the
Lyapunov pruner's fallback at a step the model did not judge): the note names that pruner and,
for a median or percentile rule, recomputes the bar from the completed trials.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner, PercentilePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._checks import InvalidParameterError
from optuna_lyap._storage import CONFIG_KEY, finite_or_none, load_predictions, load_spectra
from optuna_lyap.lyapunov._diagnosis import describe, describe_change, diagnose
from optuna_lyap.visualization._study_note import (
    SEE_PREFACE,
    prior_alone_by,
    study_note,
    study_notes,
)

NOTE_TITLE = "### Trial {number}"
"""Every note this module writes starts with this heading (it tells our notes from others')."""

RULE_NAMES = {
    "rung": "successive halving on the raw value",
    "model_rung": "successive halving ranking by the predicted final value",
    "prior_rung": "successive halving ranking by the prior's predicted quantile",
    "blend_rung": "successive halving ranking by a blend of the raw value's and the prior's ranks",
    "screen": "the step-0 screen by prediction",
    "prior_screen": "the step-0 screen by the prior's predicted quantile",
    "predict": "the prior's prediction (nothing decided)",
    "fallback": "the fallback pruner",
    "startup": "the start-up: nothing is pruned before n_startup_trials trials complete",
    "threshold": "the prediction threshold",
    "model": "the model's threshold rule",
    "kept": "the protected share (never pruned, so the model keeps getting labels)",
}
"""Plain names of the ``rule`` values a decision record may carry: one sentence for each of
``optuna_lyap._storage.RULES`` and ``LEGACY_RULES`` (a test holds them equal)."""


def prunes_by_rule(study: optuna.Study, pruner: BasePruner | None = None) -> dict[str, int]:
    """How many of the study's trials each rule pruned, most first (see :func:`pruned_by`).

    Args:
        study: The study.
        pruner: Named for trials pruned without a record; None: ``study.pruner``.
    """
    pruner = study.pruner if pruner is None else pruner
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)):
        if t.last_step is not None:
            rule = pruned_by(load_predictions(t).get(t.last_step), pruner)
            counts[rule] = counts.get(rule, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _fmt(value: Any) -> str:
    f = finite_or_none(value)
    return "n/a" if f is None else f"{f:.4g}"


def metric_name(study: optuna.Study) -> str:
    """The name of the study's objective: its metric name, the built-in task's metric, or
    ``"objective value"``."""
    names = study.metric_names
    if names:
        return str(names[0])
    config = study.user_attrs.get(CONFIG_KEY)
    if isinstance(config, Mapping) and "task" in config:
        try:
            from optuna_lyap.tasks import get_task

            metric = get_task(str(config["task"])).metric
            if metric:
                return metric
        except Exception:  # an unknown task name: fall through to the generic name
            pass
    return "objective value"


def _fallback(pruner: BasePruner | None) -> BasePruner | None:
    """The fallback of a LyapunovPruner (the pruner that decides when the model does not)."""
    if pruner is not None and type(pruner).__name__ == "LyapunovPruner":
        return getattr(pruner, "_fallback", None)
    return None


def _fallback_name(pruner: BasePruner | None) -> str | None:
    fallback = _fallback(pruner)
    return None if fallback is None else type(fallback).__name__


def pruned_by(record: Mapping[str, Any] | None, pruner: BasePruner | None) -> str:
    """The rule that pruned a trial, as the ``run`` summary counts it.

    Args:
        record: The decision record at the step the trial was pruned, if it says ``pruned``.
        pruner: The study's pruner, named when there is no such record.

    Returns:
        The record's ``rule`` (``"fallback (MedianPruner)"`` when it names its fallback); with
        no record, ``"fallback (<class>)"`` for a :class:`~optuna_lyap.LyapunovPruner`'s
        fallback, the pruner's class name otherwise, or ``"unknown"``.
    """
    fallback_name = _fallback_name(pruner)
    if record is not None and record.get("pruned") and record.get("rule"):
        rule = str(record["rule"])
        if rule == "fallback" and (record.get("fallback") or fallback_name):
            return f"fallback ({record.get('fallback') or fallback_name})"
        return rule
    if fallback_name is not None:
        return f"fallback ({fallback_name})"
    if pruner is not None:
        return type(pruner).__name__
    return "unknown"


def _model_sentence(record: Mapping[str, Any]) -> str | None:
    """The model's prediction, its inputs, and the evidence it was (not) trusted."""
    predicted = finite_or_none(record.get("predicted"))
    if predicted is None:
        return _unfitted_sentence(record)
    std = finite_or_none(record.get("predicted_std"))
    text = f"**Model.** Predicted final value {predicted:.4g}"
    if std is not None:
        text += f" ± {std:.3g}"
    detail = []
    if record.get("inputs"):
        detail.append(f"inputs: {record['inputs']}")
    if finite_or_none(record.get("n_train")) is not None:
        detail.append(f"fitted on {int(float(record['n_train']))} completed trials")
    if record.get("pretrained"):
        detail.append("pretrained")
    if detail:
        text += f" ({'; '.join(detail)})"
    corr = finite_or_none(record.get("rank_corr"))
    raw = finite_or_none(record.get("raw_rank_corr"))
    share = finite_or_none(record.get("gate_share"))
    gate = record.get("gate_open")
    if gate is None and str(record.get("rule")) in ("model", "fallback"):
        gate = record.get("rule") == "model"  # threshold-rule records: acted on = trusted
    evidence = []
    if corr is not None:
        evidence.append(f"validated rank correlation with final values {corr:.3g}")
        if raw is not None:
            evidence[-1] += f" against the raw value's {raw:.3g}"
    if share is not None:
        evidence.append(f"out-ranked the raw value in {share:.0%} of bootstrap resamples")
    if gate is not None:
        text += "; trusted" if gate else "; not trusted"
    text += (": " + ", ".join(evidence) if evidence else "") + "."
    return text


def _unfitted_sentence(record: Mapping[str, Any]) -> str | None:
    """Why no model was fitted where the gate's bound ruled every model out."""
    bound = finite_or_none(record.get("gate_share_bound"))
    if bound is None:
        return None
    n_train = finite_or_none(record.get("n_train"))
    gate = finite_or_none(record.get("gate"))
    on = "" if n_train is None else f" on its training set of {int(n_train)} completed trials"
    below = "below the gate" if gate is None else f"below the gate's {gate:.0%}"
    reach = (
        "in no bootstrap resample"
        if bound == 0.0
        else f"in at most {bound:.0%} of bootstrap resamples, {below}"
    )
    return (
        f"**Model.** The study's own model was not fitted{on}: even predictions ranking every "
        f"final value right would out-rank the raw value {reach}, so it could not have ranked "
        "this step."
    )


# What a record's ``score`` is, by its ``score_kind`` (the raw value is named by the metric).
_SCORE_NAMES = {
    "predicted": "predicted final value",
    "quantile": "final quantile predicted by the prior",
    "blend": "blend score (rank fractions of the raw value and the prior, 1 is best)",
}


def _prior_sentence(
    record: Mapping[str, Any],
    step: int,
    said: set[str] | None = None,
    see: str = SEE_PREFACE,
    ignored: str | None = None,
) -> str | None:
    """The prior's predicted quantile at ``step``, its inputs, and the evidence it was (not)
    trusted. A reason already in ``said`` (of this note) is not given again; the ones given
    are added to it. ``see`` points to where a study-wide reason is told. ``ignored``: why
    the prediction did not count in the decision that pruned the trial at ``step``, said
    instead of the gate's state."""
    said = set() if said is None else said
    quantile = finite_or_none(record.get("prior_quantile"))
    if quantile is None:
        return None
    text = f"**Prior, step {step}.** Predicted final quantile {quantile:.3g} in this study (1 is "
    text += "best"
    top = finite_or_none(record.get("prior_top10"))
    if top is not None:
        text += f"; chance of ending in the top 10% {top:.2f}"
    if record.get("prior_inputs"):
        text += f"; inputs: {record['prior_inputs']}"
    model_step = finite_or_none(record.get("prior_model_step"))
    if model_step is not None and int(model_step) != step:
        # The bundle holds models for a few steps; a later step is read by the latest of them.
        text += (
            f"; the prior has no model for step {step}, so its model for step "
            f"{int(model_step)} read this step"
        )
    text += ")"
    share = finite_or_none(record.get("prior_gate_share"))
    alone = prior_alone_by(record)
    if ignored is not None:
        text += f". It did not count in the decision that pruned the trial: {ignored}"
        if alone is not None:
            said.add(f"alone:{alone}")
        said.add("unjudged")
    elif share is not None:
        trusted = record.get("prior_gate_open")
        text += "; trusted" if trusted else "; not trusted"
        text += f": out-ranked the raw value in {share:.0%} of bootstrap resamples"
    elif alone is not None:
        if f"alone:{alone}" not in said:
            text += f"; not judged against the raw value ({see})"
            said.add(f"alone:{alone}")
    elif record.get("rung") is not None and "unjudged" not in said:
        text += "; not yet judged against the raw value (it predicts too few completed trials)"
        said.add("unjudged")
    weight = finite_or_none(record.get("prior_weight"))
    if record.get("rule") == "blend_rung" and weight is not None:
        text += f". Its rank is blended in at weight {weight:.2g} all the same: the blend does "
        text += "not wait for the gate"
    return text + "."


def _prior_ignored_reason(record: Mapping[str, Any], see: str = SEE_PREFACE) -> str | None:
    """Why a prior that predicted at the deciding step did not rank it (a rule by the raw value
    or the in-study model pruned the trial); None where the prior ranked or did not predict.
    ``see`` points to the study-wide reason ("": it was pointed to already)."""
    if finite_or_none(record.get("prior_quantile")) is None:
        return None
    if record.get("rule") in ("prior_rung", "prior_screen", "blend_rung"):
        return None
    share = finite_or_none(record.get("prior_gate_share"))
    if prior_alone_by(record) is not None:
        return "the prior ranks no rung alone in this study" + (f" ({see})" if see else "")
    if share is not None and not record.get("prior_gate_open"):
        return (
            f"it has not earned the right to rank: it out-ranked the raw value in only "
            f"{share:.0%} of bootstrap resamples"
        )
    if share is None and record.get("rung") is not None:
        return "it could not be judged yet: too few completed trials carry its prediction"
    return "another rule ranked this step"


def _rank_sentence(record: Mapping[str, Any], metric: str) -> str:
    kind = record.get("score_kind")
    what = _SCORE_NAMES.get(str(kind), metric)
    score = finite_or_none(record.get("score"))
    if score is None and kind == "predicted":
        score = finite_or_none(record.get("predicted"))
    weight = finite_or_none(record.get("prior_weight"))
    if kind == "blend" and weight is not None:
        what = (
            f"blend score ({1 - weight:.2g} x the raw value's rank fraction + {weight:.2g} x "
            "the prior's, 1 is best)"
        )
    text = f"its {what} {_fmt(score)}"
    rank, n = finite_or_none(record.get("rank")), finite_or_none(record.get("n_competitors"))
    if rank is not None and n is not None:
        text += f" ranked {int(rank)} of {int(n)}"
    elif n is not None:
        text += f" among {int(n)} trials at this rung"
    promoted = finite_or_none(record.get("n_promoted"))
    if promoted is not None:
        text += f", top {int(promoted)} promoted"
    bar = finite_or_none(record.get("bar"))
    if bar is None:
        bar = finite_or_none(record.get("threshold"))
    if bar is not None:
        text += f"; the bar to beat was {bar:.4g}"
    return text


def _record_sentence(
    record: Mapping[str, Any], step: int, metric: str, fallback_name: str | None = None
) -> str:
    """What the rule in ``record`` compared at ``step`` and what it decided."""
    fallback_name = record.get("fallback") or fallback_name
    rule = str(record.get("rule", ""))
    verdict = "pruned it" if record.get("pruned") else "let it continue"
    name = RULE_NAMES.get(rule, f"rule {rule!r}" if rule else "the pruner")
    if rule == "kept":
        return f"At step {step} {name} kept it."
    if rule == "predict":
        return f"At step {step} the prior predicted it; nothing was decided."
    if rule == "fallback" and fallback_name:
        name = f"the fallback pruner ({fallback_name})"
    rung = record.get("rung")
    where = f"at step {step}" + (f", rung {rung}" if rung is not None else "")
    if rule == "model" or (rule == "threshold" and "p_worse" in record):
        p = finite_or_none(record.get("p_worse"))
        text = (
            f"{_cap(name)} {verdict} {where}: predicted final value "
            f"{_fmt(record.get('predicted'))} against the bar "
            f"{_fmt(record.get('threshold', record.get('bar')))}"
        )
        if p is not None:
            text += f", probability of ending worse {p:.0%}"
        return text + "."
    if any(k in record for k in ("rank", "score", "bar")):
        return f"{_cap(name)} {verdict} {where}: {_rank_sentence(record, metric)}."
    return f"{_cap(name)} {verdict} {where}."


def _percentile_bar(
    study: optuna.Study, pruner: PercentilePruner, trial: FrozenTrial, step: int
) -> tuple[float, float, int, float] | None:
    """What a median/percentile rule compared: the trial's best value up to ``step``, the bar,
    how many completed trials made the bar, and the percentile (as Optuna computes them)."""
    percentile = float(getattr(pruner, "_percentile", 50.0))
    # The completed trials as they stood when the trial was pruned (it finished then).
    decided = trial.datetime_complete
    values = [
        t.intermediate_values[step]
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if step in t.intermediate_values
        and (decided is None or t.datetime_complete is None or t.datetime_complete <= decided)
    ]
    own = [v for s, v in trial.intermediate_values.items() if s <= step and not math.isnan(v)]
    if not values or not own:
        return None
    maximize = study.direction == StudyDirection.MAXIMIZE
    bar = float(np.nanpercentile(values, 100 - percentile if maximize else percentile))
    best = max(own) if maximize else min(own)
    return best, bar, len(values), percentile


def _bar_sentence(
    study: optuna.Study, rule: BasePruner, trial: FrozenTrial, step: int, metric: str
) -> str | None:
    """What a median or percentile rule compared, in words; None for other rules."""
    if not isinstance(rule, PercentilePruner):
        return None
    found = _percentile_bar(study, rule, trial, step)
    if found is None:
        return None
    best, bar, n, percentile = found
    # Optuna keeps the best `percentile` percent: for maximisation the bar is the values'
    # (100 - percentile)th percentile.
    used = 100 - percentile if study.direction == StudyDirection.MAXIMIZE else percentile
    label = "median" if percentile == 50 else f"{used:g}th percentile"
    return (
        f"its best {metric} up to step {step}, {best:.4g}, is worse than the {label} of the {n} "
        f"trials completed when it was pruned, at that step: {bar:.4g}"
    )


def _unrecorded_sentence(
    study: optuna.Study, trial: FrozenTrial, step: int, pruner: BasePruner | None, metric: str
) -> str:
    value = trial.intermediate_values.get(step)
    if pruner is None:
        return f"Pruned at step {step} by the study's pruner; its last {metric} was {_fmt(value)}."
    name = type(pruner).__name__
    rule = pruner
    if name == "LyapunovPruner" and getattr(pruner, "_fallback", None) is not None:
        rule = pruner._fallback  # type: ignore[attr-defined]
        text = (
            f"Pruned at step {step} by the fallback of LyapunovPruner, "
            f"{type(rule).__name__}, not by the model (the model recorded no decision at this "
            f"step)"
        )
    else:
        text = f"Pruned at step {step} by {name}"
    bar = _bar_sentence(study, rule, trial, step, metric)
    if bar is not None:
        return f"{text}: {bar}."
    return text + f"; its last {metric} was {_fmt(value)}."


def _dynamics_lines(trial: FrozenTrial) -> list[str]:
    spectra = load_spectra(trial)
    if not spectra:
        return []
    steps = sorted(spectra)
    last = diagnose(spectra[steps[-1]])
    lines = [f"**Dynamics at step {steps[-1]}.** {describe(last)}"]
    if len(steps) > 1:
        first = diagnose(spectra[steps[0]])
        lines.append(f"**Step {steps[0]} to {steps[-1]}.** {describe_change(first, last)}")
    return lines


def explain(
    study: optuna.Study,
    trial: FrozenTrial | optuna.Trial | int,
    *,
    pruner: BasePruner | None = None,
    preface: bool = True,
) -> str:
    """Why ``trial`` was pruned or kept, and what its dynamics were, as Markdown.

    The text names the step and the rule that decided (rung and rank, the model's gate, the
    fallback), the numbers compared (the value or the prediction ± its standard deviation,
    and the bar), the inputs the model used and the evidence it was trusted (its validated
    rank correlation against the raw value's), and the dynamics diagnosis of the trial's
    spectra (see :func:`optuna_lyap.diagnose`). It is the note
    :class:`~optuna_lyap.DashboardCallback` writes on the trial's dashboard page.

    Args:
        study: The study the trial belongs to.
        trial: A :class:`~optuna.trial.FrozenTrial` or :class:`optuna.Trial` of ``study``, or
            its number.
        pruner: The pruner that ran the trial, to name it when the trial was pruned without a
            decision record. None: ``study.pruner`` (a loaded study's pruner is the one passed
            to ``optuna.load_study``).
        preface: Close the note with what holds for the whole study, where the trial's records
            touch it (see :func:`study_note`). False leaves it to the study's preface: each
            such point is then one reference to "About this study" (what
            :func:`explain_study` and the dashboard's study note say once).

    Returns:
        A Markdown string starting with ``### Trial {number}``.

    Raises:
        ValueError: ``trial`` is a number with no trial in ``study``.
        InvalidParameterError: ``trial`` is none of those (a string, a bool), naming it.

    Example:
        >>> import optuna
        >>> from optuna_lyap import LyapunovPruner, explain
        >>> study = optuna.create_study(direction="maximize", pruner=LyapunovPruner(prior=None))
        >>> def objective(trial):
        ...     for step in range(4):
        ...         trial.report(12.0 - trial.number, step)  # each trial worse than those before
        ...         if trial.should_prune():
        ...             raise optuna.TrialPruned()
        ...     return 12.0 - trial.number
        >>> study.optimize(objective, n_trials=12)
        >>> print(explain(study, 11).splitlines()[0])
        ### Trial 11: pruned at step 1 by successive halving on the raw value
    """
    if isinstance(trial, optuna.Trial):  # a running trial, as the objective holds it
        trial = trial.number
    if not isinstance(trial, FrozenTrial):
        if not isinstance(trial, (int, np.integer)) or isinstance(trial, (bool, np.bool_)):
            raise InvalidParameterError(
                "trial must be a FrozenTrial, an optuna.Trial or a trial number (an int), "
                f"but got trial={trial!r}."
            )
        number = int(trial)
        found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not found:
            raise ValueError(
                f"study {study.study_name!r} has no trial with that number, but got {trial=}."
            )
        trial = found[0]
    return explain_trial(study, trial, study.pruner if pruner is None else pruner, preface=preface)


def explain_study(
    study: optuna.Study, trials: Sequence[FrozenTrial], pruner: BasePruner | None
) -> str:
    """The notes of ``trials``, after what holds for the whole study said once.

    What ``optuna-lyap explain`` prints: :func:`study_note` of ``trials`` (if any applies),
    then each trial's :func:`explain_trial` without it. An empty string for no trials.

    Args:
        study: The study.
        trials: Its trials to explain, in order.
        pruner: As in :func:`explain_trial` (None: unknown).
    """
    if not trials:
        return ""
    parts = [explain_trial(study, t, pruner, preface=False).rstrip() for t in trials]
    note = study_note(study, trials)
    return "\n\n".join(([] if note is None else [note.rstrip()]) + parts) + "\n"


def explain_trial(
    study: optuna.Study, trial: FrozenTrial, pruner: BasePruner | None, *, preface: bool = True
) -> str:
    """:func:`explain` of a frozen trial, with ``pruner=None`` meaning the pruner is unknown
    (a study loaded from a storage that does not say which pruner ran it): a trial pruned
    without a record is then said to be pruned "by the study's pruner"."""
    metric = metric_name(study)
    records = load_predictions(trial)
    said: set[str] = set()
    see = "see the end of this note" if preface else SEE_PREFACE
    lines: list[str] = []
    step = trial.last_step
    title = NOTE_TITLE.format(number=trial.number)
    if trial.state == TrialState.PRUNED and step is not None:
        record = records.get(step)
        deciding = record if record is not None and record.get("pruned") else None
        rule = pruned_by(deciding, pruner)
        lines.append(f"{title}: pruned at step {step} by {RULE_NAMES.get(rule, rule)}")
        if deciding is not None:
            sentence = _record_sentence(deciding, step, metric, _fallback_name(pruner))
            fallback = _fallback(pruner)
            if deciding.get("rule") == "fallback" and fallback is not None:
                bar = _bar_sentence(study, fallback, trial, step, metric)
                if bar is not None:
                    sentence = f"{sentence[:-1]}: {bar}."
            lines.append("**Decision.** " + sentence)
        else:
            lines.append(
                "**Decision.** " + _unrecorded_sentence(study, trial, step, pruner, metric)
            )
    elif trial.state == TrialState.COMPLETE:
        lines.append(f"{title}: completed")
        after = "" if step is None else f" after {step} steps"
        lines.append(
            f"**Result.** {metric} {_fmt(trial.value)}{after} ({study.direction.name.lower()})."
        )
    else:
        lines.append(f"{title}: {trial.state.name.lower()}")
    deciding_step = step if trial.state == TrialState.PRUNED else None
    for s, record in records.items():
        deciding_record = s == deciding_step and bool(record.get("pruned"))
        if not deciding_record:
            sentence = _record_sentence(record, s, metric, _fallback_name(pruner))
            lines.append(f"**Step {s}.** {sentence}")
        model = _model_sentence(record)
        if model is not None:
            lines.append(model)
        ignored = None
        if deciding_record:
            pointed = f"alone:{prior_alone_by(record)}" in said
            ignored = _prior_ignored_reason(record, "" if pointed else see)
        prior = _prior_sentence(record, s, said, see, ignored)
        if prior is not None:
            lines.append(prior)
    lines.extend(_dynamics_lines(trial))
    if preface:
        lines.extend(study_notes([trial]))
    return "\n\n".join(lines) + "\n"
