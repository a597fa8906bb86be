"""Every attr key the package writes to Optuna trials and studies, and the functions that
build them (the layout is described in ``optuna_lyap._storage``)."""

from __future__ import annotations

SCHEMA_VERSION = 1
_PREFIX = f"optuna_lyap:v{SCHEMA_VERSION}:"
_SPECTRUM_PREFIX = _PREFIX + "spectrum:"
_PREDICTION_PREFIX = _PREFIX + "prediction:"

#: The system attr of the network's description (read by the cross-task prior).
NETWORK_ATTR = "optuna_lyap:network"
#: The system attr naming the configuration a trial trains (see :func:`report_configuration`).
CONFIGURATION_ATTR = "optuna_lyap:configuration"

# 2000 floats of at most 24 characters ("-1.2345678901234567e-308") plus ", " is 52,000 chars.
MAX_FLOATS_PER_ATTR = 2000

USER_ATTR_MAX = "lyap_max"
USER_ATTR_MEAN = "lyap_mean"
USER_ATTR_STEP = "lyap_step"
USER_ATTR_PREDICTED = "lyap_predicted"
USER_ATTR_PREDICTED_STD = "lyap_predicted_std"
USER_ATTR_THRESHOLD = "lyap_threshold"
USER_ATTR_N_TRAIN = "lyap_n_train"
USER_ATTR_PRIOR_QUANTILE = "lyap_prior_quantile"
USER_ATTR_PRIOR_TOP10 = "lyap_prior_top10"
# Written by LyapunovSampler on each trial it screened.
USER_ATTR_SCREEN_PREDICTED = "lyap_screen_predicted"
USER_ATTR_SCREEN_STD = "lyap_screen_std"
USER_ATTR_SCREEN_RANK_CORR = "lyap_screen_rank_corr"

# ------------------------------------------- keys of the run, the workers and the diagnosis
# Named here so that the Optuna-free engine, the tasks and the CLI define no key of their own.

#: The study user attr holding the ``optuna-lyap`` command's run configuration (a JSON object).
CONFIG_KEY = "optuna_lyap"
#: The trial system attr of the CLI worker running the trial (``host``, ``pid``, ``start``,
#: ``trial``) and, on journal storages, its last heartbeat (``beat``, Unix seconds) and
#: ``interval``.
OWNER_KEY = "optuna_lyap:worker"
#: The trial user attr counting the epochs the trial has trained so far (the built-in tasks'
#: objective writes it; figures and the run summary read it).
USER_ATTR_EPOCHS = "epochs_trained"
#: The user attrs of the dynamics diagnosis, by the name
#: :func:`~optuna_lyap.lyapunov._diagnosis.diagnosis_values` gives each value.
DIAGNOSIS_ATTRS = {
    "regime": "lyap_regime",
    "memory_horizon": "lyap_memory_horizon",
    "ky_dimension": "lyap_ky_dimension",
    "max_change": "lyap_max_change",
    "ky_dimension_change": "lyap_ky_dimension_change",
}
USER_ATTR_REGIME = DIAGNOSIS_ATTRS["regime"]

# ------------------------------------------------------------------------------------------

USER_ATTR_SUMMARY = "lyap"
"""A trial's user attr for a person: one line with the latest predictions first, then the
regime and the largest exponent (see :func:`summary_line`). optuna-dashboard lists a trial's
user attrs in the order the storage returns them: by key on SQLite (``"lyap"`` sorts before
every ``lyap_*`` key, after only ``epochs_trained``), by first write on journal storages (it is
the first attr the package writes). So it is the first thing of ours on the trial's page,
whatever the storage, while the numbers stay in their own numeric attrs for the plots."""


#: Numeric/text user attrs of a screened trial beside ``lyap_screen_predicted`` (study units):
#: which model screened it (``"prior"`` or ``"study"``), and the prior's predicted final
#: quantile within the study (1 = best) where the prior screened.
USER_ATTR_SCREEN_BY = "lyap_screen_by"
USER_ATTR_SCREEN_QUANTILE = "lyap_screen_quantile"

#: The user attr read as a trial's validation loss at a step, formatted with ``step`` (the
#: prior's curve group's ``val_loss_rank``); absent, that feature is NaN.
VAL_LOSS_ATTR = "val_loss:{step}"

#: Fitted predictors shared through the storage (``_prediction/_store.py``), and the study
#: that holds the claims on their fits. Their own schema version: a stored predictor's format.
PREDICTOR_SCHEMA_VERSION = 2
PREDICTOR_PREFIX = f"optuna_lyap:v{PREDICTOR_SCHEMA_VERSION}:predictor:"
PREDICTOR_CLAIM_PREFIX = f"optuna_lyap:v{PREDICTOR_SCHEMA_VERSION}:claim:"


def rung_key(rung: int, *, beside_fallback: bool = False) -> str:
    """The trial system attr holding the trial's value at rung ``rung``.

    ``completed_rung_{rung}``, Optuna's ``SuccessiveHalvingPruner`` key, so that the two read
    each other's rungs; ``optuna_lyap:completed_rung_{rung}`` where a fallback pruner (which
    may keep Optuna's key for itself) runs beside the pruner's rungs.
    """
    return f"{'optuna_lyap:' if beside_fallback else ''}completed_rung_{rung}"


#: The ``rule`` of a decision record (:class:`DecisionRecord`) as the pruner writes it now, in
#: the order ``visualization/_explain.py`` names them: successive halving on the raw value, by


def spectrum_key(step: int) -> str:
    """The system-attr key of the spectrum reported at ``step``."""
    return f"{_SPECTRUM_PREFIX}{step}"


def prediction_key(step: int) -> str:
    """The system-attr key of the pruner's decision record at ``step``."""
    return f"{_PREDICTION_PREFIX}{step}"
