"""The pruner's decision records: their rule names, their type, how they are written and read."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import optuna

from optuna_lyap._storage._codec import (
    _NON_FINITE_NAMES,
    _warn_damaged,
    _where,
    encode_floats,
    finite_or_none,
)
from optuna_lyap._storage._keys import (
    _PREDICTION_PREFIX,
    USER_ATTR_N_TRAIN,
    USER_ATTR_PREDICTED,
    USER_ATTR_PREDICTED_STD,
    USER_ATTR_PRIOR_QUANTILE,
    USER_ATTR_PRIOR_TOP10,
    USER_ATTR_SUMMARY,
    USER_ATTR_THRESHOLD,
    prediction_key,
)
from optuna_lyap._storage._summary import summary_line

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


RULES = (
    "rung",
    "model_rung",
    "prior_rung",
    "blend_rung",
    "screen",
    "prior_screen",
    "predict",
    "fallback",
    "startup",
)
#: Rules of records written by earlier versions (the threshold rule, removed), still read.
LEGACY_RULES = ("threshold", "model", "kept")
#: Rules under which a prediction, not the raw value, ranked a rung: a fallback pruner does
#: not overrule them.
PREDICTION_RULES = ("model_rung", "prior_rung", "blend_rung")
#: Rules under which the pruner acted on the in-study model: a rung it ranked, the step-0
#: screen, and the threshold rule of schema-1 records written before the gate existed.
STUDY_MODEL_RULES = frozenset({"model_rung", "screen", "model"})


class DecisionRecord(TypedDict, total=False):
    """The record :func:`record_prediction` writes at a decision point (all optional but
    ``pruned``, ``rule``, ``step`` and ``direction``).

    Decision: ``pruned``, ``rule`` (one of :data:`RULES`), ``step``, ``rung`` (None at step 0),
    ``direction`` (``"maximize"`` / ``"minimize"``), ``scorer`` (what ranked: ``"raw"``,
    ``"study"``, ``"prior"``, ``"blend"``), ``score_kind`` (``"raw"``, ``"predicted"``,
    ``"quantile"``, ``"blend"``), ``score`` (study units; a quantile; a blend score in
    ``(0, 1]``), ``rank`` (1 is best), ``n_competitors``, ``n_promoted``, ``bar`` (the worst
    promoted competitor's score), ``prior_weight`` (a blend), ``fallback`` (its class name).

    The in-study model: ``predicted``, ``predicted_std``, ``inputs`` (``"spectrum+curve"``),
    ``pretrained``, ``rank_corr``, ``raw_rank_corr``, ``gate_share``, ``gate_open``,
    ``n_train``, ``spectrum_step``; where no fit could open the gate, ``gate_share_bound`` and
    ``gate``.

    The prior: ``prior_quantile``, ``prior_top10``, ``prior_inputs``, ``prior_model_step``,
    ``prior_digest``; where its gate was judged ``prior_gate_share``, ``prior_gate_open``;
    where it may not decide, ``prior_decides`` (False) and ``prior_decides_by``
    (``"argument"`` or ``"sampler"``).
    """

    pruned: bool
    rule: str
    step: int
    rung: int | None
    direction: str
    scorer: str
    score_kind: str
    score: float
    rank: int
    n_competitors: int
    n_promoted: int
    bar: float
    prior_weight: float
    fallback: str
    predicted: float
    predicted_std: float
    inputs: str
    pretrained: bool
    rank_corr: float
    raw_rank_corr: float
    gate_share: float
    gate_open: bool
    gate_share_bound: float
    gate: float
    n_train: int
    spectrum_step: int | None
    prior_quantile: float
    prior_top10: float
    prior_inputs: str
    prior_model_step: int
    prior_digest: str
    prior_gate_share: float
    prior_gate_open: bool
    prior_decides: bool
    prior_decides_by: str


def record_prediction(
    study: optuna.Study,
    trial: FrozenTrial,
    step: int,
    record: DecisionRecord | Mapping[str, Any],
) -> None:
    """Write a pruning decision (a :class:`DecisionRecord`) to a running trial.

    ``record`` goes, with non-finite numbers encoded as strings, to the system attr
    ``optuna_lyap:v1:prediction:{step}``; its finite ``predicted``, ``predicted_std``,
    ``threshold``, ``n_train``, ``prior_quantile`` and ``prior_top10`` entries also go to the
    numeric user attrs ``lyap_predicted``, ``lyap_predicted_std``, ``lyap_threshold``,
    ``lyap_n_train``, ``lyap_prior_quantile`` and ``lyap_prior_top10``.
    """
    storage = study._storage
    stored: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
            stored[key] = encode_floats(np.array([value]))[0]
        elif isinstance(value, (np.floating, np.integer, np.bool_)):
            stored[key] = value.item()
        else:
            stored[key] = value
    storage.set_trial_system_attr(trial._trial_id, prediction_key(step), stored)
    written: dict[str, Any] = {}
    for key, user_key in (
        ("predicted", USER_ATTR_PREDICTED),
        ("predicted_std", USER_ATTR_PREDICTED_STD),
        ("threshold", USER_ATTR_THRESHOLD),
        ("n_train", USER_ATTR_N_TRAIN),
        ("prior_quantile", USER_ATTR_PRIOR_QUANTILE),
        ("prior_top10", USER_ATTR_PRIOR_TOP10),
    ):
        value = finite_or_none(record.get(key))
        if value is not None:
            written[user_key] = int(value) if key == "n_train" else value
            storage.set_trial_user_attr(trial._trial_id, user_key, written[user_key])
    summary = summary_line({**trial.user_attrs, **written})
    if summary is not None:
        storage.set_trial_user_attr(trial._trial_id, USER_ATTR_SUMMARY, summary)


def load_predictions(trial: FrozenTrial) -> dict[int, dict[str, Any]]:
    """The pruner's decision records of a trial, ``{step: record}`` in ascending step order.

    Non-finite numbers stored as strings are restored to floats. A record that is not a JSON
    object is left out with a :class:`DamagedRecordWarning`.

    Example:
        >>> import optuna
        >>> from optuna_lyap import load_predictions
        >>> stored = {"rule": "rung", "step": 2, "pruned": True, "score": "-inf"}
        >>> attrs = {"optuna_lyap:v1:prediction:2": stored}  # as record_prediction writes it
        >>> trial = optuna.trial.create_trial(value=0.0, system_attrs=attrs)
        >>> load_predictions(trial)
        {2: {'rule': 'rung', 'step': 2, 'pruned': True, 'score': -inf}}
    """
    records = {}
    for key, value in trial.system_attrs.items():
        if key.startswith(_PREDICTION_PREFIX) and key[len(_PREDICTION_PREFIX) :].isdigit():
            if not isinstance(value, Mapping):
                _warn_damaged(
                    _where(trial), key, f"the record is a {type(value).__name__}, not an object"
                )
                continue
            restored = {
                k: _NON_FINITE_NAMES[v] if isinstance(v, str) and v in _NON_FINITE_NAMES else v
                for k, v in value.items()
            }
            records[int(key[len(_PREDICTION_PREFIX) :])] = restored
    return dict(sorted(records.items()))
