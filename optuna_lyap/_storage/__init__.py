"""How spectra and predictions are written to and read from Optuna trials (the only place).

Layout (schema version 1):

* ``optuna_lyap:v1:spectrum:{step}`` (trial system attr): the spectrum reported at ``step``, a
  JSON object ``{"dim": D, "k": k, "exponents": [...]}``. A spectrum longer than
  :data:`MAX_FLOATS_PER_ATTR` exponents is split: the header holds ``{"dim", "k", "parts": n}``
  and ``optuna_lyap:v1:spectrum:{step}:{i}`` for ``i < n`` hold consecutive slices of the
  exponents. Parts are written before their header, so a reader that sees a header sees every
  part. Each value stays below 60 KiB, under MySQL's 64 KiB cap on an attribute.
* ``optuna_lyap:v1:prediction:{step}`` (trial system attr): what :class:`LyapunovPruner` decided
  at ``step`` (see :func:`record_prediction`).
* ``optuna_lyap:network`` (trial system attr): what :class:`LyapunovMonitor` read about the
  network at the first step, ``NetworkDescription.to_json()`` (cell, hidden size, layers,
  initialisation scale, learning rate, recurrent spectral norm; null where unknown).
* ``optuna_lyap:configuration`` (trial system attr): the configuration a trial trains, where its
  params do not say it (see :func:`report_configuration`).
* ``optuna_lyap:worker`` (trial system attr, :data:`OWNER_KEY`): the ``optuna-lyap`` worker
  process running the trial and its heartbeat.
* ``optuna_lyap`` (study user attr, :data:`CONFIG_KEY`): the ``optuna-lyap`` command's run
  configuration; ``epochs_trained`` (trial user attr, :data:`USER_ATTR_EPOCHS`): the epochs a
  trial has trained so far.
* User attrs ``lyap_max`` and ``lyap_mean`` (the latest spectrum reported, finite floats only),
  ``lyap_step`` (that step), and the latest decision's ``lyap_predicted``, ``lyap_predicted_std``,
  ``lyap_threshold``, ``lyap_n_train``, ``lyap_prior_quantile``, ``lyap_prior_top10``, and the
  sampler's ``lyap_screen_predicted``,
  ``lyap_screen_std``, ``lyap_screen_rank_corr``, and the dynamics diagnosis of the spectra
  reported so far, ``lyap_regime``, ``lyap_memory_horizon``, ``lyap_ky_dimension``,
  ``lyap_max_change``, ``lyap_ky_dimension_change`` (``optuna_lyap.diagnose`` explains them):
  numbers that optuna-dashboard plots. User attr ``lyap``: the same read in one line for a
  person, listed first on the trial's page (:data:`USER_ATTR_SUMMARY`).

Strict JSON has no NaN or infinity, and storages differ in how they treat them, so non-finite
exponents are stored as the strings ``"nan"``, ``"inf"`` and ``"-inf"``; every other number is a
Python ``float``, whose ``repr`` round-trips float64 exactly. User attrs never hold a non-finite
number: such an entry is left out.

A damaged record (an attribute edited by hand, a write cut short, a value of the wrong shape)
must not stop a study: the readers skip it and issue a :class:`DamagedRecordWarning` that names
the trial, the key and what is wrong.
"""

# One concept a module: the keys (``_keys``), the encoding of numbers and of damaged
# records (``_codec``), the summary and diagnosis user attrs (``_summary``), spectra
# (``_spectra``), what else a trial records (``_trial``), and decision records (``_records``).

from optuna_lyap._storage._codec import (
    DamagedRecordWarning,
    decode_floats,
    encode_floats,
    finite_or_none,
)
from optuna_lyap._storage._keys import (
    CONFIG_KEY,
    CONFIGURATION_ATTR,
    DIAGNOSIS_ATTRS,
    MAX_FLOATS_PER_ATTR,
    NETWORK_ATTR,
    OWNER_KEY,
    PREDICTOR_CLAIM_PREFIX,
    PREDICTOR_PREFIX,
    PREDICTOR_SCHEMA_VERSION,
    SCHEMA_VERSION,
    USER_ATTR_EPOCHS,
    USER_ATTR_MAX,
    USER_ATTR_MEAN,
    USER_ATTR_N_TRAIN,
    USER_ATTR_PREDICTED,
    USER_ATTR_PREDICTED_STD,
    USER_ATTR_PRIOR_QUANTILE,
    USER_ATTR_PRIOR_TOP10,
    USER_ATTR_REGIME,
    USER_ATTR_SCREEN_BY,
    USER_ATTR_SCREEN_PREDICTED,
    USER_ATTR_SCREEN_QUANTILE,
    USER_ATTR_SCREEN_RANK_CORR,
    USER_ATTR_SCREEN_STD,
    USER_ATTR_STEP,
    USER_ATTR_SUMMARY,
    USER_ATTR_THRESHOLD,
    VAL_LOSS_ATTR,
    prediction_key,
    rung_key,
    spectrum_key,
)
from optuna_lyap._storage._records import (
    LEGACY_RULES,
    PREDICTION_RULES,
    RULES,
    STUDY_MODEL_RULES,
    DecisionRecord,
    load_predictions,
    record_prediction,
)
from optuna_lyap._storage._spectra import (
    as_exponents,
    load_spectra,
    report_spectrum,
    reported_steps,
    spectrum_at,
    spectrum_dim,
    steps_with_spectra,
)
from optuna_lyap._storage._summary import (
    diagnosis_attrs,
    summary_line,
)
from optuna_lyap._storage._trial import (
    as_frozen_trial,
    report_configuration,
    report_network,
)

__all__ = [
    "CONFIGURATION_ATTR",
    "CONFIG_KEY",
    "DIAGNOSIS_ATTRS",
    "DamagedRecordWarning",
    "DecisionRecord",
    "LEGACY_RULES",
    "MAX_FLOATS_PER_ATTR",
    "NETWORK_ATTR",
    "OWNER_KEY",
    "PREDICTION_RULES",
    "PREDICTOR_CLAIM_PREFIX",
    "PREDICTOR_PREFIX",
    "PREDICTOR_SCHEMA_VERSION",
    "RULES",
    "SCHEMA_VERSION",
    "STUDY_MODEL_RULES",
    "USER_ATTR_EPOCHS",
    "USER_ATTR_MAX",
    "USER_ATTR_MEAN",
    "USER_ATTR_N_TRAIN",
    "USER_ATTR_PREDICTED",
    "USER_ATTR_PREDICTED_STD",
    "USER_ATTR_PRIOR_QUANTILE",
    "USER_ATTR_PRIOR_TOP10",
    "USER_ATTR_REGIME",
    "USER_ATTR_SCREEN_BY",
    "USER_ATTR_SCREEN_PREDICTED",
    "USER_ATTR_SCREEN_QUANTILE",
    "USER_ATTR_SCREEN_RANK_CORR",
    "USER_ATTR_SCREEN_STD",
    "USER_ATTR_STEP",
    "USER_ATTR_SUMMARY",
    "USER_ATTR_THRESHOLD",
    "VAL_LOSS_ATTR",
    "as_exponents",
    "as_frozen_trial",
    "decode_floats",
    "diagnosis_attrs",
    "encode_floats",
    "finite_or_none",
    "load_predictions",
    "load_spectra",
    "prediction_key",
    "record_prediction",
    "report_configuration",
    "report_network",
    "report_spectrum",
    "reported_steps",
    "rung_key",
    "spectrum_at",
    "spectrum_dim",
    "spectrum_key",
    "steps_with_spectra",
    "summary_line",
]
