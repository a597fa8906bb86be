"""Fit a predictor of final values on a study's finished trials and predict for a running one.

The pruner and the sampler share this: both turn trials into rows of inputs (the spectrum at a
step, the learning curve up to that step, the hyperparameters) and a target (the final value),
cross-validate AeLLE models over the candidate input sets, and keep the one that ranks the
finished trials best, together with how well the raw intermediate value ranks them.

Notation:
    ``n``: rows (trials) a model is fitted on; ``c = 2``: curve features; ``p``: encoded
    hyperparameters; "score": a value oriented so that higher is better (the value for
    ``maximize``, its negative for ``minimize``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._storage import spectrum_at
from optuna_lyap.aelle import AeLLE

INPUTS = ("spectrum", "curve", "params")
N_CURVE_FEATURES = 2


def curve_features(
    intermediate_values: Mapping[int, float], step: int, direction: StudyDirection
) -> np.ndarray:
    """Learning-curve features of a trial at ``step``.

    Args:
        intermediate_values: ``{step: value}`` reported so far.
        step: Only values at steps ``<= step`` are read.
        direction: The study's direction (``best`` is the maximum or the minimum).

    Returns:
        A ``c = 2`` float64 array: the value at the latest step ``<= step`` and the best value
        up to ``step``; NaN where there is no finite value.
    """
    steps = sorted(s for s in intermediate_values if s <= step)
    values = np.array([intermediate_values[s] for s in steps], dtype=np.float64)
    last = values[-1] if values.size else math.nan
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        best = math.nan
    else:
        best = finite.max() if direction == StudyDirection.MAXIMIZE else finite.min()
    return np.array([last, best], dtype=np.float64)


class ParamEncoder:
    """Encode hyperparameters as numbers: log for log-scaled ones, one-hot for categorical ones.

    Args:
        distributions: ``{name: distribution}``, e.g. the intersection search space of the
            finished trials. Names are encoded in sorted order.
    """

    def __init__(self, distributions: Mapping[str, BaseDistribution]) -> None:
        self.distributions = dict(sorted(distributions.items()))
        width = 0
        for dist in self.distributions.values():
            width += len(dist.choices) if isinstance(dist, CategoricalDistribution) else 1
        self.width = width

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """A ``p`` float64 array; NaN for parameters the trial does not have."""
        out = np.full(self.width, np.nan)
        i = 0
        for name, dist in self.distributions.items():
            value = params.get(name)
            if isinstance(dist, CategoricalDistribution):
                if name in params and value in dist.choices:
                    out[i : i + len(dist.choices)] = 0.0
                    out[i + dist.choices.index(value)] = 1.0
                i += len(dist.choices)
                continue
            if value is not None and isinstance(dist, (FloatDistribution, IntDistribution)):
                out[i] = math.log(value) if dist.log and value > 0 else float(value)
            i += 1
        return out


@dataclass
class Rows:
    """Inputs and targets of ``n`` trials at one step.

    Attributes:
        numbers: ``n`` trial numbers.
        spectra: ``n`` 1-D exponent arrays (nats per step), or None when spectra are not read.
        curves: An ``n x c`` array of :func:`curve_features`.
        params: An ``n x p`` array of encoded hyperparameters, or None.
        targets: ``n`` final values; NaN for unlabelled rows.
        raw: ``n`` intermediate values at the latest step ``<= step`` (the first curve column).
    """

    numbers: list[int]
    spectra: list[np.ndarray] | None
    curves: np.ndarray
    params: np.ndarray | None
    targets: np.ndarray

    @property
    def raw(self) -> np.ndarray:
        return self.curves[:, 0]

    def __len__(self) -> int:
        return len(self.numbers)

    def take(self, index: np.ndarray) -> Rows:
        """The rows at ``index`` (an int array)."""
        return Rows(
            [self.numbers[i] for i in index],
            None if self.spectra is None else [self.spectra[i] for i in index],
            self.curves[index],
            None if self.params is None else self.params[index],
            self.targets[index],
        )

    @staticmethod
    def concat(a: Rows, b: Rows) -> Rows:
        return Rows(
            a.numbers + b.numbers,
            None if a.spectra is None or b.spectra is None else a.spectra + b.spectra,
            np.concatenate([a.curves, b.curves]),
            None if a.params is None or b.params is None else np.concatenate([a.params, b.params]),
            np.concatenate([a.targets, b.targets]),
        )

    def features(self, inputs: Sequence[str]) -> np.ndarray | None:
        """The ``n x f`` head features of an input set (curve and/or params), or None."""
        blocks = []
        if "curve" in inputs:
            blocks.append(self.curves)
        if "params" in inputs and self.params is not None:
            blocks.append(self.params)
        return np.concatenate(blocks, axis=1) if blocks else None


def collect_rows(
    trials: Sequence[FrozenTrial],
    *,
    step: int,
    spectrum_step: int | None,
    direction: StudyDirection,
    encoder: ParamEncoder | None = None,
    labelled: bool = True,
    exact_spectrum_step: bool = False,
) -> Rows:
    """Turn trials into rows at ``step``.

    A trial is left out when it lacks a spectrum at or before ``spectrum_step`` (when spectra
    are read, i.e. ``spectrum_step`` is not None) or, for labelled rows, a finite intermediate
    value at or before ``step``.

    Args:
        trials: Trials, in the order rows should have.
        step: The step whose learning curve (values at steps ``<= step``) is read.
        spectrum_step: Spectra are read at the latest step ``<= spectrum_step``; None reads none.
        direction: The study's direction.
        encoder: Encodes hyperparameters; None reads none.
        labelled: Targets are the trials' final values (infinite ones set to the worst finite
            target); else NaN, and only spectra are read (curve and hyperparameters are NaN:
            unlabelled rows train the reconstruction only).
        exact_spectrum_step: Read only spectra reported at exactly ``spectrum_step``.

    Returns:
        The rows.
    """
    numbers, spectra, curves, params, targets = [], [], [], [], []
    for trial in trials:
        if spectrum_step is not None:
            found = spectrum_at(trial, spectrum_step)
            if found is None or (exact_spectrum_step and found[0] != spectrum_step):
                continue
            spectra.append(found[1])
        if labelled:
            curve = curve_features(trial.intermediate_values, step, direction)
            if not math.isfinite(curve[0]):
                if spectrum_step is not None:
                    spectra.pop()
                continue
            value = trial.value
            targets.append(math.nan if value is None else float(value))
        else:
            curve = np.full(N_CURVE_FEATURES, np.nan)
            targets.append(math.nan)
        curves.append(curve)
        if encoder is not None:
            params.append(
                encoder.encode(trial.params) if labelled else np.full(encoder.width, np.nan)
            )
        numbers.append(trial.number)
    y = np.array(targets, dtype=np.float64)
    if labelled and y.size:
        finite = y[np.isfinite(y)]
        if finite.size:
            worst = finite.min() if direction == StudyDirection.MAXIMIZE else finite.max()
            y = np.where(np.isfinite(y), y, worst)
    return Rows(
        numbers,
        spectra if spectrum_step is not None else None,
        np.array(curves, dtype=np.float64).reshape(len(numbers), N_CURVE_FEATURES),
        None if encoder is None else np.array(params).reshape(len(numbers), encoder.width),
        y,
    )


def refit_size(n: int, start: int, growth: float) -> int:
    """How many of ``n`` labelled trials the model is fitted on: a refit schedule.

    The sizes are ``start``, then each ``max(size + 1, ceil(size * growth))``; the result is
    the largest size not above ``n`` (``n`` itself when ``n < start``). Fitting on the
    lowest-numbered trials of that size means a model is refitted ``O(log n)`` times as trials
    complete, not ``n`` times, and every worker fits the same one. ``growth == 1`` refits on
    every new trial.

    Args:
        n: Labelled trials available.
        start: The first size (at least 1).
        growth: Factor between successive sizes, at least 1.

    Returns:
        The training-set size.
    """
    size = max(int(start), 1)
    if n < size:
        return n
    while True:
        following = max(size + 1, math.ceil(size * growth))
        if following > n:
            return size
        size = following


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """0-based ranks of ``x``, ties sharing their mean rank."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts + 1) / 2.0
    return mean_rank[inverse]


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation over the entries finite in both; NaN when undefined.

    (Computed here rather than with SciPy, whose ``stats`` module takes over a second to import
    in every worker process.)
    """
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return math.nan
    ra, rb = _average_ranks(a[ok]), _average_ranks(b[ok])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float(ra @ rb / math.sqrt((ra @ ra) * (rb @ rb)))


def input_sets(
    use_spectrum: bool, use_curve: bool, use_params: bool, select: bool
) -> list[tuple[str, ...]]:
    """The candidate input sets: each enabled input alone, then all of them together.

    With ``select=False`` only the union is a candidate.
    """
    enabled = tuple(
        name for name, on in zip(INPUTS, (use_spectrum, use_curve, use_params), strict=True) if on
    )
    if not enabled:
        raise ValueError("At least one of use_spectrum, use_curve, use_params must be True.")
    if not select or len(enabled) == 1:
        return [enabled]
    return [(name,) for name in enabled] + [enabled]


def pretrained_inputs(model: AeLLE) -> tuple[str, ...]:
    """The input set a fitted AeLLE reads, as this module builds inputs.

    Raises:
        ValueError: When the model reads features other than the learning curve.
    """
    if not hasattr(model, "network_"):
        raise ValueError("A pretrained AeLLE must be fitted; call fit() or AeLLE.load().")
    inputs: tuple[str, ...] = ("spectrum",) if model.uses_spectra_ else ()
    if model.n_features_in_ == N_CURVE_FEATURES:
        inputs += ("curve",)
    elif model.n_features_in_ != 0:
        raise ValueError(
            "A pretrained AeLLE must read spectra with no features or with the "
            f"{N_CURVE_FEATURES} curve features of optuna_lyap.pruners.curve_features, but got "
            f"one fitted with {model.n_features_in_} features."
        )
    return inputs


def _predict(model: AeLLE, rows: Rows, inputs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    spectra = rows.spectra if "spectrum" in inputs else None
    mean, std = model.predict(spectra, rows.features(inputs), return_std=True)
    return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)


def _fit(
    make_model: Callable[[], AeLLE], rows: Rows, unlabelled: Rows | None, inputs: Sequence[str]
) -> AeLLE:
    if unlabelled is not None and len(unlabelled) and "spectrum" in inputs:
        rows = Rows.concat(rows, unlabelled)
    spectra = rows.spectra if "spectrum" in inputs else None
    return make_model().fit(spectra, rows.targets, rows.features(inputs))


@dataclass
class Candidate:
    """One input set's model and how it ranks the labelled rows out of sample.

    Attributes:
        inputs: The input set, e.g. ``("spectrum", "curve")``.
        model: The AeLLE fitted on every labelled row (or the pretrained one).
        oof: ``n`` out-of-sample predictions of the labelled rows (k-fold, or the pretrained
            model's predictions, which never saw these trials).
        rank_corr: Spearman of ``oof`` with the targets (NaN when undefined).
        residual_rms: Root mean square of ``targets - oof``.
        pretrained: Whether this is the pretrained model.
    """

    inputs: tuple[str, ...]
    model: AeLLE
    oof: np.ndarray
    rank_corr: float
    residual_rms: float
    pretrained: bool = False


@dataclass
class FittedPredictor:
    """The chosen model at one step and the evidence for it.

    Attributes:
        chosen: The candidate with the best out-of-sample rank correlation.
        candidates: Every candidate, chosen included.
        raw_rank_corr: Spearman of the raw intermediate value with the final value over the
            same labelled rows (NaN when undefined).
        n_train: Labelled rows the chosen model was fitted on (the pretrained model: its own).
        numbers: Trial numbers of the labelled rows.
        targets: Their final values.
        encoder: How hyperparameters were encoded for the model (None when not read).
    """

    chosen: Candidate
    candidates: list[Candidate]
    raw_rank_corr: float
    n_train: int
    numbers: list[int] = field(default_factory=list)
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    encoder: ParamEncoder | None = None

    @property
    def beats_raw(self) -> bool:
        """Whether the chosen model ranks the labelled rows better than the raw value does.

        A model whose rank correlation is undefined or not positive never beats it; an
        undefined raw correlation counts as 0.
        """
        model = self.chosen.rank_corr
        raw = 0.0 if math.isnan(self.raw_rank_corr) else self.raw_rank_corr
        return not math.isnan(model) and model > max(raw, 0.0)

    def predict(self, rows: Rows) -> tuple[np.ndarray, np.ndarray]:
        """Predicted final values and their standard deviations for ``rows``.

        The standard deviation combines the ensemble's spread with the out-of-sample residuals:
        ``sqrt(std_ensemble^2 + residual_rms^2)``.

        Returns:
            Two ``n`` float64 arrays in target units.
        """
        mean, std = _predict(self.chosen.model, rows, self.chosen.inputs)
        rms = self.chosen.residual_rms if math.isfinite(self.chosen.residual_rms) else 0.0
        return mean, np.sqrt(std**2 + rms**2)


def fit_predictor(
    rows: Rows,
    *,
    candidates: Sequence[tuple[str, ...]],
    make_model: Callable[[], AeLLE],
    unlabelled: Rows | None = None,
    pretrained: AeLLE | None = None,
    encoder: ParamEncoder | None = None,
    cv_folds: int = 5,
    min_rows: int = 3,
) -> FittedPredictor | None:
    """Cross-validate the candidate input sets on labelled rows and keep the best ranker.

    Each candidate is scored by the Spearman correlation of its k-fold out-of-sample
    predictions with the targets (folds by row order, ``row i`` in fold ``i % k``; leave-one-out
    when there are at most ``cv_folds`` rows), then refitted on every row. A pretrained model
    competes with its direct predictions. Ties go to the earlier candidate; the pretrained model
    comes last.

    Args:
        rows: Labelled rows (finite targets).
        candidates: Input sets to try (see :func:`input_sets`); those needing data the rows lack
            are skipped.
        make_model: Returns a new unfitted AeLLE (seeded, so fits are reproducible).
        unlabelled: Rows with NaN targets whose spectra train the reconstruction only.
        pretrained: A fitted AeLLE (see :func:`pretrained_inputs`).
        encoder: The encoder the rows' hyperparameters came from, kept for predictions.
        cv_folds: Folds of the cross-validation (>= 2).
        min_rows: Below this many labelled rows only the pretrained model is a candidate.

    Returns:
        The fitted predictor, or None when no candidate could be fitted.
    """
    n = len(rows)
    fitted: list[Candidate] = []
    if n >= max(min_rows, 3):
        k = min(cv_folds, n)
        if n - math.ceil(n / k) < 2:
            k = n  # every fit needs two labels: leave one out
        folds = np.arange(n) % k
        for inputs in candidates:
            if "spectrum" in inputs and rows.spectra is None:
                continue
            if "params" in inputs and rows.params is None:
                continue
            oof = np.full(n, np.nan)
            for f in range(k):
                held = folds == f
                model = _fit(make_model, rows.take(np.flatnonzero(~held)), unlabelled, inputs)
                oof[held] = _predict(model, rows.take(np.flatnonzero(held)), inputs)[0]
            model = _fit(make_model, rows, unlabelled, inputs)
            fitted.append(_candidate(inputs, model, oof, rows.targets))
    if pretrained is not None:
        inputs = pretrained_inputs(pretrained)
        if not ("spectrum" in inputs and rows.spectra is None):
            oof = _predict(pretrained, rows, inputs)[0] if n else np.zeros(0)
            fitted.append(_candidate(inputs, pretrained, oof, rows.targets, True))
    if not fitted:
        return None

    def key(c: Candidate) -> float:
        return -math.inf if math.isnan(c.rank_corr) else c.rank_corr

    chosen = max(fitted, key=key)  # max keeps the first of equal keys
    n_train = chosen.model.n_labelled_ if chosen.pretrained else n
    return FittedPredictor(
        chosen,
        fitted,
        rank_correlation(rows.raw, rows.targets),
        int(n_train),
        list(rows.numbers),
        rows.targets.copy(),
        encoder,
    )


def _candidate(
    inputs: tuple[str, ...],
    model: AeLLE,
    oof: np.ndarray,
    targets: np.ndarray,
    pretrained: bool = False,
) -> Candidate:
    residual = targets - oof
    rms = float(np.sqrt(np.mean(residual**2))) if residual.size else math.nan
    return Candidate(inputs, model, oof, rank_correlation(oof, targets), rms, pretrained)


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
    :func:`curve_features` at ``step``; the target is its final value.

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
    """
    direction = study.direction
    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    rows = collect_rows(completed, step=step, spectrum_step=step, direction=direction)
    if len(rows) < 2:
        raise ValueError(
            f"fit_aelle needs at least 2 completed trials with a spectrum and a value at or "
            f"before {step=}, but the study has {len(rows)}."
        )
    if use_unlabelled:
        pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
        extra = collect_rows(
            pruned,
            step=step,
            spectrum_step=step,
            direction=direction,
            labelled=False,
            exact_spectrum_step=True,
        )
        rows = Rows.concat(rows, extra)
    inputs = ("spectrum", "curve") if use_curve else ("spectrum",)
    return AeLLE(**{**aelle_params, "seed": seed}).fit(
        rows.spectra, rows.targets, rows.features(inputs)
    )
