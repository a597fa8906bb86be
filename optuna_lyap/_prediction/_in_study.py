"""``InStudyModel``: the predictor fitted on a study's own trials, for pruner and sampler alike.

Both consumers do the same five steps: take the completed trials of the refit schedule, add
the pruned trials' spectra as unlabelled rows, key the training set, fit (cross-validating the
candidate input sets, see :func:`~optuna_lyap._prediction._core.fit_predictor`) once per key,
and share the fit through the storage (:class:`~optuna_lyap._prediction._store.PredictorCache`).
This module does them once. The pruner asks for the model at a trial's step (the learning
curve up to the step, and the spectrum at the latest step before it); the sampler asks for the
model at initialisation (step 0: the spectrum of the untrained network, and the
hyperparameters), which is all a candidate that has not trained yet has.

Inputs are named, as the registry :data:`~optuna_lyap._prediction._inputs.INPUTS` names them:
a new input is a new :class:`~optuna_lyap._prediction._inputs.Input` there and its name here.

Notation: ``n`` labelled rows (completed trials with every input the rows need); a *score* is a
value oriented so that higher is better.
"""

from __future__ import annotations

import copy
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._checks import check_int, check_real
from optuna_lyap._prediction._core import (
    SPECTRUM,
    FitSettings,
    FittedPredictor,
    Rows,
    fit_predictor,
    input_sets,
)
from optuna_lyap._prediction._gate import (
    direction_sign,
    gate_evidence,
    gate_share_bound,
    rank_correlation_accepts,
)
from optuna_lyap._prediction._in_study_types import (
    ConsumerDefaults,
    FittedModel,
    ModelAtStep,
    SkippedFit,
    registered_inputs,
    required_inputs,
)
from optuna_lyap._prediction._inputs import (
    INPUTS,
    ReadContext,
    curve_features,
    pretrained_inputs,
)
from optuna_lyap._prediction._lru import LRUCache
from optuna_lyap._prediction._reader import (
    param_encoder,
    query_rows,
    read_rows,
    training_set,
    unlabelled_trials,
)
from optuna_lyap._prediction._store import PredictorCache, check_artifact_store
from optuna_lyap._storage import spectrum_at, spectrum_key
from optuna_lyap.aelle import AeLLE
from optuna_lyap.aelle._estimator import check_aelle_params

#: The fit function's signature: ``fit(rows, *, settings, unlabelled, pretrained, encoder)``.
FitFunction = Callable[..., "FittedPredictor | None"]

# The step a candidate is read at: the untrained network.
INIT_STEP = 0
# Fewer than this many labels leave nothing to cross-validate.
_MIN_LABELLED = 3


class InStudyModel:
    """The model fitted on the study's own completed trials, for a pruner or a sampler.

    Give one to :class:`~optuna_lyap.LyapunovPruner` (``model=``) or
    :class:`~optuna_lyap.LyapunovSampler` (``model=``). Arguments left at None take the
    consumer's default, so that each keeps the behaviour it had when it configured its own
    model (they differ where noted). Each consumer works on its own copy (its fits are
    stored under its name), so one object may configure both.

    Example:
        >>> import optuna_lyap
        >>> model = optuna_lyap.InStudyModel(inputs=("spectrum", "curve", "params"), seed=1)
        >>> pruner = optuna_lyap.LyapunovPruner(model=model, prior=None)
        >>> optuna_lyap.LyapunovSampler(model=optuna_lyap.InStudyModel(inputs=("curve",)))
        Traceback (most recent call last):
        ...
        ValueError: LyapunovSampler reads the inputs ('spectrum', 'params') for the trials ...

    Args:
        inputs: The inputs offered, by their names in ``optuna_lyap._prediction.INPUTS``:
            ``"spectrum"`` (at the latest step at or before the one judged), ``"curve"`` (the
            latest and best value up to the step), ``"params"`` (the hyperparameters of the
            completed trials' common search space). None: the pruner's ``("spectrum",
            "curve")``, the sampler's ``("spectrum", "params")`` (the sampler reads no curve).
        aelle: A fitted :class:`~optuna_lyap.AeLLE` or a path written by ``AeLLE.save`` (e.g.
            from :func:`fit_aelle` on an earlier study): it competes with the models fitted on
            the study, and is the only candidate before ``n_startup_trials`` have completed.
            The sampler takes one that reads spectra only (fitted with ``features=None``).
        aelle_params: Keyword arguments of the AeLLE models fitted (``seed`` is set by
            ``seed``). None: the pruner's 2 members and 100 steps, the sampler's 3 and 200.
        select_inputs: Cross-validate each offered input alone and all together and keep the
            best ranker; False fits only all offered inputs together.
        cv_folds: Folds (by configuration) of the cross-validation giving the out-of-sample
            predictions that are judged. At least 2.
        use_unlabelled: Also train the autoencoder's reconstruction on the spectra pruned
            trials reported at the same step (numbered below the newest labelled trial).
        refit_growth: Fit on the lowest-numbered ``m`` labelled trials, ``m`` on the schedule
            ``start``, then ``max(m + 1, ceil(m * refit_growth))``; 1 refits whenever a trial
            completes. At least 1. None: the pruner's 2, the sampler's 1.25.
        n_startup_trials: Labelled trials before a model is fitted on the study (the
            schedule's ``start``). None: the consumer's ``n_startup_trials``.
        model_steps: The pruner's: the steps at which the model is consulted (rungs closing
            there, and step 0 for the screen). None: the steps at which the judged trial
            reported a spectrum (every step when no input is the spectrum).
        n_resamples: Bootstrap resamples of the pruner's gates (the model's and the prior's).
        seed: Seed of every fit and of the gate's bootstrap. None: the pruner's 0, the
            sampler's ``seed``.
        artifact_store: An :mod:`optuna.artifacts` store every worker can read, for the
            fitted models; None stores them in the study's system attrs (give one with a
            journal storage, which replays every attr write in every worker).
        fit: Fits a predictor on rows, with
            :func:`~optuna_lyap._prediction._core.fit_predictor`'s signature (the default).

    Raises:
        ValueError: For an argument out of its range, an input name that is not registered,
            no input, or an ``aelle`` that is not a fitted AeLLE (or a path to one).
    """

    # Set by bind(): the settings resolved for one consumer.
    inputs: tuple[str, ...]
    candidates: list[tuple[str, ...]]
    use_params: bool
    aelle_params: dict[str, Any]
    refit_growth: float
    seed: int
    n_startup_trials: int
    pretrained_inputs: tuple[str, ...]
    settings: FitSettings

    def __init__(
        self,
        inputs: Iterable[str] | None = None,
        *,
        aelle: AeLLE | str | os.PathLike[str] | None = None,
        aelle_params: Mapping[str, Any] | None = None,
        select_inputs: bool = True,
        cv_folds: int = 3,
        use_unlabelled: bool = True,
        refit_growth: float | None = None,
        n_startup_trials: int | None = None,
        model_steps: Iterable[int] | None = None,
        n_resamples: int = 500,
        seed: int | None = None,
        artifact_store: Any = None,
        fit: FitFunction | None = None,
    ) -> None:
        self._inputs = None if inputs is None else registered_inputs(inputs)
        self._aelle_params = None if aelle_params is None else check_aelle_params(aelle_params)
        self._select_inputs = bool(select_inputs)
        self._cv_folds = check_int("cv_folds", cv_folds, 2)
        self._use_unlabelled = bool(use_unlabelled)
        self._refit_growth = (
            None
            if refit_growth is None
            else check_real("refit_growth", refit_growth, 1.0, math.inf)
        )
        self._n_startup_trials = (
            None
            if n_startup_trials is None
            else check_int("n_startup_trials", n_startup_trials, 0)
        )
        self.model_steps = (
            None
            if model_steps is None
            else frozenset(check_int("model_steps", s, 0) for s in model_steps)
        )
        self.n_resamples = check_int("n_resamples", n_resamples, 1)
        self._seed = None if seed is None else check_int("seed", seed, 0)
        if isinstance(aelle, (str, os.PathLike)):
            if not os.path.exists(aelle):
                raise FileNotFoundError(
                    f"`aelle` names no file: {aelle=}. Pass a fitted AeLLE, a path AeLLE.save "
                    "wrote (e.g. from fit_aelle), or None."
                )
            aelle = AeLLE.load(aelle)
        if aelle is not None and not isinstance(aelle, AeLLE):
            raise ValueError(
                f"`aelle` must be a fitted AeLLE, a path to one, or None, but got {aelle=}."
            )
        self.pretrained = aelle
        check_artifact_store(artifact_store)
        self._artifact_store = artifact_store
        if fit is not None and not callable(fit):
            raise TypeError(f"`fit` must be callable like fit_predictor, but got {fit=}.")
        self._fit_function = fit
        self._bound: ConsumerDefaults | None = None

    # -- binding to a consumer ------------------------------------------------------------

    def bind(self, defaults: ConsumerDefaults) -> InStudyModel:
        """A copy configured for one consumer, with its defaults where arguments were None.

        Raises:
            ValueError: For an input the consumer cannot read, or a pretrained AeLLE it cannot
                use (naming why).
        """
        bound = copy.copy(self)
        bound._bound = defaults
        inputs = defaults.inputs if self._inputs is None else self._inputs
        if defaults.allowed is not None and not set(inputs) <= set(defaults.allowed):
            raise ValueError(
                f"{defaults.owner} reads the inputs {defaults.allowed} for the trials it "
                f"predicts, but the model was given inputs={inputs}."
            )
        bound.inputs = inputs
        bound.candidates = input_sets(inputs, self._select_inputs)
        bound.use_params = "params" in inputs
        aelle_params = defaults.aelle_params if self._aelle_params is None else self._aelle_params
        bound.aelle_params = check_aelle_params(aelle_params)
        bound.refit_growth = (
            defaults.refit_growth if self._refit_growth is None else self._refit_growth
        )
        bound.seed = defaults.seed if self._seed is None else self._seed
        bound.n_startup_trials = (
            defaults.n_startup_trials if self._n_startup_trials is None else self._n_startup_trials
        )
        pretrained = self.pretrained
        if pretrained is None:
            bound.pretrained_inputs = ()
        elif defaults.spectra_only_pretrained:
            if not hasattr(pretrained, "network_"):
                raise ValueError(
                    "`aelle` must be a fitted AeLLE, a path to one, or None, but got "
                    f"aelle={pretrained!r}."
                )
            if not pretrained.uses_spectra_ or pretrained.n_features_in_ != 0:
                raise ValueError(
                    "`aelle` must read spectra only (fit it with features=None): candidates "
                    f"have no learning curve yet, but it was fitted with "
                    f"{pretrained.uses_spectra_=} and {pretrained.n_features_in_=}."
                )
            bound.pretrained_inputs = (SPECTRUM,)
        else:
            bound.pretrained_inputs = pretrained_inputs(pretrained)  # validates it
        bound._init_state()
        return bound

    def _defaults(self) -> ConsumerDefaults:
        if self._bound is None:
            raise RuntimeError(
                "This InStudyModel is not bound to a consumer: give it to LyapunovPruner or "
                "LyapunovSampler (model=...)."
            )
        return self._bound

    def _init_state(self) -> None:
        defaults = self._defaults()
        min_rows = {}
        if defaults.startup_sets_min_rows:
            min_rows = {"min_rows": max(self.n_startup_trials, _MIN_LABELLED)}
        self.settings = FitSettings(
            tuple(self.candidates), self.aelle_params, self.seed, self._cv_folds, **min_rows
        )
        # The gate's evidence is stored with each predictor: its bootstrap is part of the fit.
        config = (
            {"gate_evidence": {"n_resamples": self.n_resamples}}
            if defaults.gate_evidence
            else None
        )
        self._cache = PredictorCache(
            self.settings,
            defaults.owner,
            self.pretrained,
            self._artifact_store,
            size=defaults.cache_size,
            config=config,
        )
        self._lock = threading.Lock()
        # Predicted final values per model and trial number: a finished rung's inputs never
        # change; and the gate's bound per (step, spectrum step, training set).
        self._predictions: LRUCache[tuple[Any, ...], dict[int, float | None]] = LRUCache(
            defaults.cache_size
        )
        self._gate_bounds: LRUCache[tuple[Any, ...], float] = LRUCache(defaults.cache_size)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_cache", "_lock", "_predictions", "_gate_bounds", "settings"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._bound is not None:
            self._init_state()

    @property
    def reads_spectra(self) -> bool:
        """Whether a candidate input set, or the pretrained model, reads the spectrum."""
        if any(SPECTRUM in c for c in self.candidates):
            return True
        return self.pretrained is not None and self.pretrained.uses_spectra_

    # -- the shared fit -------------------------------------------------------------------

    def _read_names(self, required: Sequence[str]) -> tuple[str, ...]:
        """Every input the rows are read with, in the registry's order: those each row needs
        and those offered (an input without a width in the context is not carried)."""
        offered = set(required) | set(self.inputs)
        return tuple(name for name in INPUTS if name in offered)

    def _labelled_rows(
        self, labelled: list[FrozenTrial], context: ReadContext, required: Sequence[str]
    ) -> tuple[Rows, Any]:
        """The rows a model is fitted on, and the hyperparameter encoder."""
        encoder = param_encoder(labelled) if self.use_params else None
        context = replace(context, encoder=encoder)
        return read_rows(labelled, self._read_names(required), context), encoder

    def _fit(
        self,
        labelled: list[FrozenTrial],
        unlabelled: list[FrozenTrial],
        context: ReadContext,
        required: Sequence[str],
    ) -> FittedPredictor | None:
        rows, encoder = self._labelled_rows(labelled, context, required)
        extra = None
        if unlabelled and context.spectrum_step is not None:
            exact = replace(context, encoder=encoder, exact_spectrum_step=True)
            extra = read_rows(unlabelled, self._read_names(required), exact, labelled=False)
        pretrained = None
        if self.pretrained is not None:
            pretrained = (self.pretrained, self.pretrained_inputs)
        fit = fit_predictor if self._fit_function is None else self._fit_function
        return fit(
            rows, settings=self.settings, unlabelled=extra, pretrained=pretrained, encoder=encoder
        )

    # -- the pruner: the model at a trial's step ------------------------------------------

    def consults(self, trial: FrozenTrial, step: int) -> bool:
        """Whether the model is consulted for ``trial`` at ``step`` (see ``model_steps``)."""
        if self.model_steps is not None:
            return step in self.model_steps
        if not self.reads_spectra:
            return True
        return spectrum_key(step) in trial.system_attrs

    def at_step(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        step: int,
        *,
        gate: float | None = None,
    ) -> FittedModel | SkippedFit | None:
        """The model for ``trial`` at ``step`` (fitted once per training set, cached), or None
        where none predicts it (a non-finite current value, too few completed trials and no
        pretrained model).

        Args:
            study: The study.
            trial: The judged trial.
            step: The step judged.
            gate: Where given, no model is fitted when no fit could reach a gate share of
                ``gate`` on its training set (:class:`SkippedFit` instead); None always fits.
        """
        direction = study.direction
        curve = curve_features(trial.intermediate_values, step, direction)
        if not math.isfinite(curve[0]):
            return None  # a non-finite current value: the raw rule judges it
        spectrum_step: int | None = None
        if self.reads_spectra:
            found = spectrum_at(trial, step)
            if found is not None:
                spectrum_step = found[0]
        context = ReadContext(step, direction, spectrum_step)
        required = required_inputs(spectrum_step)
        # Trials added without a curve or a spectrum (a warm start) neither start nor fill
        # the refit schedule.
        training, usable = training_set(
            study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
            required,
            context,
            start=self.n_startup_trials,
            growth=self.refit_growth,
        )
        own_ready = usable >= self.n_startup_trials and usable > 0
        if not own_ready:
            if self.pretrained is None:
                return None
            training = []
        if training and gate is not None:
            bound = self._gate_bound(training, context, required)
            if bound < gate:
                return SkippedFit(bound, len(training))
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
            fitted = self._fit(training, unlabelled, context, required)
            if fitted is not None and self._defaults().gate_evidence:
                fitted.evidence = gate_evidence(
                    fitted, direction, n_resamples=self.n_resamples, seed=self.seed
                )
            return fitted

        fitted = self._cache.get_or_fit(study, key, fit, share=bool(training))
        return None if fitted is None else FittedModel(key, fitted, spectrum_step)

    def view_at(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        step: int,
        *,
        gate: float,
        always_fit: bool = False,
    ) -> ModelAtStep | None:
        """The model's view of ``trial`` at ``step``; None where no model predicts it.

        Where no fit could reach ``gate`` (and not ``always_fit``), no model is fitted: the
        model is None, the prediction NaN, and the fields say why (``gate_share_bound``)."""
        model = self.at_step(study, trial, step, gate=None if always_fit else gate)
        if model is None:
            return None
        if isinstance(model, SkippedFit):
            return ModelAtStep(None, math.nan, model.record_fields(gate))
        own = self.predict_one(model, trial, step, study.direction)
        if own is None:
            return None
        return ModelAtStep(model, own[0], model.record_fields(own, gate))

    def _gate_bound(
        self, completed: list[FrozenTrial], context: ReadContext, required: Sequence[str]
    ) -> float:
        """:func:`gate_share_bound` on the rows a fit on ``completed`` would judge: the
        highest gate share any model fitted there could reach (cached per training set)."""
        key = (context.step, context.spectrum_step, tuple(t.number for t in completed))
        bound = self._gate_bounds.get(key)
        if bound is not None:
            return bound
        rows, _ = self._labelled_rows(completed, context, required)
        sign = direction_sign(context.direction)
        bound = gate_share_bound(
            sign * rows.raw,
            sign * rows.targets,
            n_resamples=self.n_resamples,
            seed=self.seed,
            groups=rows.group_keys(),
        )
        return self._gate_bounds.put(key, bound)

    def predict(
        self,
        model: FittedModel,
        trials: Sequence[FrozenTrial],
        step: int,
        direction: StudyDirection,
    ) -> tuple[list[int], Any, Any] | None:
        """Trial numbers, predicted final values and ensemble spreads of those of ``trials``
        that have a row at ``step`` as the training rows were read; None where none has."""
        fitted = model.fitted
        context = ReadContext(step, direction, model.spectrum_step, fitted.encoder)
        names = required_inputs(model.spectrum_step)
        readable = [t for t in trials if all(INPUTS[n].available(t, context) for n in names)]
        if not readable:
            return None
        rows = query_rows(readable, fitted.chosen.inputs, context)
        if rows is None:
            return None
        mean, std = fitted.predict(rows, add_residuals=False)
        return rows.numbers, mean, std

    def predict_one(
        self, model: FittedModel, trial: FrozenTrial, step: int, direction: StudyDirection
    ) -> tuple[float, float] | None:
        """``trial``'s predicted final value and the ensemble's spread, or None."""
        predicted = self.predict(model, [trial], step, direction)
        if predicted is None:
            return None
        _, mean, std = predicted
        return float(mean[0]), float(std[0])

    def predictions(
        self,
        model: FittedModel,
        trials: Sequence[FrozenTrial],
        step: int,
        direction: StudyDirection,
    ) -> dict[int, float | None]:
        """Predicted final values of ``trials`` at ``step`` (None: no prediction possible).

        Predictions are kept per model: a trial that reached ``step`` keeps the same inputs
        there, so each competitor is predicted once per model.
        """
        known = self._predictions.setdefault(model.key, dict)
        with self._lock:
            out = {t.number: known[t.number] for t in trials if t.number in known}
            todo = [t for t in trials if t.number not in known]
        if todo:
            new: dict[int, float | None] = {t.number: None for t in todo}
            predicted = self.predict(model, todo, step, direction)
            if predicted is not None:
                numbers, mean, _ = predicted
                new.update({n: float(m) for n, m in zip(numbers, mean, strict=True)})
            out.update(new)
            with self._lock:
                known.update(new)
        return out

    # -- the sampler: the model at initialisation -----------------------------------------

    def _init_context(self, direction: StudyDirection) -> ReadContext:
        return ReadContext(INIT_STEP, direction, INIT_STEP, exact_spectrum_step=True)

    @property
    def min_rows(self) -> int:
        """Labelled rows below which only a pretrained model is a candidate."""
        return self.settings.min_rows

    def training_set_at_init(self, study: optuna.Study) -> tuple[list[FrozenTrial], int]:
        """The labelled trials of the refit schedule at step 0, and how many could be
        labelled rows (COMPLETE with a spectrum at step 0; trials added without one do not
        count)."""
        completed = study._get_trials(
            deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True
        )
        return training_set(
            completed,
            (SPECTRUM,),
            self._init_context(study.direction),
            start=self.min_rows,
            growth=self.refit_growth,
        )

    def can_fit(self, n_labelled: int) -> bool:
        """Whether ``n_labelled`` trials are enough to fit and cross-validate a model."""
        if n_labelled < self.min_rows:
            return False
        # Every fold's training part needs the two labels an AeLLE fit needs.
        k = min(self._cv_folds, n_labelled)
        return n_labelled - math.ceil(n_labelled / k) >= 2

    def at_init(self, study: optuna.Study) -> FittedPredictor | None:
        """The fitted (or pretrained) predictor of step 0 for the study's current trials."""
        training, n_labelled = self.training_set_at_init(study)
        if not self.can_fit(n_labelled):
            if self.pretrained is None:
                return None
            training = []
        unlabelled: list[FrozenTrial] = []
        if self._use_unlabelled:
            pruned = study._get_trials(deepcopy=False, states=(TrialState.PRUNED,), use_cache=True)
            unlabelled = unlabelled_trials(pruned, INIT_STEP, training)
        key = (tuple(t.number for t in training), tuple(t.number for t in unlabelled))
        context = self._init_context(study.direction)

        def fit() -> FittedPredictor | None:
            return self._fit(training, unlabelled, context, (SPECTRUM,))

        return self._cache.get_or_fit(study, key, fit, share=bool(training))

    def acts_at_init(self, fitted: FittedPredictor, min_rank_corr: float) -> bool:
        """Whether the sampler screens with ``fitted``: a pretrained model alone is trusted; a
        model checked on the study's trials must rank them above ``min_rank_corr``
        (:func:`~optuna_lyap._prediction._gate.rank_correlation_accepts`)."""
        if not self.can_fit(fitted.n_rows):
            return True
        return rank_correlation_accepts(fitted.chosen.rank_corr, min_rank_corr)
