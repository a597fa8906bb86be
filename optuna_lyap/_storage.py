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

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import optuna

from optuna_lyap._checks import InvalidParameterError, check_int
from optuna_lyap.lyapunov._diagnosis import REGIME_CODES, diagnosis_values

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


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

_NON_FINITE_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_REGIME_NAMES = {
    code: "edge of chaos" if name == "edge" else name for name, code in REGIME_CODES.items()
}


def summary_line(attrs: Mapping[str, Any]) -> str | None:
    """The :data:`USER_ATTR_SUMMARY` text of a trial's user ``attrs``; None with nothing to say.

    Example: ``"prior: final quantile 0.81, top-10% chance 0.92; predicted 0.31 ± 0.04;
    regime edge of chaos; λ1 0.004"``.
    """
    parts = []
    quantile = finite_or_none(attrs.get(USER_ATTR_PRIOR_QUANTILE))
    if quantile is not None:
        top = finite_or_none(attrs.get(USER_ATTR_PRIOR_TOP10))
        chance = "" if top is None else f", top-10% chance {top:.2f}"
        parts.append(f"prior: final quantile {quantile:.2f}{chance}")
    predicted = finite_or_none(attrs.get(USER_ATTR_PREDICTED))
    if predicted is not None:
        std = finite_or_none(attrs.get(USER_ATTR_PREDICTED_STD))
        parts.append(f"predicted {predicted:.4g}" + ("" if std is None else f" ± {std:.2g}"))
    regime = finite_or_none(attrs.get(USER_ATTR_REGIME))
    if regime is not None and int(regime) in _REGIME_NAMES:
        parts.append(f"regime {_REGIME_NAMES[int(regime)]}")
    lyap_max = finite_or_none(attrs.get(USER_ATTR_MAX))
    if lyap_max is not None:
        parts.append(f"λ1 {lyap_max:.3g}")
    return "; ".join(parts) or None


# --- Keys and records of the pruner, the sampler and the prediction layer ------------------------
# Every attr key below is written by LyapunovPruner, LyapunovSampler or optuna_lyap._prediction;
# they are named here so that this module stays the one place to read the storage layout.

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
#: the in-study model's, the prior's and the blend's scores, the step-0 screens, the prior's
#: prediction that decided nothing, and the fallback pruner.
RULES = (
    "rung",
    "model_rung",
    "prior_rung",
    "blend_rung",
    "screen",
    "prior_screen",
    "predict",
    "fallback",
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


def spectrum_key(step: int) -> str:
    """The system-attr key of the spectrum reported at ``step``."""
    return f"{_SPECTRUM_PREFIX}{step}"


def prediction_key(step: int) -> str:
    """The system-attr key of the pruner's decision record at ``step``."""
    return f"{_PREDICTION_PREFIX}{step}"


def encode_floats(values: np.ndarray) -> list[float | str]:
    """Encode a 1-D float array as a JSON list; non-finite entries become ``"nan"``, ``"inf"``
    and ``"-inf"``."""
    out: list[float | str] = []
    for v in np.asarray(values, dtype=np.float64).tolist():
        if math.isfinite(v):
            out.append(float(v))
        elif math.isnan(v):
            out.append("nan")
        else:
            out.append("inf" if v > 0 else "-inf")
    return out


class DamagedRecordWarning(UserWarning):
    """A stored spectrum or decision record could not be read and was skipped.

    Example:
        >>> import warnings
        >>> import optuna
        >>> from optuna_lyap import DamagedRecordWarning, load_spectra
        >>> damaged = {"optuna_lyap:v1:spectrum:0": "not a list of numbers"}
        >>> trial = optuna.trial.create_trial(value=0.0, system_attrs=damaged)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always", DamagedRecordWarning)
        ...     spectra = load_spectra(trial)
        >>> spectra, caught[0].category.__name__
        ({}, 'DamagedRecordWarning')
    """


def decode_floats(values: Any) -> np.ndarray:
    """The inverse of :func:`encode_floats`: a float64 array.

    Raises:
        ValueError: ``values`` is not a list, or holds an entry that is neither a number nor
            one of ``"nan"``, ``"inf"``, ``"-inf"``; the message names the entry.
    """
    if not isinstance(values, list):
        raise ValueError(f"expected a list of numbers, but got a {type(values).__name__}")
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if isinstance(v, str) and v in _NON_FINITE_NAMES:
            out[i] = _NON_FINITE_NAMES[v]
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[i] = float(v)
        else:
            raise ValueError(f"entry {i} is {v!r}, neither a number nor 'nan', 'inf', '-inf'")
    return out


def _warn_damaged(where: str, key: str, what: str) -> None:
    warnings.warn(
        f"Skipping the damaged record {key!r} of {where}: {what}.",
        DamagedRecordWarning,
        stacklevel=3,
    )


def _where(trial: Any) -> str:
    number = getattr(trial, "number", None)
    return "a trial" if number is None else f"trial {number}"


def finite_or_none(value: Any) -> float | None:
    """``value`` as a Python float when it is a finite number, else None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def as_exponents(spectrum: Any) -> tuple[np.ndarray, int]:
    """The exponents of ``spectrum`` as a float64 array, and the state dimension ``D``.

    Args:
        spectrum: A :class:`~optuna_lyap.LyapunovSpectrum` (its ``exponents`` and ``dim`` are
            used), or a 1-D tensor, array or sequence of ``k`` exponents (then ``D = k``).

    Returns:
        A ``k`` float64 NumPy array and ``D``.
    """
    dim: int | None = None
    if hasattr(spectrum, "exponents"):
        dim = int(spectrum.dim) if hasattr(spectrum, "dim") else None
        spectrum = spectrum.exponents
    if hasattr(spectrum, "detach"):
        spectrum = spectrum.detach().cpu().double().numpy()
    array = np.array(spectrum, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            "A spectrum must be a LyapunovSpectrum or a non-empty 1-D array of exponents, "
            f"but got an array of shape {array.shape}."
        )
    return array, (array.size if dim is None else dim)


def _check_step(step: Any) -> int:
    return check_int("step", step, 0)


def reported_steps(trial: optuna.trial.BaseTrial) -> frozenset[int]:
    """The steps at which ``trial`` already holds an intermediate value.

    :meth:`optuna.Trial.report` ignores a second report of a step (with a warning) and keeps
    the first value; this tells a caller beforehand. Read from the trial's own view of itself,
    the one ``report`` decides with (it includes the values a retried trial inherited). Empty
    for trials that store nothing (:class:`optuna.trial.FixedTrial`).
    """
    if not isinstance(trial, optuna.Trial):
        return frozenset()
    frozen = getattr(trial, "_cached_frozen_trial", None)
    if frozen is None:  # an Optuna without the cached view: ask the storage
        frozen = trial.storage.get_trial(trial._trial_id)
    return frozenset(frozen.intermediate_values)


def report_configuration(trial: optuna.trial.BaseTrial, key: str) -> None:
    """Name the configuration a running trial trains, where its params do not say it.

    The pruner's and the sampler's in-study models are cross-validated by configuration, and
    their gate counts a configuration once: trials of one configuration are never predicted
    from each other. By default a configuration is the trial's params. Name it when different
    params train the same network (params snapped to a table or a grid, as a tabular
    benchmark does), or when the same params must count as different configurations.

    Args:
        trial: The running :class:`optuna.Trial` (on a :class:`optuna.trial.FixedTrial` this
            does nothing).
        key: A non-empty string; trials with equal keys are one configuration.

    Raises:
        InvalidParameterError: When ``key`` is not a non-empty string (a subclass of
            ``ValueError`` and ``TypeError``).
        TypeError: When ``trial`` is not a running trial.

    Example:
        >>> import optuna
        >>> from optuna_lyap import report_configuration
        >>> def objective(trial):
        ...     hidden = trial.suggest_int("hidden", 8, 64)
        ...     snapped = min(64, 8 * round(hidden / 8))  # the network trained: a grid of sizes
        ...     report_configuration(trial, f"hidden={snapped}")
        ...     return float(snapped)
        >>> study = optuna.create_study()
        >>> study.optimize(objective, n_trials=3)
        >>> report_configuration(study.ask(), "")
        Traceback (most recent call last):
            ...
        optuna_lyap._checks.InvalidParameterError: key must be a non-empty string, but got key=''.
    """
    if not isinstance(key, str) or not key:
        raise InvalidParameterError(f"key must be a non-empty string, but got {key=!r}.")
    if isinstance(trial, optuna.trial.FixedTrial):
        return
    if not isinstance(trial, optuna.Trial):
        raise TypeError(
            f"report_configuration needs a running optuna.Trial, but got {type(trial).__name__}."
        )
    trial.storage.set_trial_system_attr(trial._trial_id, CONFIGURATION_ATTR, key)


def report_spectrum(trial: optuna.trial.BaseTrial, spectrum: Any, step: int) -> None:
    """Store a Lyapunov spectrum on a running trial for ``step``.

    The spectrum is written to the trial's system attrs (see this module's layout). The user
    attrs ``lyap_max`` (largest exponent) and ``lyap_mean`` (mean of the finite exponents) take
    the values of the most recent report, so optuna-dashboard can plot them; a value that is
    not finite is left out, and ``lyap_step`` names the step the plotted values come from.
    (The most recent report rather than the largest step: a trial retried after its worker died
    inherits the old run's attrs, and its new spectra must still show.) Reporting the same step
    twice overwrites it. On an :class:`optuna.trial.FixedTrial` (re-running an objective
    outside a study) this does nothing.

    Args:
        trial: The running :class:`optuna.Trial`.
        spectrum: A :class:`~optuna_lyap.LyapunovSpectrum` or a 1-D tensor/array of exponents
            in nats per step.
        step: The step the spectrum belongs to, as in :meth:`optuna.Trial.report` (e.g. 0 at
            initialisation, ``e`` after epoch ``e``).

    Example:
        >>> import optuna
        >>> import torch
        >>> import optuna_lyap
        >>> study = optuna.create_study()
        >>> trial = study.ask()
        >>> rnn = torch.nn.GRU(2, 8, batch_first=True)
        >>> spectrum = optuna_lyap.lyapunov_spectrum(rnn, torch.randn(4, 30, 2), k=3, seed=0)
        >>> optuna_lyap.report_spectrum(trial, spectrum, step=0)
        >>> sorted(optuna_lyap.load_spectra(trial)), trial.user_attrs["lyap_step"]
        ([0], 0)
    """
    step = _check_step(step)
    exponents, dim = as_exponents(spectrum)
    if isinstance(trial, optuna.trial.FixedTrial):
        return
    if not isinstance(trial, optuna.Trial):
        raise TypeError(
            f"report_spectrum needs a running optuna.Trial, but got {type(trial).__name__}."
        )
    storage = trial.storage
    trial_id = trial._trial_id

    encoded = encode_floats(exponents)
    header: dict[str, Any] = {"dim": dim, "k": int(exponents.size)}
    if len(encoded) <= MAX_FLOATS_PER_ATTR:
        header["exponents"] = encoded
    else:
        parts = [
            encoded[i : i + MAX_FLOATS_PER_ATTR]
            for i in range(0, len(encoded), MAX_FLOATS_PER_ATTR)
        ]
        for i, part in enumerate(parts):
            storage.set_trial_system_attr(trial_id, f"{spectrum_key(step)}:{i}", part)
        header["parts"] = len(parts)
    storage.set_trial_system_attr(trial_id, spectrum_key(step), header)

    lyap_max = finite_or_none(exponents[0])
    finite = exponents[np.isfinite(exponents)]
    lyap_mean = finite_or_none(finite.mean()) if finite.size else None
    # The dynamics diagnosis (regime, memory horizon, Kaplan-Yorke dimension, change since the
    # first spectrum), written while the trial runs: a finished trial's attrs are read-only.
    spectra = {s: e for s, e in load_spectra(trial).items() if s <= step}
    attrs: dict[str, Any] = dict(diagnosis_attrs(spectra))
    if lyap_max is not None:
        attrs[USER_ATTR_MAX] = lyap_max
    if lyap_mean is not None:
        attrs[USER_ATTR_MEAN] = lyap_mean
    if lyap_max is not None or lyap_mean is not None:
        attrs[USER_ATTR_STEP] = step
    # What a person looks for first is written first: storages that keep the order of first
    # writes (journal, in-memory) then list it first; see USER_ATTR_SUMMARY.
    summary = summary_line({**trial.user_attrs, **attrs})
    if summary is not None:
        trial.set_user_attr(USER_ATTR_SUMMARY, summary)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def diagnosis_attrs(spectra: Mapping[int, np.ndarray]) -> dict[str, float]:
    """The user attrs of a trial's dynamics diagnosis: ``{attr name: finite float}``.

    Args:
        spectra: ``{step: exponents}`` of one trial (as :func:`load_spectra` returns).

    Returns:
        :func:`~optuna_lyap.lyapunov._diagnosis.diagnosis_values` under the names of
        :data:`DIAGNOSIS_ATTRS` (``lyap_regime``, ``lyap_memory_horizon``,
        ``lyap_ky_dimension``, ``lyap_max_change``, ``lyap_ky_dimension_change``).
    """
    return {DIAGNOSIS_ATTRS[name]: value for name, value in diagnosis_values(spectra).items()}


def report_network(trial: optuna.trial.BaseTrial, description: Mapping[str, Any]) -> None:
    """Store what the cross-task prior reads about a running trial's network.

    Args:
        trial: The running :class:`optuna.Trial` (on any other trial, such as an
            :class:`optuna.trial.FixedTrial`, this does nothing).
        description: ``NetworkDescription.to_json()``: cell, hidden size, layers,
            initialisation scale, learning rate, recurrent spectral norm (null where unknown).
    """
    if isinstance(trial, optuna.Trial):
        trial.storage.set_trial_system_attr(trial._trial_id, NETWORK_ATTR, dict(description))


def steps_with_spectra(system_attrs: Mapping[str, Any]) -> list[int]:
    """The steps, ascending, that have a spectrum header in ``system_attrs``."""
    steps = []
    for key in system_attrs:
        if key.startswith(_SPECTRUM_PREFIX):
            tail = key[len(_SPECTRUM_PREFIX) :]
            if tail.isdigit():
                steps.append(int(tail))
    return sorted(steps)


def _read_spectrum(system_attrs: Mapping[str, Any], step: int, where: str) -> np.ndarray | None:
    """The spectrum stored at ``step``; None, with a warning if damaged, where there is none."""
    key = spectrum_key(step)
    header = system_attrs.get(key)
    if header is None:
        return None
    if not isinstance(header, Mapping):
        _warn_damaged(where, key, f"the header is a {type(header).__name__}, not an object")
        return None
    try:
        if "exponents" in header:
            exponents = decode_floats(header["exponents"])
        else:
            n_parts = header.get("parts")
            if isinstance(n_parts, bool) or not isinstance(n_parts, int) or n_parts < 1:
                raise ValueError(f"it has neither exponents nor a count of parts ({n_parts=})")
            pieces = []
            for i in range(n_parts):
                part = system_attrs.get(f"{key}:{i}")
                if part is None:
                    raise ValueError(f"part {i} of {n_parts} is missing")
                pieces.append(decode_floats(part))
            exponents = np.concatenate(pieces)
    except ValueError as err:
        _warn_damaged(where, key, str(err))
        return None
    k = header.get("k", exponents.size)
    if exponents.size == 0 or k != exponents.size:
        _warn_damaged(where, key, f"it holds {exponents.size} exponents where k={k!r}")
        return None
    return exponents


def _system_attrs(trial: FrozenTrial | optuna.Trial) -> Mapping[str, Any]:
    if isinstance(trial, optuna.Trial):
        return trial.storage.get_trial_system_attrs(trial._trial_id)
    return trial.system_attrs


def load_spectra(trial: FrozenTrial | optuna.Trial) -> dict[int, np.ndarray]:
    """Read back every spectrum stored on a trial.

    Args:
        trial: A :class:`~optuna.trial.FrozenTrial` (e.g. from ``study.trials``) or a running
            :class:`optuna.Trial`.

    Returns:
        ``{step: exponents}`` in ascending step order, each a ``k`` float64 array (nats per
        step, descending as reported; NaN and infinities restored). A damaged record is left
        out with a :class:`DamagedRecordWarning`.

    Example:
        >>> import math
        >>> import optuna
        >>> from optuna_lyap import load_spectra, report_spectrum
        >>> study = optuna.create_study()
        >>> trial = study.ask()
        >>> report_spectrum(trial, [0.1, -0.5, -math.inf], step=1)
        >>> _ = study.tell(trial, 0.0)
        >>> load_spectra(study.trials[0])
        {1: array([ 0.1, -0.5, -inf])}
    """
    attrs = _system_attrs(trial)
    spectra = {}
    for step in steps_with_spectra(attrs):
        spectrum = _read_spectrum(attrs, step, _where(trial))
        if spectrum is not None:
            spectra[step] = spectrum
    return spectra


def spectrum_at(trial: FrozenTrial, step: int) -> tuple[int, np.ndarray] | None:
    """The latest spectrum of ``trial`` at or before ``step``, with the step it was reported at.

    Returns:
        ``(spectrum_step, exponents)``, or None when the trial has no spectrum at or before
        ``step``. A damaged record is passed over (with a :class:`DamagedRecordWarning`) for
        the latest readable one before it.
    """
    attrs = trial.system_attrs
    for s in reversed(steps_with_spectra(attrs)):
        if s <= step:
            spectrum = _read_spectrum(attrs, s, _where(trial))
            if spectrum is not None:
                return s, spectrum
    return None


def spectrum_dim(trial: FrozenTrial, step: int) -> int | None:
    """The state dimension ``D`` recorded with the spectrum at ``step``, or None.

    None also where the recorded ``D`` is not a positive integer (with a
    :class:`DamagedRecordWarning`).
    """
    header = trial.system_attrs.get(spectrum_key(step))
    if not isinstance(header, Mapping) or "dim" not in header:
        return None
    dim = header["dim"]
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        _warn_damaged(_where(trial), spectrum_key(step), f"its dimension is {dim!r}")
        return None
    return dim


def as_frozen_trial(trial: Any) -> FrozenTrial:
    """``trial`` as a :class:`~optuna.trial.FrozenTrial`: a live :class:`optuna.Trial` (as
    ask-and-tell hands it out) is read back from its study's storage, a ``FrozenTrial`` is
    returned as it is.

    Raises:
        TypeError: For anything else, naming both accepted types.
    """
    if isinstance(trial, optuna.trial.FrozenTrial):
        return trial
    if isinstance(trial, optuna.trial.Trial):
        return trial.study._storage.get_trial(trial._trial_id)
    raise TypeError(
        "`trial` must be an optuna.Trial or an optuna.trial.FrozenTrial, but got "
        f"{type(trial).__name__}."
    )


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
        >>> from optuna_lyap import LyapunovPruner, load_predictions
        >>> study = optuna.create_study(direction="maximize", pruner=LyapunovPruner(prior=None))
        >>> def objective(trial):
        ...     for step in range(4):
        ...         trial.report(12.0 - trial.number, step)  # each trial worse than those before
        ...         if trial.should_prune():
        ...             raise optuna.TrialPruned()
        ...     return 12.0 - trial.number
        >>> study.optimize(objective, n_trials=12)
        >>> record = load_predictions(study.trials[-1])[1]  # the pruner's record at step 1
        >>> record["rule"], record["rank"], record["n_competitors"], record["pruned"]
        ('rung', 12, 12, True)
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
