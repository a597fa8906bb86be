"""A read-only view of a study in which pruned trials count at their predicted final value.

:class:`~optuna_lyap.LyapunovPruner` writes the final value it predicts for a trial to the
trial's user attr ``lyap_predicted``, also where its gate stayed shut and it ranked by the raw
value instead; the view uses a prediction only where the pruner's decision record says the
model earned it (see :func:`predicted_value`). Where the pruner ranked by the trial prior
(record ``scorer == "prior"``), the prior's predicted final quantile ``prior_quantile`` is
turned into a value: the empirical quantile of the completed trials' final values. Optuna's
samplers cannot use either: TPE ranks pruned trials by their last intermediate value (nearly
always in its "bad" group) and the GP sampler ignores them. :class:`PredictedStudyView` shows a
base sampler the study as it would be if every such pruned trial had completed with its
predicted value, without touching the storage.

What the view refuses and what it passes through:

* Every write to the study's record raises :class:`ReadOnlyViewError`: trial states, values,
  parameters, intermediate values and user attrs, new or deleted trials and studies, study
  user attrs, and the study methods that would make them (``optimize``, ``ask``, ``tell``,
  ``enqueue_trial``, ``add_trial(s)``, ``set_user_attr``, ``set_metric_names``).
* A base sampler's own bookkeeping is what it would write without the view: system attrs of
  the trial being sampled (TPE's constant liar, CMA-ES's optimizer state) and study system
  attrs (QMC's sequence index). Those go to the storage, or into a buffer when the view is
  asked to hold them back (see :meth:`PredictedStudyView.hold_bookkeeping`); system attrs of
  any other trial raise.
* ``stop()`` stops the underlying study's optimisation loop (it writes nothing).
"""

from __future__ import annotations

import copy
from collections.abc import Container, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import optuna
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study.study import _ThreadLocalStudyAttribute
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._storage import (
    STUDY_MODEL_RULES,
    USER_ATTR_PREDICTED,
    finite_or_none,
    load_predictions,
)

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study._frozen import FrozenStudy

# A recorded bookkeeping write: ("trial" | "study", id, key, value).
Bookkeeping = tuple[str, int, str, Any]


class ReadOnlyViewError(RuntimeError):
    """Raised by every write through a :class:`PredictedStudyView` or its storage."""


# Decision rules under which the pruner acted on its in-study model (one list, in
# _storage/_records.py).
_MODEL_RULES = STUDY_MODEL_RULES


def quantile_value(
    quantile: float, finals: Sequence[float], direction: StudyDirection
) -> float | None:
    """The value at ``quantile`` (1 = best) of the final values ``finals``, or None if empty.

    The empirical quantile with linear interpolation (``numpy.quantile``'s default) of the
    finite values, oriented by ``direction``: for ``minimize`` quantile 1 is the lowest value.
    """
    values = np.asarray([v for v in finals if np.isfinite(v)], dtype=np.float64)
    if values.size == 0 or not np.isfinite(quantile):
        return None
    q = float(np.clip(quantile, 0.0, 1.0))
    if direction == StudyDirection.MINIMIZE:
        q = 1.0 - q
    return float(np.quantile(values, q))


def _latest_record(trial: FrozenTrial, *fields: str) -> dict[str, Any] | None:
    """The trial's latest decision record with a finite value in one of ``fields``."""
    records = [
        r
        for r in load_predictions(trial).values()
        if any(finite_or_none(r.get(name)) is not None for name in fields)
    ]
    return records[-1] if records else None


def predicted_value(
    trial: FrozenTrial,
    finals: Sequence[float] = (),
    direction: StudyDirection = StudyDirection.MINIMIZE,
) -> float | None:
    """The predicted final value a PRUNED trial carries, where it may stand in for one, or None.

    Where the pruner's latest decision record with a prediction (see
    :func:`~optuna_lyap.load_predictions`) shows it ranked by the trial prior (``scorer ==
    "prior"``), the value is :func:`quantile_value` of the record's ``prior_quantile`` among
    ``finals`` (None where no trial has completed). Otherwise it is the finite user attr
    ``lyap_predicted``, and that record must show the model earned it: ``gate_open`` true, or a
    rule that ranked by the model. A prediction recorded with the gate shut is not better than
    the raw value on the study's own evidence, so the trial stays pruned. A ``lyap_predicted``
    with no decision record (set by the user's own code) is taken as given.

    Args:
        trial: Any trial; only PRUNED trials can have a value.
        finals: The final values of the study's COMPLETE trials.
        direction: The study's direction.
    """
    if trial.state != TrialState.PRUNED:
        return None
    latest = _latest_record(trial, "predicted", "prior_quantile")
    if latest is not None and latest.get("scorer") == "prior":
        quantile = finite_or_none(latest.get("prior_quantile"))
        if quantile is not None:
            return quantile_value(quantile, finals, direction)
    value = finite_or_none(trial.user_attrs.get(USER_ATTR_PREDICTED))
    if value is None:
        return None
    latest = _latest_record(trial, "predicted")
    if latest is None:
        return value
    earned = latest.get("gate_open") is True or latest.get("rule") in _MODEL_RULES
    return value if earned else None


def as_completed(trial: FrozenTrial, value: float) -> FrozenTrial:
    """A copy of ``trial`` that is COMPLETE with the single objective value ``value``.

    The copy shares the original's params, attrs and intermediate values (as every
    ``deepcopy=False`` read in Optuna does): neither may be mutated.
    """
    done = copy.copy(trial)
    done.state = TrialState.COMPLETE
    done.value = value
    return done


def _finals(trials: Iterable[FrozenTrial]) -> list[float]:
    return [
        float(t.value) for t in trials if t.state == TrialState.COMPLETE and t.value is not None
    ]


def with_predictions(
    trials: Iterable[FrozenTrial],
    direction: StudyDirection = StudyDirection.MINIMIZE,
    finals: Sequence[float] | None = None,
) -> list[FrozenTrial]:
    """``trials`` with each pruned trial that carries a prediction replaced by its completion.

    Args:
        trials: Trials of one single-objective study.
        direction: The study's direction.
        finals: The final values of the study's COMPLETE trials; None reads them from
            ``trials`` (which must then hold every COMPLETE trial).
    """
    trials = list(trials)
    if finals is None:
        finals = _finals(trials)
    out = []
    for trial in trials:
        value = predicted_value(trial, finals, direction)
        out.append(trial if value is None else as_completed(trial, value))
    return out


def _read_states(states: Container[TrialState] | None) -> tuple[TrialState, ...] | None:
    """The states to read so that pruned trials turned complete are not missed."""
    if states is None:
        return None
    wanted = tuple(s for s in TrialState if s in states)
    if TrialState.COMPLETE in wanted and TrialState.PRUNED not in wanted:
        wanted += (TrialState.PRUNED,)
    return wanted


def _select(
    trials: list[FrozenTrial], states: Container[TrialState] | None, deepcopy: bool
) -> list[FrozenTrial]:
    if states is not None:
        trials = [t for t in trials if t.state in states]
    return copy.deepcopy(trials) if deepcopy else trials


def _refuse(what: str) -> NoReturn:
    raise ReadOnlyViewError(
        f"{what} is not allowed through LyapunovSampler's read-only view of the study: the "
        "base sampler may read the study but not change what it has recorded."
    )


class ReadOnlyStorage(BaseStorage):
    """A storage wrapper that reads through, substitutes predictions and refuses writes.

    Args:
        storage: The study's storage.
        study_id: The study the view shows.
        trial_id: The trial being sampled (its system attrs take bookkeeping); None: none.
        substitute: Show pruned trials that carry a prediction as completed (single-objective
            studies only).
    """

    def __init__(
        self, storage: BaseStorage, study_id: int, trial_id: int | None, substitute: bool
    ) -> None:
        self._inner = storage
        self._study_id = study_id
        self._trial_id = trial_id
        self._substitute = substitute
        self.held: list[Bookkeeping] | None = None

    def _view(
        self, trials: list[FrozenTrial], finals: Sequence[float] | None = None
    ) -> list[FrozenTrial]:
        if not self._substitute:
            return trials
        direction = self._inner.get_study_directions(self._study_id)[0]
        return with_predictions(trials, direction, finals)

    # -- reads --------------------------------------------------------------------------------

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._inner.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._inner.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._inner.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._inner.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._inner.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._inner.get_all_studies()

    def get_trial(self, trial_id: int) -> FrozenTrial:
        trial = self._inner.get_trial(trial_id)
        if not self._substitute or trial.state != TrialState.PRUNED:
            return trial
        done = self._inner.get_all_trials(
            self._study_id, deepcopy=False, states=(TrialState.COMPLETE,)
        )
        return self._view([trial], _finals(done))[0]

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        if not self._substitute:
            return self._inner.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        trials = self._inner.get_all_trials(study_id, deepcopy=False, states=_read_states(states))
        return _select(self._view(trials), states, deepcopy)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._inner.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self._inner.get_trial_number_from_id(trial_id)

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return self._inner.get_trial_param(trial_id, param_name)

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return self._inner.get_trial_params(trial_id)

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._inner.get_trial_user_attrs(trial_id)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._inner.get_trial_system_attrs(trial_id)

    def check_trial_is_updatable(self, trial_id: int, trial_state: TrialState) -> None:
        self._inner.check_trial_is_updatable(trial_id, trial_state)

    def remove_session(self) -> None:
        pass  # the connection belongs to the study's own storage

    # -- bookkeeping, passed through or held ----------------------------------------------------

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        if self._trial_id is None or trial_id != self._trial_id:
            _refuse(f"Setting system attr {key!r} of a trial other than the one being sampled")
        if self.held is not None:
            self.held.append(("trial", trial_id, key, value))
        else:
            self._inner.set_trial_system_attr(trial_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        if study_id != self._study_id:
            _refuse(f"Setting system attr {key!r} of another study")
        if self.held is not None:
            self.held.append(("study", study_id, key, value))
        else:
            self._inner.set_study_system_attr(study_id, key, value)

    def replay(self, writes: Sequence[Bookkeeping]) -> None:
        """Apply held bookkeeping writes to the storage, in order."""
        for kind, target, key, value in writes:
            if kind == "trial":
                self._inner.set_trial_system_attr(target, key, value)
            else:
                self._inner.set_study_system_attr(target, key, value)

    # -- writes to the record, refused ---------------------------------------------------------

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        _refuse("Creating a study")

    def delete_study(self, study_id: int) -> None:
        _refuse("Deleting a study")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        _refuse(f"Setting study user attr {key!r}")

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        _refuse("Creating a trial")

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        _refuse(f"Setting parameter {param_name!r}")

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        _refuse("Setting a trial's state or values")

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        _refuse("Reporting an intermediate value")

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        _refuse(f"Setting trial user attr {key!r}")


class PredictedStudyView(optuna.Study):
    """A study as a base sampler should see it: pruned trials count at their predicted value.

    Reads go to ``study`` (a :class:`optuna.Study`, or the bracket study Optuna's Hyperband
    pruner hands samplers), so its filtering and per-thread trial cache still apply. In a
    single-objective study each PRUNED trial with a finite ``lyap_predicted`` user attr is shown
    as COMPLETE with that value, in every read: ``get_trials``, ``_get_trials``, ``trials``,
    ``best_trial``, ``best_value`` and the storage's ``get_all_trials`` / ``get_trial`` /
    ``get_best_trial``. Multi-objective studies are shown as they are. Writes: see the module
    docstring.

    Args:
        study: The study (or bracket study) the sampler was called with.
        trial: The trial being sampled (its system attrs take the base sampler's bookkeeping);
            None when no trial is being sampled.
        substitute: Show pruned trials' predictions (ignored for multi-objective studies).
    """

    def __init__(
        self, study: optuna.Study, trial: FrozenTrial | None = None, *, substitute: bool = True
    ) -> None:
        # Study.__init__ would look the study up in the storage again; copy what it sets.
        directions = list(study.directions)
        substitute = substitute and len(directions) == 1
        self._study = study
        self.study_name = study.study_name
        self._study_id = study._study_id
        self._directions = directions
        self._storage = ReadOnlyStorage(
            study._storage,
            study._study_id,
            None if trial is None else trial._trial_id,
            substitute,
        )
        self._view_storage = self._storage
        self._substitute = substitute
        self.sampler = study.sampler
        self.pruner = study.pruner
        self._thread_local = _ThreadLocalStudyAttribute()
        self._stop_flag = False

    # -- reads --------------------------------------------------------------------------------

    def get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        if not self._substitute:
            return self._study.get_trials(deepcopy=deepcopy, states=states)
        trials = self._study.get_trials(deepcopy=False, states=_read_states(states))
        return _select(with_predictions(trials, self._directions[0]), states, deepcopy)

    def _get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
        use_cache: bool = False,
    ) -> list[FrozenTrial]:
        if not self._substitute:
            return self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        trials = self._study._get_trials(
            deepcopy=False, states=_read_states(states), use_cache=use_cache
        )
        return _select(with_predictions(trials, self._directions[0]), states, deepcopy)

    # -- bookkeeping ----------------------------------------------------------------------------

    def hold_bookkeeping(self) -> list[Bookkeeping]:
        """Hold the base sampler's bookkeeping writes from now on instead of applying them.

        Returns:
            The list the held writes are appended to (apply them with :meth:`replay`).
        """
        held: list[Bookkeeping] = []
        self._view_storage.held = held
        return held

    def release_bookkeeping(self) -> None:
        """Apply bookkeeping writes directly again (held ones are not applied)."""
        self._view_storage.held = None

    def replay(self, writes: Sequence[Bookkeeping]) -> None:
        """Apply held bookkeeping writes to the storage."""
        self._view_storage.replay(writes)

    # -- control and writes ---------------------------------------------------------------------

    def stop(self) -> None:
        self._study.stop()

    def optimize(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Study.optimize")

    def ask(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Study.ask")

    def tell(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Study.tell")

    def set_user_attr(self, key: str, value: Any) -> NoReturn:
        _refuse(f"Study.set_user_attr({key!r})")

    def enqueue_trial(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Study.enqueue_trial")

    def add_trial(self, trial: FrozenTrial) -> NoReturn:
        _refuse("Study.add_trial")

    def add_trials(self, trials: Iterable[FrozenTrial]) -> NoReturn:
        _refuse("Study.add_trials")

    def set_metric_names(self, metric_names: list[str]) -> NoReturn:
        _refuse("Study.set_metric_names")
