"""The prior inside LyapunovPruner: predictions from trial 0, and the gate it must pass."""

from __future__ import annotations

import math
import pickle
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.pruners import SuccessiveHalvingPruner
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap import InStudyModel
from optuna_lyap._storage import USER_ATTR_SUMMARY
from optuna_lyap.cli._workers import PerTrialSeededSampler, random_sampler, tpe_sampler
from optuna_lyap.pruners import (
    LyapunovPruner,
    PriorBlendWarning,
    _rule,
    draws_independently,
    load_predictions,
)
from optuna_lyap.pruners._lyapunov import sampler_name
from optuna_lyap.visualization import explain, prunes_by_rule
from tests.pruners_tests.test_lyapunov import table_study

PRIOR_KEYS = {
    "prior_quantile", "prior_top10", "prior_inputs", "prior_model_step", "prior_digest",
}  # fmt: skip


@dataclass(frozen=True)
class Prediction:
    """What ``TrialPrior.predict_trials`` returns per trial (``PriorPrediction``'s fields)."""

    quantile: float
    top_probability: float
    inputs: str
    model_step: int


class FakePrior:
    """A prior whose quantile is a given function of the trial (None: no prediction)."""

    digest = "fake0000"

    def __init__(self, quantile_of: Callable[[FrozenTrial], float | None]) -> None:
        self.quantile_of = quantile_of
        self.calls: list[tuple[int, tuple[int, ...]]] = []

    def predict_trials(
        self, trials: Sequence[FrozenTrial], step: int, direction: Any
    ) -> dict[int, Prediction]:
        self.calls.append((step, tuple(t.number for t in trials)))
        out = {}
        for t in trials:
            q = self.quantile_of(t)
            if q is not None:
                out[t.number] = Prediction(q, min(1.0, 2 * q), "hyperparameters", min(step, 2))
        return out


@dataclass(frozen=True)
class ByQuality:
    """Quantile from the trial's param ``quality`` (``sign=-1``: high quality, low quantile)."""

    sign: float = 1.0

    def __call__(self, t: FrozenTrial) -> float | None:
        if "quality" not in t.params:
            return None
        q = t.params["quality"]
        return 0.01 + 0.98 * (q if self.sign > 0 else 1.0 - q)


def quality_prior(sign: float = 1.0) -> FakePrior:
    """Ranks by the trial's param ``quality``, which the tests make the final value."""
    return FakePrior(ByQuality(sign))


def pruner(prior: Any, **kwargs: Any) -> LyapunovPruner:
    # model_steps=(): the in-study model is never consulted, so the prior alone competes
    # with the raw value (and the tests stay fast). prior_decides=True (with a prior): these
    # studies use Optuna's default sampler (TPE), where the default would never judge the
    # prior's gate.
    options: dict[str, Any] = {
        "min_resource": 1,
        "reduction_factor": 2,
        "model": InStudyModel(model_steps=(), n_startup_trials=kwargs.pop("n_startup_trials", 5)),
        "prior": prior,
        "prior_decides": None if prior is None else True,
    }
    options.update(kwargs)
    return LyapunovPruner(**options)


def add_completed(study: optuna.Study, qualities: Sequence[float], seed: int = 0) -> None:
    """Completed trials whose final value is their quality and whose curve is at chance."""
    rng = np.random.default_rng(seed)
    for q in qualities:
        trial = with_quality(study, q)
        for step in range(3):
            trial.report(float(0.5 + rng.normal(0.0, 0.01)), step)
        study.tell(trial, q)


def with_quality(study: optuna.Study, quality: float) -> optuna.Trial:
    study.enqueue_trial({"quality": float(quality)})
    trial = study.ask()
    trial.suggest_float("quality", 0.0, 1.0)
    return trial


def start(study: optuna.Study, quality: float, value: float, step: int = 1) -> optuna.Trial:
    trial = with_quality(study, quality)
    for s in range(step + 1):
        trial.report(value, s)
    return trial


def decide(study: optuna.Study, trial: optuna.Trial) -> bool:
    return study.pruner.prune(study, study._storage.get_trial(trial._trial_id))


def records(study: optuna.Study, trial: optuna.Trial) -> dict[int, dict[str, Any]]:
    return load_predictions(study._storage.get_trial(trial._trial_id))


QUALITIES = np.linspace(0.05, 0.95, 10)


# --- predictions from trial 0 ----------------------------------------------------------------


def test_every_trial_carries_the_prior_from_trial_0() -> None:
    study = optuna.create_study(direction="maximize", pruner=pruner(quality_prior()))
    trials = [start(study, q, 0.5, step=0) for q in (0.2, 0.8, 0.5)]
    for trial in trials:
        assert not decide(study, trial)
    for trial, q in zip(trials, (0.2, 0.8, 0.5), strict=True):
        record = records(study, trial)[0]
        assert record["rule"] == "predict" and record["pruned"] is False
        assert PRIOR_KEYS <= set(record) and record["rung"] is None
        assert record["prior_quantile"] == pytest.approx(0.01 + 0.98 * q)
        attrs = study._storage.get_trial(trial._trial_id).user_attrs
        assert attrs["lyap_prior_quantile"] == record["prior_quantile"]
        assert attrs["lyap_prior_top10"] == record["prior_top10"]
    # The explanation and the rule counts read the new records.
    assert "prior" in explain(study, trials[0].number).lower()


def _step_0_after_enough_completed(
    sampler: optuna.samplers.BaseSampler, quality: float, **kwargs: Any
) -> tuple[optuna.Study, optuna.Trial, dict[str, Any], bool]:
    """A trial of ``quality`` at step 0 after 10 completed trials: the study, the trial, its
    step-0 record and the pruner's decision."""
    study = optuna.create_study(
        direction="maximize", sampler=sampler, pruner=pruner(quality_prior(), **kwargs)
    )
    add_completed(study, QUALITIES)
    trial = start(study, quality, 0.5, step=0)
    pruned = decide(study, trial)
    return study, trial, records(study, trial)[0], pruned


@pytest.mark.parametrize("screen_fraction", [None, 0.5])
def test_the_warm_up_still_predicts_step_0_and_decides_nothing(
    screen_fraction: float | None,
) -> None:
    # n_warmup_steps=1, as in the README: no decision at step 0, but the prediction from the
    # first report that the docs promise. A screen that would prune the worst trial does not act.
    study, worst, record, pruned = _step_0_after_enough_completed(
        optuna.samplers.RandomSampler(seed=0),
        0.01,
        n_warmup_steps=1,
        screen_fraction=screen_fraction,
    )
    assert not pruned
    assert record["rule"] == "predict" and record["pruned"] is False
    assert record["prior_quantile"] == pytest.approx(0.01 + 0.98 * 0.01)
    assert "prior_gate_share" not in record and "scorer" not in record
    attrs = study._storage.get_trial(worst._trial_id).user_attrs
    assert attrs["lyap_prior_quantile"] == record["prior_quantile"]
    if screen_fraction is not None:  # without the warm-up the screen prunes it
        study.pruner._n_warmup_steps = 0
        assert decide(study, start(study, 0.01, 0.5, step=0))


def test_no_record_at_step_0_where_the_prior_cannot_predict() -> None:
    study = optuna.create_study(direction="maximize", pruner=pruner(FakePrior(lambda t: None)))
    trial = start(study, 0.5, 0.5, step=0)
    assert not decide(study, trial)
    assert records(study, trial) == {}


def test_the_prior_is_read_once_per_step_and_set_of_trials() -> None:
    prior = quality_prior()
    study = optuna.create_study(direction="maximize", pruner=pruner(prior))
    trial = start(study, 0.5, 0.5, step=0)
    frozen = study._storage.get_trial(trial._trial_id)
    study.pruner.prune(study, frozen)
    study.pruner.prune(study, frozen)
    assert prior.calls == [(0, (0,))]
    start(study, 0.7, 0.5, step=0)
    study.pruner.prune(study, frozen)
    assert prior.calls[-1] == (0, (0, 1))


# --- the gate: the prior ranks only where it out-ranks the raw value ------------------------


def test_a_prior_that_ranks_well_opens_the_gate_once_enough_trials_completed() -> None:
    study = optuna.create_study(direction="maximize", pruner=pruner(quality_prior()))
    add_completed(study, QUALITIES[:4])
    early = start(study, 0.9, 0.0)  # the worst raw value so far
    decide(study, early)
    record = records(study, early)[1]
    # Too few completed trials: the gate is not judged, so it is shut and no share is written
    # (a share of 0 would claim a bootstrap that never ran).
    assert "prior_gate_share" not in record and "prior_gate_open" not in record
    assert record["scorer"] == "raw" and record["rule"] == "rung"
    assert "not yet judged" in explain(study, early.number)

    add_completed(study, QUALITIES[4:], seed=1)
    first = start(study, 0.5, 0.5)
    decide(study, first)
    bad = start(study, 0.1, 0.9)  # the raw value would promote it
    good = start(study, 0.95, 0.0)  # the raw value would prune it
    assert decide(study, bad)
    assert not decide(study, good)
    for trial in (bad, good):
        record = records(study, trial)[1]
        assert record["scorer"] == "prior" and record["rule"] == "prior_rung"
        assert record["prior_gate_open"] and record["prior_gate_share"] >= 0.9
        assert record["score_kind"] == "quantile"
        assert record["score"] == record["prior_quantile"]
        assert "gate_share" not in record  # no in-study model was consulted
    good_record = records(study, good)[1]
    assert good_record["rank"] == 1 and good_record["n_promoted"] >= 1
    # SHA's bookkeeping keeps the raw value.
    frozen = study._storage.get_trial(good._trial_id)
    assert frozen.system_attrs["completed_rung_0"] == 0.0
    study.tell(bad, state=TrialState.PRUNED)
    assert prunes_by_rule(study) == {"prior_rung": 1}
    assert "quantile" in explain(study, bad.number)


# --- prior_decides: never by default; None: only where the sampler draws independently ------


def _judged_once_enough_completed(sampler: optuna.samplers.BaseSampler, **kwargs: Any) -> Any:
    """The rung-1 record of a trial the raw value would promote and a perfect prior would
    prune, judged after 10 completed trials, and the pruner's decision."""
    study = optuna.create_study(
        direction="maximize", sampler=sampler, pruner=pruner(quality_prior(), **kwargs)
    )
    add_completed(study, QUALITIES)
    decide(study, start(study, 0.5, 0.5))
    bad = start(study, 0.1, 0.9)
    pruned = decide(study, bad)
    return study, bad, records(study, bad)[1], pruned


@pytest.mark.parametrize(
    "sampler",
    [
        optuna.samplers.TPESampler(seed=0),
        optuna.samplers.CmaEsSampler(seed=0),
        optuna.samplers.NSGAIISampler(seed=0),
    ],
    ids=["tpe", "cmaes", "nsga2"],
)
def test_with_none_the_prior_never_ranks_alone_with_an_adaptive_sampler(
    sampler: optuna.samplers.BaseSampler,
) -> None:
    # A prior ranking every final value right, on 10 completed trials: with
    # prior_decides=True its gate opens and it prunes the trial (see below). With None, under
    # an adaptive sampler, its gate is not even judged: the raw value promotes the trial.
    study, bad, record, pruned = _judged_once_enough_completed(sampler, prior_decides=None)
    assert not pruned
    assert record["rule"] == "rung" and record["scorer"] == "raw"
    assert record["prior_decides"] is False and record["prior_decides_by"] == "sampler"
    assert "prior_gate_share" not in record and "prior_gate_open" not in record
    assert record["prior_quantile"] == pytest.approx(0.01 + 0.98 * 0.1)  # it still predicts
    assert not study.pruner.prior_decides(study)
    assert "prior_decides=True" in explain(study, bad.number)


@pytest.mark.parametrize(
    "sampler",
    [
        optuna.samplers.RandomSampler(seed=0),
        optuna.samplers.QMCSampler(seed=0),
        optuna.samplers.GridSampler({"quality": [0.1, 0.5]}),
    ],
    ids=["random", "qmc", "grid"],
)
def test_with_none_the_prior_ranks_alone_with_an_independent_sampler(
    sampler: optuna.samplers.BaseSampler,
) -> None:
    study, _, record, pruned = _judged_once_enough_completed(sampler, prior_decides=None)
    assert pruned
    assert record["rule"] == "prior_rung" and record["prior_gate_open"]
    assert "prior_decides" not in record
    assert study.pruner.prior_decides(study)


@pytest.mark.parametrize(
    ("sampler", "decides"),
    [
        (optuna.samplers.TPESampler(seed=0), True),
        (optuna.samplers.RandomSampler(seed=0), False),
    ],
    ids=["tpe-true", "random-false"],
)
def test_prior_decides_overrides_the_sampler(
    sampler: optuna.samplers.BaseSampler, decides: bool
) -> None:
    study, bad, record, pruned = _judged_once_enough_completed(sampler, prior_decides=decides)
    assert pruned is decides
    assert record["rule"] == ("prior_rung" if decides else "rung")
    assert ("prior_gate_share" in record) is decides
    if not decides:
        # The argument forbade it, not the sampler, and explain says which.
        assert record["prior_decides_by"] == "argument"
        note = explain(study, bad.number)
        assert "unless LyapunovPruner(prior_decides=None)" in note
        assert "adaptive" not in note


def test_by_default_the_prior_never_ranks_alone_even_with_random_sampling() -> None:
    # The default is False: the same perfect prior, a RandomSampler, and the raw value decides.
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=LyapunovPruner(
            min_resource=1, reduction_factor=2,
            model=InStudyModel(model_steps=(), n_startup_trials=5),
            prior=quality_prior(),
        ),
    )  # fmt: skip
    add_completed(study, QUALITIES)
    decide(study, start(study, 0.5, 0.5))
    bad = start(study, 0.1, 0.9)
    assert not decide(study, bad)
    record = records(study, bad)[1]
    assert record["rule"] == "rung" and record["prior_decides"] is False
    assert record["prior_decides_by"] == "argument"
    assert not study.pruner.prior_decides(study)


def test_prior_decides_true_without_a_prior_is_refused() -> None:
    with pytest.raises(ValueError, match=r"prior_decides=True .*prior=None"):
        LyapunovPruner(prior=None, prior_decides=True)


def test_the_screen_uses_the_prior_only_where_it_may_decide() -> None:
    _, _, record, pruned = _step_0_after_enough_completed(
        optuna.samplers.TPESampler(seed=0), 0.02, screen_fraction=0.5, prior_decides=None
    )
    assert not pruned
    assert record["rule"] == "predict" and record["scorer"] == "raw"
    assert record["prior_decides"] is False


def test_which_samplers_draw_independently() -> None:
    independent = [
        optuna.samplers.RandomSampler(),
        optuna.samplers.QMCSampler(),
        optuna.samplers.GridSampler({"x": [0, 1]}),
        optuna.samplers.BruteForceSampler(),
    ]
    adaptive = [
        optuna.samplers.TPESampler(),
        optuna.samplers.CmaEsSampler(),
        optuna.samplers.NSGAIISampler(),
        optuna.samplers.GPSampler(),
    ]
    assert all(draws_independently(s) for s in independent)
    assert not any(draws_independently(s) for s in adaptive)


class _SaysSo(optuna.samplers.TPESampler):
    """An adaptive sampler's subclass that answers for itself."""

    def __init__(self, answer: Any) -> None:
        super().__init__()
        self.answer = answer

    def draws_independently(self) -> Any:
        return self.answer


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_wrapper_draws_as_what_it_wraps() -> None:
    fixed = optuna.samplers.PartialFixedSampler
    assert draws_independently(fixed({"x": 1}, optuna.samplers.RandomSampler()))
    assert not draws_independently(fixed({"x": 1}, optuna.samplers.TPESampler()))
    assert draws_independently(PerTrialSeededSampler(random_sampler, 0))
    assert not draws_independently(PerTrialSeededSampler(tpe_sampler, 0))
    assert draws_independently(_SaysSo(True)) and draws_independently(_SaysSo(np.bool_(True)))
    # Only a bool answers: anything else leaves the sampler adaptive.
    assert not draws_independently(_SaysSo(False))
    assert not draws_independently(_SaysSo(1))

    # The method wins over the class: a RandomSampler that reads results may say so.
    class AdaptiveRandom(optuna.samplers.RandomSampler):
        def draws_independently(self) -> bool:
            return False

    assert not draws_independently(AdaptiveRandom())


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_sampler_is_named_by_what_it_wraps() -> None:
    fixed = optuna.samplers.PartialFixedSampler({"x": 1}, optuna.samplers.TPESampler())
    assert sampler_name(fixed) == "PartialFixedSampler(TPESampler)"
    assert sampler_name(PerTrialSeededSampler(random_sampler, 0)) == "RandomSampler"


@pytest.mark.parametrize("value", ["yes", 1, 0, np.bool_(True)])
def test_prior_decides_must_be_a_bool_or_none(value: Any) -> None:
    with pytest.raises(ValueError, match=r"prior_decides.*False, None or True.*got"):
        LyapunovPruner(prior=None, prior_decides=value)


# --- prior_weight: the rung ranked by a blend of raw and predicted ranks ---------------------


_BLEND_WITH_TPE = pytest.mark.filterwarnings(
    "ignore::optuna_lyap.pruners.PriorBlendWarning"
)  # said once per pruner; its own test is test_prior_weight_with_an_adaptive_sampler_says_so_once


@_BLEND_WITH_TPE
@pytest.mark.parametrize(("weight", "pruned"), [(0.0, False), (1.0, True)])
def test_prior_weight_blends_the_prior_into_the_rung_without_its_gate(
    weight: float, pruned: bool
) -> None:
    study = optuna.create_study(
        direction="maximize", pruner=pruner(quality_prior(), prior_weight=weight)
    )
    first = start(study, 0.9, 0.0)  # the best by the prior, the worst by the raw value
    assert not decide(study, first)
    second = start(study, 0.1, 0.9)  # the reverse
    assert decide(study, second) is pruned
    record = records(study, second)[1]
    assert "prior_gate_open" not in record  # no completed trial: the gate is not judged
    if weight == 0.0:
        assert record["scorer"] == "raw" and record["rule"] == "rung"
    else:
        assert record["scorer"] == "blend" and record["rule"] == "blend_rung"
        assert record["score_kind"] == "blend" and record["rank"] == 2
        assert record["score"] == pytest.approx(0.5)  # last of two by the prior
        note = explain(study, second.number)
        assert "blend of the raw value's and the prior's ranks" in note
        # Each prior paragraph names the step it predicted at; the model that read it is
        # named only where it was fitted for another step.
        assert "**Prior, step 1.**" in note and "model for step" not in note
    # Successive halving's bookkeeping keeps the raw value either way.
    frozen = study._storage.get_trial(second._trial_id)
    assert frozen.system_attrs["completed_rung_0"] == 0.9


@_BLEND_WITH_TPE
def test_prior_weight_half_and_half_between_two_rankings() -> None:
    study = optuna.create_study(
        direction="minimize", pruner=pruner(quality_prior(), prior_weight=0.5)
    )
    # Minimising: low raw values are good. The prior ranks by quality (high is good).
    for quality, value in ((0.5, 0.5), (0.9, 0.9), (0.1, 0.1)):
        decide(study, start(study, quality, value))
    judged = start(study, 0.8, 0.2)  # second by either ranking: kept among 4 with eta 2
    assert not decide(study, judged)
    record = records(study, judged)[1]
    assert record["rule"] == "blend_rung" and record["n_competitors"] == 4
    assert record["score"] == pytest.approx(0.5 * 3 / 4 + 0.5 * 3 / 4)
    assert record["prior_weight"] == 0.5
    note = explain(study, judged.number)
    assert "0.5 x the raw value's rank fraction + 0.5 x the prior's" in note
    # The prior's gate is not judged yet, and the note says the blend went ahead regardless.
    assert "Its rank is blended in at weight 0.5 all the same" in note


@_BLEND_WITH_TPE
def test_prior_weight_never_lifts_a_diverged_value() -> None:
    # Minimising a loss: an infinite one diverged. The prior's best quantile must not carry it
    # over finite values; it is ranked by the raw value alone, at the end, and pruned.
    study = optuna.create_study(
        direction="minimize", pruner=pruner(quality_prior(), prior_weight=1.0)
    )
    for quality, value in ((0.1, 0.5), (0.2, 0.6), (0.3, 0.7)):
        decide(study, start(study, quality, value))
    diverged = start(study, 0.99, math.inf)
    assert decide(study, diverged)
    record = records(study, diverged)[1]
    assert record["rule"] == "rung" and record["scorer"] == "raw"
    assert record["rank"] == 4 and record["n_competitors"] == 4


def test_prior_weight_says_once_when_the_prior_reads_nothing() -> None:
    # Parameters the prior does not know: the blend cannot act, and the user is told so once
    # rather than silently getting successive halving.
    study = optuna.create_study(
        direction="maximize", pruner=pruner(quality_prior(), prior_weight=0.5)
    )
    unread = []
    for x in (0.3, 0.6):
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.report(x, 0)
        trial.report(x, 1)
        unread.append(trial)
    with pytest.warns(RuntimeWarning, match=r"prior_weight=0\.5\) cannot blend .*\['x'\]"):
        decide(study, unread[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        decide(study, unread[1])
    assert records(study, unread[1])[1]["rule"] == "rung"


@pytest.mark.parametrize(
    ("sampler", "decides", "warned"),
    [
        (optuna.samplers.TPESampler(seed=0), None, True),
        (optuna.samplers.TPESampler(seed=0), False, True),
        (optuna.samplers.TPESampler(seed=0), True, True),
        (optuna.samplers.RandomSampler(seed=0), None, False),
        (optuna.samplers.RandomSampler(seed=0), False, False),
    ],
    ids=["tpe", "tpe-never", "tpe-true", "random", "random-never"],
)
def test_prior_weight_with_an_adaptive_sampler_says_so_once(
    sampler: optuna.samplers.BaseSampler, decides: bool | None, warned: bool
) -> None:
    # The replays found the blend pruning top configurations with TPE: the user is told once,
    # and the blend still acts, as asked. Whether the prior may rank alone does not matter:
    # the sampler does.
    study = optuna.create_study(
        direction="maximize",
        sampler=sampler,
        pruner=pruner(quality_prior(), prior_weight=1.0, prior_decides=decides),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not decide(study, start(study, 0.9, 0.0))
        assert decide(study, start(study, 0.1, 0.9))
        assert decide(study, start(study, 0.1, 0.95))
    said = [w for w in caught if "reads earlier results" in str(w.message)]
    if warned:
        assert len(said) == 1 and said[0].category is PriorBlendWarning
        assert type(sampler).__name__ in str(said[0].message)
        assert "prior_weight=0" in str(said[0].message)
        assert "at weight 0.3" in str(said[0].message)  # the weight the numbers are for
    else:
        assert said == []


def test_prior_weight_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="prior_weight"):
        LyapunovPruner(prior=None, prior_weight=1.5)


def test_prior_weight_without_a_prior_is_refused_not_ignored() -> None:
    # A weight with nothing to weigh would silently leave successive halving's decisions.
    with pytest.raises(ValueError, match=r"prior_weight=0\.5 .*prior=None"):
        LyapunovPruner(prior=None, prior_weight=0.5)
    assert LyapunovPruner(prior=None, prior_weight=0.0) is not None


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_a_prior_that_ranks_inversely_never_opens_the_gate(direction: str) -> None:
    # The final value is the quality: maximising, the wrong way round is a low quantile for
    # a high quality; minimising, a high one.
    wrong = quality_prior(-1.0 if direction == "maximize" else 1.0)
    study = optuna.create_study(direction=direction, pruner=pruner(wrong))
    add_completed(study, np.concatenate([QUALITIES, QUALITIES]))
    trial = start(study, 0.5, 0.5)
    decide(study, trial)
    record = records(study, trial)[1]
    assert record["prior_gate_share"] == 0.0 and record["scorer"] == "raw"
    assert record["rule"] == "rung" and record["score_kind"] == "raw"


def test_the_gate_follows_the_direction() -> None:
    # Minimising, the best trials have the lowest final values: a prior ranking by low
    # "quality" (its final value) is right, and opens.
    study = optuna.create_study(direction="minimize", pruner=pruner(quality_prior(-1.0)))
    add_completed(study, QUALITIES)
    trial = start(study, 0.5, 0.5)
    decide(study, trial)
    assert records(study, trial)[1]["scorer"] == "prior"


def test_the_screen_can_use_the_prior() -> None:
    study = optuna.create_study(
        direction="maximize", pruner=pruner(quality_prior(), screen_fraction=0.5)
    )
    add_completed(study, QUALITIES)
    bad = start(study, 0.02, 0.5, step=0)
    assert decide(study, bad)
    record = records(study, bad)[0]
    assert record["rule"] == "prior_screen" and record["scorer"] == "prior"
    assert record["n_competitors"] == 11 and record["score_kind"] == "quantile"
    good = start(study, 0.99, 0.5, step=0)
    assert not decide(study, good)
    assert records(study, good)[0]["rank"] == 1


def test_the_larger_open_gate_share_picks_the_scorer() -> None:
    def chooser(study: float | None, prior: float | None) -> str:
        return _rule.choose_scorer(study, prior, 0.9)

    assert chooser(None, None) == "raw"
    assert chooser(0.5, 0.89) == "raw"
    assert chooser(0.95, 0.97) == "prior"
    assert chooser(0.97, 0.95) == "study"
    assert chooser(0.95, 0.95) == "study"  # a tie: the in-study model
    assert chooser(None, 0.9) == "prior"
    assert chooser(0.9, None) == "study"


# --- exactly successive halving where the prior does not decide -----------------------------


def _config_prior(kind: str) -> FakePrior:
    """Fake priors for the recorded sines table (trials carry the param ``config``)."""
    import gzip
    import json

    from tests.pruners_tests.test_lyapunov import TABLES

    with gzip.open(TABLES / "sines.jsonl.gz", "rt") as f:
        configs = [c for c in map(json.loads, f) if c.get("kind") == "config"]
    finals = np.array([math.nan if c["values"][-1] is None else c["values"][-1] for c in configs])
    # sines is minimised: the best final value is the lowest.
    order = np.argsort(np.argsort(-np.nan_to_num(finals, nan=np.inf)))
    quantile = (order + 0.5) / len(order)

    def of(t: FrozenTrial) -> float | None:
        if kind == "constant":
            return 0.5
        if "config" not in t.params:
            return None
        return float(1.0 - quantile[t.params["config"]])  # the wrong way round

    return FakePrior(of)


@pytest.mark.parametrize("kind", ["none", "constant", "inverse"])
def test_where_the_prior_never_opens_it_is_successive_halving(kind: str) -> None:
    prior = None if kind == "none" else _config_prior(kind)
    ours = table_study(pruner(prior, n_startup_trials=3, reduction_factor=4))
    assert ours == table_study(SuccessiveHalvingPruner(min_resource=1))
    assert any(state == TrialState.PRUNED for _, state, _ in ours)


# --- robustness ----------------------------------------------------------------------------


def test_nan_and_infinite_values_never_break_prediction() -> None:
    def quantile(t: FrozenTrial) -> float | None:
        q = t.params.get("quality")
        if q is None or q > 0.9:
            return math.nan  # a prior that fails on a trial: no prediction for it
        return q

    study = optuna.create_study(direction="maximize", pruner=pruner(FakePrior(quantile)))
    add_completed(study, QUALITIES)
    for value, final in ((math.nan, 0.3), (math.inf, math.inf), (-math.inf, 0.2)):
        trial = with_quality(study, 0.4)
        for step in range(3):
            trial.report(value, step)
        study.tell(trial, final)
    for quality, value in ((0.5, math.nan), (0.6, math.inf), (0.95, 0.5), (0.3, -math.inf)):
        trial = start(study, quality, value)
        decide(study, trial)
        for record in records(study, trial).values():
            assert math.isfinite(record.get("prior_gate_share", 0.0))
    for t in study.get_trials(deepcopy=False):
        for key, value in t.user_attrs.items():
            if key == USER_ATTR_SUMMARY:  # the one line for a person, the only text attr
                assert isinstance(value, str) and value
                continue
            assert isinstance(value, (int, float)) and math.isfinite(value)


def test_workers_agree_and_pickling_keeps_the_prior() -> None:
    def run(
        judge: LyapunovPruner, warm: bool = False
    ) -> list[tuple[bool, dict[int, dict[str, Any]]]]:
        study = optuna.create_study(direction="maximize", pruner=judge)
        add_completed(study, QUALITIES)
        out = []
        for q, v in ((0.5, 0.5), (0.2, 0.9), (0.8, 0.1), (0.6, 0.3)):
            trial = start(study, q, v)
            frozen = study._storage.get_trial(trial._trial_id)
            if warm:  # a worker whose cache already holds other batches of this step
                trials = study.get_trials(deepcopy=False)
                prior = judge._study_prior
                assert prior is not None
                found = prior.at_step(trials[0], trials, 1, study.direction)
                assert found is not None
                prior.predict_batch(found[0], [t.number for t in found[0].reached])
            out.append((judge.prune(study, frozen), records(study, trial)))
        return out

    first = run(pruner(quality_prior()))
    assert any(r[1]["scorer"] == "prior" for _, r in first)
    assert run(pickle.loads(pickle.dumps(pruner(quality_prior())))) == first
    assert run(pruner(quality_prior())) == first
    assert run(pruner(quality_prior()), warm=True) == first


def test_an_invalid_prior_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="prior"):
        LyapunovPruner(prior="no-such-bundle.pt")


def test_the_cli_summary_reports_the_priors_rank_correlation() -> None:
    from optuna_lyap.cli._summary import format_summary, summarize

    rng = np.random.default_rng(0)

    def objective(trial: optuna.Trial) -> float:
        q = trial.suggest_float("quality", 0.0, 1.0)
        for step in range(3):
            trial.report(float(rng.normal(0.5, 0.1)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return q

    study = optuna.create_study(
        direction="minimize",
        pruner=pruner(quality_prior(-1.0)),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    study.optimize(objective, n_trials=20)
    summary = summarize(study)
    # Minimising the quality, the prior's quantile (high for low quality) ranks it exactly.
    assert summary["prior_prediction"]["spearman"] == pytest.approx(1.0)
    assert summary["prior_prediction"]["median_step"] == 0.0
    assert summary["prediction"] is None
    line = [r for r in format_summary(summary).splitlines() if r.startswith("prior quality")]
    assert line and line[0].split()[2:4] == ["Spearman", "1"]


# --- the shipped prior on a built-in task ----------------------------------------------------


def _builtin_study(judge: optuna.pruners.BasePruner) -> optuna.Study:
    from optuna_lyap.tasks import get_task, make_objective

    task = get_task("copy", delay=3, n_train=32, n_val=16, hidden_size_range=(4, 8), n_epochs=2)
    study = optuna.create_study(
        direction=task.direction, pruner=judge, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(make_objective(task, spectrum_steps=(0, 1), seed=0), n_trials=6)
    return study


def test_the_shipped_prior_predicts_a_built_in_task_from_trial_0() -> None:
    study = _builtin_study(LyapunovPruner())
    for t in study.trials:
        assert 0.0 < t.user_attrs["lyap_prior_quantile"] < 1.0
        assert 0.0 <= t.user_attrs["lyap_prior_top10"] <= 1.0  # the shipped calibration
        first = load_predictions(t)[0]
        assert first["rule"] == "predict" and not first["pruned"]
        assert "hyperparameters" in first["prior_inputs"] and first["prior_model_step"] == 0
        assert PRIOR_KEYS <= set(first)
    # A trial predicted with the others given by their values only (as the pruner does, to
    # save reading their spectra) gets the prediction a call over all of them gives, up to
    # float32 noise of the batch's make-up.
    from optuna_lyap._prediction._prior import TrialPrior
    from optuna_lyap._prediction._study_prior import CurveOnlyTrial

    shipped = TrialPrior.resolve("shipped")
    assert shipped is not None
    for step in (0, 1):
        reached = [t for t in study.trials if step in t.intermediate_values]
        full = shipped.predict_trials(reached, step, study.direction)
        assert len(full) == len(reached)
        for t in reached:
            batch = [u if u.number == t.number else CurveOnlyTrial.of(u) for u in reached]
            alone = shipped.predict_trials(batch, step, study.direction)
            assert list(alone) == [t.number]
            assert alone[t.number].quantile == pytest.approx(full[t.number].quantile, abs=1e-6)
            assert alone[t.number].inputs == full[t.number].inputs
    # Its gate is not judged before n_startup_trials (10) completed: successive halving.
    sha = _builtin_study(SuccessiveHalvingPruner(min_resource=1))
    assert [t.state for t in study.trials] == [t.state for t in sha.trials]
    assert [t.last_step for t in study.trials] == [t.last_step for t in sha.trials]
