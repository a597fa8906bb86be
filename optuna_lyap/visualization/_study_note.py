"""What holds for a whole study rather than for one trial: said once, in the study's preface.

``optuna-lyap explain`` prints it before the trials, :class:`~optuna_lyap.DashboardCallback`
writes it as the study's note, and a trial's note only points to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from optuna_lyap._storage import finite_or_none, load_predictions

STUDY_NOTE_TITLE = "### About this study"
"""The heading of :func:`study_note`'s text (the study's note on the dashboard)."""

PRIOR_ALONE = {
    "sampler": (
        "**The prior ranks no rung alone here.** The study's sampler is adaptive (TPE, for "
        "one): the completed trials the prior would be judged on are no sample of the trials "
        "it would rank later, so each rung is ranked by the raw value while the prior's "
        "predictions are only recorded. LyapunovPruner(prior_decides=True) lets it rank all "
        "the same."
    ),
    "argument": (
        "**The prior ranks no rung alone here.** It does not unless "
        "LyapunovPruner(prior_decides=None) (with a sampler that draws independently) or "
        "prior_decides=True lets it: in replays its rankings did not reach a top trial sooner "
        "than successive halving on every table. Each rung is ranked by the raw value, and "
        "the prior's predictions are only recorded."
    ),
}
SEE_PREFACE = 'see "About this study"'


def prior_alone_by(record: Mapping[str, Any]) -> str | None:
    """What forbade the prior to rank alone (``"sampler"`` or ``"argument"``), or None."""
    if record.get("prior_decides") is not False:
        return None
    return "sampler" if record.get("prior_decides_by") == "sampler" else "argument"


def study_notes(trials: Sequence[FrozenTrial]) -> list[str]:
    """The paragraphs that hold for the whole study (say, the prior ranks no rung alone, and
    why), from the decision records of ``trials``, each once; empty where none applies."""
    reasons: set[str] = set()
    for trial in trials:
        for record in load_predictions(trial).values():
            alone = prior_alone_by(record)
            if alone is not None and finite_or_none(record.get("prior_quantile")) is not None:
                reasons.add(alone)
    return [PRIOR_ALONE[r] for r in ("sampler", "argument") if r in reasons]


def study_note(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> str | None:
    """:func:`study_notes` of ``trials`` (None: the study's) under :data:`STUDY_NOTE_TITLE`, as
    Markdown; None where no note holds for the whole study."""
    notes = study_notes(study.get_trials(deepcopy=False) if trials is None else trials)
    if not notes:
        return None
    return "\n\n".join([STUDY_NOTE_TITLE, *notes]) + "\n"
