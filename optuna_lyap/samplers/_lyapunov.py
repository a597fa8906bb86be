"""``LyapunovSampler``: steer new trials by the final value their dynamics predict.

Notation: ``n`` labelled trials (COMPLETE, with a spectrum at initialisation), ``m`` candidate
parameter sets per new trial, "score": a value oriented so that higher is better.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution, _get_single_value
from optuna.samplers import BaseSampler, TPESampler
from optuna.search_space import intersection_search_space
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._checks import (
    check_int,
    check_real,
)
from optuna_lyap._prediction import (
    SPECTRUM,
    FitSettings,
    FittedPredictor,
    PredictorCache,
    ReadContext,
    Rows,
    fit_predictor,
    input_sets,
    param_encoder,
    rank_correlation,
    read_rows,
    training_set,
    unlabelled_trials,
)
from optuna_lyap._prediction._prior import (
    PARAM_ALIASES,
    PriorPrediction,
    TrialPrior,
    network_from_params,
)
from optuna_lyap._storage import (
    USER_ATTR_SCREEN_PREDICTED,
    USER_ATTR_SCREEN_RANK_CORR,
    USER_ATTR_SCREEN_STD,
    as_exponents,
    spectrum_at,
    spectrum_dim,
)
from optuna_lyap.aelle import AeLLE
from optuna_lyap.aelle._estimator import check_aelle_params
from optuna_lyap.lyapunov import lyapunov_spectrum
from optuna_lyap.lyapunov._arguments import check_spectrum_kwargs, recurrent_part
from optuna_lyap.samplers._view import PredictedStudyView

ModelFactory = Callable[..., torch.nn.Module]
ProbeInputs = torch.Tensor | Callable[[Any], torch.Tensor]

#: Numeric/text user attrs of a screened trial beside ``lyap_screen_predicted`` (study units):
#: which model screened it (``"prior"`` or ``"study"``), and the prior's predicted final
#: quantile within the study (1 = best) where the prior screened.
USER_ATTR_SCREEN_BY = "lyap_screen_by"
USER_ATTR_SCREEN_QUANTILE = "lyap_screen_quantile"

# Spectra are read at this step: the network at initialisation, before any training.
INIT_STEP = 0
# Sets of completed trials whose prior rank correlation is kept.
_PRIOR_CORR_CACHE = 64
# Fewer than this many labels leave nothing to cross-validate.
_MIN_LABELLED = 3
# Refits happen on every new completed trial: a smaller ensemble trained for fewer steps than
# AeLLE's defaults keeps a refit to seconds on a CPU.
DEFAULT_AELLE_PARAMS: dict[str, Any] = {"n_models": 3, "max_steps": 200}


def candidate_seed(seed: int, number: int, index: int) -> int:
    """The seed of candidate ``index``'s network for trial ``number`` (a 63-bit int)."""
    state = np.random.SeedSequence([seed, number, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) | (int(state[1]) >> 1)


def _takes_seed(factory: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in parameters


def init_measurement(
    model_factory: ModelFactory,
    params: Mapping[str, Any],
    probe_inputs: ProbeInputs,
    *,
    seed: int,
    spectrum_kwargs: Mapping[str, Any],
) -> tuple[np.ndarray, int]:
    """Build the untrained network for ``params``; its Lyapunov spectrum and state dimension.

    Args:
        model_factory: ``model_factory(params)`` (or ``model_factory(params, seed=...)`` when
            it takes a ``seed``) returns an ``nn.RNN``/``nn.GRU``/``nn.LSTM``, a module holding
            exactly one of them, or a built-in cell.
        params: The candidate's parameters.
        probe_inputs: A tensor, or ``callable(model) -> tensor``, laid out as the recurrent
            module expects.
        seed: Seeds the network's initialisation: passed as ``seed=`` when the factory takes
            it; torch's global CPU generator is seeded with it (and restored) either way.
        spectrum_kwargs: Keyword arguments of :func:`~optuna_lyap.lyapunov_spectrum`.

    Returns:
        The ``k`` exponents (float64, nats per step, descending) and the state dimension
        ``D`` they belong to (``k = D`` for the full spectrum).
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        if _takes_seed(model_factory):
            model = model_factory(dict(params), seed=seed)
        else:
            model = model_factory(dict(params))
        inputs = probe_inputs if isinstance(probe_inputs, torch.Tensor) else probe_inputs(model)
        spectrum = lyapunov_spectrum(recurrent_part(model), inputs, **spectrum_kwargs)
    return as_exponents(spectrum)


@dataclass(frozen=True)
class _Screener:
    """Which model screens a trial: ``"prior"`` (the trial prior) or ``"study"`` (``fitted``).

    ``rank_corr`` is the model's Spearman correlation with the completed trials' final values
    (out of sample for both: the prior never saw the study, the study's model is
    cross-validated); NaN where not measured yet.
    """

    kind: str
    rank_corr: float
    fitted: FittedPredictor | None = None


@dataclass
class _Plan:
    """What ``infer_relative_search_space`` decided for one trial."""

    trial_id: int
    base_space: dict[str, BaseDistribution]
    screen: dict[str, BaseDistribution] = field(default_factory=dict)
    given: dict[str, Any] = field(default_factory=dict)  # single-valued and enqueued params


class LyapunovSampler(BaseSampler):
    """Steer new trials toward networks whose dynamics predict a good final value.

    Wraps a base sampler (TPE by default) in three ways.

    **Predicted values of pruned trials.** The base sampler reads the study through a
    read-only view in which every PRUNED trial that carries a prediction (the finite user attr
    ``lyap_predicted`` that :class:`~optuna_lyap.LyapunovPruner` writes, where the pruner's
    record shows its gate open; where the pruner ranked by the prior, the value at the prior's
    predicted quantile of the completed trials' final values) is a COMPLETE trial valued at
    its predicted final value. TPE
    would otherwise rank it by its last intermediate value, nearly always among the bad
    trials, and the GP sampler would ignore it. The storage is never changed (see
    :class:`~optuna_lyap.samplers.PredictedStudyView`).

    **Screening candidates by the trial prior, from the first trial.** With ``prior`` (the
    shipped bundle by default), each new trial draws ``n_candidates`` parameter sets from the
    base sampler and keeps the one whose predicted final quantile within the study
    (``TrialPrior.predict_candidates``: 1 = best, whatever the direction) is highest; ties go
    to the earliest proposal. The prior reads the hyperparameters from the parameter names
    ``network_of`` knows (``cell``, ``hidden_size``, ``num_layers``, ``init_scale``, ``lr`` and
    aliases) and, with ``model_factory`` and ``probe_inputs``, each candidate's spectrum at
    initialisation. The quantile is the score rather than the calibrated ``top_probability``:
    it is always defined where a prediction is (a bundle fitted by ``optuna-lyap fit`` has no
    calibration, so ``top_probability`` is NaN), it is what the evidence check below ranks,
    and the calibration is a non-decreasing (isotonic) map of it, so ranking by the quantile
    agrees with ranking by the probability and breaks its ties. Only
    the parameters of the search space (``search_space``, else the intersection of the
    finished trials' parameters) are screened, so a fresh study is screened from trial 0 when
    ``search_space`` is given. Where the prior predicts the first proposal from nothing (no
    known parameter name), that proposal is the trial's, drawn exactly as the base sampler
    alone would draw it, and one ``RuntimeWarning`` per sampler names the parameters.

    **Evidence switches the prior off.** Once ``max(n_startup_trials, 3)`` completed trials
    have a prediction, the prior's predicted quantiles of the completed trials (from the same
    inputs as the candidates': parameters, and with a factory their stored spectrum at step 0)
    must have a Spearman correlation with their final values above ``min_rank_corr``, and the
    study's own model (below, with a factory) must not rank them better; otherwise the study's
    model screens where it acts, and the base sampler decides where it does not.

    **Screening candidates by the study's own model.** With ``model_factory`` and
    ``probe_inputs``, each new trial draws ``n_candidates`` parameter sets from the base
    sampler (over the parameters every finished trial used, or ``search_space``), builds each
    untrained network, computes its Lyapunov spectrum along the probe inputs, predicts its
    final value with an :class:`~optuna_lyap.AeLLE` fitted on the completed trials' spectra at
    step 0 and final values, and keeps the candidate with the best ``predicted value + kappa *
    std`` (direction-aware: the prediction is negated for ``minimize``), where ``std =
    sqrt(ensemble std^2 + residual_rms^2)`` combines the ensemble's spread with the model's
    cross-validated residuals, as :class:`~optuna_lyap.LyapunovPruner` does. Parameters
    outside that search space (conditional ones, new ones) come from the base sampler.

    The model acts only where it has shown it ranks trials: the candidate input sets (the
    spectrum, and with ``use_params`` the hyperparameters and both) are cross-validated on the
    completed trials and the best out-of-sample ranker is kept; screening happens when its
    Spearman correlation with the final values exceeds ``min_rank_corr``. Otherwise, before
    ``n_startup_trials`` trials have completed with a spectrum at step 0 (unless a trained
    ``aelle`` is given), for multi-objective studies, and whenever no candidate can be scored
    (the factory raises, the spectrum is not finite), the base sampler decides; the last case
    issues a ``RuntimeWarning``. A trial is never failed by the screening.

    Each screened trial gets the user attr ``lyap_screen_by`` (``"prior"`` or ``"study"``) and
    the numeric ones optuna-dashboard plots: by the study's model ``lyap_screen_predicted`` (in
    the study's units) and ``lyap_screen_std``; by the prior ``lyap_screen_quantile`` (the
    predicted final quantile); ``lyap_screen_rank_corr``, the screening model's Spearman
    correlation with the completed trials' final values (out of sample; the prior's once
    measured).

    The model is fitted once per training set (see ``refit_growth``) and set of unlabelled
    spectra, from the storage's contents and ``seed`` only, by one worker process, and stored
    in the study for the others (see ``artifact_store``; workers share fits only when they are
    given the same ``seed`` and settings); candidates' networks are seeded from ``seed`` and
    the trial number. The sampler can be shared by threads (``n_jobs > 1``) and pickled (its
    caches are dropped; ``model_factory`` and ``probe_inputs`` must pickle).
    Every hook is delegated to the base sampler, as Optuna's wrapper samplers do.

    Example:

        .. code-block:: python

            import optuna
            import optuna_lyap
            from optuna_lyap.tasks import get_task, make_objective

            task = get_task("adding")
            sampler = optuna_lyap.LyapunovSampler(
                model_factory=task.build_model,  # takes (params, seed=...)
                probe_inputs=task.probe_inputs,  # callable(model) -> B x T x I
                seed=0,
            )
            study = optuna.create_study(
                direction=task.direction, sampler=sampler, pruner=optuna_lyap.LyapunovPruner()
            )
            study.optimize(make_objective(task, spectrum_steps=(0, 1)), n_trials=40)

    Args:
        base_sampler: The sampler that proposes parameters and decides whenever the screening
            does not; None is ``optuna.samplers.TPESampler(seed=seed)``.
        model_factory: ``model_factory(params) -> nn.Module`` builds the untrained network of
            a parameter dict (an ``nn.RNN``/``nn.GRU``/``nn.LSTM``, a module holding exactly
            one of them, or a built-in cell). If it takes a ``seed`` keyword (as
            ``task.build_model`` does) it is given one; torch's global generator is seeded
            around the call either way. It must build the network the objective's spectrum at
            step 0 was computed on. None: no screening.
        probe_inputs: The inputs that drive each candidate network: a tensor, or
            ``callable(model) -> tensor`` (e.g. ``task.probe_inputs``). Use the ones the
            objective's :class:`~optuna_lyap.LyapunovMonitor` uses. Required with
            ``model_factory``.
        n_candidates: Parameter sets ``m`` drawn and scored per trial. Each costs building one
            network and one spectrum; 8 gives the model a real choice among the base
            sampler's proposals while staying cheap next to training a network.
        n_startup_trials: Completed trials with a spectrum at step 0 needed before the model
            is fitted (at least 3 are needed in any case). 10 matches TPE's start-up: the
            screening starts when TPE stops sampling at random, and with fewer labels a model
            regresses to the mean.
        kappa: Weight of the prediction's standard deviation in the score (an upper confidence
            bound); 0 picks by predicted value alone.
        aelle: A fitted :class:`~optuna_lyap.AeLLE` (or a path written by ``AeLLE.save``)
            that reads spectra only (fitted with ``features=None``), e.g. fitted on the step-0
            spectra and final values of an earlier study of the same task family. It screens
            from the first trial whose search space is known (from the first trial with
            ``search_space``); once ``n_startup_trials`` have completed it competes with the
            models fitted on the study's own trials, scored by how it ranks them.
        aelle_params: Keyword arguments of the AeLLE models the sampler fits (``seed`` is set
            by ``seed``); None is ``DEFAULT_AELLE_PARAMS`` (3 members, 200 steps).
        use_params: Offer the hyperparameters (of the completed trials' common search space)
            as an input beside the spectrum.
        select_inputs: Cross-validate the spectrum alone, the hyperparameters alone and both,
            and keep the best ranker; False fits the offered inputs together.
        cv_folds: Folds of the cross-validation; a refit costs ``cv_folds + 1`` fits per
            input set.
        min_rank_corr: The chosen model's out-of-sample Spearman correlation must exceed this
            for the screening to act. In ``[-1, 1)``.
        use_unlabelled: Also train the autoencoder's reconstruction on the step-0 spectra of
            pruned trials numbered below the newest labelled trial the model is fitted on (so
            they change only when the training set does).
        use_predictions: Show pruned trials at their predicted value to the base sampler.
        search_space: The distributions to screen; None uses the intersection of the
            parameters of the study's completed and pruned trials.
        spectrum_kwargs: Keyword arguments of :func:`~optuna_lyap.lyapunov_spectrum` for the
            candidates (e.g. ``k``, ``warmup``, ``state``); the default ``seed=0`` matches
            :class:`~optuna_lyap.LyapunovMonitor`'s.
        refit_growth: The model is fitted on the lowest-numbered ``m`` labelled trials, ``m``
            on the schedule ``max(n_startup_trials, 3)``, then ``max(m + 1, ceil(m *
            refit_growth))`` (the largest size not above the count of labelled trials): about
            ten refits over the first 50 trials instead of one per completed trial. 1 refits
            on every new label. At least 1.
        seed: Seeds the default base sampler, every model fit and the candidates' networks.
            None draws one.
        artifact_store: An :mod:`optuna.artifacts` store (e.g.
            ``optuna.artifacts.FileSystemArtifactStore``) that every worker can read, for the
            fitted models; None stores them in the study's system attrs (in slices under
            MySQL's 64 KiB cap). Give one with a journal storage, which replays every attr
            write in every worker.
        prior: The trial prior that screens from the first trial: ``"shipped"`` (the
            package's bundle), a ``PriorBundle``, a path to one saved by ``optuna-lyap fit``,
            or None (no prior: the study's model alone screens, as before it existed).

    Raises:
        ValueError: An argument outside its range (named), or a ``prior`` that is none of
            the above or an unreadable file.
    """

    def __init__(
        self,
        base_sampler: BaseSampler | None = None,
        *,
        model_factory: ModelFactory | None = None,
        probe_inputs: ProbeInputs | None = None,
        n_candidates: int = 8,
        n_startup_trials: int = 10,
        kappa: float = 1.0,
        aelle: AeLLE | str | os.PathLike[str] | None = None,
        aelle_params: Mapping[str, Any] | None = None,
        use_params: bool = True,
        select_inputs: bool = True,
        cv_folds: int = 3,
        min_rank_corr: float = 0.0,
        use_unlabelled: bool = True,
        use_predictions: bool = True,
        search_space: Mapping[str, BaseDistribution] | None = None,
        spectrum_kwargs: Mapping[str, Any] | None = None,
        refit_growth: float = 1.25,
        seed: int | None = None,
        artifact_store: Any = None,
        prior: Any = "shipped",
    ) -> None:
        if base_sampler is not None and not isinstance(base_sampler, BaseSampler):
            raise ValueError(
                f"`base_sampler` must be an optuna BaseSampler or None, but got {base_sampler=}."
            )
        if model_factory is not None and not callable(model_factory):
            raise ValueError(
                f"`model_factory` must be callable(params) -> nn.Module, but got {model_factory=}."
            )
        if probe_inputs is not None and not (
            isinstance(probe_inputs, torch.Tensor) or callable(probe_inputs)
        ):
            raise ValueError(
                "`probe_inputs` must be a tensor or a callable(model) -> tensor, but got "
                f"{type(probe_inputs).__name__}."
            )
        if model_factory is not None and probe_inputs is None:
            raise ValueError("`model_factory` needs `probe_inputs` to drive the networks.")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._seed = check_int("seed", seed, 0)
        self._n_candidates = check_int("n_candidates", n_candidates, 1)
        self._n_startup_trials = check_int("n_startup_trials", n_startup_trials, 0)
        self._kappa = check_real("kappa", kappa, 0.0, math.inf)
        self._refit_growth = check_real("refit_growth", refit_growth, 1.0, math.inf)
        self._cv_folds = check_int("cv_folds", cv_folds, 2)
        self._min_rank_corr = check_real("min_rank_corr", min_rank_corr, -1.0, 1.0)
        if self._min_rank_corr >= 1.0:
            raise ValueError(
                f"`min_rank_corr` must be below 1 (1 never screens), but got {min_rank_corr=}."
            )
        if search_space is not None and not all(
            isinstance(d, BaseDistribution) for d in search_space.values()
        ):
            raise ValueError(
                "`search_space` must map parameter names to optuna distributions, but got "
                f"{search_space=}."
            )
        self._base = base_sampler if base_sampler is not None else TPESampler(seed=self._seed)
        self._model_factory = model_factory
        self._probe_inputs = probe_inputs
        enabled = (SPECTRUM, "params") if use_params else (SPECTRUM,)
        self._candidates = input_sets(enabled, bool(select_inputs))
        self._use_params = bool(use_params)
        self._use_unlabelled = bool(use_unlabelled)
        self._use_predictions = bool(use_predictions)
        self._search_space = None if search_space is None else dict(search_space)
        self._spectrum_kwargs = check_spectrum_kwargs({"seed": 0, **(spectrum_kwargs or {})})
        self._aelle_params = check_aelle_params(
            DEFAULT_AELLE_PARAMS if aelle_params is None else aelle_params
        )

        if isinstance(aelle, (str, os.PathLike)):
            aelle = AeLLE.load(aelle)
        if aelle is not None:
            if not isinstance(aelle, AeLLE) or not hasattr(aelle, "network_"):
                raise ValueError(
                    f"`aelle` must be a fitted AeLLE, a path to one, or None, but got {aelle=}."
                )
            if not aelle.uses_spectra_ or aelle.n_features_in_ != 0:
                raise ValueError(
                    "`aelle` must read spectra only (fit it with features=None): candidates "
                    f"have no learning curve yet, but it was fitted with {aelle.uses_spectra_=} "
                    f"and {aelle.n_features_in_=}."
                )
        self._pretrained = aelle
        self._artifact_store = artifact_store
        self._prior = TrialPrior.resolve(prior)
        self._init_state()

    def _init_state(self) -> None:
        self._settings = FitSettings(
            tuple(self._candidates),
            self._aelle_params,
            self._seed,
            self._cv_folds,
            min_rows=max(self._n_startup_trials, _MIN_LABELLED),
        )
        self._cache = PredictorCache(
            self._settings, "LyapunovSampler", self._pretrained, self._artifact_store, size=8
        )
        self._local = threading.local()
        self._warned_multi_objective = False
        # The prior's rank correlation with the completed trials, per set of trials; and the
        # parameter-name sets the prior could not read (the base decides for them).
        self._prior_lock = threading.Lock()
        self._prior_corr: dict[tuple[Any, ...], tuple[float, int]] = {}
        self._unreadable: set[frozenset[str]] = set()
        self._warned_unreadable = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_cache", "_local", "_prior_lock", "_prior_corr", "_unreadable"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_state()

    @property
    def base_sampler(self) -> BaseSampler:
        """The wrapped sampler."""
        return self._base

    # -- delegation ---------------------------------------------------------------------------

    def _view(self, study: optuna.Study, trial: FrozenTrial) -> PredictedStudyView:
        return PredictedStudyView(study, trial, substitute=self._use_predictions)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        plan = getattr(self._local, "plan", None)
        if plan is not None and plan.trial_id == trial._trial_id:
            self._local.plan = None
        self._base.after_trial(study, trial, state, values)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        base_space = self._base.infer_relative_search_space(self._view(study, trial), trial)
        plan = _Plan(trial._trial_id, dict(base_space))
        if self._ready(study):
            plan.screen, plan.given = self._screen_space(study, trial)
        self._local.plan = plan
        return {**plan.screen, **base_space}

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        view = self._view(study, trial)
        plan = getattr(self._local, "plan", None)
        if plan is None or plan.trial_id != trial._trial_id or not plan.screen:
            return self._base.sample_relative(view, trial, search_space)
        base_part = {n: d for n, d in search_space.items() if n in plan.base_space}
        screen_part = {n: d for n, d in search_space.items() if n in plan.screen}
        try:
            chosen = self._screen(study, view, trial, base_part, screen_part, plan.given)
        except Exception as err:  # the screening must never fail a trial
            warnings.warn(
                f"LyapunovSampler could not screen trial {trial.number} "
                f"({type(err).__name__}: {err}); the base sampler decides.",
                RuntimeWarning,
                stacklevel=2,
            )
            chosen = None
        view.release_bookkeeping()
        if chosen is None:
            return self._base.sample_relative(view, trial, base_part)
        return chosen

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._base.sample_independent(
            self._view(study, trial), trial, param_name, param_distribution
        )

    # -- screening ----------------------------------------------------------------------------

    def _training_set(self, study: optuna.Study) -> tuple[list[FrozenTrial], int]:
        """The labelled trials of the refit schedule, and how many could be labelled rows.

        Labelled: COMPLETE with a spectrum at step 0 (trials added without one do not count).
        """
        completed = study._get_trials(
            deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True
        )
        context = ReadContext(INIT_STEP, study.direction, INIT_STEP, exact_spectrum_step=True)
        return training_set(
            completed,
            (SPECTRUM,),
            context,
            start=self._settings.min_rows,
            growth=self._refit_growth,
        )

    def _own_ready(self, n_labelled: int) -> bool:
        """Whether ``n_labelled`` trials are enough to fit and cross-validate a model."""
        if n_labelled < self._settings.min_rows:
            return False
        # Every fold's training part needs the two labels an AeLLE fit needs.
        k = min(self._cv_folds, n_labelled)
        return n_labelled - math.ceil(n_labelled / k) >= 2

    def _ready(self, study: optuna.Study) -> bool:
        """Whether this trial may be screened: one objective, and a model that can act."""
        if self._model_factory is None and self._prior is None:
            return False
        if len(study.directions) > 1:
            if not self._warned_multi_objective:
                self._warned_multi_objective = True
                warnings.warn(
                    "LyapunovSampler screens single-objective studies only; in this "
                    "multi-objective study the base sampler decides.",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return False
        if self._prior is not None:
            return True
        return self._pretrained is not None or self._own_ready(self._training_set(study)[1])

    def _screen_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
        """The distributions to screen, and the values the factory is given for the others."""
        if self._search_space is not None:
            space = dict(self._search_space)
        else:
            finished = study._get_trials(
                deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED), use_cache=True
            )
            space = intersection_search_space(finished, include_pruned=True)
        given: dict[str, Any] = {
            name: _get_single_value(dist) for name, dist in space.items() if dist.single()
        }
        fixed = trial.system_attrs.get("fixed_params") or {}
        given.update(fixed)
        screen = {n: d for n, d in space.items() if not d.single() and n not in fixed}
        return screen, given

    def _model(self, study: optuna.Study) -> FittedPredictor | None:
        """The fitted (or pretrained) predictor for the study's current trials, cached."""
        training, n_labelled = self._training_set(study)
        if not self._own_ready(n_labelled):
            if self._pretrained is None:
                return None
            training = []
        unlabelled: list[FrozenTrial] = []
        if self._use_unlabelled:
            pruned = study._get_trials(deepcopy=False, states=(TrialState.PRUNED,), use_cache=True)
            unlabelled = unlabelled_trials(pruned, INIT_STEP, training)
        key = (tuple(t.number for t in training), tuple(t.number for t in unlabelled))

        def fit() -> FittedPredictor | None:
            return self._fit(training, unlabelled, study.direction)

        return self._cache.get_or_fit(study, key, fit, share=bool(training))

    def _fit(
        self, labelled: list[FrozenTrial], unlabelled: list[FrozenTrial], direction: StudyDirection
    ) -> FittedPredictor | None:
        encoder = param_encoder(labelled) if self._use_params else None
        context = ReadContext(INIT_STEP, direction, INIT_STEP, encoder, exact_spectrum_step=True)
        rows = read_rows(labelled, (SPECTRUM, "params"), context)
        extra = None
        if unlabelled:
            extra = read_rows(unlabelled, (SPECTRUM, "params"), context, labelled=False)
        pretrained = None if self._pretrained is None else (self._pretrained, (SPECTRUM,))
        return fit_predictor(
            rows, settings=self._settings, unlabelled=extra, pretrained=pretrained, encoder=encoder
        )

    def _acts(self, fitted: FittedPredictor) -> bool:
        """Whether to screen with ``fitted``: a pretrained model alone is trusted; a model
        checked on the study's trials must rank them above ``min_rank_corr``."""
        if not self._own_ready(fitted.n_rows):
            return True
        corr = fitted.chosen.rank_corr
        return not math.isnan(corr) and corr > self._min_rank_corr

    def _completed(self, study: optuna.Study) -> list[FrozenTrial]:
        """The COMPLETE trials with a finite value, in trial order."""
        done = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)
        return [t for t in done if t.value is not None and math.isfinite(t.value)]

    def _prior_predictions(self, trials: Sequence[FrozenTrial]) -> list[PriorPrediction | None]:
        """The prior's step-0 predictions of ``trials``, from the inputs a candidate has.

        The parameters always; with ``model_factory``, also the spectrum stored at step 0
        (where a trial has none, its parameters alone).
        """
        assert self._prior is not None
        params = [dict(t.params) for t in trials]
        if self._model_factory is None:
            return list(self._prior.predict_candidates(params))
        out: list[PriorPrediction | None] = [None] * len(trials)
        with_spectrum, without = [], []
        spectra, dims = [], []
        for i, trial in enumerate(trials):
            found = spectrum_at(trial, INIT_STEP)
            if found is None or found[0] != INIT_STEP:
                without.append(i)
                continue
            with_spectrum.append(i)
            spectra.append(found[1])
            dims.append(spectrum_dim(trial, INIT_STEP) or len(found[1]))
        if with_spectrum:
            preds = self._prior.predict_candidates(
                [params[i] for i in with_spectrum], spectra, dims
            )
            for i, pred in zip(with_spectrum, preds, strict=True):
                out[i] = pred
        if without:
            preds = self._prior.predict_candidates([params[i] for i in without])
            for i, pred in zip(without, preds, strict=True):
                out[i] = pred
        return out

    def _prior_rank_corr(
        self, study: optuna.Study, completed: Sequence[FrozenTrial]
    ) -> tuple[float, int]:
        """Spearman of the prior's predicted quantiles with the completed trials' finals.

        Returns:
            The correlation (NaN where undefined) and the number of trials it was measured
            on (those the prior predicts). Cached per set of completed trials.
        """
        key = (study._study_id, tuple(t.number for t in completed))
        with self._prior_lock:
            if key in self._prior_corr:
                return self._prior_corr[key]
        predicted, final = [], []
        for trial, pred in zip(completed, self._prior_predictions(completed), strict=True):
            if pred is not None and math.isfinite(pred.quantile):
                predicted.append(pred.quantile)
                final.append(float(trial.value))  # type: ignore[arg-type]
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        corr = rank_correlation(np.array(predicted), sign * np.array(final))
        with self._prior_lock:
            if len(self._prior_corr) >= _PRIOR_CORR_CACHE:
                self._prior_corr.clear()  # one entry per completed trial: keep it bounded
            self._prior_corr[key] = (corr, len(predicted))
        return corr, len(predicted)

    def _screener(self, study: optuna.Study, names: frozenset[str]) -> _Screener | None:
        """Which model screens this trial, or None (the base decides).

        The prior screens until ``max(n_startup_trials, 3)`` completed trials have a
        prediction; from then on while its Spearman correlation with their final values
        exceeds ``min_rank_corr`` and the study's own model (with ``model_factory``) does
        not rank them better. Otherwise the study's model screens where it acts.
        """
        prior_corr = math.nan
        if self._prior is not None and names not in self._unreadable:
            completed = self._completed(study)
            if len(completed) < max(self._n_startup_trials, _MIN_LABELLED):
                return _Screener("prior", math.nan)
            prior_corr, n_predicted = self._prior_rank_corr(study, completed)
            if n_predicted < max(self._n_startup_trials, _MIN_LABELLED):
                return _Screener("prior", prior_corr)
        fitted = self._model(study) if self._model_factory is not None else None
        own_acts = fitted is not None and self._acts(fitted)
        own_corr = math.nan
        if fitted is not None and self._own_ready(fitted.n_rows):
            own_corr = fitted.chosen.rank_corr
        if math.isfinite(prior_corr) and prior_corr > self._min_rank_corr:
            if not (own_acts and math.isfinite(own_corr) and own_corr > prior_corr):
                return _Screener("prior", prior_corr)
        if own_acts:
            return _Screener("study", own_corr, fitted)
        return None

    def _candidate_spectrum(
        self, params: Mapping[str, Any], number: int, index: int
    ) -> np.ndarray:
        """The spectrum at initialisation of candidate ``index`` of trial ``number``.

        Builds the network with ``model_factory`` and drives it with ``probe_inputs`` (see
        :func:`init_measurement`). A subclass may read it from elsewhere, e.g. a table of
        networks already measured; the prior then takes ``D`` to be the spectrum's length.
        """
        assert self._model_factory is not None and self._probe_inputs is not None
        spectrum, dim = init_measurement(
            self._model_factory,
            params,
            self._probe_inputs,
            seed=candidate_seed(self._seed, number, index),
            spectrum_kwargs=self._spectrum_kwargs,
        )
        dims = getattr(self._local, "dims", None)
        if dims is not None:
            dims[index] = dim
        return spectrum

    def _draw(
        self,
        study: optuna.Study,
        view: PredictedStudyView,
        trial: FrozenTrial,
        base_part: dict[str, BaseDistribution],
        screen_part: dict[str, BaseDistribution],
        count: int | None = None,
    ) -> tuple[list[dict[str, Any]], list[list[Any]]]:
        """``count`` (default ``n_candidates``) proposals of the base sampler, each with its
        held bookkeeping."""
        # Optuna hands sample_independent the trial with its current system attrs (what
        # before_trial wrote, e.g. GridSampler's grid id); the trial given here predates them.
        latest = copy.copy(trial)
        latest.system_attrs = dict(study._storage.get_trial_system_attrs(trial._trial_id))
        candidates: list[dict[str, Any]] = []
        held = []
        for _ in range(self._n_candidates if count is None else count):
            held.append(view.hold_bookkeeping())
            params = dict(self._base.sample_relative(view, trial, base_part)) if base_part else {}
            for name, dist in screen_part.items():
                if name not in params:
                    params[name] = self._base.sample_independent(view, latest, name, dist)
            candidates.append(params)
        view.release_bookkeeping()
        return candidates, held

    def _spectra(
        self,
        candidates: list[dict[str, Any]],
        trial: FrozenTrial,
        given: dict[str, Any],
        first_index: int = 0,
        warn_non_finite: bool = True,
    ) -> tuple[list[int], list[np.ndarray], list[int]]:
        """The candidates whose spectrum at initialisation is finite, their spectra and ``D``.

        A candidate whose factory or spectrum raises is skipped with a ``RuntimeWarning``; one
        whose spectrum is not finite too, unless ``warn_non_finite`` is False (the prior then
        predicts it from its parameters: a network that diverges is no error).
        """
        scored: list[int] = []
        spectra: list[np.ndarray] = []
        dims: list[int] = []
        self._local.dims = {}
        try:
            for i, params in enumerate(candidates):
                try:
                    spectrum = self._candidate_spectrum(
                        {**given, **dict(trial.params), **params}, trial.number, first_index + i
                    )
                except Exception as err:
                    warnings.warn(
                        f"LyapunovSampler skips a candidate of trial {trial.number}: building "
                        f"its network or spectrum raised {type(err).__name__}: {err}",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                    continue
                if not np.isfinite(spectrum).all():
                    if not warn_non_finite:
                        continue
                    warnings.warn(
                        f"LyapunovSampler skips a candidate of trial {trial.number}: its "
                        "spectrum at initialisation is not finite.",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                    continue
                scored.append(i)
                spectra.append(spectrum)
                dims.append(int(self._local.dims.get(first_index + i, len(spectrum))))
        finally:
            self._local.dims = None
        return scored, spectra, dims

    def _screen(
        self,
        study: optuna.Study,
        view: PredictedStudyView,
        trial: FrozenTrial,
        base_part: dict[str, BaseDistribution],
        screen_part: dict[str, BaseDistribution],
        given: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Draw candidates, score them, and return the best; None lets the base decide."""
        names = frozenset(screen_part) | frozenset(base_part)
        screener = self._screener(study, names)
        if screener is None:
            return None
        if screener.kind == "prior":
            return self._screen_by_prior(
                study, view, trial, base_part, screen_part, given, screener, names
            )
        fitted = screener.fitted
        assert fitted is not None
        inputs = fitted.chosen.inputs
        candidates, held = self._draw(study, view, trial, base_part, screen_part)
        if SPECTRUM in inputs:
            scored, spectra, _ = self._spectra(candidates, trial, given)
        else:
            scored, spectra = list(range(len(candidates))), []
        if not scored:
            warnings.warn(
                f"LyapunovSampler could not score any candidate of trial {trial.number}; the "
                "base sampler's proposal is used.",
                RuntimeWarning,
                stacklevel=3,
            )
            view.replay(held[0])
            return candidates[0]

        columns: dict[str, Any] = {}
        if SPECTRUM in inputs:
            columns[SPECTRUM] = spectra
        if "params" in inputs:
            encoder = fitted.encoder
            columns["params"] = np.array([encoder.encode(candidates[i]) for i in scored])
        mean, std = fitted.predict(Rows.unlabelled([trial.number] * len(scored), columns))
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        score = np.where(np.isfinite(mean), sign * mean + self._kappa * std, -np.inf)
        best = int(np.argmax(score))
        view.replay(held[scored[best]])

        storage, trial_id = study._storage, trial._trial_id
        storage.set_trial_user_attr(trial_id, USER_ATTR_SCREEN_BY, "study")
        if math.isfinite(mean[best]):
            storage.set_trial_user_attr(trial_id, USER_ATTR_SCREEN_PREDICTED, float(mean[best]))
        if math.isfinite(std[best]):
            storage.set_trial_user_attr(trial_id, USER_ATTR_SCREEN_STD, float(std[best]))
        corr = fitted.chosen.rank_corr
        if math.isfinite(corr):
            storage.set_trial_user_attr(trial_id, USER_ATTR_SCREEN_RANK_CORR, float(corr))
        return candidates[scored[best]]

    def _screen_by_prior(
        self,
        study: optuna.Study,
        view: PredictedStudyView,
        trial: FrozenTrial,
        base_part: dict[str, BaseDistribution],
        screen_part: dict[str, BaseDistribution],
        given: dict[str, Any],
        screener: _Screener,
        names: frozenset[str],
    ) -> dict[str, Any] | None:
        """Keep the candidate with the highest predicted final quantile (ties: the earliest
        proposal).

        The first proposal is predicted before the others are drawn: where the prior cannot
        predict it, it is the base sampler's choice, drawn exactly as without screening.
        """
        candidates, held = self._draw(study, view, trial, base_part, screen_part, 1)
        preds = self._predict_prior(candidates, trial, given, 0)
        if preds[0] is None:
            full = {**given, **dict(trial.params), **candidates[0]}
            if network_from_params(full) is None:
                self._warn_unreadable(names)
            view.replay(held[0])
            return candidates[0]
        if self._n_candidates > 1:
            more, more_held = self._draw(
                study, view, trial, base_part, screen_part, self._n_candidates - 1
            )
            candidates += more
            held += more_held
            preds += self._predict_prior(more, trial, given, 1)
        quantiles = np.array(
            [np.nan if p is None else float(p.quantile) for p in preds], dtype=np.float64
        )
        finite = np.isfinite(quantiles)
        if not finite.any():
            view.replay(held[0])
            return candidates[0]
        best = int(np.argmax(np.where(finite, quantiles, -np.inf)))
        view.replay(held[best])

        storage, trial_id = study._storage, trial._trial_id
        storage.set_trial_user_attr(trial_id, USER_ATTR_SCREEN_BY, "prior")
        storage.set_trial_user_attr(trial_id, USER_ATTR_SCREEN_QUANTILE, float(quantiles[best]))
        if math.isfinite(screener.rank_corr):
            storage.set_trial_user_attr(
                trial_id, USER_ATTR_SCREEN_RANK_CORR, float(screener.rank_corr)
            )
        return candidates[best]

    def _predict_prior(
        self,
        candidates: list[dict[str, Any]],
        trial: FrozenTrial,
        given: dict[str, Any],
        first_index: int,
    ) -> list[PriorPrediction | None]:
        """The prior's predictions of ``candidates`` (numbered from ``first_index``).

        With ``model_factory``, a candidate whose spectrum at initialisation is finite is
        predicted from its hyperparameters and spectrum, any other from its hyperparameters.
        """
        assert self._prior is not None
        full = [{**given, **dict(trial.params), **c} for c in candidates]
        if self._model_factory is None:
            return list(self._prior.predict_candidates(full))
        scored, spectra, dims = self._spectra(
            candidates, trial, given, first_index, warn_non_finite=False
        )
        preds: list[PriorPrediction | None] = [None] * len(candidates)
        if scored:
            got = self._prior.predict_candidates([full[i] for i in scored], spectra, dims)
            for i, pred in zip(scored, got, strict=True):
                preds[i] = pred
        rest = [i for i in range(len(candidates)) if i not in scored]
        if rest:
            got = self._prior.predict_candidates([full[i] for i in rest])
            for i, pred in zip(rest, got, strict=True):
                preds[i] = pred
        return preds

    def _warn_unreadable(self, names: frozenset[str]) -> None:
        """Remember that the prior cannot read ``names``; warn once per sampler."""
        with self._prior_lock:
            self._unreadable.add(names)
            if self._warned_unreadable:
                return
            self._warned_unreadable = True
        looked_for = ", ".join(alias for aliases in PARAM_ALIASES.values() for alias in aliases)
        spectrum_note = (
            "; its models read no spectrum without hyperparameters"
            if self._model_factory is not None
            else ""
        )
        warnings.warn(
            f"LyapunovSampler's prior predicts nothing for the candidates: it reads the "
            f"hyperparameters from the parameter names {looked_for}, and found none among "
            f"{sorted(names)}{spectrum_note}. Rename the parameters so, or pass prior=None; "
            "until then the base sampler decides.",
            RuntimeWarning,
            stacklevel=5,
        )
