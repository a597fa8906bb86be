"""``LyapunovPruner``: successive halving whose ranks come from a model where it earns them."""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._checks import (
    InvalidParameterError,
    check_int,
    check_real,
)
from optuna_lyap._prediction import (
    INPUTS,
    SPECTRUM,
    FitSettings,
    FittedPredictor,
    PredictorCache,
    ReadContext,
    configuration_key,
    curve_features,
    fit_predictor,
    input_sets,
    param_encoder,
    pretrained_inputs,
    query_rows,
    read_rows,
    training_set,
    unlabelled_trials,
)
from optuna_lyap._storage import record_prediction, spectrum_at, spectrum_key
from optuna_lyap.aelle import AeLLE
from optuna_lyap.aelle._estimator import check_aelle_params
from optuna_lyap.pruners import _rule

_CACHE_SIZE = 64

# Arguments of the threshold rule, removed: replays on three recorded tables showed it needing
# up to twice successive halving's epochs to a top-2% trial (docs/benchmarks.md, round 8).
_REMOVED = ("quantile", "confidence", "min_unpruned_share", "require_beating_raw")

# Samplers that draw each configuration without reading earlier results: later trials then come
# from the same distribution as the completed trials the prior's gate was judged on.
_INDEPENDENT_SAMPLERS: tuple[type, ...] = (
    optuna.samplers.RandomSampler,
    optuna.samplers.QMCSampler,
    optuna.samplers.GridSampler,
    optuna.samplers.BruteForceSampler,
)


class PriorBlendWarning(UserWarning):
    """``LyapunovPruner(prior_weight > 0)`` blends the prior into the rungs of a study whose
    sampler reads earlier results, where the replays found the blend pruning top
    configurations (``benchmarks/results/rung_decisions.md``). Filter it by this category."""


def draws_independently(sampler: optuna.samplers.BaseSampler) -> bool:
    """Whether ``sampler`` picks configurations without reading earlier trials' results.

    A sampler with a ``draws_independently()`` method answers for itself (the CLI's
    per-trial seeded sampler asks the sampler it wraps); an answer other than a bool counts
    as False. Otherwise True for Optuna's ``RandomSampler``, ``QMCSampler``, ``GridSampler``
    and ``BruteForceSampler`` (or a subclass), and for a ``PartialFixedSampler`` around one
    (its fixed values read no results). Any other sampler, TPE, CMA-ES, NSGA-II, GP and
    ``LyapunovSampler`` included, counts as adaptive.

    Args:
        sampler: The study's sampler (``study.sampler``).

    Returns:
        Whether the completed trials are a sample of the same distribution as later ones.
    """
    own = getattr(sampler, "draws_independently", None)
    if callable(own):
        answer = own()
        return isinstance(answer, (bool, np.bool_)) and bool(answer)
    if isinstance(sampler, optuna.samplers.PartialFixedSampler):
        return draws_independently(sampler._base_sampler)
    return isinstance(sampler, _INDEPENDENT_SAMPLERS)


def sampler_name(sampler: optuna.samplers.BaseSampler) -> str:
    """The class name of ``sampler`` for messages, with what a wrapper wraps:
    ``"PartialFixedSampler(TPESampler)"``; a sampler may name itself with a
    ``sampler_name()`` method (the CLI's per-trial seeded sampler names its base)."""
    own = getattr(sampler, "sampler_name", None)
    if callable(own):
        return str(own())
    if isinstance(sampler, optuna.samplers.PartialFixedSampler):
        return f"PartialFixedSampler({sampler_name(sampler._base_sampler)})"
    return type(sampler).__name__


def _is_check_step(
    step: int, reported_steps: Sequence[int], n_warmup_steps: int, interval_steps: int
) -> bool:
    """Whether ``step`` is the first reported step of its pruning interval (as in Optuna)."""
    check = (step - n_warmup_steps) // interval_steps * interval_steps + n_warmup_steps
    previous = max((s for s in reported_steps if s != step), default=-1)
    return previous < check


def _sign(direction: StudyDirection) -> float:
    """+1 when maximising, -1 when minimising: ``sign * value`` is a score (higher is better)."""
    return 1.0 if direction == StudyDirection.MAXIMIZE else -1.0


# Small AeLLE ensembles, as the benchmarks fit them (benchmarks/rank_by_epoch.py, priors).
_DEFAULT_AELLE_PARAMS: dict[str, Any] = {"n_models": 2, "max_steps": 150}
# The pruner's own fits: fewer training steps than the benchmarks' models, so that fits,
# predictions and decisions cost under a tenth of the training time a study spends
# (benchmarks/replay.py measures it on the recorded tables).
_PRUNER_AELLE_PARAMS: dict[str, Any] = {"n_models": 2, "max_steps": 100}


@dataclass(frozen=True)
class _Model:
    """The predictor fitted for one step, where its rows are read, and its cache key."""

    key: tuple[Any, ...]
    fitted: FittedPredictor
    spectrum_step: int | None

    @property
    def gate_share(self) -> float:
        return self.fitted.evidence.get("gate_share", 0.0)

    @property
    def spread(self) -> float:
        """Robust spread of the out-of-sample residuals (target units; NaN where unknown)."""
        return self.fitted.evidence.get("residual_spread", math.nan)


@dataclass(frozen=True)
class _Unfitted:
    """No model fitted for one step, because none could pass the gate: on its training set
    even perfect predictions out-rank the raw value in fewer resamples than the gate asks
    (:func:`_rule.gate_share_bound`), so a fit would change no decision."""

    bound: float
    n_train: int


def gate_evidence(
    fitted: FittedPredictor, direction: StudyDirection, *, n_resamples: int, seed: int
) -> dict[str, float]:
    """The gate's evidence for a fitted predictor, computed once where it is fitted.

    Args:
        fitted: The predictor, with its chosen candidate's out-of-sample predictions and the
            labelled rows' targets and raw values.
        direction: The study's direction.
        n_resamples: Resamples of the paired bootstrap (see :func:`_rule.gate_share`).
        seed: Seed of the bootstrap.

    Returns:
        ``gate_share``: the share of paired bootstrap resamples of the labelled rows in which
        the out-of-sample predictions out-rank the raw values (0 with fewer than 3 rows), and
        ``residual_spread``: the robust spread of ``targets - oof`` (:func:`_rule.robust_spread`,
        NaN without rows).
    """
    oof, targets, raw = fitted.chosen.oof, fitted.targets, fitted.raw
    share = 0.0
    if len(oof) == len(targets) == len(raw) and len(targets) >= 3:
        sign = _sign(direction)
        share = _rule.gate_share(
            sign * oof,
            sign * raw,
            sign * targets,
            n_resamples=n_resamples,
            seed=seed,
            groups=fitted.groups,
        )
    spread = _rule.robust_spread(targets - oof) if len(oof) == len(targets) else math.nan
    return {"gate_share": float(share), "residual_spread": float(spread)}


# Rules under which a model, not the raw value, ranked the competitors.
_MODEL_RULES = ("model_rung", "prior_rung", "blend_rung")


@dataclass(frozen=True)
class _PriorView:
    """The prior at one step: the trials that reported it, and predictions made on demand.

    Attributes:
        key: ``(step, numbers of the trials that reported it)``: what the predictions depend on.
        step: The step.
        direction: The study's direction.
        reached: The trials that reported ``step``, by number.
        batches: Predictions by batch (see :meth:`LyapunovPruner._prior_batch`), shared with
            the cache.
    """

    key: tuple[Any, ...]
    step: int
    direction: StudyDirection
    reached: list[FrozenTrial]
    batches: dict[tuple[int, ...], dict[int, Any]]

    @property
    def completed(self) -> list[FrozenTrial]:
        return [t for t in self.reached if t.state == TrialState.COMPLETE and t.value is not None]


@dataclass(frozen=True)
class _ValuesOnly:
    """A trial as the prior's within-study curve ranks read it, and nothing else.

    The prior ranks each trial's curve among every trial given; it reads the hyperparameters
    and the spectrum (the costly part: decoding and resampling) of each. A trial whose own
    prediction is not needed is passed as this, so it shapes the ranks but is not predicted.
    """

    number: int
    intermediate_values: Mapping[int, float]
    user_attrs: Mapping[str, Any]
    state: TrialState
    value: float | None
    params: Mapping[str, Any] = field(default_factory=dict)
    system_attrs: Mapping[str, Any] = field(default_factory=dict)


def _values_only(trial: FrozenTrial) -> _ValuesOnly:
    return _ValuesOnly(
        trial.number, trial.intermediate_values, trial.user_attrs, trial.state, trial.value
    )


def _resolve_prior(prior: Any) -> Any:
    """The ``TrialPrior`` for the ``prior`` argument (see ``TrialPrior.resolve``); an object
    that already predicts trials (``predict_trials``) is used as it is."""
    if prior is None:
        return None
    if not isinstance(prior, (str, os.PathLike)) and hasattr(prior, "predict_trials"):
        return prior
    from optuna_lyap._prediction._prior import TrialPrior

    return TrialPrior.resolve(prior)


class LyapunovPruner(BasePruner):
    """Asynchronous successive halving, ranking by a predicted final value where that ranks better.

    The budget is successive halving's (Li et al. 2020, "A System for Massively Parallel
    Hyperparameter Tuning"), with the parameters and the semantics of Optuna's
    :class:`~optuna.pruners.SuccessiveHalvingPruner`: rung ``k`` closes at step
    ``min_resource * reduction_factor ** (min_early_stopping_rate + k)``; a trial reaching it
    stores its value there as the system attr ``completed_rung_k`` and is promoted when its
    score is among the best ``1 / reduction_factor`` of every trial that reached the rung. No
    trial is trained to the end before pruning starts.

    The score is the raw intermediate value, unless the study's own evidence says a model
    ranks the completed trials better. At a rung whose step is a model step (by default, a
    step at which the trial reported a spectrum, see :func:`~optuna_lyap.report_spectrum`), an
    :class:`~optuna_lyap.AeLLE` is fitted on the completed trials (their spectra, learning
    curves up to the step and final values; the candidate input sets are cross-validated and
    the best ranker kept). The model's out-of-sample predictions and the raw values at the step
    are compared in a paired bootstrap of the completed trials: the gate opens when the
    model's Spearman correlation with the final values beats the raw value's (and 0) in at
    least ``gate`` of the resamples. Then every competitor at the rung is ranked by its
    predicted final value instead. With no model, or a closed gate, the decisions are exactly
    ``SuccessiveHalvingPruner``'s. An optional step-0 screen (``screen_fraction``) keeps the
    best share of trials by prediction at the untrained network, behind the same gate.

    A prior trained across many recorded studies ships with the package (``prior``; a
    ``PriorBundle`` of ``optuna_lyap.aelle._prior``): it predicts each trial's final
    *quantile* within the study (in ``(0, 1)``, 1 is best, whatever the direction) from its
    generic hyperparameters, its spectrum and its learning curve ranked within the study, from the
    first trial on: at step 0 and at every rung step, every trial that reported the step is
    predicted and the record carries the judged trial's. At a rung (and at the screen) the
    prior competes with the in-study model under the same gate: its predictions of the
    completed trials (out of sample, as it never saw the study) and their raw values at the
    step go through the same paired bootstrap against their final values (once
    ``max(n_startup_trials, 3)`` completed trials have a prediction; before, the gate is not
    judged and stays shut). The competitor ranking the rung
    is the one with the larger gate share (the in-study model on a tie) where that share is at
    least ``gate``; else the raw value. By default (``prior_decides=False``) the prior's gate
    is not judged: the prior predicts every trial, and blends where ``prior_weight`` asks, but
    never ranks a rung alone. In replays over 300 seeds per table with random sampling its open
    gate reached the first top-2% trial sooner than successive halving in fewer seeds than later
    on one table (sines: 1 against 2) and in none on another (copy), and with TPE it pruned
    top-2% trials that the raw value kept (``docs/benchmarks.md``, rounds 15-16).
    ``prior_decides=None`` judges it where the study's sampler draws configurations
    independently of earlier results (``RandomSampler``, ``QMCSampler``, ``GridSampler``,
    ``BruteForceSampler``), ``True`` with any sampler.

    At each decision point (a rung, the screen, and step 0 where the prior predicts) a record
    is written to the trial (see :func:`optuna_lyap.pruners.load_predictions`): ``pruned``,
    ``rule`` (``"rung"``, ``"model_rung"``, ``"prior_rung"``, ``"blend_rung"``, ``"screen"``,
    ``"prior_screen"``, ``"fallback"``, or ``"predict"``: the prior predicted at step 0 and
    nothing was decided), ``step``, ``rung``, ``scorer`` (what ranked a rung or the screen:
    ``"raw"``, ``"study"``, ``"prior"`` or ``"blend"``), ``score_kind`` (``"raw"``,
    ``"predicted"``, ``"quantile"`` or ``"blend"``), ``score`` (in the study's units; a
    quantile for the prior; a blend score in ``(0, 1]`` for the blend, with ``prior_weight``
    beside it), ``rank`` (1 is best),
    ``n_competitors``, ``n_promoted``, ``bar`` (the worst promoted competitor's score: the
    number to beat), ``direction``; where the in-study model predicted: ``predicted``,
    ``predicted_std``, ``inputs``, ``rank_corr``, ``raw_rank_corr``, ``gate_share``,
    ``gate_open``, ``n_train``; where the prior predicted: ``prior_quantile``,
    ``prior_top10`` (calibrated probability of ending in the study's top 10%, NaN where the
    prior has no calibration), ``prior_inputs``, ``prior_model_step``, ``prior_digest`` and,
    where its gate was judged, ``prior_gate_share`` and ``prior_gate_open``, or where the
    prior may not decide in the study (see ``prior_decides``), ``prior_decides`` (false); with a
    fallback,
    ``fallback`` (its class name). The numeric user attrs ``lyap_predicted``,
    ``lyap_predicted_std``, ``lyap_n_train``, ``lyap_prior_quantile`` and ``lyap_prior_top10``
    follow the record.

    Decisions depend only on the storage's contents and ``seed``: each model is fitted once
    per training set (see ``refit_growth``) by one worker, with the gate's seeded bootstrap,
    and stored in the study for the others (see ``artifact_store``), which load it and read
    the same gate share. The pruner can be shared by threads (``n_jobs > 1``) and pickled (the
    in-process cache is dropped).

    Example:

        .. code-block:: python

            import optuna
            import optuna_lyap


            def objective(trial):
                model, optimizer = build(trial)
                monitor = optuna_lyap.LyapunovMonitor(trial, probe_inputs, steps=(0, 1))
                monitor.step(model, evaluate(model), 0)  # the untrained network
                for epoch in range(1, 11):
                    train_epoch(model, optimizer)
                    monitor.step(model, evaluate(model), epoch)
                return evaluate(model)


            study = optuna.create_study(
                direction="maximize", pruner=optuna_lyap.LyapunovPruner()
            )
            study.optimize(objective, n_trials=50)

    Args:
        n_startup_trials: Completed trials needed before a model is fitted, and completed
            trials with a prediction before the prior's gate is judged (the pruning itself
            starts at once, as successive halving's does; the gate needs at least 3). At
            least 0.
        n_warmup_steps: No trial is judged before this step (the prior still predicts step 0).
        interval_steps: Steps between checks, offset by the warm-up (as in Optuna's pruners).
        min_resource: Steps of the first rung (``r``), or ``"auto"``: the longest completed
            trial's last step / 100, at least 1, as
            :class:`~optuna.pruners.SuccessiveHalvingPruner`'s default. Ours defaults to 1:
            ``"auto"`` trains every trial to the end until one has completed (a startup trial)
            and gives 1 anyway for trials under 200 steps, e.g. epochs.
        reduction_factor: ``eta``, at least 2: a rung promotes the best ``1 / eta``.
        min_early_stopping_rate: ``s``, at least 0: rung 0 closes at ``r * eta ** s``.
        bootstrap_count: Trials that must have completed a rung before any is promoted past
            it (until then every trial reaching it is pruned). Needs an integer
            ``min_resource`` when positive.
        gate: Share of paired bootstrap resamples in which the model must out-rank the raw
            value for its predictions to be ranked instead. In ``(0, 1]``; default 0.9.
        n_resamples: Bootstrap resamples of the gate. At least 1.
        screen_fraction: At step 0 (the untrained network), keep only this best share of the
            trials by prediction when the gate at step 0 is open. None (the default) never
            screens. In ``(0, 1]``.
        fallback: A pruner that replaces successive halving on the raw value: it is called at
            every check step of every trial (so its bookkeeping is what it would be alone) and
            decides wherever the model does not. Our rungs then keep their values under
            ``optuna_lyap:completed_rung_k``. None (the default): successive halving decides.
        aelle: A fitted :class:`~optuna_lyap.AeLLE` or a path written by ``AeLLE.save``, e.g.
            fitted on an earlier study of the same task family with :func:`fit_aelle`. Once
            ``n_startup_trials`` have completed it competes with the models fitted on the
            study's own trials, and passes the same gate.
        aelle_params: Keyword arguments of the :class:`~optuna_lyap.AeLLE` models the pruner
            fits (``seed`` is set by ``seed``). None uses 2 members and 100 steps.
        use_spectrum: Offer the spectrum as an input.
        use_curve: Offer the learning curve (latest and best value up to the step).
        use_params: Offer the hyperparameters of the completed trials' common search space.
        select_inputs: Cross-validate each offered input alone and all together and keep the
            best; False fits only all offered inputs together.
        cv_folds: Folds of the cross-validation giving the out-of-sample predictions the gate
            judges. Folds are by configuration (trials with equal params share one), leaving
            one configuration out with fewer completed configurations. At least 2.
        use_unlabelled: Also train the autoencoder's reconstruction on the spectra that pruned
            trials reported at the same step.
        model_steps: The steps at which a model is consulted (rungs closing there, and step 0
            for the screen). None: the steps at which the judged trial reported a spectrum.
        refit_growth: The model is fitted on the lowest-numbered ``m`` completed trials, ``m``
            on the schedule ``n_startup_trials``, then ``max(m + 1, ceil(m * refit_growth))``.
            The default 2 refits three times over the first 80 completed trials; 1 refits
            whenever a trial completes. At least 1.
        seed: Seed of every model fit and of the gate's bootstrap.
        artifact_store: An :mod:`optuna.artifacts` store (e.g.
            ``optuna.artifacts.FileSystemArtifactStore``) that every worker can read, for the
            fitted models; None stores them in the study's system attrs (in slices under
            MySQL's 64 KiB cap). Give one with a journal storage, which replays every attr
            write in every worker.
        prior: The cross-task prior: ``"shipped"`` (the default, the package's trained
            bundle), a ``PriorBundle``, a path to one saved with ``PriorBundle.save``, or None
            (no prior: the decisions are those without it). Anything else goes through
            ``TrialPrior.resolve``; an object with ``TrialPrior``'s ``predict_trials`` is used
            as given. It is consulted at step 0 (also within the warm-up, where it predicts
            and decides nothing) and at every rung step whatever ``model_steps`` says (where
            the trial is checked: from ``n_warmup_steps`` on, every ``interval_steps``); a
            trial it cannot read (no hyperparameters under names
            ``network_of`` knows and no spectrum) simply gets no prediction.
        prior_weight: At a rung where no gate opens and the prior predicts the judged trial,
            rank the competitors it predicts by ``(1 - w) * rank by raw value + w * rank by
            the prior's quantile`` (ranks as fractions of the competitors, see
            ``_rule.blend_ranks``) instead of the raw value alone: a blend trusted on the
            evidence of held-out tasks (``docs/benchmarks.md``, rounds 12-13), not on the study's
            own, which arrives too late. In ``[0, 1]``; 0 (the default) never blends, so the
            decisions stay successive halving's wherever the gates are shut. A trial the prior
            cannot read, or whose value is infinite, is ranked by its raw value alone (the
            first unreadable one raises a ``RuntimeWarning``).
        prior_decides: Whether the prior may rank a rung (or the screen) by itself where its
            gate opens. False (the default): never. None: only with a sampler that draws
            configurations independently of earlier results (:func:`draws_independently`;
            e.g. ``RandomSampler``, not ``TPESampler``), where the completed trials the gate
            judges are a sample of the later competitors. True: with any sampler. Where it
            may not, the prior's gate is not judged, and the decisions are those of a shut
            gate.

    Raises:
        ValueError: For an argument out of its range, ``bootstrap_count > 0`` with
            ``min_resource="auto"``, a ``prior`` that is no bundle (naming it), or
            ``prior_weight > 0`` or ``prior_decides=True`` with ``prior=None``, or a
            ``prior_decides`` other than True, False or None.
        TypeError: For an argument the pruner does not take. The threshold rule's
            ``quantile``, ``confidence``, ``min_unpruned_share`` and ``require_beating_raw``
            are accepted with a ``FutureWarning`` and ignored.
    """

    def __init__(
        self,
        n_startup_trials: int = 10,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        *,
        min_resource: int | str = 1,
        reduction_factor: int = 4,
        min_early_stopping_rate: int = 0,
        bootstrap_count: int = 0,
        gate: float = 0.9,
        n_resamples: int = 500,
        screen_fraction: float | None = None,
        fallback: BasePruner | None = None,
        aelle: AeLLE | str | os.PathLike[str] | None = None,
        aelle_params: Mapping[str, Any] | None = None,
        use_spectrum: bool = True,
        use_curve: bool = True,
        use_params: bool = False,
        select_inputs: bool = True,
        cv_folds: int = 3,
        use_unlabelled: bool = True,
        model_steps: Iterable[int] | None = None,
        refit_growth: float = 2.0,
        seed: int = 0,
        artifact_store: Any = None,
        prior: Any = "shipped",
        prior_weight: float = 0.0,
        prior_decides: bool | None = False,
        **removed: Any,
    ) -> None:
        for name in removed:
            if name not in _REMOVED:
                raise TypeError(f"LyapunovPruner() got an unexpected keyword argument {name!r}.")
            warnings.warn(
                f"`{name}` belonged to the threshold rule, which was removed: LyapunovPruner is "
                "successive halving ranking by the model where it ranks better, and ignores "
                f"{name}={removed[name]!r}.",
                FutureWarning,
                stacklevel=2,
            )
        self._n_startup_trials = check_int("n_startup_trials", n_startup_trials, 0)
        self._n_warmup_steps = check_int("n_warmup_steps", n_warmup_steps, 0)
        self._interval_steps = check_int("interval_steps", interval_steps, 1)
        if min_resource != "auto":
            check_int("min_resource", min_resource, 1)
        self._min_resource: int | None = None if min_resource == "auto" else int(min_resource)
        self._reduction_factor = check_int("reduction_factor", reduction_factor, 2)
        self._min_early_stopping_rate = check_int(
            "min_early_stopping_rate", min_early_stopping_rate, 0
        )
        self._bootstrap_count = check_int("bootstrap_count", bootstrap_count, 0)
        if self._bootstrap_count > 0 and self._min_resource is None:
            raise ValueError(
                "`bootstrap_count > 0` needs an integer `min_resource` (not 'auto'), but got "
                f"{bootstrap_count=} and {min_resource=}."
            )
        self._gate = check_real("gate", gate, 0.0, 1.0)
        if self._gate == 0.0:
            raise ValueError(f"`gate` must be in (0, 1], but got {gate=}.")
        self._n_resamples = check_int("n_resamples", n_resamples, 1)
        self._screen_fraction = (
            None
            if screen_fraction is None
            else check_real("screen_fraction", screen_fraction, 0.0, 1.0)
        )
        if self._screen_fraction == 0.0:
            raise ValueError(f"`screen_fraction` must be in (0, 1], but got {screen_fraction=}.")
        self._cv_folds = check_int("cv_folds", cv_folds, 2)
        self._refit_growth = check_real("refit_growth", refit_growth, 1.0, math.inf)
        self._seed = check_int("seed", seed, 0)
        self._model_steps = (
            None
            if model_steps is None
            else frozenset(check_int("model_steps", s, 0) for s in model_steps)
        )
        if fallback is not None and not isinstance(fallback, BasePruner):
            raise ValueError(f"`fallback` must be a BasePruner or None, but got {fallback=}.")
        self._fallback = fallback
        self._rung_prefix = (
            "completed_rung_" if fallback is None else "optuna_lyap:completed_rung_"
        )
        offered = ((SPECTRUM, use_spectrum), ("curve", use_curve), ("params", use_params))
        enabled = [name for name, on in offered if on]
        if not enabled:
            raise ValueError("At least one of use_spectrum, use_curve, use_params must be True.")
        self._candidates = input_sets(enabled, select_inputs)
        self._use_params = use_params
        self._use_unlabelled = bool(use_unlabelled)
        self._aelle_params = check_aelle_params(
            _PRUNER_AELLE_PARAMS if aelle_params is None else aelle_params
        )

        if isinstance(aelle, (str, os.PathLike)):
            aelle = AeLLE.load(aelle)
        if aelle is not None:
            if not isinstance(aelle, AeLLE):
                raise ValueError(
                    f"`aelle` must be a fitted AeLLE, a path to one, or None, but got {aelle=}."
                )
            pretrained_inputs(aelle)  # validates it
        self._pretrained = aelle
        self._artifact_store = artifact_store
        # A prior named by a string or path is loaded again after unpickling, not pickled.
        self._prior_spec = prior if isinstance(prior, (str, os.PathLike)) else None
        self._prior = _resolve_prior(prior)
        self._prior_weight = check_real("prior_weight", prior_weight, 0.0, 1.0)
        if self._prior_weight > 0.0 and self._prior is None:
            raise ValueError(
                f"prior_weight={prior_weight!r} blends the prior's ranks into each rung, so it "
                "needs a prior, but got prior=None. Pass prior='shipped' (the default), a "
                "bundle path or object, or leave prior_weight at 0."
            )
        if prior_decides is not None and not isinstance(prior_decides, bool):
            raise InvalidParameterError(
                "prior_decides must be False, None or True (None: decide by the study's "
                f"sampler), but got prior_decides={prior_decides!r}."
            )
        if prior_decides is True and self._prior is None:
            raise ValueError(
                "prior_decides=True lets the prior rank rungs, so it needs a prior, but got "
                "prior=None. Pass prior='shipped' (the default), a bundle path or object, or "
                "leave prior_decides at False."
            )
        self._prior_decides = prior_decides
        self._init_cache()

    def _init_cache(self) -> None:
        self._settings = FitSettings(
            tuple(self._candidates), self._aelle_params, self._seed, self._cv_folds
        )
        # The gate's evidence is stored with each predictor: its bootstrap is part of the fit.
        self._cache = PredictorCache(
            self._settings,
            "LyapunovPruner",
            self._pretrained,
            self._artifact_store,
            size=_CACHE_SIZE,
            config={"gate_evidence": {"n_resamples": self._n_resamples}},
        )
        self._lock = threading.Lock()
        # Predicted final values per model and trial number: a finished rung's inputs never change.
        self._predictions: OrderedDict[tuple[Any, ...], dict[int, float | None]] = OrderedDict()
        # The prior's predictions per (step, trials that reported it) and batch, and its gate
        # shares per (step, completed trials that reported it): inputs that never change.
        self._prior_predictions: OrderedDict[
            tuple[Any, ...], dict[tuple[int, ...], dict[int, Any]]
        ] = OrderedDict()
        self._prior_gates: OrderedDict[tuple[Any, ...], float | None] = OrderedDict()
        # The gate's bound per (step, spectrum step, training set): whether a fit could matter.
        self._gate_bounds: OrderedDict[tuple[Any, ...], float] = OrderedDict()
        # prior_weight > 0 and a judged trial the prior cannot read: said once per process.
        self._warned_unblended = False
        # prior_weight > 0 in a study whose sampler is adaptive: said once per pruner object.
        self._warned_adaptive_blend = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_cache", "_predictions", "_settings"):
            del state[name]
        for name in ("_prior_predictions", "_prior_gates", "_gate_bounds"):
            del state[name]
        if self._prior_spec is not None:
            del state["_prior"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_prior" not in state:
            self._prior = _resolve_prior(self._prior_spec)
        self._init_cache()

    @property
    def _reads_spectra(self) -> bool:
        if any(SPECTRUM in c for c in self._candidates):
            return True
        return self._pretrained is not None and self._pretrained.uses_spectra_

    # --- prune: a ladder of early returns ------------------------------------------------------

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if len(study.directions) > 1:
            raise ValueError(
                "LyapunovPruner supports single-objective studies only, but the study has "
                f"{len(study.directions)} objectives."
            )
        step = trial.last_step
        if step is None:
            return False
        if step < self._n_warmup_steps:
            # Warm-up prunes nothing, but the prior still predicts the untrained network, so
            # every trial carries a prediction from its first report.
            if step == 0 and self._prior is not None:
                self._step0(study, trial, None, screen=False)
            return False
        if not _is_check_step(
            step, list(trial.intermediate_values), self._n_warmup_steps, self._interval_steps
        ):
            return False
        fallback_pruned = None
        if self._fallback is not None:
            fallback_pruned = bool(self._fallback.prune(study, trial))
        if step == 0:
            decided = self._step0(study, trial, fallback_pruned)
            if decided is not None:
                return decided
        return self._rungs(study, trial, step, fallback_pruned)

    def _step0(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        fallback_pruned: bool | None,
        screen: bool = True,
    ) -> bool | None:
        """Step 0 (the untrained network): the prior's prediction and the optional screen
        (``screen=False``: the prediction alone, as in the warm-up).

        Returns the decision where one is recorded, None where nothing predicts the trial (and
        no screen acts) so that successive halving, which closes nothing at step 0, goes on.
        """
        screen_fraction = self._screen_fraction if screen else None
        if self._prior is None and screen_fraction is None:
            return None
        trials = study.get_trials(deepcopy=False)
        found = self._prior_view(study, trial, trials, 0)
        view, prior_own = (None, None) if found is None else found
        judged = None
        if screen_fraction is not None and self._consults_model(trial, 0):
            judged = self._judged(study, trial, 0)
        if judged is None and prior_own is None:
            return None
        record: dict[str, Any] = {
            "step": 0,
            "rung": None,
            "direction": study.direction.name.lower(),
        }
        if judged is not None:
            record.update(judged[2])
        if prior_own is not None:
            record.update(self._prior_fields(prior_own))
        scorer = "raw"
        if screen_fraction is not None:
            prior_share = None
            if view is not None and prior_own is not None:
                prior_share = self._judged_prior_gate(study, view, record)
            study_share = None if judged is None else judged[2].get("gate_share")
            scorer = self._scorer(study_share, prior_share)
            record["scorer"] = scorer
        sign = _sign(study.direction)
        if scorer == "study":
            assert judged is not None and screen_fraction is not None
            model, own, _ = judged
            assert model is not None  # an open gate had a fitted model
            others = [t for t in trials if t.number != trial.number and 0 in t.intermediate_values]
            competing = self._competing_scores(model, others, 0, study.direction, own)
            ranking = _rule.screen(sign * own, competing, screen_fraction)
            record.update(self._ranking_fields(ranking, sign, "predicted", own))
            record.update({"rule": "screen", "pruned": not ranking.promoted})
        elif scorer == "prior":
            assert view is not None and prior_own is not None
            assert screen_fraction is not None
            # Every trial at step 0 with a prediction competes, the completed ones too.
            every = self._prior_batch(view, [t.number for t in view.reached])
            quantiles = [p.quantile for n, p in every.items() if n != trial.number]
            quantiles.append(prior_own.quantile)
            ranking = _rule.screen(prior_own.quantile, quantiles, screen_fraction)
            record.update(self._ranking_fields(ranking, 1.0, "quantile", prior_own.quantile))
            record.update({"rule": "prior_screen", "pruned": not ranking.promoted})
        elif fallback_pruned is not None:
            record.update({"rule": "fallback", "pruned": fallback_pruned})
            record.update(self._fallback_fields())
        elif prior_own is None:
            return None  # a shut screen and no prior: successive halving decides, unrecorded
        else:
            record.update({"rule": "predict", "pruned": False})
        record_prediction(study, trial, 0, record)
        return bool(record["pruned"])

    def _scorer(self, study_share: float | None, prior_share: float | None) -> str:
        """``"study"``, ``"prior"`` or ``"raw"``: the competitor whose gate share is the larger
        of those at least ``gate`` (the in-study model on a tie), else the raw value."""
        open_ = [
            (share, name == "study", name)
            for name, share in (("study", study_share), ("prior", prior_share))
            if share is not None and share >= self._gate
        ]
        return max(open_)[2] if open_ else "raw"

    def _rungs(
        self, study: optuna.Study, trial: FrozenTrial, step: int, fallback_pruned: bool | None
    ) -> bool:
        """Successive halving over every rung ``step`` closes, as Optuna's, each rung ranked by
        the raw value, the in-study model or the prior; the last rung judged is recorded."""
        rung = 0
        while self._rung_key(rung) in trial.system_attrs:
            rung += 1
        value = trial.intermediate_values[step]
        sign = _sign(study.direction)
        trials: list[FrozenTrial] | None = None
        record: dict[str, Any] | None = None
        pruned = False
        while True:
            if self._min_resource is None:
                if trials is None:
                    trials = study.get_trials(deepcopy=False)
                self._min_resource = _rule.estimate_min_resource(
                    [
                        t.last_step
                        for t in trials
                        if t.state == TrialState.COMPLETE and t.last_step is not None
                    ]
                )
                if self._min_resource is None:
                    break
            closes = _rule.rung_step(
                self._min_resource, self._reduction_factor, self._min_early_stopping_rate, rung
            )
            if step < closes:
                break
            base = {"step": step, "rung": rung, "direction": study.direction.name.lower()}
            if math.isnan(value):
                # Optuna's rule: a NaN value is pruned, and stored at no rung.
                record = {**base, "rule": "rung", "scorer": "raw", "score_kind": "raw"}
                record["score"] = value
                pruned = True
                if fallback_pruned is not None:
                    record.update({"rule": "fallback", **self._fallback_fields()})
                    pruned = fallback_pruned
                break
            if trials is None:
                trials = study.get_trials(deepcopy=False)
            key = self._rung_key(rung)
            study._storage.set_trial_system_attr(trial._trial_id, key, value)
            # As Optuna: read the competitors after storing (an in-memory storage's list then
            # holds this trial's value too).
            competing = [t.system_attrs[key] for t in trials if key in t.system_attrs]
            competing.append(value)
            others = [t for t in trials if key in t.system_attrs and t.number != trial.number]
            judged = None
            view = None
            prior_own = None
            fields: dict[str, Any] = {}
            if step == closes:
                if self._consults_model(trial, step):
                    judged = self._judged(study, trial, step)
                found = self._prior_view(study, trial, trials, step)
                view, prior_own = (None, None) if found is None else found
            prior_share = None
            if judged is not None:
                fields.update(judged[2])
            if view is not None and prior_own is not None:
                fields.update(self._prior_fields(prior_own))
                prior_share = self._judged_prior_gate(study, view, fields)
            study_share = None if judged is None else judged[2].get("gate_share")
            scorer = self._scorer(study_share, prior_share)
            if step == closes and self._prior_weight > 0.0 and prior_own is None:
                self._warn_unblended(trial)
            if (
                scorer == "raw"
                and self._prior_weight > 0.0
                and view is not None
                and prior_own is not None
                and len(competing) > self._bootstrap_count
                # A diverged value ranks at its end by the raw value alone: no prediction
                # may lift it over finite ones.
                and math.isfinite(value)
            ):
                scorer = "blend"
                if not self._warned_adaptive_blend and not draws_independently(study.sampler):
                    self._warn_adaptive_blend(study)
            fields["scorer"] = scorer
            if scorer == "study":
                assert judged is not None
                model, own, _ = judged
                assert model is not None  # an open gate had a fitted model
                scores = self._competing_scores(model, others, step, study.direction, own)
                ranking = _rule.promote(sign * own, scores, self._reduction_factor)
                record = {**base, **fields, "rule": "model_rung"}
                record.update(self._ranking_fields(ranking, sign, "predicted", own))
                pruned = not ranking.promoted
            elif scorer == "prior":
                assert view is not None and prior_own is not None
                # Competitors the prior cannot predict drop out, as the model's do.
                rivals = self._prior_batch(view, [t.number for t in others])
                quantiles = [rivals[t.number].quantile for t in others if t.number in rivals]
                quantiles.append(prior_own.quantile)
                ranking = _rule.promote(prior_own.quantile, quantiles, self._reduction_factor)
                record = {**base, **fields, "rule": "prior_rung"}
                record.update(self._ranking_fields(ranking, 1.0, "quantile", prior_own.quantile))
                pruned = not ranking.promoted
            elif scorer == "blend":
                assert view is not None and prior_own is not None
                rivals = self._prior_batch(view, [t.number for t in others])
                kept = [t for t in others if t.number in rivals]
                blended = _rule.blend_ranks(
                    [sign * t.system_attrs[key] for t in kept] + [sign * value],
                    [rivals[t.number].quantile for t in kept] + [prior_own.quantile],
                    self._prior_weight,
                )
                own_blend = float(blended[-1])
                ranking = _rule.promote(own_blend, blended.tolist(), self._reduction_factor)
                record = {**base, **fields, "rule": "blend_rung"}
                record["prior_weight"] = self._prior_weight
                record.update(self._ranking_fields(ranking, 1.0, "blend", own_blend))
                pruned = not ranking.promoted
            elif len(competing) <= self._bootstrap_count:
                record = {**base, **fields, "rule": "rung", "score_kind": "raw"}
                record.update({"score": value, "n_competitors": len(competing)})
                pruned = True
            else:
                ranking = _rule.promote(
                    sign * value, [sign * c for c in competing], self._reduction_factor
                )
                record = {**base, **fields, "rule": "rung"}
                record.update(self._ranking_fields(ranking, sign, "raw", value))
                pruned = not ranking.promoted
            if fallback_pruned is not None and record["rule"] not in _MODEL_RULES:
                # The fallback decides: the raw ranking's fields would describe another rule.
                for name in ("rank", "n_competitors", "n_promoted", "bar"):
                    record.pop(name, None)
                record.update({"rule": "fallback", "score_kind": "raw", "score": value})
                record.update(self._fallback_fields())
                pruned = fallback_pruned
            if pruned:
                break
            rung += 1
        if record is None:
            return bool(fallback_pruned)
        record["pruned"] = pruned
        record_prediction(study, trial, step, record)
        return pruned

    def _rung_key(self, rung: int) -> str:
        return f"{self._rung_prefix}{rung}"

    def _fallback_fields(self) -> dict[str, Any]:
        return {"fallback": type(self._fallback).__name__}

    @staticmethod
    def _ranking_fields(
        ranking: _rule.Ranking, sign: float, kind: str, value: float
    ) -> dict[str, Any]:
        return {
            "score_kind": kind,
            "score": value,
            "rank": ranking.rank,
            "n_competitors": ranking.n_competitors,
            "n_promoted": ranking.n_promoted,
            "bar": sign * ranking.bar,
        }

    def _judged(
        self, study: optuna.Study, trial: FrozenTrial, step: int, *, always_fit: bool = False
    ) -> tuple[_Model | None, float, dict[str, Any]] | None:
        """The model for ``trial`` at ``step``, its predicted final value for the trial, and
        the model fields of the record; None where no model predicts it.

        Where no fit could pass the gate (and not ``always_fit``), no model is fitted: the
        model is None, the prediction NaN, and the fields say why (``gate_share_bound``)."""
        model = self._model(study, trial, step, always_fit=always_fit)
        if model is None:
            return None
        if isinstance(model, _Unfitted):
            record = {
                "gate_share_bound": model.bound,
                "gate": self._gate,
                "gate_open": False,
                "n_train": model.n_train,
            }
            return None, math.nan, record
        own = self._own(model, trial, step, study.direction)
        if own is None:
            return None
        return model, own[0], self._model_record(model, own)

    def _competing_scores(
        self,
        model: _Model,
        others: Sequence[FrozenTrial],
        step: int,
        direction: StudyDirection,
        own: float,
    ) -> list[float]:
        """Scores (higher is better) of the predicted final values of ``others`` that have
        one, then of the judged trial's ``own``."""
        sign = _sign(direction)
        predicted = self._predictions_for(model, others, step, direction)
        return [sign * p for p in predicted.values() if p is not None] + [sign * own]

    def _model_record(self, model: _Model, own: tuple[float, float]) -> dict[str, Any]:
        fitted = model.fitted
        predicted, ensemble_std = own
        spread = model.spread if math.isfinite(model.spread) else 0.0
        return {
            "predicted": predicted,
            "predicted_std": math.sqrt(ensemble_std**2 + spread**2),
            "inputs": "+".join(fitted.chosen.inputs),
            "pretrained": fitted.chosen.pretrained,
            "rank_corr": fitted.chosen.rank_corr,
            "raw_rank_corr": fitted.raw_rank_corr,
            "gate_share": model.gate_share,
            "gate_open": model.gate_share >= self._gate,
            "n_train": fitted.n_train,
            "spectrum_step": model.spectrum_step,
        }

    # --- the prior: predictions from trial 0, and its gate ---------------------------------------

    def _prior_view(
        self, study: optuna.Study, trial: FrozenTrial, trials: Sequence[FrozenTrial], step: int
    ) -> tuple[_PriorView, Any] | None:
        """The prior's view of ``step`` and ``trial``'s prediction (None where it has none);
        None without a prior. The trials that reported ``step`` (``trial`` included) define
        the within-study ranks."""
        if self._prior is None or step not in trial.intermediate_values:
            return None
        reached = [t for t in trials if t.number != trial.number and step in t.intermediate_values]
        reached.append(trial)
        reached.sort(key=lambda t: t.number)
        key = (step, tuple(t.number for t in reached))
        with self._lock:
            batches = self._prior_predictions.get(key)
            if batches is None:
                batches = self._prior_predictions[key] = {}
                while len(self._prior_predictions) > _CACHE_SIZE:
                    self._prior_predictions.popitem(last=False)
            else:
                self._prior_predictions.move_to_end(key)
        view = _PriorView(key, step, study.direction, reached, batches)
        return view, self._prior_batch(view, [trial.number]).get(trial.number)

    def _prior_batch(self, view: _PriorView, numbers: Sequence[int]) -> dict[int, Any]:
        """The prior's predictions of the trials ``numbers`` of ``view``, made in one batch
        with the other trials given by their values only (they shape the ranks, and their
        spectra are not read), and kept per batch.

        The model's float32 results depend slightly (~1e-9) on a batch's make-up, so each
        prediction is always made in the same batch whatever was cached before: the judged
        trial alone, the completed trials together, every trial together. So every worker
        reaches the same numbers from the same storage.
        """
        batch_key = tuple(sorted(numbers))
        with self._lock:
            found = view.batches.get(batch_key)
        if found is not None:
            return found
        wanted = set(batch_key)
        batch = [t if t.number in wanted else _values_only(t) for t in view.reached]
        predicted = self._prior.predict_trials(batch, view.step, view.direction)
        # A prediction the ranks cannot use (a non-finite quantile) is no prediction.
        found = {
            int(n): p
            for n, p in predicted.items()
            if int(n) in wanted and math.isfinite(float(p.quantile))
        }
        with self._lock:
            view.batches[batch_key] = found
        return found

    def prior_decides(self, study: optuna.Study) -> bool:
        """Whether the prior may replace the raw value in ``study`` (where its gate opens).

        ``prior_decides`` as given; where it was None, True exactly when the study's sampler
        draws configurations independently of earlier results (:func:`draws_independently`).
        """
        if self._prior_decides is not None:
            return self._prior_decides
        return draws_independently(study.sampler)

    def _judged_prior_gate(
        self, study: optuna.Study, view: _PriorView, record: dict[str, Any]
    ) -> float | None:
        """The prior's gate share at ``view.step`` where the prior may decide in ``study``
        (None, not judged, where it may not), its fields written into ``record``."""
        if not self.prior_decides(study):
            record["prior_decides"] = False
            # Why not: the sampler (prior_decides=None) or the argument (False, the default).
            record["prior_decides_by"] = "argument" if self._prior_decides is False else "sampler"
            return None
        share = self._prior_gate(study, view)
        record.update(self._prior_gate_fields(share))
        return share

    def _prior_gate(self, study: optuna.Study, view: _PriorView) -> float | None:
        """The prior's gate share at ``view.step``: the paired bootstrap of
        :func:`_rule.gate_share` over the completed trials that reported the step, the prior's
        quantiles against their raw values there, both ranked against their final values
        (oriented as scores). None (not judged, so shut) until ``max(n_startup_trials, 3)``
        of them have a finite prediction.

        The completed trials are predicted among themselves (their curves ranked within the
        completed set), so the share is computed once per step and completed set, not again
        whenever a running trial reaches the step."""
        completed = view.completed
        needed = max(self._n_startup_trials, 3)
        if len(completed) < needed:
            return None
        key = (view.step, tuple(t.number for t in completed))
        with self._lock:
            cached = key in self._prior_gates
            share = self._prior_gates.get(key)
            if cached:
                self._prior_gates.move_to_end(key)
        if not cached:
            predicted = self._prior.predict_trials(completed, view.step, view.direction)
            judged = [
                t
                for t in completed
                if t.number in predicted and math.isfinite(float(predicted[t.number].quantile))
            ]
            share = None
            if len(judged) >= needed:
                sign = _sign(study.direction)
                quantiles = np.array([predicted[t.number].quantile for t in judged])
                raw = sign * np.array([t.intermediate_values[view.step] for t in judged])
                final = sign * np.array([t.value for t in judged], dtype=np.float64)
                share = float(
                    _rule.gate_share(
                        quantiles,
                        raw,
                        final,
                        n_resamples=self._n_resamples,
                        seed=self._seed,
                        groups=[configuration_key(t) for t in judged],
                    )
                )
            with self._lock:
                self._prior_gates[key] = share
                while len(self._prior_gates) > _CACHE_SIZE:
                    self._prior_gates.popitem(last=False)
        return share

    def _warn_unblended(self, trial: FrozenTrial) -> None:
        """One ``RuntimeWarning`` per process: ``prior_weight`` was asked for, but the prior
        reads nothing of this trial, so its rungs are ranked by the raw value alone."""
        with self._lock:
            if self._warned_unblended:
                return
            self._warned_unblended = True
        from optuna_lyap._prediction._prior import PARAM_ALIASES

        looked_for = ", ".join(alias for aliases in PARAM_ALIASES.values() for alias in aliases)
        warnings.warn(
            f"LyapunovPruner(prior_weight={self._prior_weight}) cannot blend at trial "
            f"{trial.number}'s rung: its prior reads the hyperparameters from the parameter "
            f"names {looked_for} (or a reported spectrum), and found none among "
            f"{sorted(trial.params)}. Rename the parameters so or report spectra; until then "
            "such trials are ranked by their raw value alone, as by successive halving.",
            RuntimeWarning,
            stacklevel=2,
        )

    def _warn_adaptive_blend(self, study: optuna.Study) -> None:
        """One :class:`PriorBlendWarning` per pruner object."""
        with self._lock:
            if self._warned_adaptive_blend:
                return
            self._warned_adaptive_blend = True
        warnings.warn(
            f"LyapunovPruner(prior_weight={self._prior_weight}) blends the prior into the rungs "
            f"of a study whose sampler, {sampler_name(study.sampler)}, reads earlier results. "
            "In replays with TPE, where a blended rung and the raw value disagreed on a top-2% "
            "configuration, the blend pruned one the raw value kept in 206 (seed, "
            "configuration) pairs and kept one it pruned in 44 at weight 0.3 (269 and 127 at "
            "0.5); with RandomSampler, 11 and 62 (benchmarks/results/rung_decisions.md in "
            "the source). Use prior_weight=0 with an adaptive sampler, or a sampler that "
            "draws independently (RandomSampler, QMCSampler).",
            PriorBlendWarning,
            stacklevel=2,
        )

    def _prior_fields(self, prediction: Any) -> dict[str, Any]:
        return {
            "prior_quantile": float(prediction.quantile),
            "prior_top10": float(prediction.top_probability),
            "prior_inputs": str(prediction.inputs),
            "prior_model_step": int(prediction.model_step),
            "prior_digest": str(getattr(self._prior, "digest", "")),
        }

    def _prior_gate_fields(self, share: float | None) -> dict[str, Any]:
        # A gate not judged yet (too few completed trials) writes nothing: it is shut, but no
        # share of resamples was measured.
        if share is None:
            return {}
        return {"prior_gate_share": share, "prior_gate_open": share >= self._gate}

    # --- the model: fit, gate, predictions ----------------------------------------------------

    def predict(
        self, study: optuna.Study, trial: FrozenTrial, step: int | None = None
    ) -> dict[str, Any] | None:
        """The model's prediction of ``trial``'s final value at ``step``, deciding nothing.

        The model is the one :meth:`prune` would consult for a trial at ``step`` now (the same
        cached fit), applied to ``trial``'s own spectrum and learning curve up to ``step``.
        ``trial`` may be any of the study's trials: running, pruned or complete (a completed
        trial of the training set gets an in-sample prediction). Nothing is written to the
        trial; a model fitted for the call is stored in the study, as :meth:`prune` stores it.

        Args:
            study: The study ``trial`` belongs to.
            trial: The trial to predict.
            step: The step whose spectrum and curve are read; None is the trial's last step.

        Returns:
            The model fields of a decision record (``predicted``, ``predicted_std``,
            ``inputs``, ``rank_corr``, ``raw_rank_corr``, ``gate_share``, ``gate_open``,
            ``n_train``, ``spectrum_step``, ...) with ``acts``: whether the pruner would rank
            by the prediction at this step (a model step, see ``model_steps``, with the gate
            open). None where there is no prediction: before ``n_startup_trials`` have
            completed (without a pretrained model), without a finite value at or before
            ``step``, or without a spectrum where the chosen inputs need one.

        Raises:
            ValueError: For a multi-objective study or a negative ``step``.
        """
        if len(study.directions) > 1:
            raise ValueError(
                "LyapunovPruner supports single-objective studies only, but the study has "
                f"{len(study.directions)} objectives."
            )
        if step is None:
            step = trial.last_step
            if step is None:
                return None
        check_int("step", step, 0)
        judged = self._judged(study, trial, step, always_fit=True)
        if judged is None:
            return None
        record = judged[2]
        return {**record, "acts": record["gate_open"] and self._consults_model(trial, step)}

    def _consults_model(self, trial: FrozenTrial, step: int) -> bool:
        if self._model_steps is not None:
            return step in self._model_steps
        if not self._reads_spectra:
            return True
        return spectrum_key(step) in trial.system_attrs

    def _model(
        self, study: optuna.Study, trial: FrozenTrial, step: int, *, always_fit: bool = False
    ) -> _Model | _Unfitted | None:
        """The model for ``trial`` at ``step`` (fitted once per training set, cached), or None.

        :class:`_Unfitted` instead of a fit where the training set could not open the gate for
        any model, unless ``always_fit``."""
        direction = study.direction
        curve = curve_features(trial.intermediate_values, step, direction)
        if not math.isfinite(curve[0]):
            return None  # a non-finite current value: the raw rule judges it
        spectrum_step: int | None = None
        if self._reads_spectra:
            found = spectrum_at(trial, step)
            if found is not None:
                spectrum_step = found[0]
        context = ReadContext(step, direction, spectrum_step)
        # Trials added without a curve or a spectrum (a warm start) neither start nor fill
        # the refit schedule.
        training, usable = training_set(
            study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
            _row_inputs(spectrum_step),
            context,
            start=self._n_startup_trials,
            growth=self._refit_growth,
        )
        own_ready = usable >= self._n_startup_trials and usable > 0
        if not own_ready:
            if self._pretrained is None:
                return None
            training = []
        if training and not always_fit:
            bound = self._gate_bound(training, step, spectrum_step, direction)
            if bound < self._gate:
                return _Unfitted(bound, len(training))
        unlabelled: list[FrozenTrial] = []
        if self._use_unlabelled and spectrum_step is not None:
            pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
            unlabelled = unlabelled_trials(pruned, spectrum_step, training)
        key = (
            step,
            spectrum_step,
            tuple(t.number for t in training),
            tuple(t.number for t in unlabelled),
        )

        def fit() -> FittedPredictor | None:
            fitted = self._fit(training, unlabelled, step, spectrum_step, direction)
            if fitted is not None:
                fitted.evidence = gate_evidence(
                    fitted, direction, n_resamples=self._n_resamples, seed=self._seed
                )
            return fitted

        fitted = self._cache.get_or_fit(study, key, fit, share=bool(training))
        return None if fitted is None else _Model(key, fitted, spectrum_step)

    def _predictions_for(
        self,
        model: _Model,
        trials: Sequence[FrozenTrial],
        step: int,
        direction: StudyDirection,
    ) -> dict[int, float | None]:
        """Predicted final values of ``trials`` at ``step`` (None: no prediction possible).

        Predictions are kept per model: a trial that reached ``step`` keeps the same inputs
        there, so each competitor is predicted once per model.
        """
        with self._lock:
            known = self._predictions.setdefault(model.key, {})
            self._predictions.move_to_end(model.key)
            while len(self._predictions) > _CACHE_SIZE:
                self._predictions.popitem(last=False)
            out = {t.number: known[t.number] for t in trials if t.number in known}
            todo = [t for t in trials if t.number not in known]
        if todo:
            new: dict[int, float | None] = {t.number: None for t in todo}
            predicted = self._predict_rows(model, todo, step, direction)
            if predicted is not None:
                numbers, mean, _ = predicted
                new.update({n: float(m) for n, m in zip(numbers, mean, strict=True)})
            out.update(new)
            with self._lock:
                known.update(new)
        return out

    def _own(
        self, model: _Model, trial: FrozenTrial, step: int, direction: StudyDirection
    ) -> tuple[float, float] | None:
        """``trial``'s predicted final value and the ensemble's spread, or None."""
        predicted = self._predict_rows(model, [trial], step, direction)
        if predicted is None:
            return None
        _, mean, std = predicted
        return float(mean[0]), float(std[0])

    @staticmethod
    def _predict_rows(
        model: _Model, trials: Sequence[FrozenTrial], step: int, direction: StudyDirection
    ) -> tuple[list[int], Any, Any] | None:
        """Trial numbers, predicted final values and ensemble spreads of those of ``trials``
        that have a row at ``step`` as the training rows were read; None where none has."""
        fitted = model.fitted
        context = ReadContext(step, direction, model.spectrum_step, fitted.encoder)
        names = _row_inputs(model.spectrum_step)
        readable = [t for t in trials if all(INPUTS[n].available(t, context) for n in names)]
        if not readable:
            return None
        rows = query_rows(readable, fitted.chosen.inputs, context)
        if rows is None:
            return None
        mean, std = fitted.predict(rows, add_residuals=False)
        return rows.numbers, mean, std

    def _gate_bound(
        self,
        completed: list[FrozenTrial],
        step: int,
        spectrum_step: int | None,
        direction: StudyDirection,
    ) -> float:
        """:func:`_rule.gate_share_bound` on the rows a fit on ``completed`` would judge: the
        highest gate share any model fitted there could reach (cached per training set)."""
        key = (step, spectrum_step, tuple(t.number for t in completed))
        with self._lock:
            bound = self._gate_bounds.get(key)
            if bound is not None:
                self._gate_bounds.move_to_end(key)
                return bound
        rows, _ = self._labelled_rows(completed, step, spectrum_step, direction)
        sign = _sign(direction)
        bound = _rule.gate_share_bound(
            sign * rows.raw,
            sign * rows.targets,
            n_resamples=self._n_resamples,
            seed=self._seed,
            groups=rows.group_keys(),
        )
        with self._lock:
            self._gate_bounds[key] = bound
            while len(self._gate_bounds) > _CACHE_SIZE:
                self._gate_bounds.popitem(last=False)
        return bound

    def _labelled_rows(
        self,
        completed: list[FrozenTrial],
        step: int,
        spectrum_step: int | None,
        direction: StudyDirection,
    ) -> tuple[Any, Any]:
        """The rows a model at ``step`` is fitted on, and the hyperparameter encoder."""
        encoder = param_encoder(completed) if self._use_params else None
        names = (*_row_inputs(spectrum_step), "params")
        context = ReadContext(step, direction, spectrum_step, encoder)
        return read_rows(completed, names, context), encoder

    def _fit(
        self,
        completed: list[FrozenTrial],
        unlabelled: list[FrozenTrial],
        step: int,
        spectrum_step: int | None,
        direction: StudyDirection,
    ) -> FittedPredictor | None:
        rows, encoder = self._labelled_rows(completed, step, spectrum_step, direction)
        names = (*_row_inputs(spectrum_step), "params")
        extra = None
        if unlabelled and spectrum_step is not None:
            exact = ReadContext(step, direction, spectrum_step, encoder, exact_spectrum_step=True)
            extra = read_rows(unlabelled, names, exact, labelled=False)
        pretrained = self._pretrained
        return fit_predictor(
            rows,
            settings=self._settings,
            unlabelled=extra,
            pretrained=None if pretrained is None else (pretrained, pretrained_inputs(pretrained)),
            encoder=encoder,
        )


def _row_inputs(spectrum_step: int | None) -> tuple[str, ...]:
    """The inputs every row needs, fitted or predicted: the curve, and the spectrum when one
    is read."""
    return ("curve",) if spectrum_step is None else (SPECTRUM, "curve")
