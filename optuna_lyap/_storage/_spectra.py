"""Spectra on trials: :func:`report_spectrum` writes one, the readers get them back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna

from optuna_lyap._checks import check_int
from optuna_lyap._storage._codec import (
    _warn_damaged,
    _where,
    decode_floats,
    encode_floats,
    finite_or_none,
)
from optuna_lyap._storage._keys import (
    _SPECTRUM_PREFIX,
    MAX_FLOATS_PER_ATTR,
    USER_ATTR_MAX,
    USER_ATTR_MEAN,
    USER_ATTR_STEP,
    USER_ATTR_SUMMARY,
    spectrum_key,
)
from optuna_lyap._storage._summary import diagnosis_attrs, summary_line

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


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
