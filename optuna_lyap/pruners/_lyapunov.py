"""``LyapunovPruner``: prune trials whose predicted final value is very likely poor."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner, MedianPruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._checks import check_aelle_params, check_int, check_real
from optuna_lyap._prediction import (
    SPECTRUM,
    FitSettings,
    FittedPredictor,
    PredictorCache,
    ReadContext,
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

# Trial n is kept unpruned when frac(n * phi) < share: a deterministic, evenly spread subset
# of every run of trial numbers (a Weyl sequence), the same in every worker.
_GOLDEN = 0.6180339887498949


def is_protected(number: int, share: float) -> bool:
    """Whether trial ``number`` belongs to the share of trials that are never pruned."""
    return (number * _GOLDEN) % 1.0 < share


def _is_check_step(
    step: int, reported_steps: Sequence[int], n_warmup_steps: int, interval_steps: int
) -> bool:
    """Whether ``step`` is the first reported step of its pruning interval (as in Optuna)."""
    check = (step - n_warmup_steps) // interval_steps * interval_steps + n_warmup_steps
    previous = max((s for s in reported_steps if s != step), default=-1)
    return previous < check


def _score(values: np.ndarray | float, direction: StudyDirection) -> Any:
    """Values oriented so that higher is better."""
    return values if direction == StudyDirection.MAXIMIZE else -np.asarray(values)


def _target_location(model: AeLLE) -> tuple[float, float]:
    """Centre and scale of the targets a fitted AeLLE was trained on."""
    return float(model.target_centre_), float(model.target_scale_)


# Small AeLLE ensembles: the pruner refits them whenever the set of completed trials changes.
_DEFAULT_AELLE_PARAMS: dict[str, Any] = {"n_models": 2, "max_steps": 150}


class LyapunovPruner(BasePruner):
    """Prune trials whose final value, predicted from their dynamics, is very likely poor.

    At each check step the pruner predicts the running trial's final value from its Lyapunov
    spectrum (the latest one reported at or before the step, see
    :func:`~optuna_lyap.report_spectrum`) and its learning curve so far, with an
    :class:`~optuna_lyap.AeLLE` fitted on the study's COMPLETE trials (their spectra at the same
    step, their curves up to the step, their final values). It prunes when the prediction, with
    its uncertainty, says the trial will end worse than the best ``quantile`` of the completed
    trials with probability at least ``confidence``.

    A prediction is only acted on where it ranks the completed trials better than the raw
    intermediate value does. At each step the candidate input sets (spectrum, curve,
    hyperparameters, all together) are cross-validated on the completed trials; the one whose
    out-of-sample predictions have the highest Spearman correlation with the final values is
    kept, and used only when that correlation is positive and above the raw value's
    correlation at the step. Otherwise, and until ``n_startup_trials`` trials have completed
    (with no pretrained model), the ``fallback`` pruner decides.

    Every decision the model takes part in is written to the trial: the numeric user attrs
    ``lyap_predicted``, ``lyap_predicted_std``, ``lyap_threshold``, ``lyap_n_train``, and a
    per-step record in the system attrs (see :func:`optuna_lyap.pruners.load_predictions`).

    Decisions depend only on the storage's contents and ``seed``: the model at a step is
    fitted once per training set (see ``refit_growth``) and set of unlabelled spectra, by one
    worker process, and stored in the study for the others (see ``artifact_store``). The
    pruner can be shared by threads (``n_jobs > 1``) and pickled (the cache is dropped).

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
                direction="maximize", pruner=optuna_lyap.LyapunovPruner(n_startup_trials=8)
            )
            study.optimize(objective, n_trials=50)

    Args:
        n_startup_trials: The model is fitted once this many trials have completed; before,
            the fallback decides (unless ``aelle`` is given).
        n_warmup_steps: No trial is pruned (by the model or the fallback) before this step.
        interval_steps: Steps between checks, offset by the warm-up (as in Optuna's pruners).
        quantile: Share of the completed trials whose final value defines the bar: the
            threshold is the value the best ``quantile`` of them reached (0.5: the median).
            In ``(0, 1)``.
        confidence: Prune when the probability of ending worse than the threshold is at least
            this. In ``(0.5, 1)``. The prediction is taken as Gaussian with the model's mean and
            a standard deviation combining the ensemble's spread with the cross-validated
            residuals.
        fallback: The pruner that decides when the model cannot: ``"median"`` (the default)
            is ``MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=max(1,
            n_warmup_steps))``: it never prunes at step 0, where
            :class:`~optuna_lyap.LyapunovMonitor` and the built-in tasks report the untrained
            network, whose value is at chance (a median rule there prunes at random; step 0
            is the spectrum's, i.e. the model's). None never prunes then.
        aelle: A fitted :class:`~optuna_lyap.AeLLE` or a path written by ``AeLLE.save``, e.g.
            fitted on an earlier study of the same task family with :func:`fit_aelle`. It
            predicts from the first trial (the threshold then comes from its training targets'
            mean and spread); once ``n_startup_trials`` have completed it competes with the
            models fitted on the study's own trials, scored by how it ranks them.
        aelle_params: Keyword arguments of the :class:`~optuna_lyap.AeLLE` models the pruner
            fits (``seed`` is set by ``seed``). None uses ``_DEFAULT_AELLE_PARAMS`` (2 members,
            150 steps): a refit then costs about a second on one core, where AeLLE's own
            defaults cost several times more for no measured gain in ranking on tens of trials.
        use_spectrum: Offer the spectrum as an input.
        use_curve: Offer the learning curve (latest and best value up to the step).
        use_params: Offer the hyperparameters (log-scaled where the distribution is, one-hot
            for categorical ones) of the completed trials' common search space.
        select_inputs: Cross-validate each offered input alone and all together and keep the
            best; False fits only all offered inputs together.
        require_beating_raw: Act on the model only where it out-ranks the raw intermediate
            value on the completed trials; False always acts on it once fitted.
        cv_folds: Folds of the cross-validation (leave-one-out with fewer completed trials).
            Each refit costs ``(cv_folds + 1)`` fits per candidate input set.
        use_unlabelled: Also train the autoencoder's reconstruction on the spectra that pruned
            trials reported at the same step: those numbered below the newest trial of the
            training set, so they change only when the training set does (no extra refits).
        min_unpruned_share: Share of trials never pruned, so the model keeps getting labels:
            trial ``n`` is kept when ``frac(n * 0.618...) < min_unpruned_share`` (trial 0 is
            always among them). Their predictions are still recorded. In ``[0, 1)``.
        model_steps: The check steps at which the model is consulted; at the others the
            fallback decides. None (the default): the steps at which the running trial reported
            a spectrum (every check step when no spectrum is read). The spectrum's worth is
            early, before the learning curve ranks trials well on its own; each model step
            costs a refit whenever the training set grows (see ``refit_growth``).
        refit_growth: The model is fitted on the lowest-numbered ``m`` completed trials, ``m``
            on the schedule ``n_startup_trials``, then ``max(m + 1, ceil(m * refit_growth))``
            (the largest size not above the count of completed trials). The default refits
            about ten times over the first 50 completed trials instead of 45 times; 1 refits
            whenever a trial completes. The pruning threshold always uses every completed
            trial. At least 1.
        seed: Seed of every model fit, so all workers reach the same decisions.
        artifact_store: An :mod:`optuna.artifacts` store (e.g.
            ``optuna.artifacts.FileSystemArtifactStore``) that every worker can read, for the
            fitted models; None stores them in the study's system attrs (in slices under
            MySQL's 64 KiB cap). Give one with a journal storage, which replays every attr
            write in every worker.
    """

    def __init__(
        self,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        *,
        quantile: float = 0.25,
        confidence: float = 0.75,
        fallback: BasePruner | str | None = "median",
        aelle: AeLLE | str | os.PathLike[str] | None = None,
        aelle_params: Mapping[str, Any] | None = None,
        use_spectrum: bool = True,
        use_curve: bool = True,
        use_params: bool = False,
        select_inputs: bool = True,
        require_beating_raw: bool = True,
        cv_folds: int = 3,
        use_unlabelled: bool = True,
        min_unpruned_share: float = 0.1,
        model_steps: Iterable[int] | None = None,
        refit_growth: float = 1.25,
        seed: int = 0,
        artifact_store: Any = None,
    ) -> None:
        self._n_startup_trials = check_int("n_startup_trials", n_startup_trials, 0)
        self._n_warmup_steps = check_int("n_warmup_steps", n_warmup_steps, 0)
        self._interval_steps = check_int("interval_steps", interval_steps, 1)
        self._quantile = check_real("quantile", quantile, 0.0, 1.0, closed=False)
        self._confidence = check_real("confidence", confidence, 0.5, 1.0, closed=False)
        self._cv_folds = check_int("cv_folds", cv_folds, 2)
        self._share = check_real("min_unpruned_share", min_unpruned_share, 0.0, 1.0)
        if self._share >= 1.0:
            raise ValueError(
                f"`min_unpruned_share` must be below 1 (1 never prunes), but got "
                f"{min_unpruned_share=}."
            )
        self._refit_growth = check_real("refit_growth", refit_growth, 1.0, math.inf)
        self._seed = check_int("seed", seed, 0)
        self._model_steps = (
            None
            if model_steps is None
            else frozenset(check_int("model_steps", s, 0) for s in model_steps)
        )
        if fallback == "median":
            fallback = MedianPruner(
                n_startup_trials=n_startup_trials, n_warmup_steps=max(1, self._n_warmup_steps)
            )
        if fallback is not None and not isinstance(fallback, BasePruner):
            raise ValueError(
                f"`fallback` must be a BasePruner, 'median' or None, but got {fallback=}."
            )
        self._fallback = fallback
        offered = ((SPECTRUM, use_spectrum), ("curve", use_curve), ("params", use_params))
        enabled = [name for name, on in offered if on]
        if not enabled:
            raise ValueError("At least one of use_spectrum, use_curve, use_params must be True.")
        self._candidates = input_sets(enabled, select_inputs)
        self._use_params = use_params
        self._require_beating_raw = bool(require_beating_raw)
        self._use_unlabelled = bool(use_unlabelled)
        self._aelle_params = check_aelle_params(
            _DEFAULT_AELLE_PARAMS if aelle_params is None else aelle_params
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
        self._init_cache()

    def _init_cache(self) -> None:
        self._settings = FitSettings(
            tuple(self._candidates), self._aelle_params, self._seed, self._cv_folds
        )
        self._cache = PredictorCache(
            self._settings, "LyapunovPruner", self._pretrained, self._artifact_store, size=64
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_cache"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_cache()

    @property
    def _reads_spectra(self) -> bool:
        if any("spectrum" in c for c in self._candidates):
            return True
        return self._pretrained is not None and self._pretrained.uses_spectra_

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if len(study.directions) > 1:
            raise ValueError(
                "LyapunovPruner supports single-objective studies only, but the study has "
                f"{len(study.directions)} objectives."
            )
        step = trial.last_step
        if step is None or step < self._n_warmup_steps:
            return False
        if not _is_check_step(
            step, list(trial.intermediate_values), self._n_warmup_steps, self._interval_steps
        ):
            return False
        protected = is_protected(trial.number, self._share)
        decision = None
        if self._consults_model(trial, step):
            decision = self._model_decision(study, trial, step)
        if decision is None:
            return not protected and self._fallback_prunes(study, trial)
        record, acts = decision
        if protected:
            pruned, record["rule"] = False, "kept"
        elif acts:
            pruned, record["rule"] = record["p_worse"] >= self._confidence, "model"
        else:
            pruned, record["rule"] = self._fallback_prunes(study, trial), "fallback"
        record["pruned"] = pruned
        record_prediction(study, trial, step, record)
        return pruned

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
            The record :meth:`prune` would store (``predicted``, ``predicted_std``,
            ``threshold``, ``p_worse``, ``n_train``, ``inputs``, ``rank_corr``,
            ``raw_rank_corr``, ``spectrum_step``, ...) with ``acts``: whether the pruner acts
            on the model for this trial at this step (a model step, see ``model_steps``, where
            the model passes ``require_beating_raw``). None where there is no
            prediction: before ``n_startup_trials`` have completed (without a pretrained
            model), without a finite value at or before ``step``, or without a spectrum
            where the chosen inputs need one.
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
        decision = self._model_decision(study, trial, step)
        if decision is None:
            return None
        record, acts = decision
        return {**record, "acts": acts and self._consults_model(trial, step)}

    def _consults_model(self, trial: FrozenTrial, step: int) -> bool:
        if self._model_steps is not None:
            return step in self._model_steps
        if not self._reads_spectra:
            return True
        return spectrum_key(step) in trial.system_attrs

    def _fallback_prunes(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        return self._fallback is not None and self._fallback.prune(study, trial)

    def _model_decision(
        self, study: optuna.Study, trial: FrozenTrial, step: int
    ) -> tuple[dict[str, Any], bool] | None:
        """The model's prediction for ``trial`` and whether to act on it, or None (no model)."""
        direction = study.direction
        curve = curve_features(trial.intermediate_values, step, direction)
        if not math.isfinite(curve[0]):
            return None  # a non-finite current value: the fallback judges it
        completed = sorted(
            study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
            key=lambda t: t.number,
        )
        spectrum_step: int | None = None
        if self._reads_spectra:
            found = spectrum_at(trial, step)
            if found is not None:
                spectrum_step = found[0]
        fitted, own_ready = self._predictor(study, completed, step, spectrum_step)
        if fitted is None:
            return None
        chosen = fitted.chosen
        context = ReadContext(step, direction, spectrum_step, fitted.encoder)
        row = query_rows([trial], chosen.inputs, context)
        if row is None:
            return None
        mean, std = (float(v[0]) for v in fitted.predict(row))

        if own_ready:
            scores = _score(np.array([t.value for t in completed], dtype=np.float64), direction)
            scores = np.where(np.isnan(scores), -np.inf, scores)
            threshold_score = float(np.quantile(scores, 1.0 - self._quantile))
            threshold = (
                threshold_score if direction == StudyDirection.MAXIMIZE else -threshold_score
            )
        else:
            assert self._pretrained is not None
            centre, scale = _target_location(self._pretrained)
            z = NormalDist().inv_cdf(1.0 - self._quantile)
            sign = 1.0 if direction == StudyDirection.MAXIMIZE else -1.0
            threshold = centre + sign * z * scale
        gap = float(_score(threshold, direction) - _score(mean, direction))
        if std > 0:
            p_worse = NormalDist().cdf(gap / std)
        else:
            p_worse = 1.0 if gap > 0 else 0.0 if gap < 0 else 0.5

        acts = not own_ready or fitted.beats_raw or not self._require_beating_raw
        record = {
            "predicted": mean,
            "predicted_std": std,
            "threshold": threshold,
            "n_train": fitted.n_train,
            "p_worse": p_worse,
            "inputs": "+".join(chosen.inputs),
            "pretrained": chosen.pretrained,
            "rank_corr": chosen.rank_corr,
            "raw_rank_corr": fitted.raw_rank_corr,
            "spectrum_step": spectrum_step,
        }
        return record, acts

    def _predictor(
        self,
        study: optuna.Study,
        completed: list[FrozenTrial],
        step: int,
        spectrum_step: int | None,
    ) -> tuple[FittedPredictor | None, bool]:
        """The predictor for a trial at ``step`` whose spectrum is at ``spectrum_step``, and
        whether it was fitted on the study's own trials (else: the pretrained model alone, or
        None before ``n_startup_trials`` completed trials can become rows)."""
        names = ("curve",) if spectrum_step is None else (SPECTRUM, "curve")
        context = ReadContext(step, study.direction, spectrum_step)
        training, usable = training_set(
            completed, names, context, start=self._n_startup_trials, growth=self._refit_growth
        )
        own_ready = usable >= self._n_startup_trials and usable > 0
        if not own_ready:
            if self._pretrained is None:
                return None, False
            training = []
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
            return self._fit(training, unlabelled, step, spectrum_step, study.direction)

        return self._cache.get_or_fit(study, key, fit, share=bool(training)), own_ready

    def _fit(
        self,
        completed: list[FrozenTrial],
        unlabelled: list[FrozenTrial],
        step: int,
        spectrum_step: int | None,
        direction: StudyDirection,
    ) -> FittedPredictor | None:
        encoder = param_encoder(completed) if self._use_params else None
        names = ("curve", "params") if spectrum_step is None else (SPECTRUM, "curve", "params")
        context = ReadContext(step, direction, spectrum_step, encoder)
        rows = read_rows(completed, names, context)
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
