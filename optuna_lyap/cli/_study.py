"""The study a command runs: its stored settings, its pruner and sampler (one registry each),
and its objective.

A study made by ``run`` stores its settings (task, epochs, seed, pruner, sampler, spectrum
steps) in the study's user attrs under :data:`CONFIG_KEY`, so ``worker`` builds the same
objective. A new pruner or sampler is one function and one line in :data:`PRUNERS` or
:data:`SAMPLERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna import pruners

from optuna_lyap import tasks as builtin_tasks
from optuna_lyap._storage import CONFIG_KEY
from optuna_lyap.cli._base import CLIError
from optuna_lyap.cli._workers import PerTrialSeededSampler, random_sampler, tpe_sampler

# Settings that studies made by older versions of ``run`` do not store, with the value those
# studies ran with (``study_config`` fills them in).
UNSTORED_SETTINGS = {"prior_weight": 0.0}

_WARMUP = 1  # step 0 is the untrained network: never prune on it alone


@dataclass(frozen=True)
class PrunerSettings:
    """What a pruner factory of :data:`PRUNERS` may read.

    Attributes:
        n_startup_trials: ``--n-startup-trials``.
        seed: The study's seed.
        prior: A ``PriorBundle`` (lyapunov only); None: the pruner's default, the shipped prior.
        aelle: A fitted AeLLE (lyapunov only), or None.
        prior_weight: ``--prior-weight`` (lyapunov only).
    """

    n_startup_trials: int
    seed: int
    prior: Any = None
    aelle: Any = None
    prior_weight: float = 0.0


def _lyapunov_pruner(s: PrunerSettings) -> pruners.BasePruner:
    from optuna_lyap import InStudyModel, LyapunovPruner

    extra = {} if s.prior is None else {"prior": s.prior}
    try:
        return LyapunovPruner(
            n_warmup_steps=_WARMUP,
            model=InStudyModel(aelle=s.aelle, seed=s.seed, n_startup_trials=s.n_startup_trials),
            prior_weight=s.prior_weight,
            **extra,
        )
    except ValueError as err:
        raise CLIError(f"cannot use the prior model: {err}") from err


def _median(s: PrunerSettings) -> pruners.BasePruner:
    return pruners.MedianPruner(n_startup_trials=s.n_startup_trials, n_warmup_steps=_WARMUP)


PRUNERS: dict[str, Callable[[PrunerSettings], pruners.BasePruner]] = {
    "lyapunov": _lyapunov_pruner,
    "median": _median,
    "percentile": lambda s: pruners.PercentilePruner(
        25.0, n_startup_trials=s.n_startup_trials, n_warmup_steps=_WARMUP
    ),
    "successive-halving": lambda s: pruners.SuccessiveHalvingPruner(min_resource=1),
    "hyperband": lambda s: pruners.HyperbandPruner(min_resource=1),
    "patient": lambda s: pruners.PatientPruner(_median(s), patience=1),
    "none": lambda s: pruners.NopPruner(),
}
"""``--pruner`` names, in the order ``--help`` lists them, and what each builds."""


def make_pruner(
    name: str,
    *,
    n_startup_trials: int,
    seed: int,
    prior: Any = None,
    aelle: Any = None,
    prior_weight: float = 0.0,
) -> optuna.pruners.BasePruner:
    """The pruner called ``name`` (one of ``PRUNERS``), with the settings ``run`` uses.

    ``prior`` (a ``PriorBundle``) and ``aelle`` (a fitted AeLLE), for ``lyapunov`` only,
    predict from the first trial; None leaves the pruner's default (the shipped prior).
    ``prior_weight`` (``--prior-weight``, in ``[0, 1]``, default 0) is
    ``LyapunovPruner(prior_weight=...)``: the weight of the prior's rank in each rung's
    ranking where no gate opens (``docs/pruner.md``).

    Raises:
        CLIError: For a prior or a ``prior_weight > 0`` given to another pruner than
            ``lyapunov``, a prior or weight the pruner refuses, or an unknown name.
    """
    if (prior is not None or aelle is not None) and name != "lyapunov":
        raise CLIError(
            f"--prior gives a fitted AeLLE to the lyapunov pruner, but the study's pruner is "
            f"{name!r}"
        )
    check_prior_weight(prior_weight, name)
    if name not in PRUNERS:
        raise CLIError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")
    return PRUNERS[name](PrunerSettings(n_startup_trials, seed, prior, aelle, prior_weight))


def check_prior_weight(prior_weight: float | None, pruner: str | None) -> None:
    """Refuse a ``prior_weight > 0`` for a pruner other than ``lyapunov`` (None: the default,
    lyapunov).

    Raises:
        CLIError: Naming the weight and the pruner.
    """
    if prior_weight and pruner not in (None, "lyapunov"):
        raise CLIError(
            f"--prior-weight {prior_weight} blends the prior into the lyapunov pruner's rungs, "
            f"but the pruner is {pruner!r}; leave --prior-weight at 0 or use --pruner lyapunov"
        )


@dataclass(frozen=True)
class SamplerSettings:
    """What a sampler factory of :data:`SAMPLERS` may read.

    Attributes:
        task: The study's task.
        n_startup_trials: ``--n-startup-trials``.
        seed: The study's seed (what every worker must agree on).
        stream_seed: This process's sampler stream (see ``PerTrialSeededSampler``).
        prior: A ``PriorBundle`` (lyapunov only); None: the shipped prior.
    """

    task: builtin_tasks.SequenceTask
    n_startup_trials: int
    seed: int
    stream_seed: int
    prior: Any = None


def _lyapunov_sampler(s: SamplerSettings) -> optuna.samplers.BaseSampler:
    from optuna_lyap.samplers import LyapunovSampler

    task, seed = s.task, s.seed

    def model_factory(params: dict[str, Any]) -> Any:
        return task.build_model(params, seed=seed)

    return LyapunovSampler(
        PerTrialSeededSampler(tpe_sampler, s.stream_seed),
        model_factory=model_factory,
        probe_inputs=lambda model: task.probe_inputs(model),
        n_startup_trials=s.n_startup_trials,
        seed=seed,
        search_space=task_search_space(task),
        prior="shipped" if s.prior is None else s.prior,
    )


SAMPLERS: dict[str, Callable[[SamplerSettings], optuna.samplers.BaseSampler]] = {
    "tpe": lambda s: PerTrialSeededSampler(tpe_sampler, s.stream_seed),
    "random": lambda s: PerTrialSeededSampler(random_sampler, s.stream_seed),
    "lyapunov": _lyapunov_sampler,
}
"""``--sampler`` names, in the order ``--help`` lists them, and what each builds."""


def make_sampler(
    name: str,
    *,
    task: builtin_tasks.SequenceTask,
    n_startup_trials: int,
    seed: int,
    stream_seed: int,
    prior: Any = None,
) -> optuna.samplers.BaseSampler:
    """The sampler called ``name`` (one of ``SAMPLERS``).

    Parameters are proposed from the per-trial stream of ``stream_seed`` (so processes do not
    repeat each other); what every worker must agree on (the LyapunovSampler's model fits and
    candidate networks) uses the study's ``seed``. ``prior`` (a ``PriorBundle``, for
    ``lyapunov``) screens candidates; None: the shipped prior. The task's search space is
    given to the sampler, so it screens from the first trial.

    Raises:
        CLIError: For an unknown name.
    """
    if name not in SAMPLERS:
        raise CLIError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name](SamplerSettings(task, n_startup_trials, seed, stream_seed, prior))


def task_search_space(task: builtin_tasks.SequenceTask) -> dict[str, Any]:
    """The distributions ``task.suggest_params`` draws from, by parameter name."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    return {
        "cell": CategoricalDistribution(list(task.cells)),
        "hidden_size": IntDistribution(*task.hidden_size_range, log=True),
        "init_scale": FloatDistribution(*task.init_scale_range, log=True),
        "lr": FloatDistribution(*task.lr_range, log=True),
    }


def study_config(study: optuna.Study) -> dict[str, Any]:
    """The settings ``run`` stored with ``study``, with those older versions did not store
    filled in as the study ran them (``UNSTORED_SETTINGS``).

    Raises:
        CLIError: For a study that ``run`` did not create.
    """
    config = study.user_attrs.get(CONFIG_KEY)
    if not isinstance(config, dict):
        raise CLIError(
            f"study {study.study_name!r} was not created by 'optuna-lyap run', so its task and "
            "settings are unknown"
        )
    return {**UNSTORED_SETTINGS, **config}


def stored_pruner(study: optuna.Study) -> optuna.pruners.BasePruner | None:
    """The pruner that ran a study made by ``run`` (from its settings); None for another
    study, whose pruner is unknown."""
    if not isinstance(study.user_attrs.get(CONFIG_KEY), dict):
        return None
    config = study_config(study)
    return make_pruner(
        config["pruner"],
        n_startup_trials=config["n_startup_trials"],
        seed=config["seed"],
        prior_weight=config["prior_weight"],
    )


def load_prior(path: str | None, pruner: str, sampler: str = "tpe") -> tuple[Any, Any]:
    """The file ``fit`` wrote at ``path`` (None: none), as ``(bundle, aelle)``.

    A prior bundle (``fit``'s default) goes to the lyapunov pruner and sampler; an AeLLE
    (``fit --format aelle``) to the lyapunov pruner only. One of them is None.

    Raises:
        CLIError: For a file that is missing or neither kind, or a pruner and sampler that
            read no prior.
    """
    if path is None:
        return None, None
    if pruner != "lyapunov" and sampler != "lyapunov":
        raise CLIError(
            f"--prior gives a prior to the lyapunov pruner and sampler, but the study's pruner "
            f"is {pruner!r} and its sampler {sampler!r}"
        )
    if not Path(path).is_file():
        raise CLIError(f"--prior {path!r} is not a file; give the file 'optuna-lyap fit' wrote")
    from optuna_lyap import AeLLE
    from optuna_lyap.aelle._bundle import PriorBundle

    try:
        return PriorBundle.load(path), None
    except Exception as bundle_err:
        try:
            aelle = AeLLE.load(path)
        except Exception:
            reason = str(bundle_err).splitlines()[0] if str(bundle_err) else "unreadable"
            raise CLIError(
                f"cannot read --prior {path!r} ({reason}); give the file 'optuna-lyap fit' wrote"
            ) from bundle_err
    if pruner != "lyapunov":
        raise CLIError(
            f"--prior {path!r} is an AeLLE (fit --format aelle), which only the lyapunov "
            f"pruner reads, but the study's pruner is {pruner!r}"
        )
    return None, aelle


def build_study(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    config: dict[str, Any],
    *,
    stream_seed: int,
    prior: tuple[Any, Any] = (None, None),
) -> tuple[optuna.Study, Any]:
    """The study with this process's pruner and sampler, and the task's objective.

    ``prior`` is :func:`load_prior`'s ``(bundle, aelle)``.
    """
    bundle, aelle = prior
    task = builtin_tasks.get_task(config["task"], seed=config["seed"])
    pruner = make_pruner(
        config["pruner"],
        n_startup_trials=config["n_startup_trials"],
        seed=config["seed"],
        prior=bundle if config["pruner"] == "lyapunov" else None,
        aelle=aelle,
        prior_weight=config["prior_weight"],
    )
    sampler = make_sampler(
        config["sampler"],
        task=task,
        n_startup_trials=config["n_startup_trials"],
        seed=config["seed"],
        stream_seed=stream_seed,
        prior=bundle,
    )
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction=task.direction,
        pruner=pruner,
        sampler=sampler,
        load_if_exists=True,
    )
    objective = builtin_tasks.make_objective(
        task,
        n_epochs=config["n_epochs"],
        spectrum_steps=tuple(config["spectrum_steps"]),
        seed=config["seed"],
    )
    return study, objective


def check_spectrum_step(study: optuna.Study, step: int) -> None:
    """Refuse a ``--step`` at which no trial stored a spectrum, rather than read an earlier one.

    Raises:
        CLIError: Listing the steps with spectra.
    """
    from optuna_lyap import load_spectra

    steps = sorted({s for t in study.get_trials(deepcopy=False) for s in load_spectra(t)})
    if step not in steps:
        stored = ", ".join(map(str, steps)) if steps else "none"
        raise CLIError(
            f"no trial of {study.study_name!r} stored a spectrum at step {step}; steps with "
            f"spectra: {stored}"
        )
