"""``LyapunovPruner``: successive halving whose ranks come from a model where it earns them."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

import optuna_lyap.pruners._rule as _rule
from optuna_lyap._checks import InvalidParameterError, check_int, check_real
from optuna_lyap._prediction._core import SPECTRUM
from optuna_lyap._prediction._gate import direction_sign
from optuna_lyap._prediction._in_study import (
    ConsumerDefaults,
    InStudyModel,
)
from optuna_lyap._prediction._independence import draws_independently, sampler_name
from optuna_lyap._prediction._study_prior import StudyPrior, resolve_prior
from optuna_lyap._storage import (
    as_frozen_trial,
    record_prediction,
    rung_key,
)
from optuna_lyap.pruners._evidence import Witnesses
from optuna_lyap.pruners._warnings import (
    PriorBlendWarning,
)

__all__ = ["LyapunovPruner", "PriorBlendWarning", "draws_independently", "sampler_name"]

# The pruner's own fits: fewer training steps than AeLLE's defaults, so that fits, predictions
# and decisions cost under a tenth of the training time a study spends (measured on the
# recorded tables by benchmarks/speed/pruner_cpu.py).
_PRUNER_AELLE_PARAMS: dict[str, Any] = {"n_models": 2, "max_steps": 100}
# Fits, prediction sets and gate bounds kept in the process.
_CACHE_SIZE = 64
# Completed trials before the in-study model is fitted and the prior's gate judged, unless the
# model sets its own (the pruner's n_startup_trials is Optuna's: trials before any pruning).
_MODEL_STARTUP_TRIALS = 10


def _is_check_step(
    step: int, reported_steps: Sequence[int], n_warmup_steps: int, interval_steps: int
) -> bool:
    """Whether ``step`` is the first reported step of its pruning interval (as in Optuna)."""
    check = (step - n_warmup_steps) // interval_steps * interval_steps + n_warmup_steps
    previous = max((s for s in reported_steps if s != step), default=-1)
    return previous < check


class LyapunovPruner(BasePruner):
    """Asynchronous successive halving, ranking by a predicted final value where that ranks better.

    The budget is successive halving's (Li et al. 2020), with the parameters and semantics of
    Optuna's :class:`~optuna.pruners.SuccessiveHalvingPruner`: rung ``k`` closes at step
    ``min_resource * reduction_factor ** (min_early_stopping_rate + k)``; a trial reaching it
    stores its value there (the system attr ``completed_rung_k``) and is promoted when its
    score is among the best ``1 / reduction_factor`` of every trial that reached the rung.

    The score is the raw intermediate value, unless the study's own evidence says a model
    ranks the completed trials better. At a model step (by default a step with a spectrum, see
    :func:`~optuna_lyap.report_spectrum`) the :class:`~optuna_lyap.InStudyModel` is fitted on
    the completed trials, and its out-of-sample predictions and the raw values are compared
    in a paired bootstrap: the gate opens when the model's Spearman correlation with the final
    values beats the raw value's (and 0) in at least ``gate`` of the resamples, and every
    competitor at the rung is then ranked by its predicted final value. With no model, or a
    shut gate, the decisions are exactly ``SuccessiveHalvingPruner``'s. The optional step-0
    screen (``screen_fraction``) keeps the best share by prediction, behind the same gate.

    The shipped cross-task prior (``prior``) predicts each trial's final *quantile* within the
    study (1 is best) from the first trial on, at step 0 and at every rung step. Where it may
    decide (``prior_decides``) it competes with the in-study model under the same gate, once
    ``max(n_startup_trials, 3)`` completed trials have a prediction; the rung's scorer is the
    open gate with the larger share (the in-study model on a tie), else the raw value.

    Each decision point writes a record (``optuna_lyap._storage.DecisionRecord``; its
    ``rule`` is one of ``optuna_lyap._storage.RULES``), read back by
    :func:`optuna_lyap.pruners.load_predictions`, and numeric user attrs for the dashboard
    (``lyap_predicted``, ``lyap_predicted_std``, ``lyap_n_train``, ``lyap_prior_quantile``,
    ``lyap_prior_top10``). Decisions depend only on the storage's contents and the model's
    seed: each model is fitted once per training set by one worker and stored in the study for
    the others. The pruner can be shared by threads and pickled (its caches are dropped).
    ``docs/pruner.md`` says what the replays found for each option.

    Example:
        A study whose trials report a value and a spectrum at every step (with a real network,
        :class:`~optuna_lyap.LyapunovMonitor` reports both):

        >>> import optuna
        >>> import optuna_lyap
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> def objective(trial):
        ...     x = trial.suggest_float("x", 0.0, 1.0)
        ...     for step in range(5):
        ...         optuna_lyap.report_spectrum(trial, [x - 1.0, x - 1.5, x - 2.0], step)
        ...         trial.report(x * step, step)
        ...         if trial.should_prune():
        ...             raise optuna.TrialPruned()
        ...     return x
        >>> pruner = optuna_lyap.LyapunovPruner(model=optuna_lyap.InStudyModel(seed=0))
        >>> sampler = optuna.samplers.RandomSampler(seed=0)
        >>> study = optuna.create_study(direction="maximize", pruner=pruner, sampler=sampler)
        >>> study.optimize(objective, n_trials=8)
        >>> sorted({t.state.name for t in study.trials})
        ['COMPLETE', 'PRUNED']
        >>> optuna_lyap.load_predictions(study.trials[1])[1]["rule"]
        'rung'

    Args:
        n_startup_trials: Pruning is disabled until this many trials have completed in the
            study, as in Optuna's ``MedianPruner`` (rungs still record the values they see,
            so these trials compete later). The default 0 prunes from the start, as
            :class:`~optuna.pruners.SuccessiveHalvingPruner` does. The completed trials a
            model needs before it is fitted, and before the prior's gate is judged, are
            ``model``'s ``n_startup_trials`` (10 unless it sets another). At least 0.
        n_warmup_steps: No trial is judged before this step (the prior still predicts step 0).
        interval_steps: Steps between checks, offset by the warm-up (as in Optuna's pruners).
        min_resource: Steps of the first rung (``r``), or ``"auto"``: the longest completed
            trial's last step / 100, at least 1, as
            :class:`~optuna.pruners.SuccessiveHalvingPruner`'s default. Ours defaults to 1:
            ``"auto"`` trains every trial to the end until one has completed.
        reduction_factor: ``eta``, at least 2: a rung promotes the best ``1 / eta``.
        min_early_stopping_rate: ``s``, at least 0: rung 0 closes at ``r * eta ** s``.
        bootstrap_count: Trials that must have completed a rung before any is promoted past
            it (until then every trial reaching it is pruned). Needs an integer
            ``min_resource`` when positive.
        gate: Share of paired bootstrap resamples in which the model must out-rank the raw
            value for its predictions to be ranked instead. In ``(0, 1]``; default 0.9.
        screen_fraction: At step 0 (the untrained network), keep only this best share of the
            trials by prediction when the gate at step 0 is open. None (the default) never
            screens. In ``(0, 1]``.
        fallback: A pruner that replaces successive halving on the raw value: it is called at
            every check step of every trial and decides wherever no prediction does. Our rungs
            then keep their values under ``optuna_lyap:completed_rung_k``. None (the default):
            successive halving decides.
        model: The :class:`~optuna_lyap.InStudyModel` fitted on the study's trials: its inputs,
            fits, refit schedule, model steps, the gate's resamples and the seed. None: an
            ``InStudyModel()`` with the pruner's defaults (the spectrum and the curve; 2 AeLLE
            members of 100 steps; ``refit_growth`` 2; 500 resamples; seed 0).
        prior: The cross-task prior: ``"shipped"`` (the default, the package's trained
            bundle), a ``PriorBundle``, a path to one saved with ``PriorBundle.save``, or None
            (no prior: the decisions are those without it). Anything else goes through
            ``TrialPrior.resolve``; an object with ``TrialPrior``'s ``predict_trials`` is used
            as given. It is consulted at step 0 (also within the warm-up) and at every rung
            step; a trial it cannot read simply gets no prediction.
        prior_weight: At a rung where no gate opens and the prior predicts the judged trial,
            rank the competitors it predicts by ``(1 - w) * rank by raw value + w * rank by
            the prior's quantile`` (``_rule.blend_ranks``). In ``[0, 1]``; 0 (the default)
            never blends. A trial the prior cannot read, or whose value is infinite, is ranked
            by its raw value alone (the first unreadable one raises a ``RuntimeWarning``).
        prior_decides: Whether the prior may rank a rung (or the screen) by itself where its
            gate opens. False (the default): never. None: only with a sampler that draws
            configurations independently of earlier results (:func:`draws_independently`).
            True: with any sampler. Where it may not, the prior's gate is not judged.

    Raises:
        ValueError: For an argument out of its range, ``bootstrap_count > 0`` with
            ``min_resource="auto"``, a ``prior`` that is no bundle (naming it), or
            ``prior_weight > 0`` or ``prior_decides=True`` with ``prior=None``, or a
            ``prior_decides`` other than True, False or None.
        TypeError: For an argument the pruner does not take. Since the in-study model became
            :class:`~optuna_lyap.InStudyModel`, ``aelle``, ``aelle_params``, ``use_spectrum``,
            ``use_curve``, ``use_params``, ``select_inputs``, ``cv_folds``,
            ``use_unlabelled``, ``model_steps``, ``refit_growth``, ``n_resamples``, ``seed``
            and ``artifact_store`` are its arguments, and the threshold rule's ``quantile``,
            ``confidence``, ``min_unpruned_share`` and ``require_beating_raw`` are gone: each
            raises this.
    """

    def __init__(
        self,
        n_startup_trials: int = 0,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        *,
        min_resource: int | str = 1,
        reduction_factor: int = 4,
        min_early_stopping_rate: int = 0,
        bootstrap_count: int = 0,
        gate: float = 0.9,
        screen_fraction: float | None = None,
        fallback: BasePruner | None = None,
        model: InStudyModel | None = None,
        prior: Any = "shipped",
        prior_weight: float = 0.0,
        prior_decides: bool | None = False,
    ) -> None:
        self._n_startup_trials = check_int("n_startup_trials", n_startup_trials, 0)
        self._n_warmup_steps = check_int("n_warmup_steps", n_warmup_steps, 0)
        self._interval_steps = check_int("interval_steps", interval_steps, 1)
        if min_resource != "auto":
            try:
                check_int("min_resource", min_resource, 1)
            except (InvalidParameterError, TypeError) as err:
                raise type(err)(
                    f"min_resource must be an integer >= 1 or 'auto', but got {min_resource=}."
                ) from None
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
        self._gate = check_real("gate", gate, 0.0, 1.0, closed=(False, True))
        self._screen_fraction = (
            None
            if screen_fraction is None
            else check_real("screen_fraction", screen_fraction, 0.0, 1.0, closed=(False, True))
        )
        if fallback is not None and not isinstance(fallback, BasePruner):
            raise ValueError(f"`fallback` must be a BasePruner or None, but got {fallback=}.")
        self._fallback = fallback
        if model is not None and not isinstance(model, InStudyModel):
            raise TypeError(f"`model` must be an InStudyModel or None, but got {model=}.")
        self._model = (InStudyModel() if model is None else model).bind(
            ConsumerDefaults(
                "LyapunovPruner",
                inputs=(SPECTRUM, "curve"),
                aelle_params=_PRUNER_AELLE_PARAMS,
                refit_growth=2.0,
                seed=0,
                n_startup_trials=_MODEL_STARTUP_TRIALS,
                cache_size=_CACHE_SIZE,
                gate_evidence=True,
            )
        )
        # A prior named by a string or path is loaded again after unpickling, not pickled.
        self._prior_spec = prior if isinstance(prior, (str, os.PathLike)) else None
        self._prior = resolve_prior(prior)
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
        self._init_local()

    def _init_local(self) -> None:
        self._study_prior = None if self._prior is None else StudyPrior(self._prior)
        self._witnesses = Witnesses(
            self._model,
            self._study_prior,
            self._rung_key,
            gate=self._gate,
            n_startup_trials=self._model.n_startup_trials,
            prior_decides=self._prior_decides,
            prior_weight=self._prior_weight,
            reduction_factor=self._reduction_factor,
            bootstrap_count=self._bootstrap_count,
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_study_prior", "_witnesses"):
            del state[name]
        if self._prior_spec is not None:
            del state["_prior"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_prior" not in state:
            self._prior = resolve_prior(self._prior_spec)
        self._init_local()

    # --- prune: a ladder of early returns ------------------------------------------------------

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        _check_single_objective(study)
        trial = as_frozen_trial(trial)
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
            decided = self._step0(study, trial, fallback_pruned, screen=not self._starting(study))
            if decided is not None:
                return decided
        return self._rungs(study, trial, step, fallback_pruned)

    def _starting(self, study: optuna.Study) -> bool:
        """Whether fewer than ``n_startup_trials`` trials have completed (nothing is pruned)."""
        if self._n_startup_trials == 0:
            return False
        done = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True)
        return len(done) < self._n_startup_trials

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
        prior_fields: dict[str, Any] = {}
        prior = self._witnesses.prior_at(
            study, trial, trials, 0, prior_fields, judge=screen_fraction is not None
        )
        judged = None
        if screen_fraction is not None and self._model.consults(trial, 0):
            judged = self._witnesses.model_at(study, trial, 0)
        if judged is None and prior is None:
            return None
        record: dict[str, Any] = {"step": 0, "rung": None, "direction": _direction(study)}
        record.update({} if judged is None else judged.fields)
        record.update(prior_fields)
        scorer = "raw"
        if screen_fraction is not None:
            scorer = _rule.choose_scorer(
                None if judged is None else judged.fields.get("gate_share"),
                None if prior is None else prior.share,
                self._gate,
            )
            record["scorer"] = scorer
        if scorer == "study":
            assert judged is not None and judged.model is not None and screen_fraction is not None
            sign = direction_sign(study.direction)
            others = [t for t in trials if t.number != trial.number and 0 in t.intermediate_values]
            competing = self._witnesses.competing_scores(
                judged.model, others, 0, study, judged.predicted
            )
            ranking = _rule.screen(sign * judged.predicted, competing, screen_fraction)
            record.update(_ranking_fields(ranking, sign, "predicted", judged.predicted))
            record.update({"rule": "screen", "pruned": not ranking.promoted})
        elif scorer == "prior":
            assert prior is not None and self._study_prior is not None
            assert screen_fraction is not None
            # Every trial at step 0 with a prediction competes, the completed ones too.
            view = prior.view
            every = self._study_prior.predict_batch(view, [t.number for t in view.reached])
            quantiles = [p.quantile for n, p in every.items() if n != trial.number]
            quantiles.append(prior.own.quantile)
            ranking = _rule.screen(prior.own.quantile, quantiles, screen_fraction)
            record.update(_ranking_fields(ranking, 1.0, "quantile", prior.own.quantile))
            record.update({"rule": "prior_screen", "pruned": not ranking.promoted})
        elif fallback_pruned is not None:
            record.update({"rule": "fallback", "pruned": fallback_pruned})
            record.update(self._fallback_fields())
        elif prior is None:
            return None  # a shut screen and no prior: successive halving decides, unrecorded
        else:
            record.update({"rule": "predict", "pruned": False})
        record_prediction(study, trial, 0, record)
        return bool(record["pruned"])

    def _rungs(
        self, study: optuna.Study, trial: FrozenTrial, step: int, fallback_pruned: bool | None
    ) -> bool:
        """Successive halving over every rung ``step`` closes, as Optuna's: each rung gathers
        its evidence, :func:`_rule.decide_rung` decides, and the last rung judged is recorded."""
        rung = 0
        while self._rung_key(rung) in trial.system_attrs:
            rung += 1
        value = trial.intermediate_values[step]
        trials: list[FrozenTrial] | None = None
        record: dict[str, Any] | None = None
        pruned = False
        starting = self._starting(study)
        while True:
            if self._min_resource is None:
                trials = study.get_trials(deepcopy=False) if trials is None else trials
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
            base: dict[str, Any] = {"step": step, "rung": rung, "direction": _direction(study)}
            if math.isnan(value):
                # Optuna's rule: a NaN value is pruned, and stored at no rung.
                evidence = _rule.RungEvidence(
                    value,
                    1.0,
                    (),
                    self._reduction_factor,
                    fallback_pruned=fallback_pruned,
                    starting=starting,
                )
                decision = _rule.decide_rung(evidence)
                record = {**base, "scorer": "raw", **self._decision_fields(decision)}
                pruned = decision.pruned
                break
            trials = study.get_trials(deepcopy=False) if trials is None else trials
            evidence, fields = self._witnesses.rung(
                study, trial, trials, step, rung, closes, fallback_pruned
            )
            decision = _rule.decide_rung(replace(evidence, starting=starting))
            record = {**base, **fields, **self._decision_fields(decision)}
            pruned = decision.pruned
            if pruned:
                break
            rung += 1
        if record is None:
            return bool(fallback_pruned)
        record["pruned"] = pruned
        record_prediction(study, trial, step, record)
        return pruned

    def _decision_fields(self, decision: _rule.Decision) -> dict[str, Any]:
        fields: dict[str, Any] = {"rule": decision.rule}
        if decision.ranking is not None:
            fields.update(
                _ranking_fields(
                    decision.ranking, decision.bar_sign, decision.score_kind, decision.score
                )
            )
        else:
            fields.update({"score_kind": decision.score_kind, "score": decision.score})
            if decision.n_competitors is not None:
                fields["n_competitors"] = decision.n_competitors
        if decision.rule == "fallback":
            fields.update(self._fallback_fields())
        return fields

    def _rung_key(self, rung: int) -> str:
        return rung_key(rung, beside_fallback=self._fallback is not None)

    def _fallback_fields(self) -> dict[str, Any]:
        return {"fallback": type(self._fallback).__name__}

    # --- the in-study model ----------------------------------------------------------------------

    def prior_decides(self, study: optuna.Study) -> bool:
        """Whether the prior may replace the raw value in ``study`` (where its gate opens).

        ``prior_decides`` as given; where it was None, True exactly when the study's sampler
        draws configurations independently of earlier results (:func:`draws_independently`).
        """
        return self._witnesses.prior_decides(study)

    def predict(
        self, study: optuna.Study, trial: FrozenTrial | optuna.Trial, step: int | None = None
    ) -> dict[str, Any] | None:
        """The model's prediction of ``trial``'s final value at ``step``, deciding nothing.

        The model is the one :meth:`prune` would consult for a trial at ``step`` now (the same
        cached fit), applied to ``trial``'s own spectrum and learning curve up to ``step``.
        ``trial`` may be any of the study's trials: running (an ``optuna.Trial``, as
        ask-and-tell hands it out, or a ``FrozenTrial``), pruned or complete (a completed
        trial of the training set gets an in-sample prediction). Nothing is written to the
        trial; a model fitted for the call is stored in the study, as :meth:`prune` stores it.

        Args:
            study: The study ``trial`` belongs to.
            trial: The trial to predict: an ``optuna.Trial`` or a ``FrozenTrial``.
            step: The step whose spectrum and curve are read; None is the trial's last step.

        Returns:
            The model fields of a decision record (``predicted``, ``predicted_std``,
            ``inputs``, ``rank_corr``, ``raw_rank_corr``, ``gate_share``, ``gate_open``,
            ``n_train``, ``spectrum_step``, ...) with ``acts``: whether the pruner would rank
            by the prediction at this step (a model step with the gate open). None where there
            is no prediction: before the model's ``n_startup_trials`` have completed (without
            a pretrained model), without a finite value at or before ``step``, or without a
            spectrum where the chosen inputs need one.

        Raises:
            ValueError: For a multi-objective study or a negative ``step``.
            TypeError: For a ``trial`` that is neither an ``optuna.Trial`` nor a
                ``FrozenTrial``.
        """
        _check_single_objective(study)
        frozen = as_frozen_trial(trial)
        if step is None:
            step = frozen.last_step
            if step is None:
                return None
        check_int("step", step, 0)
        judged = self._witnesses.model_at(study, frozen, step, always_fit=True)
        if judged is None:
            return None
        record = judged.fields
        return {**record, "acts": record["gate_open"] and self._model.consults(frozen, step)}

    # --- the prior: predictions from trial 0, and its gate ---------------------------------------


def _check_single_objective(study: optuna.Study) -> None:
    if len(study.directions) > 1:
        raise ValueError(
            "LyapunovPruner supports single-objective studies only, but the study has "
            f"{len(study.directions)} objectives."
        )


def _direction(study: optuna.Study) -> str:
    return study.direction.name.lower()


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
