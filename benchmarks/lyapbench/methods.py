"""Every method the replays compare, in one registry: ``METHODS[name]`` = a pruner and a sampler.

A method is built for one run from a :class:`Setting` (the table, the seed, the base sampler,
the prior file and, for the legacy grid methods, the pruner options). Two families share the
registry, named as their stored result files name them (the names are kept so every archived
run stays readable; ``Method.description`` says what each one is):

- **held-out methods** (``suites/heldout.py``) name sampler and pruner together: ``tpe``,
  ``tpe+sha``, ..., ``ours`` (our sampler + our pruner, both with the held-out prior),
  ``ours_pruner_only``, ``ours_sampler_only``, ...; ``--sampler random`` puts
  ``RandomSampler`` under each of them in place of TPE;
- **grid methods** (``suites/grids.py``) name the pruner alone and take the suite's sampler
  axis (``tpe``, ``random``, or ``lyapunov``: our sampler over TPE, without a held-out prior):
  ``nop``, ``median``, ``successive_halving``, ..., ``lyapunov`` (the default pruner), and the
  legacy ``curve_only``, ``lyapunov_spectrum`` and ``lyapunov_hybrid`` (the threshold rule of
  rounds 1-8, since removed: rebuilt as the current pruner with a ``MedianPruner`` fallback).

This module is also the one place the benchmarks import private names of ``optuna_lyap`` from
(the block below): when the package moves one, this file is the one to fix.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler

import optuna_lyap
from benchmarks.lyapbench.baselines import OraclePruner, RankRule, TopKAfterFirstEpoch
from benchmarks.lyapbench.replay import Replayed, TableSampler, replay
from benchmarks.lyapbench.tables import (
    ConfigurationSpace,
    curve_columns,
    load_table,
    objective_of,
    recorded_params,
    spectra_at,
)
from optuna_lyap import _monitor as monitor_module

# -- the private names of optuna_lyap that the benchmarks read, all of them here --------------
from optuna_lyap._prediction import (
    FitSettings,
    ParamEncoder,
    PredictorCache,
    Rows,
    fit_predictor,
    fit_prior,
    rank_correlation,
)
from optuna_lyap._prediction import _gate as gate_module
from optuna_lyap._prediction._prior import VAL_LOSS_ATTR, TrialPrior
from optuna_lyap._prediction._prior_fit import PSEUDO_COUNT
from optuna_lyap._storage import NETWORK_ATTR, encode_floats, spectrum_key
from optuna_lyap.aelle import (
    CrossTaskPrior,
    NetworkDescription,
    PriorBundle,
    load_shipped_prior,
)
from optuna_lyap.aelle import _estimator as aelle_estimator
from optuna_lyap.aelle._bundle import INPUT_SETS, SHIPPED_PATH
from optuna_lyap.aelle._features import (
    PriorInputs,
    curve_rank_features,
    final_quantile,
    hyperparameter_features,
    top_fraction,
)
from optuna_lyap.pruners import _rule as rule_module
from optuna_lyap.pruners._rule import blend_ranks
from optuna_lyap.samplers._lyapunov import DEFAULT_AELLE_PARAMS as SAMPLER_AELLE_PARAMS

__all__ = [
    # private names of optuna_lyap, re-exported for the suites
    "INPUT_SETS",
    "NETWORK_ATTR",
    "PSEUDO_COUNT",
    "SAMPLER_AELLE_PARAMS",
    "SHIPPED_PATH",
    "VAL_LOSS_ATTR",
    "gate_module",
    "CrossTaskPrior",
    "FitSettings",
    "NetworkDescription",
    "ParamEncoder",
    "PredictorCache",
    "PriorBundle",
    "PriorInputs",
    "Rows",
    "TrialPrior",
    "aelle_estimator",
    "blend_ranks",
    "encode_floats",
    "final_quantile",
    "fit_prior",
    "fit_predictor",
    "hyperparameter_features",
    "load_shipped_prior",
    "monitor_module",
    "curve_rank_features",
    "rank_correlation",
    "rule_module",
    "spectrum_key",
    "top_fraction",
    # the registry
    "BASE_SAMPLERS",
    "BENCHMARK_AELLE_PARAMS",
    "BLEND_WEIGHTS",
    "GRID_METHODS",
    "GRID_OURS",
    "HELDOUT_BASELINES",
    "HELDOUT_METHODS",
    "HELDOUT_OURS",
    "LYAPUNOV_OPTIONS",
    "METHODS",
    "N_CANDIDATES",
    "SPECTRUM_STEPS",
    "Method",
    "Setting",
    "base_sampler",
    "lyapunov_pruner",
    "make_pruner",
    "make_sampler",
    "our_sampler",
    "prior_aelle",
    "record_network",
]

# Small AeLLE ensembles, as the benchmarks fit them (the pruner fits 2 members of 100 steps).
BENCHMARK_AELLE_PARAMS: dict[str, Any] = {"n_models": 2, "max_steps": 150}
# InStudyModel's arguments among a grid rule's options (the others are LyapunovPruner's). The
# stored runs' n_startup_trials counted the completed trials before a model is fitted: the
# model's n_startup_trials now (the pruner's is Optuna's, trials before any pruning).
_MODEL_OPTIONS = (
    "aelle", "aelle_params", "select_inputs", "cv_folds", "use_unlabelled", "model_steps",
    "refit_growth", "n_resamples", "seed", "artifact_store", "n_startup_trials",
)  # fmt: skip
# The threshold rule's arguments (rounds 1-8): the pruner no longer takes them.
_REMOVED_OPTIONS = ("quantile", "confidence", "min_unpruned_share", "require_beating_raw")
# Candidates our sampler screens per trial (LyapunovSampler's default), each costing a spectrum.
N_CANDIDATES = 8
# The steps at which our pruner reads a spectrum (as LyapunovMonitor reports them).
SPECTRUM_STEPS = (0, 1)
# The arguments of the default grid pruner (``lyapunov``) that ``--gate`` and friends set.
LYAPUNOV_OPTIONS = ("gate", "screen_fraction", "n_startup_trials")
# TPE + LyapunovPruner(prior_weight=w): rungs ranked by a rank blend of the raw value and the
# held-out prior wherever no gate opens (an option, not the default), by method.
BLEND_WEIGHTS = {"ours_blend": 0.5, "ours_blend_30": 0.3}


@dataclass(frozen=True)
class Setting:
    """What a method's factories are given for one run.

    Attributes:
        table: The replayed table (:func:`~benchmarks.lyapbench.tables.load_table`).
        seed: The run's seed, given to the sampler and to our pruner.
        base: The base sampler: ``"tpe"``, ``"random"``, or (grid methods) ``"lyapunov"``,
            our sampler screening over TPE.
        prior: A ``PriorBundle`` file for the held-out methods that use one, else None.
        rule: The grid suite's options of our pruners (see :func:`make_pruner`).
    """

    table: dict[str, Any]
    seed: int
    base: str = "tpe"
    prior: str | None = None
    rule: dict[str, Any] | None = None


@dataclass(frozen=True)
class Method:
    """One method: how to build its pruner and its sampler for a run, and what it pays for.

    Attributes:
        description: What the method is, in one line.
        pruner: Builds the pruner from a :class:`Setting`.
        sampler: Builds the sampler; by default the setting's base sampler.
        ours: Whether the pruner is ours (its decision records are read back).
        pruner_spectra: Whether a held-out trial is charged our pruner's spectra (steps 0
            and 1) and its evaluation at step 0.
        screens: Whether the sampler screens candidates with their spectra at initialisation.
        prior: Whether the method needs the held-out prior.
    """

    description: str
    pruner: Callable[[Setting], BasePruner]
    sampler: Callable[[Setting], BaseSampler] | None = None
    ours: bool = False
    pruner_spectra: bool = False
    screens: bool = False
    prior: bool = False


# -- samplers ---------------------------------------------------------------------------------

BASE_SAMPLERS = ("tpe", "lyapunov", "random")


def base_sampler(s: Setting) -> BaseSampler:
    """The setting's base sampler: TPE, random, or our sampler screening over TPE (no prior
    argument: its default) with the recorded spectra, the grid replays' ``lyapunov``."""
    if s.base == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    tpe = optuna.samplers.TPESampler(seed=s.seed)
    if s.base == "tpe":
        return tpe
    if s.base == "lyapunov":
        return TableSampler(tpe, s.table, s.seed, finite_only=False)
    raise ValueError(f"sampler must be one of {BASE_SAMPLERS}, but got {s.base!r}.")


def our_sampler(s: Setting) -> BaseSampler:
    """Our sampler with the held-out prior over the base sampler, reading candidates' spectra
    at initialisation from the table, over the table's search space."""
    if s.base not in ("tpe", "random"):
        raise ValueError(f"our sampler screens over tpe or random, but got {s.base!r}.")
    base = base_sampler(s)
    space = ConfigurationSpace(s.table)
    return TableSampler(base, s.table, s.seed, prior=s.prior, search_space=space.distributions)


# -- pruners ----------------------------------------------------------------------------------

_WARM = 1  # never prune the untrained network (step 0) on its chance-level value


def _median(s: Setting) -> BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=_WARM)


def _sha(s: Setting) -> BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)


def _nop(s: Setting) -> BasePruner:
    return optuna.pruners.NopPruner()


def _sha_auto(s: Setting) -> BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner()


def _hyperband(s: Setting) -> BasePruner:
    return optuna.pruners.HyperbandPruner(min_resource=1)


def _topk(s: Setting) -> BasePruner:
    return TopKAfterFirstEpoch()


def lyapunov_pruner(
    *, use_spectrum: bool = True, use_curve: bool = True, use_params: bool = False, **options: Any
) -> optuna_lyap.LyapunovPruner:
    """``LyapunovPruner`` from the flat options the stored runs name (``use_spectrum``,
    ``model_steps``, ``seed``, ...): the model's go to its ``InStudyModel``, the threshold
    rule's are ignored with a warning."""
    model = {k: options.pop(k) for k in _MODEL_OPTIONS if k in options}
    for name in _REMOVED_OPTIONS:
        if name in options:
            warnings.warn(
                f"{name}={options.pop(name)!r} belonged to the removed threshold rule",
                stacklevel=2,
            )
    offered = (("spectrum", use_spectrum), ("curve", use_curve), ("params", use_params))
    inputs = tuple(name for name, on in offered if on)
    return optuna_lyap.LyapunovPruner(model=optuna_lyap.InStudyModel(inputs, **model), **options)


def _ours_with_prior(**options: Any) -> Callable[[Setting], BasePruner]:
    def build(s: Setting) -> BasePruner:
        model = optuna_lyap.InStudyModel(seed=s.seed)
        return optuna_lyap.LyapunovPruner(model=model, prior=s.prior, **options)

    return build


def _need_table(s: Setting) -> dict[str, Any]:
    if s.table is None:
        raise ValueError("the oracle pruners need the table")
    return s.table


_PRIORS: dict[str, optuna_lyap.AeLLE] = {}


def prior_aelle(path: str) -> optuna_lyap.AeLLE:
    """An AeLLE fitted on an earlier study's table, as ``LyapunovPruner(aelle=...)`` takes it.

    The earlier study is another recording of the same task (``record.py --seed 1``: another
    data split, grid order and initialisation). Its inputs are what the pruner reads at step 1
    (the spectrum there and the curve features), its targets the final values of the replay's
    objective; the pruner's own AeLLE settings, seed 0.
    """
    if path not in _PRIORS:
        table = load_table(path)
        _, values, direction = objective_of(table)
        step = 1
        model = optuna_lyap.AeLLE(**BENCHMARK_AELLE_PARAMS, seed=0)
        _PRIORS[path] = model.fit(
            spectra_at(table, step), values[:, -1], curve_columns(values, step, direction)
        )
    return _PRIORS[path]


def _legacy(use_spectrum: bool, use_curve: bool) -> Callable[[Setting], BasePruner]:
    """The removed threshold rule's methods, rebuilt as the current pruner (see make_pruner)."""

    def build(s: Setting) -> BasePruner:
        rule = dict(s.rule or {})
        prior = rule.pop("prior", None)
        if prior is not None:
            rule["aelle"] = prior_aelle(prior)
        rule.pop("rank", None)
        fallbacks = {"median": _median, "successive_halving": _sha}
        options = {
            "n_startup_trials": 5,
            "n_warmup_steps": 0,
            "model_steps": SPECTRUM_STEPS,
            "seed": s.seed,
            **rule,
            "fallback": fallbacks[rule.get("fallback", "median")](s),
        }
        return lyapunov_pruner(**{"use_spectrum": use_spectrum, "use_curve": use_curve, **options})

    return build


def _grid_default(s: Setting) -> BasePruner:
    rule = s.rule or {}
    return lyapunov_pruner(seed=s.seed, **{k: rule[k] for k in LYAPUNOV_OPTIONS if k in rule})


# -- the registry -----------------------------------------------------------------------------

HELDOUT_BASELINES = (
    "tpe",
    "tpe+sha",
    "tpe+sha_auto",
    "tpe+hyperband",
    "tpe+median",
    "tpe+topk_epoch1",
)
HELDOUT_OURS = (
    "ours",
    "ours_pruner_only",
    "ours_prior_rungs",
    "ours_prior_by_sampler",
    "ours_sampler_only",
    "ours_sampler_nop",
    *BLEND_WEIGHTS,
)
HELDOUT_METHODS = HELDOUT_BASELINES + HELDOUT_OURS
def _legacy_method(on: str, *, use_spectrum: bool, use_curve: bool) -> Method:
    """The removed threshold rule on ``on``, rebuilt on the current pruner (rounds 1-8)."""
    return Method(
        f"legacy: the removed threshold rule on {on}, rebuilt on the current pruner",
        _legacy(use_spectrum=use_spectrum, use_curve=use_curve),
        ours=True,
    )


def _our_pruner(description: str, **options: Any) -> Method:
    """The base sampler + ``LyapunovPruner(prior=<held-out>, **options)``."""
    return Method(
        description, _ours_with_prior(**options), ours=True, pruner_spectra=True, prior=True
    )


# Grid methods that are our pruners (their decision records are read).
GRID_OURS = ("lyapunov", "curve_only", "lyapunov_spectrum", "lyapunov_hybrid")

METHODS: dict[str, Method] = {
    # held-out family: sampler and pruner named together
    "tpe": Method("the base sampler alone (no pruner)", _nop),
    "tpe+sha": Method("SuccessiveHalvingPruner(min_resource=1)", _sha),
    "tpe+sha_auto": Method("SuccessiveHalvingPruner() at its defaults", _sha_auto),
    "tpe+hyperband": Method("HyperbandPruner(min_resource=1)", _hyperband),
    "tpe+median": Method("MedianPruner(n_startup_trials=5, n_warmup_steps=1)", _median),
    "tpe+topk_epoch1": Method("TopKAfterFirstEpoch(): the best 20% after one epoch", _topk),
    "ours": Method(
        "our sampler + our pruner, both with the held-out prior",
        _ours_with_prior(),
        our_sampler,
        ours=True,
        pruner_spectra=True,
        screens=True,
        prior=True,
    ),
    "ours_pruner_only": _our_pruner("the base sampler + our pruner with the held-out prior"),
    "ours_prior_rungs": _our_pruner(
        "our pruner with prior_decides=True (the prior's gate judged with TPE too)",
        prior_decides=True,
    ),
    "ours_prior_by_sampler": _our_pruner(
        "our pruner with prior_decides=None (judged only with an independent sampler)",
        prior_decides=None,
    ),
    "ours_sampler_only": Method(
        "our sampler with the held-out prior + SuccessiveHalvingPruner(min_resource=1)",
        _sha,
        our_sampler,
        ours=True,
        screens=True,
        prior=True,
    ),
    "ours_sampler_nop": Method(
        "our sampler with the held-out prior, no pruner (a diagnostic)",
        _nop,
        our_sampler,
        ours=True,
        screens=True,
        prior=True,
    ),
    **{
        name: Method(
            f"our pruner with prior_weight={w}: rungs ranked by a rank blend with the prior",
            _ours_with_prior(prior_weight=w),
            ours=True,
            pruner_spectra=True,
            prior=True,
        )
        for name, w in BLEND_WEIGHTS.items()
    },
    # grid family: the pruner alone, the sampler from the suite's --samplers
    "nop": Method("NopPruner", _nop),
    "median": Method("MedianPruner(n_startup_trials=5, n_warmup_steps=1)", _median),
    "percentile25": Method(
        "PercentilePruner(25, n_startup_trials=5, n_warmup_steps=1)",
        lambda s: optuna.pruners.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=_WARM),
    ),
    "successive_halving": Method("SuccessiveHalvingPruner(min_resource=1)", _sha),
    "successive_halving_auto": Method("SuccessiveHalvingPruner() at its defaults", _sha_auto),
    "hyperband": Method("HyperbandPruner(min_resource=1)", _hyperband),
    "patient_median": Method(
        "PatientPruner(MedianPruner(5, warmup 1), patience=1)",
        lambda s: optuna.pruners.PatientPruner(_median(s), patience=1),
    ),
    "topk_epoch1": Method("TopKAfterFirstEpoch(): the best 20% after one epoch", _topk),
    "rank_raw": Method(
        "RankRule(): successive halving's shares at steps 1 and 4", lambda s: RankRule()
    ),
    "lyapunov": Method("LyapunovPruner(seed=seed): the default pruner", _grid_default, ours=True),
    "curve_only": _legacy_method("the curve", use_spectrum=False, use_curve=True),
    "lyapunov_spectrum": _legacy_method("the spectrum", use_spectrum=True, use_curve=False),
    "lyapunov_hybrid": _legacy_method("both", use_spectrum=True, use_curve=True),
    "oracle_epoch1": Method(
        "a reference: prunes at step 1 every trial outside the top 2%",
        lambda s: OraclePruner(_need_table(s), 1),
    ),
    "oracle_init": Method(
        "a reference: prunes at step 0 every trial outside the top 2%",
        lambda s: OraclePruner(_need_table(s), 0),
    ),
}
# The grid methods, in the order the grid suite lists them.
GRID_METHODS = (
    "nop",
    "median",
    "percentile25",
    "successive_halving",
    "successive_halving_auto",
    "hyperband",
    "patient_median",
    "topk_epoch1",
    "rank_raw",
    "lyapunov",
    "curve_only",
    "lyapunov_spectrum",
    "lyapunov_hybrid",
    "oracle_epoch1",
    "oracle_init",
)


def make_pruner(name: str, setting: Setting) -> BasePruner:
    """The pruner of method ``name`` for one run.

    For the grid methods that are ours, ``setting.rule`` overrides the pruner's arguments
    (``model_steps``, ``use_params``, ...); its ``fallback`` names the legacy methods' fallback
    (``"median"``, the default, or ``"successive_halving"``), its ``prior`` a seed-1 table to fit
    an AeLLE on (:func:`prior_aelle`), and its ``rank`` (``{"rescue": share or None}``) wraps
    the pruner in :class:`~benchmarks.lyapbench.baselines.RankRule`.

    Raises:
        ValueError: For an unknown method.
    """
    if name not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, but got {name!r}.")
    pruner = METHODS[name].pruner(setting)
    rank = (setting.rule or {}).get("rank")
    if rank is not None and name in GRID_OURS:
        assert isinstance(pruner, optuna_lyap.LyapunovPruner)
        return RankRule(pruner, rescue=rank.get("rescue"))
    return pruner


def make_sampler(name: str, setting: Setting) -> BaseSampler:
    """The sampler of method ``name`` for one run: its own, or the setting's base sampler."""
    build = METHODS[name].sampler
    return base_sampler(setting) if build is None else build(setting)


def replay_method(
    name: str,
    setting: Setting,
    budget: int,
    study_name: str,
    pruner: BasePruner | None = None,
    **options: Any,
) -> Replayed:
    """One study of method ``name`` on ``setting.table`` (:func:`replay`), its pruner replaced
    by ``pruner`` when given; ``options`` go to :func:`replay`."""
    return replay(
        setting.table,
        sampler=make_sampler(name, setting),
        pruner=make_pruner(name, setting) if pruner is None else pruner,
        budget=budget,
        study_name=study_name,
        **options,
    )


def record_network(trial: optuna.Trial, table: dict[str, Any], i: int) -> None:
    """Store which recorded configuration the trial trained: user attrs for the report, and
    the network's description (``optuna_lyap:network``, as ``LyapunovMonitor`` writes it) so
    the prior reads the configuration actually trained, not the suggestion it was mapped from.
    """
    params = recorded_params(table, i)
    trial.set_user_attr("recorded_index", i)
    for a, v in params.items():
        trial.set_user_attr(f"recorded_{a}", v)
    num_layers = int(table["meta"].get("task_config", {}).get("num_layers", 1))
    network = NetworkDescription.from_params(params, num_layers=num_layers)
    trial.storage.set_trial_system_attr(trial._trial_id, NETWORK_ATTR, network.to_json())
    # Suggestions mapped to one recorded configuration train the same network: one
    # configuration for the models' folds and gate, as distinct params would not be.
    optuna_lyap.report_configuration(trial, str(i))
