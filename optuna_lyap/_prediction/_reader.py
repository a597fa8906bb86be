"""Turn Optuna trials into rows, and choose the trials a predictor is fitted on.

The one place where the pruner and the sampler read trials for a predictor: which finished
trials are labelled rows (and how many of them the refit schedule takes), which pruned trials
add unlabelled spectra, and the rows of the inputs in :data:`~._inputs.INPUTS`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.search_space import intersection_search_space
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._prediction._core import SPECTRUM, Rows, refit_size
from optuna_lyap._prediction._inputs import INPUTS, CurveInput, ParamEncoder, ReadContext
from optuna_lyap._storage import CONFIGURATION_ATTR, spectrum_key
from optuna_lyap.aelle import AeLLE


def final_targets(values: Sequence[float | None], direction: StudyDirection | str) -> np.ndarray:
    """Final values as targets: the one rule for every path that learns from trial values.

    None and NaN are no label (NaN). An infinite value (a diverged loss, which Optuna accepts
    as COMPLETE) is the worst finite value among ``values``: the run was at least as bad as any
    that finished; with no finite value to compare with it is no label (NaN).

    Args:
        values: Final values (``trial.value``), in row order.
        direction: The study's direction (``StudyDirection`` or ``"maximize"`` /
            ``"minimize"``), which says which end is worst.

    Returns:
        A float64 array of ``len(values)`` targets, finite or NaN.
    """
    y = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    infinite = np.isinf(y)
    if infinite.any():
        finite = y[np.isfinite(y)]
        maximize = direction in (StudyDirection.MAXIMIZE, "maximize")
        worst = (finite.min() if maximize else finite.max()) if finite.size else math.nan
        y[infinite] = worst
    return y


def trial_targets(trials: Sequence[FrozenTrial], direction: StudyDirection | str) -> np.ndarray:
    """:func:`final_targets` of ``trials``: NaN for a trial that is not COMPLETE."""
    return final_targets(
        [t.values[0] if t.state == TrialState.COMPLETE and t.values else None for t in trials],
        direction,
    )


def _has_final_value(trial: FrozenTrial) -> bool:
    return trial.values is not None and not math.isnan(trial.values[0])


def param_encoder(trials: Sequence[FrozenTrial]) -> ParamEncoder | None:
    """The encoder of the hyperparameters every one of ``trials`` has (their intersection
    search space); None when there are none."""
    if not trials:
        return None
    encoder = ParamEncoder(intersection_search_space(list(trials)))
    return encoder if encoder.width else None


def configuration_key(trial: FrozenTrial) -> str:
    """A key equal for trials of one configuration: their params as sorted JSON.

    Samplers propose a configuration again (TPE on a categorical space, a grid); its trials
    then share a fold in cross-validation and count once in the gate (:class:`Rows`). A key
    named with :func:`optuna_lyap.report_configuration` replaces the params; a trial with
    neither is a configuration of its own (the key names its number).
    """
    named = trial.system_attrs.get(CONFIGURATION_ATTR)
    if isinstance(named, str) and named:
        return f"configuration {named}"
    if not trial.params:
        return f"trial {trial.number}"
    return json.dumps(trial.params, sort_keys=True, default=str)


def can_label(trial: FrozenTrial, names: Sequence[str], context: ReadContext) -> bool:
    """Whether a finished trial becomes a labelled row: a final value and every input."""
    return _has_final_value(trial) and all(
        INPUTS[name].available(trial, context) for name in names
    )


def read_rows(
    trials: Iterable[FrozenTrial],
    names: Sequence[str],
    context: ReadContext,
    *,
    labelled: bool = True,
) -> Rows:
    """Rows of ``trials`` carrying the inputs ``names`` (registered in ``INPUTS``).

    An input whose width is 0 in ``context`` (no spectrum step, no encoder) is not carried.

    Args:
        trials: Trials, in the order rows should have.
        names: The inputs to read.
        context: Where to read them.
        labelled: True: a row per trial that has a final value and every input (see
            :func:`can_label`), the final value its target (infinite ones set to the worst
            finite target). False: a row per trial that has a spectrum, NaN everywhere else
            (unlabelled rows train the reconstruction only).

    Returns:
        The rows; ``raw`` is the intermediate value at the latest step ``<= context.step``.
    """
    carried = [n for n in names if INPUTS[n].width(context) != 0]
    if not labelled and SPECTRUM not in carried:
        carried = []
    numbers: list[int] = []
    groups: list[Hashable] = []
    columns: dict[str, list[Any]] = {name: [] for name in carried}
    raw: list[float] = []
    targets: list[float] = []
    for trial in trials:
        if labelled and not _has_final_value(trial):
            continue
        read = {}
        for name in carried:
            if labelled or name == SPECTRUM:
                value = INPUTS[name].read(trial, context)
                if value is None:
                    break
            else:
                value = np.full(INPUTS[name].width(context) or 0, np.nan)
            read[name] = value
        else:
            if not labelled and not carried:
                continue
            numbers.append(trial.number)
            groups.append(configuration_key(trial))
            for name, value in read.items():
                columns[name].append(value)
            curve = CurveInput().read(trial, context) if labelled else None
            raw.append(math.nan if curve is None else float(curve[0]))
            targets.append(float(trial.values[0]) if labelled else math.nan)
    n = len(numbers)
    out: dict[str, Any] = {}
    for name, values in columns.items():
        if name == SPECTRUM:
            out[name] = values
        else:
            width = INPUTS[name].width(context) or 0
            out[name] = np.array(values, dtype=np.float64).reshape(n, width)
    y = final_targets(targets, context.direction) if labelled else np.array(targets)
    return Rows(numbers, out, np.array(raw, dtype=np.float64), y.astype(np.float64), groups)


def query_rows(
    trials: Sequence[FrozenTrial], inputs: Sequence[str], context: ReadContext
) -> Rows | None:
    """Rows to predict for ``trials`` (running or finished), carrying the input set ``inputs``.

    Returns:
        The rows (NaN targets), or None when a trial lacks one of the inputs.
    """
    columns: dict[str, Any] = {}
    for name in inputs:
        values = [INPUTS[name].read(trial, context) for trial in trials]
        if any(v is None for v in values):
            return None
        columns[name] = values if name == SPECTRUM else np.array(values, dtype=np.float64)
    return Rows.unlabelled([t.number for t in trials], columns)


def training_set(
    finished: Iterable[FrozenTrial],
    names: Sequence[str],
    context: ReadContext,
    *,
    start: int,
    growth: float,
) -> tuple[list[FrozenTrial], int]:
    """The finished trials a model is fitted on, by the refit schedule.

    Only trials that become labelled rows count (see :func:`can_label`): trials added with
    ``study.add_trial`` without a curve or a spectrum neither fill the schedule nor start it.

    Args:
        finished: Candidates, e.g. the study's COMPLETE trials.
        names: The inputs a labelled row needs.
        context: Where they are read.
        start: The schedule's first size (see :func:`~._core.refit_size`).
        growth: Its growth factor.

    Returns:
        The lowest-numbered ``refit_size(m, start, growth)`` of the ``m`` usable trials, and
        ``m``.
    """
    usable = sorted((t for t in finished if can_label(t, names, context)), key=lambda t: t.number)
    return usable[: refit_size(len(usable), start, growth)], len(usable)


def unlabelled_trials(
    pruned: Iterable[FrozenTrial], spectrum_step: int, training: Sequence[FrozenTrial]
) -> list[FrozenTrial]:
    """The pruned trials whose spectrum at exactly ``spectrum_step`` trains the reconstruction.

    Only those numbered below the newest trial of ``training``, so they change when the
    training set does and cause no refit of their own. Empty when ``training`` is.

    Args:
        pruned: The study's PRUNED trials.
        spectrum_step: The step their spectrum must have been reported at.
        training: The labelled trials the model is fitted on.

    Returns:
        The trials, by number.
    """
    if not training:
        return []
    key = spectrum_key(spectrum_step)
    newest = max(t.number for t in training)
    return sorted(
        (t for t in pruned if t.number < newest and key in t.system_attrs),
        key=lambda t: t.number,
    )


def fit_aelle(
    study: optuna.Study,
    step: int,
    *,
    use_curve: bool = True,
    use_unlabelled: bool = True,
    seed: int = 0,
    **aelle_params: Any,
) -> AeLLE:
    """Fit an AeLLE on a finished study, to give a later study's pruner as ``aelle=``.

    The inputs are built as :class:`~optuna_lyap.LyapunovPruner` builds them: each completed
    trial's latest spectrum at or before ``step`` and, with ``use_curve``, its
    :func:`~optuna_lyap.pruners.curve_features` at ``step``; the target is its final value.

    Args:
        study: A single-objective study whose trials reported spectra.
        step: The step to read spectra and curves at; fit one model per step you will prune
            at, or the earliest one (e.g. 0 or 1) to judge trials as early as possible.
        use_curve: Feed the learning curve to the head beside the spectrum.
        use_unlabelled: Also train the reconstruction on pruned trials' spectra at ``step``.
        seed: Seed of the fit.
        aelle_params: Other :class:`~optuna_lyap.AeLLE` parameters.

    Returns:
        The fitted AeLLE.

    Raises:
        ValueError: When fewer than 2 completed trials have a spectrum and a value at or
            before ``step``.

    Example:
        >>> import numpy as np
        >>> import optuna
        >>> from optuna_lyap import fit_aelle, report_spectrum
        >>> study = optuna.create_study(direction="maximize")
        >>> rng = np.random.default_rng(0)
        >>> for _ in range(12):
        ...     trial = study.ask()
        ...     lam1 = rng.uniform(-1.0, 0.0)
        ...     report_spectrum(trial, [lam1, lam1 - 0.5, lam1 - 1.0], step=0)
        ...     trial.report(rng.uniform(), 0)
        ...     _ = study.tell(trial, -abs(lam1 + 0.3))
        >>> model = fit_aelle(study, step=0, n_models=2, max_steps=20)
        >>> model.n_labelled_, model.n_features_in_
        (12, 2)
    """
    context = ReadContext(step, study.direction, spectrum_step=step)
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    rows = read_rows(completed, (SPECTRUM, "curve"), context)
    if len(rows) < 2:
        raise ValueError(
            f"fit_aelle needs at least 2 completed trials with a spectrum and a value at or "
            f"before {step=}, but the study has {len(rows)}."
        )
    if use_unlabelled:
        pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        exact = ReadContext(step, study.direction, spectrum_step=step, exact_spectrum_step=True)
        rows = Rows.concat(rows, read_rows(pruned, (SPECTRUM, "curve"), exact, labelled=False))
    inputs = (SPECTRUM, "curve") if use_curve else (SPECTRUM,)
    return AeLLE(**{**aelle_params, "seed": seed}).fit(
        rows.spectra, rows.targets, rows.features(inputs)
    )
