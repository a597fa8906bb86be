"""Fit predictors of final values and choose among input sets: the core, free of Optuna.

The pruner and the sampler both predict a trial's final value from a few inputs (the Lyapunov
spectrum at a step, the learning curve up to that step, the hyperparameters). This module
cross-validates AeLLE models over candidate input sets, keeps the one that ranks the labelled
rows best, and says how well the raw intermediate value ranks the same rows. It reads
:class:`Rows`, never trials: turning trials into rows is :mod:`optuna_lyap._prediction._reader`'s
job.

Notation:
    ``n``: rows (trials) a model is fitted on; ``w``: the width of a feature column (the
    learning curve's 2, the encoded hyperparameters' ``p``); "score": a value oriented so that
    higher is better (the value for ``maximize``, its negative for ``minimize``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from optuna_lyap._prediction._gate import rank_correlation
from optuna_lyap.aelle import AeLLE

# The one input of variable width: a list of 1-D exponent arrays, read by AeLLE's encoder.
# Every other input is an ``n x w`` feature block read by its head.
SPECTRUM = "spectrum"


@dataclass
class Rows:
    """Inputs and targets of ``n`` rows (trials) at one step.

    Attributes:
        numbers: ``n`` trial numbers.
        columns: ``{input name: values}``: for ``"spectrum"`` a list of ``n`` 1-D exponent
            arrays (nats per step), for any other input an ``n x w`` float64 array (NaN where
            unknown). An input the rows do not carry is absent.
        raw: ``n`` intermediate values at the step (NaN where there is none): what a model has
            to out-rank.
        targets: ``n`` final values; NaN for unlabelled rows.
        groups: ``n`` hashable keys, equal for rows of one configuration (the reader uses the
            trial's params), or None: every row is its own configuration. Cross-validation
            keeps a configuration's rows in one fold, so no row is predicted from its copies.
    """

    numbers: list[int]
    columns: dict[str, Any]
    raw: np.ndarray
    targets: np.ndarray
    groups: list[Hashable] | None = None

    @classmethod
    def unlabelled(cls, numbers: list[int], columns: dict[str, Any]) -> Rows:
        """Rows to predict: NaN raw values and targets."""
        n = len(numbers)
        return cls(numbers, columns, np.full(n, np.nan), np.full(n, np.nan))

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def spectra(self) -> list[np.ndarray] | None:
        """The ``n`` spectra, or None when the rows carry none."""
        return self.columns.get(SPECTRUM)

    def has(self, inputs: Sequence[str]) -> bool:
        """Whether the rows carry every input of ``inputs``."""
        return all(name in self.columns for name in inputs)

    def take(self, index: np.ndarray) -> Rows:
        """The rows at ``index`` (an int array)."""
        columns = {
            name: [values[i] for i in index] if name == SPECTRUM else values[index]
            for name, values in self.columns.items()
        }
        groups = None if self.groups is None else [self.groups[i] for i in index]
        return Rows(
            [self.numbers[i] for i in index],
            columns,
            self.raw[index],
            self.targets[index],
            groups,
        )

    def group_keys(self) -> list[Hashable]:
        """The ``n`` group keys; each row its own (its trial number) where none were given."""
        if self.groups is None:
            return [f"trial {number}" for number in self.numbers]
        return list(self.groups)

    @staticmethod
    def concat(a: Rows, b: Rows) -> Rows:
        """``a``'s rows then ``b``'s, with the inputs both carry."""
        columns = {
            name: a.columns[name] + b.columns[name]
            if name == SPECTRUM
            else np.concatenate([a.columns[name], b.columns[name]])
            for name in a.columns
            if name in b.columns
        }
        groups = None if a.groups is None and b.groups is None else a.group_keys() + b.group_keys()
        return Rows(
            a.numbers + b.numbers,
            columns,
            np.concatenate([a.raw, b.raw]),
            np.concatenate([a.targets, b.targets]),
            groups,
        )

    def features(self, inputs: Sequence[str]) -> np.ndarray | None:
        """The ``n x f`` head features of an input set (its non-spectrum inputs, in order)."""
        blocks = [self.columns[name] for name in inputs if name != SPECTRUM]
        return np.concatenate(blocks, axis=1) if blocks else None


def refit_size(n: int, start: int, growth: float) -> int:
    """How many of ``n`` labelled trials the model is fitted on: the refit schedule.

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


def input_sets(enabled: Sequence[str], select: bool) -> list[tuple[str, ...]]:
    """The candidate input sets: each enabled input alone, then all of them together.

    Args:
        enabled: Input names, in the order their features are concatenated.
        select: False makes the union the only candidate.

    Raises:
        ValueError: When ``enabled`` is empty.
    """
    enabled = tuple(enabled)
    if not enabled:
        raise ValueError(f"At least one input must be enabled, but got {enabled=}.")
    if not select or len(enabled) == 1:
        return [enabled]
    return [(name,) for name in enabled] + [enabled]


@dataclass(frozen=True)
class FitSettings:
    """Everything besides the rows that decides a fit: fits with equal settings on equal rows
    give equal predictors.

    Attributes:
        candidates: Input sets to try (see :func:`input_sets`).
        aelle_params: Keyword arguments of the AeLLE models (``seed`` is set by ``seed``).
        seed: Seed of every model fit.
        cv_folds: Folds of the cross-validation (>= 2).
        min_rows: Below this many labelled rows only a pretrained model is a candidate.
    """

    candidates: tuple[tuple[str, ...], ...]
    aelle_params: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 0
    cv_folds: int = 5
    min_rows: int = 3

    def make_model(self) -> AeLLE:
        """A new unfitted AeLLE."""
        return AeLLE(**{**self.aelle_params, "seed": self.seed})

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON-able values, with how folds are drawn (so a predictor stored
        by a version that folded by row order is not taken for one of this version)."""
        return {**asdict(self), "folds": "by configuration"}


def _predict(model: AeLLE, rows: Rows, inputs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    spectra = rows.spectra if SPECTRUM in inputs else None
    mean, std = model.predict(spectra, rows.features(inputs), return_std=True)
    return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)


def _fit(
    make_model: Callable[[], AeLLE], rows: Rows, unlabelled: Rows | None, inputs: Sequence[str]
) -> AeLLE:
    if unlabelled is not None and len(unlabelled) and SPECTRUM in inputs:
        rows = Rows.concat(rows, unlabelled)
    spectra = rows.spectra if SPECTRUM in inputs else None
    return make_model().fit(spectra, rows.targets, rows.features(inputs))


@dataclass(frozen=True)
class Candidate:
    """How one input set's model ranks the labelled rows out of sample.

    Attributes:
        inputs: The input set, e.g. ``("spectrum", "curve")``.
        rank_corr: Spearman correlation of the out-of-sample predictions (k-fold, or the
            pretrained model's, which never saw these trials) with the targets; NaN when
            undefined.
        residual_rms: Root mean square of ``targets - out-of-sample predictions``, target
            units; NaN without labelled rows.
        pretrained: Whether this is the pretrained model.
        oof: The ``n`` out-of-sample predictions of the labelled rows, in row order (k-fold,
            or the pretrained model's direct ones), target units; what ``rank_corr`` and
            ``residual_rms`` summarise, kept for evidence that pairs them with other scores of
            the same rows (e.g. a bootstrap against the raw value).
    """

    inputs: tuple[str, ...]
    rank_corr: float
    residual_rms: float
    pretrained: bool = False
    oof: np.ndarray = field(default_factory=lambda: np.zeros(0), compare=False, repr=False)


@dataclass
class FittedPredictor:
    """The chosen model at one step and the evidence for it.

    Attributes:
        model: The chosen candidate's AeLLE, fitted on every labelled row (or the pretrained
            one).
        chosen: The candidate with the best out-of-sample rank correlation.
        candidates: Every candidate, chosen included, in the order they were tried.
        raw_rank_corr: Spearman of the raw intermediate value with the final value over the
            same labelled rows (NaN when undefined).
        n_rows: Labelled rows the candidates were cross-validated on (0: the pretrained model
            alone).
        n_train: Labelled rows the chosen model was fitted on (the pretrained model: its own).
        encoder: How hyperparameters were encoded for the model (None when not read); opaque
            here, kept for whoever builds rows to predict.
        numbers: The ``n_rows`` labelled rows' trial numbers, in row order.
        targets: Their ``n_rows`` final values (float64, target units).
        raw: Their ``n_rows`` raw intermediate values at the step (float64, NaN where none).
        groups: Their ``n_rows`` configuration keys (:attr:`Rows.groups`), or None where every
            row is its own (a predictor stored before keys were kept).
        evidence: Numbers a consumer derived from this fit once, when it was fitted (e.g. the
            pruner's gate share), stored and shared with it; JSON floats by name.
    """

    model: AeLLE
    chosen: Candidate
    candidates: list[Candidate]
    raw_rank_corr: float
    n_rows: int
    n_train: int
    encoder: Any = None
    numbers: list[int] = field(default_factory=list)
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    raw: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    evidence: dict[str, float] = field(default_factory=dict)
    groups: list[Hashable] | None = None

    @property
    def beats_raw(self) -> bool:
        """Whether the chosen model ranks the labelled rows better than the raw value does.

        A model whose rank correlation is undefined or not positive never beats it; an
        undefined raw correlation counts as 0.
        """
        model = self.chosen.rank_corr
        raw = 0.0 if math.isnan(self.raw_rank_corr) else self.raw_rank_corr
        return not math.isnan(model) and model > max(raw, 0.0)

    def predict(self, rows: Rows, *, add_residuals: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Predicted final values and their standard deviations for ``rows``.

        The standard deviation combines the ensemble's spread with the out-of-sample
        residuals, ``sqrt(std_ensemble^2 + residual_rms^2)`` (the residual term is 0 where it
        is undefined, e.g. for a pretrained model with no labelled rows to check it on).

        Args:
            rows: The rows to predict; they must carry the chosen input set.
            add_residuals: False gives the ensemble's spread alone, for a caller that adds
                its own measure of the residuals.

        Returns:
            Two ``n`` float64 arrays in target units.
        """
        mean, std = _predict(self.model, rows, self.chosen.inputs)
        if not add_residuals:
            return mean, std
        rms = self.chosen.residual_rms if math.isfinite(self.chosen.residual_rms) else 0.0
        return mean, np.sqrt(std**2 + rms**2)


def fit_predictor(
    rows: Rows,
    *,
    settings: FitSettings,
    unlabelled: Rows | None = None,
    pretrained: tuple[AeLLE, tuple[str, ...]] | None = None,
    encoder: Any = None,
) -> FittedPredictor | None:
    """Cross-validate the candidate input sets on labelled rows and keep the best ranker.

    Each candidate is scored by the Spearman correlation of its k-fold out-of-sample
    predictions with the targets, then refitted on every row. Folds are by configuration
    (``rows.groups``), in order of first appearance: configuration ``j`` in fold ``j % k``, so
    the rows of a configuration trained more than once are never predicted from each other;
    leave one configuration out when a fold's complement would hold fewer than two. With no
    groups, every row is its own configuration (``row i`` in fold ``i % k``). A
    pretrained model competes with its direct predictions. Ties go to the earlier candidate;
    the pretrained model comes last.

    Args:
        rows: Labelled rows (finite targets).
        settings: The candidate input sets (those needing inputs the rows do not carry are
            skipped), the models, folds and minimum rows.
        unlabelled: Rows with NaN targets whose spectra train the reconstruction only.
        pretrained: A fitted AeLLE and the input set it reads.
        encoder: Kept on the result for whoever builds rows to predict.

    Returns:
        The fitted predictor, or None when no candidate could be fitted.
    """
    n = len(rows)
    fitted: list[tuple[Candidate, AeLLE]] = []
    make_model = settings.make_model
    index: dict[Hashable, int] = {}
    config = np.array([index.setdefault(g, len(index)) for g in rows.group_keys()], dtype=int)
    n_configs = len(index)
    if n >= max(settings.min_rows, 3) and n_configs >= 3:
        k = min(settings.cv_folds, n_configs)
        if n_configs - math.ceil(n_configs / k) < 2:
            k = n_configs  # every fit needs two configurations: leave one out
        folds = config % k
        for inputs in settings.candidates:
            if not rows.has(inputs):
                continue
            oof = np.full(n, np.nan)
            for f in range(k):
                held = folds == f
                model = _fit(make_model, rows.take(np.flatnonzero(~held)), unlabelled, inputs)
                oof[held] = _predict(model, rows.take(np.flatnonzero(held)), inputs)[0]
            model = _fit(make_model, rows, unlabelled, inputs)
            fitted.append((_candidate(inputs, oof, rows.targets), model))
    if pretrained is not None:
        model, inputs = pretrained
        if rows.has(inputs):
            oof = _predict(model, rows, inputs)[0] if n else np.zeros(0)
            fitted.append((_candidate(inputs, oof, rows.targets, True), model))
    if not fitted:
        return None

    def key(pair: tuple[Candidate, AeLLE]) -> float:
        corr = pair[0].rank_corr
        return -math.inf if math.isnan(corr) else corr

    chosen, model = max(fitted, key=key)  # max keeps the first of equal keys
    n_train = model.n_labelled_ if chosen.pretrained else n
    return FittedPredictor(
        model,
        chosen,
        [c for c, _ in fitted],
        rank_correlation(rows.raw, rows.targets),
        n,
        int(n_train),
        encoder,
        list(rows.numbers),
        rows.targets.astype(np.float64, copy=True),
        rows.raw.astype(np.float64, copy=True),
        groups=rows.group_keys(),
    )


def _candidate(
    inputs: tuple[str, ...], oof: np.ndarray, targets: np.ndarray, pretrained: bool = False
) -> Candidate:
    residual = targets - oof
    rms = float(np.sqrt(np.mean(residual**2))) if residual.size else math.nan
    return Candidate(
        tuple(inputs), rank_correlation(oof, targets), rms, pretrained, oof.astype(np.float64)
    )


def pretrained_inputs(model: AeLLE, feature_widths: Mapping[str, int]) -> tuple[str, ...]:
    """The input set a fitted AeLLE reads: the spectrum if it reads one, and the one feature
    input whose width equals its feature count.

    Args:
        model: A fitted AeLLE.
        feature_widths: ``{input name: width}`` of the feature inputs it may read, in order
            of preference.

    Raises:
        ValueError: When the model is not fitted or reads a feature count no input has.
    """
    if not hasattr(model, "network_"):
        raise ValueError("A pretrained AeLLE must be fitted; call fit() or AeLLE.load().")
    inputs: tuple[str, ...] = (SPECTRUM,) if model.uses_spectra_ else ()
    if model.n_features_in_ == 0:
        return inputs
    for name, width in feature_widths.items():
        if model.n_features_in_ == width:
            return (*inputs, name)
    raise ValueError(
        f"A pretrained AeLLE must read spectra with no features or with one of "
        f"{dict(feature_widths)} features, but got one fitted with {model.n_features_in_} "
        "features."
    )
