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
from optuna.distributions import BaseDistribution, _get_single_value
from optuna.samplers import BaseSampler, TPESampler
from optuna.search_space import intersection_search_space
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._checks import check_int, check_real
from optuna_lyap._prediction._core import SPECTRUM, FittedPredictor, Rows
from optuna_lyap._prediction._gate import direction_sign, rank_correlation_accepts
from optuna_lyap._prediction._in_study import ConsumerDefaults, InStudyModel
from optuna_lyap._prediction._prior import (
    PARAM_ALIASES,
    PriorPrediction,
    StudyPrior,
    TrialPrior,
    network_from_params,
)
from optuna_lyap._storage import (
    USER_ATTR_SCREEN_BY,
    USER_ATTR_SCREEN_PREDICTED,
    USER_ATTR_SCREEN_QUANTILE,
    USER_ATTR_SCREEN_RANK_CORR,
    USER_ATTR_SCREEN_STD,
)
from optuna_lyap.lyapunov._arguments import check_spectrum_kwargs
from optuna_lyap.samplers._candidates import (
    ModelFactory,
    ProbeInputs,
    candidate_seed,
    draw_candidates,
    init_measurement,
    measure_candidates,
)
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

    The model (an :class:`~optuna_lyap.InStudyModel`, ``model``) acts only where it has shown
    it ranks trials: the candidate input sets (the spectrum, the hyperparameters and both, by
    default) are cross-validated on the completed trials and the best out-of-sample ranker is
    kept; screening happens when its Spearman correlation with the final values exceeds
    ``min_rank_corr``. Otherwise, before ``n_startup_trials`` trials have completed with a
    spectrum at step 0 (unless the model has a trained ``aelle``), for multi-objective
    studies, and whenever no candidate can be scored
    (the factory raises, the spectrum is not finite), the base sampler decides; the last case
    issues a ``RuntimeWarning``. A trial is never failed by the screening.

    Each screened trial gets the user attr ``lyap_screen_by`` (``"prior"`` or ``"study"``) and
    the numeric ones optuna-dashboard plots: by the study's model ``lyap_screen_predicted`` (in
    the study's units) and ``lyap_screen_std``; by the prior ``lyap_screen_quantile`` (the
    predicted final quantile); ``lyap_screen_rank_corr``, the screening model's Spearman
    correlation with the completed trials' final values (out of sample; the prior's once
    measured).

    The model is fitted once per training set and set of unlabelled spectra, from the
    storage's contents and its seed only, by one worker process, and stored in the study for
    the others (workers share fits only when they are given the same settings); candidates'
    networks are seeded from ``seed`` and the trial number, and the global random generators
    (torch's, NumPy's, Python's) are restored after each, so the screening never changes the
    user's seeded training. The sampler can be shared by threads (``n_jobs > 1``) and pickled (its
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
        model: The :class:`~optuna_lyap.InStudyModel` fitted on the completed trials' step-0
            spectra (and hyperparameters) and final values. None: an ``InStudyModel()`` with
            the sampler's defaults (the spectrum and the hyperparameters; 3 AeLLE members of
            200 steps; ``refit_growth`` 1.25; the sampler's ``seed``). Its inputs may be
            ``"spectrum"`` and ``"params"`` (a candidate has no curve yet); a pretrained
            ``aelle`` must read spectra only.
        model_factory: ``model_factory(params) -> nn.Module`` builds the untrained network of
            a parameter dict (an ``nn.RNN``/``nn.GRU``/``nn.LSTM``, a module holding exactly
            one of them, or a built-in cell). If it takes a ``seed`` keyword (as
            ``task.build_model`` does) it is given one; torch's global generator is seeded
            around the call either way. It must build the network the objective's spectrum at
            step 0 was computed on. None: no screening by the study's model.
        probe_inputs: The inputs that drive each candidate network: a tensor, or
            ``callable(model) -> tensor`` (e.g. ``task.probe_inputs``). Use the ones the
            objective's :class:`~optuna_lyap.LyapunovMonitor` uses. Required with
            ``model_factory``.
        n_candidates: Parameter sets ``m`` drawn and scored per trial. Each costs building one
            network and one spectrum; 8 gives the model a real choice among the base
            sampler's proposals while staying cheap next to training a network.
        n_startup_trials: Completed trials with a spectrum at step 0 needed before the model
            is fitted (unless the model sets its own; at least 3 are needed in any case), and
            completed trials with a prediction before the prior's evidence is checked. 10
            matches TPE's start-up.
        kappa: Weight of the prediction's standard deviation in the score (an upper confidence
            bound); 0 picks by predicted value alone.
        min_rank_corr: The screening model's out-of-sample Spearman correlation (the prior's,
            and the study model's) must exceed this for it to screen. In ``[-1, 1)``.
        use_predictions: Show pruned trials at their predicted value to the base sampler.
        search_space: The distributions to screen; None uses the intersection of the
            parameters of the study's completed and pruned trials.
        spectrum_kwargs: Keyword arguments of :func:`~optuna_lyap.lyapunov_spectrum` for the
            candidates (e.g. ``k``, ``warmup``, ``state``); the default ``seed=0`` matches
            :class:`~optuna_lyap.LyapunovMonitor`'s.
        seed: Seeds the default base sampler, the model (unless it sets its own) and the
            candidates' networks. None draws one.
        prior: The trial prior that screens from the first trial: ``"shipped"`` (the
            package's bundle), a ``PriorBundle``, a path to one saved by ``optuna-lyap fit``,
            or None (no prior: the study's model alone screens, as before it existed).

    Raises:
        ValueError: An argument outside its range (named), or a ``prior`` that is none of
            the above or an unreadable file.
        TypeError: For an argument the sampler does not take. Since the in-study model became
            :class:`~optuna_lyap.InStudyModel`, ``aelle``, ``aelle_params``, ``use_params``,
            ``select_inputs``, ``cv_folds``, ``use_unlabelled``, ``refit_growth`` and
            ``artifact_store`` are its arguments, and raise this here.
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
        self._init_state()

    def _init_state(self) -> None:
        self._local = threading.local()
        self._warned_multi_objective = False
        self._study_prior = None if self._prior is None else StudyPrior(self._prior)
        # The parameter-name sets the prior could not read (the base decides for them).
        self._prior_lock = threading.Lock()
        self._unreadable: set[frozenset[str]] = set()
        self._warned_unreadable = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_local", "_prior_lock", "_study_prior", "_unreadable"):
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
        if self._study_prior is not None and names not in self._unreadable:
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

    def _candidate_spectrum(
        self, params: Mapping[str, Any], number: int, index: int
    ) -> np.ndarray:
        """The spectrum at initialisation of candidate ``index`` of trial ``number``.

        Builds the network with ``model_factory`` and drives it with ``probe_inputs`` (see
        :func:`init_measurement`). A subclass may read it from elsewhere, e.g. a table of
        networks already measured; it may record the state dimension ``D`` of candidate
        ``index`` in ``self._local.dims[index]`` (else ``D`` is the spectrum's length).
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
        """``count`` (default ``n_candidates``) proposals of the base sampler."""
        count = self._n_candidates if count is None else count
        return draw_candidates(self._base, study, view, trial, base_part, screen_part, count)

    def _spectra(
        self,
        candidates: list[dict[str, Any]],
        trial: FrozenTrial,
        given: dict[str, Any],
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
                candidates,
                trial,
                given,
                first_index,
                warn_non_finite,
            )
        finally:
            self._local.dims = None

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
        sign = direction_sign(study.direction)
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
        assert self._study_prior is not None
        full = [{**given, **dict(trial.params), **c} for c in candidates]
        if self._model_factory is None:
            return self._study_prior.predict_candidates(full)
        scored, measured, found = self._spectra(
            candidates, trial, given, first_index, warn_non_finite=False
        )
        spectra: list[np.ndarray | None] = [None] * len(candidates)
        dims: list[int | None] = [None] * len(candidates)
        for i, spectrum, dim in zip(scored, measured, found, strict=True):
            spectra[i], dims[i] = spectrum, dim
        return self._study_prior.predict_candidates(full, spectra, dims)

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
