"""``LyapunovSampler``: steer new trials by the final value their dynamics predict.

Notation: ``n`` labelled trials (COMPLETE, with a spectrum at initialisation), ``m`` candidate
parameter sets per new trial, "score": a value oriented so that higher is better.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._checks import check_int, check_real
from optuna_lyap._prediction._core import SPECTRUM, FittedPredictor
from optuna_lyap._prediction._gate import direction_sign, rank_correlation_accepts
from optuna_lyap._prediction._in_study import ConsumerDefaults, InStudyModel
from optuna_lyap._prediction._prior import (
    TrialPrior,
)
from optuna_lyap._prediction._study_prior import StudyPrior
from optuna_lyap._storage import (
    USER_ATTR_SCREEN_PREDICTED,
    USER_ATTR_SCREEN_RANK_CORR,
    USER_ATTR_SCREEN_STD,
)
from optuna_lyap.lyapunov._arguments import check_spectrum_kwargs
from optuna_lyap.samplers._candidates import (
    ModelFactory,
    ProbeInputs,
    Screening,
    best_by_model,
    candidate_seed,
    draw_candidates,
    init_measurement,
    measure_candidates,
    record_screen,
    screen_space,
)
from optuna_lyap.samplers._prior_screen import PriorScreen
from optuna_lyap.samplers._view import PredictedStudyView

__all__ = ["DEFAULT_AELLE_PARAMS", "LyapunovSampler", "candidate_seed", "init_measurement"]

# Spectra are read at this step: the network at initialisation, before any training.
INIT_STEP = 0
# Fewer than this many labels leave nothing to cross-validate.
_MIN_LABELLED = 3
# Refits happen on every new completed trial: a smaller ensemble trained for fewer steps than
# AeLLE's defaults keeps a refit to seconds on a CPU.
DEFAULT_AELLE_PARAMS: dict[str, Any] = {"n_models": 3, "max_steps": 200}


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
    its predicted final value, not at its last intermediate value (see
    :class:`~optuna_lyap.samplers.PredictedStudyView`). The storage is never changed.

    **Screening candidates by the trial prior, from the first trial.** With ``prior`` (the
    shipped bundle by default), each new trial draws ``n_candidates`` parameter sets from the
    base sampler and keeps the one whose predicted final quantile within the study
    (``TrialPrior.predict_candidates``: 1 = best) is highest; ties go to the earliest proposal.
    The prior reads the hyperparameters from the parameter names ``network_of`` knows
    (``cell``, ``hidden_size``, ``num_layers``, ``init_scale``, ``lr`` and aliases) and, with
    ``model_factory`` and ``probe_inputs``, each candidate's spectrum at initialisation. The
    quantile is the score rather than the calibrated ``top_probability``: it is always
    defined where a prediction is, and the calibration is a non-decreasing map of it. Only the
    parameters of the search space (``search_space``, else the intersection of the finished
    trials' parameters) are screened. Where the prior predicts the first proposal from nothing
    (no known parameter name), that proposal is the trial's, drawn exactly as the base sampler
    alone would draw it, and one ``RuntimeWarning`` per sampler names the parameters.

    **Evidence switches the prior off.** Once ``max(n_startup_trials, 3)`` completed trials
    have a prediction, the prior's predicted quantiles of the completed trials (from the
    candidates' inputs) must have a Spearman correlation with their final values above
    ``min_rank_corr``, and the study's own model must not rank them better; otherwise the
    study's model screens where it acts, and the base sampler decides where it does not.

    **Screening candidates by the study's own model.** With ``model_factory`` and
    ``probe_inputs``, each candidate's untrained network is built, its Lyapunov spectrum
    computed along the probe inputs, and its final value predicted by the
    :class:`~optuna_lyap.InStudyModel` (``model``) fitted on the completed trials' spectra at
    step 0 (and hyperparameters) and final values; the candidate with the best ``predicted
    value + kappa * std`` (direction-aware) is kept, ``std`` combining the ensemble's spread
    with the cross-validated residuals. The model acts only where its out-of-sample Spearman
    correlation exceeds ``min_rank_corr`` (a pretrained ``aelle`` alone is trusted); before
    ``n_startup_trials`` labelled trials, for multi-objective studies, and where no candidate
    can be scored (with a ``RuntimeWarning``), the base sampler decides. A trial is never
    failed by the screening.

    Each screened trial gets the user attrs ``lyap_screen_by`` (``"prior"`` or ``"study"``),
    ``lyap_screen_predicted``, ``lyap_screen_std``, ``lyap_screen_quantile`` and
    ``lyap_screen_rank_corr`` (the numbers optuna-dashboard plots).

    Fits depend only on the storage's contents and the model's seed, and are shared through
    the study; candidates' networks are seeded from ``seed`` and the trial number, and the
    global random generators (torch's, NumPy's, Python's) are restored after each, so the
    screening never changes the user's seeded training. The sampler can be shared by threads
    and pickled (``model_factory`` and ``probe_inputs`` must pickle); every hook is delegated
    to the base sampler, as Optuna's wrapper samplers do.

    Example:
        The prior screens from the first trial where the search space is known (with
        ``model_factory`` and ``probe_inputs``, e.g. ``task.build_model`` and
        ``task.probe_inputs``, the study's own model screens too):

        >>> import optuna
        >>> import optuna_lyap
        >>> from optuna.distributions import FloatDistribution, IntDistribution
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> space = {
        ...     "lr": FloatDistribution(1e-4, 1e-1, log=True),
        ...     "hidden_size": IntDistribution(8, 128, log=True),
        ... }
        >>> sampler = optuna_lyap.LyapunovSampler(search_space=space, n_candidates=4, seed=0)
        >>> study = optuna.create_study(direction="maximize", sampler=sampler)
        >>> def objective(trial):
        ...     lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        ...     trial.suggest_int("hidden_size", 8, 128, log=True)
        ...     return -abs(lr - 3e-3)
        >>> study.optimize(objective, n_trials=3)
        >>> [t.user_attrs["lyap_screen_by"] for t in study.trials]
        ['prior', 'prior', 'prior']

    Args:
        base_sampler: Proposes parameters and decides wherever the screening does not; None
            is ``optuna.samplers.TPESampler(seed=seed)``.
        model: The :class:`~optuna_lyap.InStudyModel` fitted on the completed trials' step-0
            spectra (and hyperparameters). None: ``InStudyModel()`` with the sampler's
            defaults (the spectrum and the hyperparameters; 3 AeLLE members of 200 steps;
            ``refit_growth`` 1.25; the sampler's ``seed``). Its inputs may be ``"spectrum"``
            and ``"params"`` (a candidate has no curve); a pretrained ``aelle`` must read
            spectra only.
        model_factory: ``model_factory(params) -> nn.Module`` builds the untrained network of
            a parameter dict (an ``nn.RNN``/``nn.GRU``/``nn.LSTM``, a module holding exactly
            one, or a built-in cell), given ``seed=`` when it takes one. It must build the
            network the objective's spectrum at step 0 was computed on. None: no screening by
            the study's model.
        probe_inputs: The inputs that drive each candidate network: a tensor, or
            ``callable(model) -> tensor`` (e.g. ``task.probe_inputs``), as the objective's
            :class:`~optuna_lyap.LyapunovMonitor` uses. Required with ``model_factory``.
        n_candidates: Parameter sets ``m`` drawn and scored per trial (each costs a network
            and a spectrum).
        n_startup_trials: Labelled trials before the model is fitted (unless the model sets
            its own; at least 3 in any case), and completed trials with a prediction before
            the prior's evidence is checked. 10 matches TPE's start-up.
        kappa: Weight of the prediction's standard deviation in the score (an upper confidence
            bound); 0 picks by predicted value alone.
        min_rank_corr: The screening model's out-of-sample Spearman correlation (the prior's,
            and the study model's) must exceed this for it to screen. In ``[-1, 1)``.
        use_predictions: Show pruned trials at their predicted value to the base sampler.
        search_space: The distributions to screen; None uses the intersection of the
            parameters of the study's completed and pruned trials.
        spectrum_kwargs: Keyword arguments of :func:`~optuna_lyap.lyapunov_spectrum` for the
            candidates; the default ``seed=0`` matches :class:`~optuna_lyap.LyapunovMonitor`'s.
        seed: Seeds the default base sampler, the model (unless it sets its own) and the
            candidates' networks. None draws one.
        prior: The trial prior that screens from the first trial: ``"shipped"`` (the
            package's bundle), a ``PriorBundle``, a path to one saved by ``optuna-lyap fit``,
            or None (the study's model alone screens).

    Raises:
        ValueError: An argument outside its range (named), or a ``prior`` that is none of
            the above or an unreadable file.
        TypeError: For an argument the sampler does not take: since the in-study model became
            :class:`~optuna_lyap.InStudyModel`, ``aelle``, ``aelle_params``, ``use_params``,
            ``select_inputs``, ``cv_folds``, ``use_unlabelled``, ``refit_growth`` and
            ``artifact_store`` are its arguments.
    """

    def __init__(
        self,
        base_sampler: BaseSampler | None = None,
        *,
        model: InStudyModel | None = None,
        model_factory: ModelFactory | None = None,
        probe_inputs: ProbeInputs | None = None,
        n_candidates: int = 8,
        n_startup_trials: int = 10,
        kappa: float = 1.0,
        min_rank_corr: float = 0.0,
        use_predictions: bool = True,
        search_space: Mapping[str, BaseDistribution] | None = None,
        spectrum_kwargs: Mapping[str, Any] | None = None,
        seed: int | None = None,
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
        if model is not None and not isinstance(model, InStudyModel):
            raise TypeError(f"`model` must be an InStudyModel or None, but got {model=}.")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._seed = check_int("seed", seed, 0)
        self._n_candidates = check_int("n_candidates", n_candidates, 1)
        self._n_startup_trials = check_int("n_startup_trials", n_startup_trials, 0)
        self._kappa = check_real("kappa", kappa, 0.0, math.inf)
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
        self._use_predictions = bool(use_predictions)
        self._search_space = None if search_space is None else dict(search_space)
        self._spectrum_kwargs = check_spectrum_kwargs({"seed": 0, **(spectrum_kwargs or {})})
        self._model = (InStudyModel() if model is None else model).bind(
            ConsumerDefaults(
                "LyapunovSampler",
                inputs=(SPECTRUM, "params"),
                allowed=(SPECTRUM, "params"),
                aelle_params=DEFAULT_AELLE_PARAMS,
                refit_growth=1.25,
                seed=self._seed,
                n_startup_trials=self._n_startup_trials,
                cache_size=8,
                startup_sets_min_rows=True,
                spectra_only_pretrained=True,
            )
        )
        self._prior = TrialPrior.resolve(prior)
        self._prior_screen = PriorScreen(self._n_candidates)
        self._init_state()

    def _init_state(self) -> None:
        self._local = threading.local()
        self._warned_multi_objective = False
        self._study_prior = None if self._prior is None else StudyPrior(self._prior)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_local", "_study_prior"):
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
            screening = Screening(
                self._base, study, view, trial, base_part, screen_part, plan.given
            )
            chosen = self._screen(screening)
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
        if self._model.pretrained is not None:
            return True
        return self._model.can_fit(self._model.training_set_at_init(study)[1])

    def _screen_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
        """The distributions to screen, and the values the factory is given for the others."""
        return screen_space(study, trial, self._search_space)

    def _completed(self, study: optuna.Study) -> list[FrozenTrial]:
        """The COMPLETE trials with a finite value, in trial order."""
        done = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)
        return [t for t in done if t.value is not None and math.isfinite(t.value)]

    def _screener(self, study: optuna.Study, names: frozenset[str]) -> _Screener | None:
        """Which model screens this trial, or None (the base decides).

        The prior screens until ``max(n_startup_trials, 3)`` completed trials have a
        prediction; from then on while its Spearman correlation with their final values
        exceeds ``min_rank_corr`` and the study's own model (with ``model_factory``) does
        not rank them better. Otherwise the study's model screens where it acts.
        """
        prior_corr = math.nan
        if self._study_prior is not None and self._prior_screen.reads(names):
            completed = self._completed(study)
            if len(completed) < max(self._n_startup_trials, _MIN_LABELLED):
                return _Screener("prior", math.nan)
            prior_corr, n_predicted = self._study_prior.rank_correlation_at_init(
                study._study_id, completed, study.direction, self._model_factory is not None
            )
            if n_predicted < max(self._n_startup_trials, _MIN_LABELLED):
                return _Screener("prior", prior_corr)
        fitted = self._model.at_init(study) if self._model_factory is not None else None
        own_acts = fitted is not None and self._model.acts_at_init(fitted, self._min_rank_corr)
        own_corr = math.nan
        if fitted is not None and self._model.can_fit(fitted.n_rows):
            own_corr = fitted.chosen.rank_corr
        if rank_correlation_accepts(prior_corr, self._min_rank_corr):
            if not (own_acts and math.isfinite(own_corr) and own_corr > prior_corr):
                return _Screener("prior", prior_corr)
        if own_acts:
            return _Screener("study", own_corr, fitted)
        return None

    def _candidate_spectrum(self, params: Mapping[str, Any], number: int, index: int) -> Any:
        """The spectrum at initialisation of candidate ``index`` of trial ``number``.

        Builds the network with ``model_factory`` and drives it with ``probe_inputs`` (see
        :func:`init_measurement`). A subclass may read it from elsewhere, e.g. a table of
        networks already measured, and return the exponents or an object with ``exponents`` and
        ``dim`` (``D``, as :func:`~optuna_lyap.report_spectrum` takes; with bare exponents ``D``
        is their number).
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

    def _spectra(
        self,
        screening: Screening,
        candidates: list[dict[str, Any]],
        first_index: int = 0,
        warn_non_finite: bool = True,
    ) -> tuple[list[int], list[np.ndarray], list[int]]:
        """The candidates whose spectrum at initialisation is finite, their spectra and ``D``
        (see :func:`~optuna_lyap.samplers._candidates.measure_candidates`)."""
        self._local.dims = {}
        try:
            return measure_candidates(
                self._candidate_spectrum,
                self._local.dims,
                screening,
                candidates,
                first_index,
                warn_non_finite,
            )
        finally:
            self._local.dims = None

    def _screen(self, screening: Screening) -> dict[str, Any] | None:
        """Draw candidates, score them, and return the best; None lets the base decide."""
        study, view, trial = screening.study, screening.view, screening.trial
        names = frozenset(screening.screen_part) | frozenset(screening.base_part)
        screener = self._screener(study, names)
        if screener is None:
            return None
        if screener.kind == "prior":
            assert self._study_prior is not None
            return self._prior_screen.choose(
                screening,
                self._study_prior,
                rank_corr=screener.rank_corr,
                names=names,
                measure=None if self._model_factory is None else self._spectra,
            )
        fitted = screener.fitted
        assert fitted is not None
        inputs = fitted.chosen.inputs
        candidates, held = draw_candidates(screening, self._n_candidates)
        if SPECTRUM in inputs:
            scored, spectra, _ = self._spectra(screening, candidates)
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

        sign = direction_sign(study.direction)
        best, mean, std = best_by_model(
            fitted, [candidates[i] for i in scored], spectra, trial.number, sign, self._kappa
        )
        view.replay(held[scored[best]])
        record_screen(
            study,
            trial,
            "study",
            {
                USER_ATTR_SCREEN_PREDICTED: mean,
                USER_ATTR_SCREEN_STD: std,
                USER_ATTR_SCREEN_RANK_CORR: fitted.chosen.rank_corr,
            },
        )
        return candidates[scored[best]]
