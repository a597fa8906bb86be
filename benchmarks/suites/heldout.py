"""Held-out replays: epochs and seconds to a top-2% trial on tasks the prior never saw.

Every recorded table (the three grids of ``benchmarks/data`` and the random-design corpus of
``benchmarks/data/corpus``) is replayed as an HPO study, as ``benchmarks/replay.py`` does: a
trial asks the sampler for a configuration, reads its recorded epochs one by one, reports the
objective per epoch and the spectrum at steps 0 and 1 (``optuna_lyap.report_spectrum``), and
stops when the pruner says so. The budget is 40 full trainings (``40 x E`` epochs).

**Held out.** Our methods get a cross-task prior (``PriorBundle``) trained on every table but
the replayed one (leave one task out), with the code ``benchmarks/prior_train.py`` uses; the
bundles are cached under ``benchmarks/results/heldout_priors/<task>.pt``.

**Search spaces.** Grid tables: one categorical per axis (``replay.py``'s). Corpus tables were
recorded as a random design of 200 (or fewer) configurations, so the replayed space is the
design's continuous one: ``cell`` categorical, ``hidden_size`` int on a log scale in 8-128,
``init_scale`` float log in 0.25-8, ``lr`` float log in 3e-4..3e-2. A suggestion trains the
*nearest recorded configuration*: the same cell, the smallest Euclidean distance in
standardised log coordinates (each of ``log hidden_size``, ``log init_scale``, ``log lr``
divided by its standard deviation over the table), as surrogate-free tabular benchmarks of
continuous spaces do. The trial keeps the suggested params (what the sampler proposed, so TPE
models its own proposals), and stores the recorded configuration it trained as the system attr
the prior reads for the network (``optuna_lyap:network``) and as user attrs
(``recorded_index`` and ``recorded_<axis>``), so the prior reads the network actually trained.

**Objective.** The table's metric, except where the table's best final value is shared by more
than its top 2% (accuracy 1.0 on ``copy`` and ``copy_long``): there the validation loss, as
``replay.py`` does for ``copy``.

**Methods** (``METHODS``): ``tpe`` (no pruner), ``tpe+sha`` (``SuccessiveHalvingPruner(
min_resource=1)``), ``tpe+sha_auto`` (its defaults), ``tpe+hyperband`` (``HyperbandPruner(
min_resource=1)``), ``tpe+median`` (``MedianPruner(n_startup_trials=5, n_warmup_steps=1)``),
``tpe+topk_epoch1`` (``replay.TopKAfterFirstEpoch``); ``ours`` =
``LyapunovSampler(TPE, prior=...)`` screening candidates with their recorded spectra at
initialisation + ``LyapunovPruner(prior=...)``; ``ours_pruner_only`` (TPE + our pruner) and
``ours_sampler_only`` (our sampler + ``SuccessiveHalvingPruner(min_resource=1)``), so the
source of a gain shows; a diagnostic, ``ours_sampler_nop`` (our sampler, no pruner); a
variant, ``ours_prior_rungs`` (TPE + ``LyapunovPruner(prior=..., prior_decides=True)``: the
prior's gate judged with TPE too, the default before ``prior_decides`` existed), and
``ours_prior_by_sampler`` (``prior_decides=None``: judged only with an independent sampler, the
default of round 15; its runs lie under ``heldout_runs/random/``); an
option, ``ours_blend`` and ``ours_blend_30`` (TPE + ``LyapunovPruner(prior=...,
prior_weight=0.5`` or ``0.3)``, rungs ranked by a rank blend of the raw value and the prior
wherever no gate opens).
``--sampler random`` replays every method on ``RandomSampler`` instead of TPE (runs in
``heldout_runs/random/``, summary in ``heldout_summary_random``).

**Cost.** Epochs: every epoch a trial trains counts one (step 0 none). Seconds: the recorded
training + evaluation seconds of those epochs; for our pruner also the recorded spectrum seconds
at steps 0 and 1 (where reached) and the evaluation at step 0; for our sampler, for every trial
it screened with spectra, ``n_candidates`` spectra at initialisation at the table's mean step-0
spectrum time (the chosen candidate's included, so with our pruner that one is paid twice).

Usage::

    python benchmarks/heldout.py --methods tpe tpe+sha tpe+sha_auto tpe+hyperband \\
        tpe+topk_epoch1 --seeds 20 --resume          # the baselines
    python benchmarks/heldout.py --train-priors      # leave-one-task-out priors
    python benchmarks/heldout.py --methods ours ours_pruner_only ours_sampler_only \\
        --seeds 20 --resume
    python benchmarks/heldout.py --summarise-only    # tables from every stored run

Runs are stored per (task, method) in ``benchmarks/results/heldout_runs/`` as each seed
finishes (``--resume`` skips stored seeds); the summary goes to
``benchmarks/results/heldout_summary.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import itertools
import json
import math
import os
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

import optuna_lyap
from optuna_lyap._storage import NETWORK_ATTR
from optuna_lyap.aelle import NetworkDescription

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import replay  # noqa: E402
from record import load_table  # noqa: E402

DATA = HERE / "data"
RESULTS = HERE / "results"
RUNS = RESULTS / "heldout_runs"
# The base samplers replayed (``--sampler``). Method names say ``tpe``; with ``random`` every
# method runs on ``optuna.samplers.RandomSampler`` instead and is shown as ``random+...``.
SAMPLERS = ("tpe", "random")
PRIORS = RESULTS / "heldout_priors"
AXES = replay.AXES
SPECTRUM_STEPS = replay.SPECTRUM_STEPS
TOP_SHARE = 0.02

BASELINES = (
    "tpe",
    "tpe+sha",
    "tpe+sha_auto",
    "tpe+hyperband",
    "tpe+median",
    "tpe+topk_epoch1",
)
# TPE + LyapunovPruner(prior_weight=w): rungs ranked by a rank blend of the raw value and the
# held-out prior wherever no gate opens (an option, not the default), by method.
BLEND_WEIGHTS = {"ours_blend": 0.5, "ours_blend_30": 0.3}
OURS = (
    "ours",
    "ours_pruner_only",
    "ours_prior_rungs",
    "ours_prior_by_sampler",
    "ours_sampler_only",
    "ours_sampler_nop",
    *BLEND_WEIGHTS,
)
METHODS = BASELINES + OURS
# A study's budget: this many full trainings' epochs (``--budget-trainings``).
BUDGET_TRAININGS = 40.0
# Ours with LyapunovSampler (n_candidates spectra at initialisation per screened trial).
SAMPLER_SCREENS = ("ours", "ours_sampler_only", "ours_sampler_nop")
# Candidates our sampler screens per trial (LyapunovSampler's default).
N_CANDIDATES = 8
# The random design of the corpus tables (benchmarks/data/README.md).
CORPUS_SPACE = {
    "cell": CategoricalDistribution(("rnn", "gru", "lstm")),
    "hidden_size": IntDistribution(8, 128, log=True),
    "init_scale": FloatDistribution(0.25, 8.0, log=True),
    "lr": FloatDistribution(3e-4, 3e-2, log=True),
}
PLATEAU_CLAIMED = ("copy_long", "adding_long", "xor", "psdigits")


def table_paths() -> dict[str, Path]:
    """Every replayable table by task name: the grids, then the corpus."""
    paths = sorted(DATA.glob("*.jsonl.gz")) + sorted((DATA / "corpus").glob("*.jsonl.gz"))
    return {p.name.split(".")[0]: p for p in paths}


def objective_of(table: dict[str, Any]) -> tuple[str, np.ndarray, str]:
    """The name, ``(n, E + 1)`` values and direction of what a replay on ``table`` optimises.

    The table's metric, unless more than ``TOP_SHARE`` of the table ties at its best final
    value; then the validation loss (minimised), which still ranks those.
    """
    task = table["meta"]["task"]
    if task in replay.OBJECTIVES:
        return replay.objective_of(table)
    direction = table["meta"]["direction"]
    sign = 1.0 if direction == "maximize" else -1.0
    finals = np.nan_to_num(sign * table["values"][:, -1], nan=-np.inf)
    if np.mean(finals >= finals.max() - 1e-12) > TOP_SHARE:
        return "val_loss", table["val_loss"], "minimize"
    return table["meta"]["metric"], table["values"], direction


def top_configurations(table: dict[str, Any]) -> np.ndarray:
    """``n`` booleans: whether a configuration's final objective is in the table's top 2%."""
    _, values, direction = objective_of(table)
    sign = 1.0 if direction == "maximize" else -1.0
    scores = np.nan_to_num(sign * values[:, -1], nan=-np.inf)
    return np.asarray(scores >= np.quantile(scores, 1.0 - TOP_SHARE) - 1e-12)


def is_grid(table: dict[str, Any]) -> bool:
    return table["meta"].get("design") != "random"


class ConfigurationSpace:
    """How a trial of a replay picks its recorded configuration.

    Grid tables: one categorical per axis, the configuration with exactly those values.
    Random-design tables: ``CORPUS_SPACE``; the nearest recorded configuration of the same cell
    in standardised log coordinates (see the module docstring).
    """

    def __init__(self, table: dict[str, Any]) -> None:
        self.grid = is_grid(table)
        self.cells = np.asarray(table["cell"]).astype(str)
        if self.grid:
            self.lookup = replay._lookup(table)
            self.distributions = {
                a: CategoricalDistribution(tuple(table["meta"]["grid"][a])) for a in AXES
            }
        else:
            self.logs = np.log(
                np.stack([np.asarray(table[a], dtype=np.float64) for a in AXES[1:]], axis=1)
            )
            self.scale = self.logs.std(axis=0)
            self.scale[self.scale == 0] = 1.0
            self.distributions = dict(CORPUS_SPACE)

    def index(self, params: dict[str, Any]) -> int:
        """The recorded configuration a trial with ``params`` trains."""
        if self.grid:
            return self.lookup[tuple(params[a] for a in AXES)]
        same = np.flatnonzero(self.cells == str(params["cell"]))
        if len(same) == 0:
            raise ValueError(f"no recorded configuration has cell {params['cell']!r}")
        point = np.log([float(params[a]) for a in AXES[1:]])
        d = (((self.logs[same] - point) / self.scale) ** 2).sum(axis=1)
        return int(same[int(np.argmin(d))])

    def suggest(self, trial: optuna.Trial) -> int:
        params: dict[str, Any] = {}
        for a in AXES:
            d = self.distributions[a]
            if isinstance(d, CategoricalDistribution):
                params[a] = trial.suggest_categorical(a, d.choices)
            elif isinstance(d, IntDistribution):
                params[a] = trial.suggest_int(a, d.low, d.high, log=d.log)
            else:
                params[a] = trial.suggest_float(a, d.low, d.high, log=d.log)
        return self.index(params)


def recorded_params(table: dict[str, Any], i: int) -> dict[str, Any]:
    return {a: table[a][i].item() for a in AXES}


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


def recorded_spectrum(table: dict[str, Any], i: int, step: int) -> SimpleNamespace:
    """The recorded spectrum of configuration ``i`` at ``step`` with its state dimension ``D``
    (corpus tables keep the top 64 exponents of a larger ``D``; ``report_spectrum`` stores
    ``D`` from a spectrum object's ``dim``)."""
    dim = int(table["dim"][i])
    exponents = table["spectra"][i, step, : min(dim, table["spectra"].shape[2])]
    exponents = exponents[np.isfinite(exponents)] if np.isfinite(exponents).any() else exponents
    return SimpleNamespace(exponents=exponents, dim=dim)


class TableSpectrumSampler(optuna_lyap.LyapunovSampler):
    """``LyapunovSampler`` whose candidates' spectra at initialisation come from the table:
    the recorded step-0 spectrum of the configuration the candidate would train."""

    def __init__(self, base: Any, table: dict[str, Any], seed: int, **kwargs: Any) -> None:
        super().__init__(
            base,
            model_factory=replay._never_built,
            probe_inputs=torch.zeros(1, 1, 1),
            seed=seed,
            **kwargs,
        )
        self._space = ConfigurationSpace(table)
        self._table = table

    def _candidate_spectrum(self, params: Any, number: int, index: int) -> np.ndarray:
        i = self._space.index(dict(params))
        spectrum = recorded_spectrum(self._table, i, 0)
        dims = getattr(self._local, "dims", None)
        if dims is not None:  # the state dimension D, as the base class records it
            dims[index] = spectrum.dim
        return spectrum.exponents


def make_pruner(method: str, seed: int, prior: Any) -> BasePruner:
    p = optuna.pruners
    model = optuna_lyap.InStudyModel(seed=seed)
    if method in ("tpe", "ours_sampler_nop"):
        return p.NopPruner()
    if method in ("tpe+sha", "ours_sampler_only"):
        return p.SuccessiveHalvingPruner(min_resource=1)
    if method == "tpe+sha_auto":
        return p.SuccessiveHalvingPruner()
    if method == "tpe+hyperband":
        return p.HyperbandPruner(min_resource=1)
    if method == "tpe+median":
        # As replay.py's: never prune the untrained network (step 0) on its chance-level value.
        return p.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if method == "tpe+topk_epoch1":
        return replay.TopKAfterFirstEpoch()
    if method in ("ours", "ours_pruner_only"):
        return optuna_lyap.LyapunovPruner(model=model, prior=prior)
    if method == "ours_prior_rungs":
        return optuna_lyap.LyapunovPruner(model=model, prior=prior, prior_decides=True)
    if method == "ours_prior_by_sampler":
        return optuna_lyap.LyapunovPruner(model=model, prior=prior, prior_decides=None)
    if method in BLEND_WEIGHTS:
        return optuna_lyap.LyapunovPruner(
            model=model, prior=prior, prior_weight=BLEND_WEIGHTS[method]
        )
    raise ValueError(f"method must be one of {METHODS}, but got {method!r}.")


def make_sampler(
    method: str, seed: int, table: dict[str, Any], prior: Any, sampler: str = "tpe"
) -> Any:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, but got {sampler!r}.")
    base: optuna.samplers.BaseSampler = (
        optuna.samplers.TPESampler(seed=seed)
        if sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    if method in ("ours", "ours_sampler_only", "ours_sampler_nop"):
        space = ConfigurationSpace(table)
        return TableSpectrumSampler(
            base, table, seed, prior=prior, search_space=space.distributions
        )
    return base


def prior_path(task: str) -> Path:
    return PRIORS / f"{task}.pt"


def run_one(
    task: str,
    method: str,
    seed: int,
    budget: int,
    sampler: str = "tpe",
    pruner: BasePruner | None = None,
) -> dict[str, Any]:
    """One HPO run on one table; the finished trials and our decision records.

    ``pruner`` replaces ``method``'s (which then only names the sampler) when given.
    """
    table = _table(task)
    _, values, direction = objective_of(table)
    n_epochs = values.shape[1] - 1
    space = ConfigurationSpace(table)
    prior = str(prior_path(task)) if method in OURS else None
    spent = 0
    trace: list[tuple[int, float | None]] = []

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        i = space.suggest(trial)
        record_network(trial, table, i)
        for step in range(n_epochs + 1):
            if step > 0:
                spent += 1
            if step in SPECTRUM_STEPS:
                optuna_lyap.report_spectrum(trial, recorded_spectrum(table, i, step), step)
            trial.report(float(values[i, step]), step)
            if trial.should_prune():
                trace.append((spent, None))
                raise optuna.TrialPruned()
        trace.append((spent, float(values[i, -1])))
        return float(values[i, -1])

    def stop_at_budget(study: optuna.Study, trial: FrozenTrial) -> None:
        if spent >= budget:
            study.stop()

    if pruner is None:
        pruner = make_pruner(method, seed, prior)
    timed = (
        None if isinstance(pruner, optuna.pruners.HyperbandPruner) else replay.TimedPruner(pruner)
    )
    study = optuna.create_study(
        study_name=f"heldout-{seed}",
        direction=direction,
        sampler=make_sampler(method, seed, table, prior, sampler),
        pruner=pruner if timed is None else timed,
    )
    started = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, callbacks=[stop_at_budget], n_trials=100 * budget)
    cpu = time.process_time() - started

    top = top_configurations(table)
    trials = []
    for t in study.trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        i = int(t.user_attrs["recorded_index"])
        stop = -1 if t.state == TrialState.COMPLETE else int(t.last_step or 0)
        entry: dict[str, Any] = {"i": i, "stop": stop, "top": bool(top[i])}
        if method in OURS:
            entry.update(decision_summary(t))
        trials.append(entry)
    run: dict[str, Any] = {"seed": seed, "trace": trace, "trials": trials, "cpu_seconds": cpu}
    if timed is not None:
        run["pruner_cpu_seconds"] = timed.seconds
    return run


def decision_summary(trial: FrozenTrial) -> dict[str, Any]:
    """Our decision records on one trial: the rule and scorer at each recorded step, and
    whether the sampler screened candidates for it (and with which inputs)."""
    from optuna_lyap.pruners import load_predictions

    out: dict[str, Any] = {}
    records = load_predictions(trial)
    out["records"] = {
        str(step): {k: r.get(k) for k in ("rule", "scorer", "inputs", "predicted") if k in r}
        for step, r in records.items()
    }
    screen = {k: v for k, v in trial.user_attrs.items() if k.startswith("lyap_screen")}
    screen.update({k: v for k, v in trial.system_attrs.items() if "screen" in k})
    out["screen"] = {k: v for k, v in screen.items() if isinstance(v, (int, float, str, bool))}
    return out


_TABLES: dict[str, dict[str, Any]] = {}


def _table(task: str) -> dict[str, Any]:
    if task not in _TABLES:
        _TABLES[task] = load_table(table_paths()[task])
    return _TABLES[task]


def _job(job: tuple[str, str, int, int, str]) -> tuple[str, str, int, dict[str, Any]]:
    task, method, seed, budget, sampler = job
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return task, method, seed, run_one(task, method, seed, budget, sampler)


def runs_path(task: str, method: str, sampler: str = "tpe") -> Path:
    """TPE's runs lie in ``heldout_runs/``, every other sampler's in a folder of its own."""
    folder = RUNS if sampler == "tpe" else RUNS / sampler
    return folder / f"{task}__{method}.json.gz"


def load_runs(task: str, method: str, sampler: str = "tpe") -> dict[str, Any] | None:
    path = runs_path(task, method, sampler)
    if not path.exists():
        return None
    with gzip.open(path, "rt") as f:
        payload: dict[str, Any] = json.load(f)
    return payload


def save_run(
    task: str,
    method: str,
    budget: int,
    run: dict[str, Any],
    command: str,
    sampler: str = "tpe",
) -> None:
    payload = load_runs(task, method, sampler) or {"budget_epochs": budget, "runs": {}}
    if payload["budget_epochs"] != budget:
        payload = {"budget_epochs": budget, "runs": {}}
    payload["command"] = command
    if method in OURS:
        payload["prior"] = str(prior_path(task).relative_to(HERE.parent))
        # Per run: a retraining on another machine can give other float bits (and digest)
        # for the same tables and settings, so each run names the bundle it replayed.
        path = prior_path(task)
        run = {**run, "prior_digest": _bundle_digest(str(path), path.stat().st_mtime_ns)}
    payload["runs"][str(run["seed"])] = run
    path = runs_path(task, method, sampler)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt") as f:
        json.dump(payload, f)
    os.replace(tmp, path)


@functools.lru_cache(maxsize=16)
def _bundle_digest(path: str, mtime_ns: int) -> str:
    """``PriorBundle.digest`` of the file at ``path``, loaded once per version of the file."""
    from optuna_lyap.aelle import PriorBundle

    return PriorBundle.load(path).digest()


def budget_of(table: dict[str, Any], trainings: float) -> int:
    return int(trainings * (table["values"].shape[1] - 1))


# -- leave-one-task-out priors ---------------------------------------------------------------


def train_loto_prior(held_out: str, out: Path) -> dict[str, Any]:
    """Train a ``PriorBundle`` on every table but ``held_out`` and save it to ``out``.

    Runs ``benchmarks/prior_train.py``'s own training (``main``) with ``--no-calibration``, as
    the shipped bundle was trained, on a folder of links to the other tables; that script's
    report files (the shipped bundle's) are left untouched. Returns provenance for
    ``heldout_priors.json``.
    """
    import shutil

    import prior_train

    # A fixed folder, not a temporary one: its path is part of the command stored in the
    # bundle, so a retraining on the same tables, from the same directory, writes the same
    # bytes (and digest).
    folder = out.parent / f".tables-without-{held_out}"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "corpus").mkdir(parents=True)
    try:
        kept = []
        for task, path in table_paths().items():
            if task == held_out:
                continue
            target = folder / path.relative_to(DATA)
            os.symlink(path, target)
            kept.append(task)
        saved = (prior_train._write_weights_report, prior_train._write_calibration_report)
        prior_train._write_weights_report = lambda *a, **k: None
        prior_train._write_calibration_report = lambda *a, **k: None
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            started = time.time()
            # Paths as the command line would give them from the repository's root.
            data, dest = (os.path.relpath(p) for p in (folder, out))
            prior_train.main(["--data", data, "--out", dest, "--no-calibration"])
            seconds = time.time() - started
        finally:
            prior_train._write_weights_report, prior_train._write_calibration_report = saved
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    from optuna_lyap.aelle import PriorBundle

    bundle = PriorBundle.load(out)
    return {
        "held_out": held_out,
        "file": str(out.relative_to(HERE.parent)),
        "digest": bundle.digest(),
        "trained_on": bundle.info.get("tables"),
        "seconds": round(seconds, 1),
    }


def _train_job(task: str) -> dict[str, Any]:
    torch.set_num_threads(1)
    return train_loto_prior(task, prior_path(task))


# -- summary ---------------------------------------------------------------------------------


def run_seconds(table: dict[str, Any], method: str, run: dict[str, Any]) -> np.ndarray:
    """Recorded seconds of each finished trial of ``run``, spectra charged (module docstring)."""
    epoch = np.nan_to_num(table["train_seconds"] + table["eval_seconds"])
    spectrum = np.nan_to_num(table["spectrum_seconds"])
    n_epochs = epoch.shape[1] - 1
    screen_cost = N_CANDIDATES * float(spectrum[:, 0].mean())
    pruner_spectra = method in (
        "ours",
        "ours_pruner_only",
        "ours_prior_rungs",
        "ours_prior_by_sampler",
        *BLEND_WEIGHTS,
    )
    out = []
    for t in run["trials"]:
        i, stop = t["i"], t["stop"]
        last = n_epochs if stop == -1 else stop
        cost = float(epoch[i, 1 : last + 1].sum())
        if pruner_spectra:
            cost += sum(float(spectrum[i, s]) for s in SPECTRUM_STEPS if s <= last)
            cost += float(np.nan_to_num(table["eval_seconds"][i, 0]))
        if method in SAMPLER_SCREENS and screened_with_spectra(t):
            cost += screen_cost
        out.append(cost)
    return np.array(out)


def screened_with_spectra(trial: dict[str, Any]) -> bool:
    screen = trial.get("screen", {})
    if not screen:
        return False
    inputs = str(screen.get("lyap_screen_inputs", "spectrum"))
    return "spectrum" in inputs


def per_seed(
    table: dict[str, Any], method: str, run: dict[str, Any]
) -> tuple[float | None, float | None]:
    """Epochs and seconds until the first completed trial with a top-2% final value."""
    _, values, direction = objective_of(table)
    sign = 1.0 if direction == "maximize" else -1.0
    bar = np.quantile(np.nan_to_num(sign * values[:, -1], nan=-np.inf), 1.0 - TOP_SHARE)
    seconds = np.cumsum(run_seconds(table, method, run))
    for k, (epochs, value) in enumerate(run["trace"]):
        if value is not None and sign * value >= bar - 1e-12:
            return float(epochs), float(seconds[k])
    return None, None


def _median_inf(xs: list[float | None]) -> float | None:
    m = float(np.median([math.inf if x is None else x for x in xs]))
    return m if math.isfinite(m) else None


def _iqr(xs: list[float | None]) -> list[float | None]:
    never = 1e300  # a seed that never gets there, beyond every finite value
    q = np.percentile([never if x is None else x for x in xs], [25, 75], method="lower")
    return [float(v) if v < never else None for v in q]


def plateau_profile(table: dict[str, Any]) -> dict[str, Any]:
    """Does the table's learning curve sit flat and then jump? Spearman of the objective at
    epochs 1 and 2 with the final one, and the share of the median curve's total change done
    by a quarter of the epochs."""
    from scipy.stats import spearmanr

    _, values, direction = objective_of(table)
    sign = 1.0 if direction == "maximize" else -1.0
    e = values.shape[1] - 1
    rho = [float(spearmanr(values[:, k], values[:, -1]).statistic) for k in (1, 2)]
    med = np.nanmedian(sign * values, axis=0)
    # Progress of the median curve after epoch 1, by a quarter of the epochs.
    q = max(2, e // 4)
    span = med[-1] - med[1]
    early = float((med[q] - med[1]) / span) if abs(span) > 1e-12 else float("nan")
    return {"spearman_epoch1": rho[0], "spearman_epoch2": rho[1], "median_progress_q": early}


def summarise(
    tasks: list[str],
    trainings: float,
    out: Path,
    sampler: str = "tpe",
    seeds: int | None = None,
) -> dict[str, Any]:
    """Write the summary tables of the stored runs to ``out`` (JSON) and its ``.md``.

    With ``seeds``, every method's runs are cut to the seeds below it. Then each table shows
    only the methods run on exactly the seeds of its most-run method, so that medians and
    ratios are always over one set of seeds; the ones left out are listed under the tables.
    """
    summary: dict[str, Any] = {"budget_trainings": trainings, "sampler": sampler, "tasks": {}}
    left_out: list[str] = []
    lines = [
        "| task | method | seeds | epochs to top-2% (median) | IQR | share reaching | "
        "seconds (median) | ratio epochs | ratio seconds | ours vs best: faster/slower/tie | "
        "CPU s/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in tasks:
        table = _table(task)
        metric, _, direction = objective_of(table)
        budget = budget_of(table, trainings)
        entry: dict[str, Any] = {
            "objective": metric,
            "direction": direction,
            "n_configs": len(table["index"]),
            "design": "grid" if is_grid(table) else "random",
            "budget_epochs": budget,
            "plateau": plateau_profile(table),
            "methods": {},
        }
        per: dict[str, dict[int, tuple[float | None, float | None]]] = {}
        stored: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        for method in METHODS:
            payload = load_runs(task, method, sampler)
            if payload is None or payload["budget_epochs"] != budget:
                continue
            runs = payload["runs"]
            if seeds is not None:
                runs = {k: r for k, r in runs.items() if int(k) < seeds}
            if runs:
                stored[method] = (payload, runs)
        widest: set[str] = max((set(runs) for _, runs in stored.values()), key=len, default=set())
        for method, (payload, runs) in stored.items():
            if set(runs) != widest:
                left_out.append(
                    f"{task} {shown(method, sampler)} ({len(runs)} seeds, not the "
                    f"{len(widest)} of the others)"
                )
                continue
            hits = {int(s): per_seed(table, method, r) for s, r in runs.items()}
            per[method] = hits
            epochs = [h[0] for h in hits.values()]
            seconds = [h[1] for h in hits.values()]
            stats = {
                "seeds": sorted(hits),
                "epochs_to_top2pct": _median_inf(epochs),
                "epochs_iqr": _iqr(epochs),
                "share_reaching": float(np.mean([e is not None for e in epochs])),
                "seconds_to_top2pct": _median_inf(seconds),
                "seconds_iqr": _iqr(seconds),
                "cpu_seconds_median": float(np.median([r["cpu_seconds"] for r in runs.values()])),
                "command": payload.get("command"),
            }
            if method in OURS:
                stats["decisions"] = decision_report(runs)
                stats["model_seeds"] = sorted(int(s) for s, r in runs.items() if model_decided(r))
            entry["methods"][method] = stats
        _rank_against_best(entry, per)
        _model_against_rule(entry, per)
        entry["against_the_rest"] = baselines_against_the_rest(entry)
        for m, stats in entry["methods"].items():
            mark = " (best)" if m == entry.get("best_baseline_epochs") else ""
            paired = stats.get("paired_vs_best_epochs")
            median = _f(stats["epochs_to_top2pct"], 0)
            lines.append(
                f"| {task} | {shown(m, sampler)}{mark} | {len(stats['seeds'])} | {median} "
                f"| {_f(stats['epochs_iqr'][0], 0, 'never')}-"
                f"{_f(stats['epochs_iqr'][1], 0, 'never')} "
                f"| {stats['share_reaching']:.2f} | {_f(stats['seconds_to_top2pct'], 1)} "
                f"| {_f(stats.get('ratio_epochs'), 2)} | {_f(stats.get('ratio_seconds'), 2)} "
                f"| {'' if paired is None else '{faster}/{slower}/{tie}'.format(**paired)} "
                f"| {stats['cpu_seconds_median']:.1f} |"
            )
        summary["tasks"][task] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    plateau = [
        "| task | design | configs | budget (epochs) | Spearman epoch 1 / 2 vs final | "
        "median curve's progress by E/4 |",
        "|---|---|---|---|---|---|",
    ]
    for task, e in summary["tasks"].items():
        p = e["plateau"]
        plateau.append(
            f"| {task} | {e['design']} | {e['n_configs']} | {e['budget_epochs']} "
            f"| {p['spearman_epoch1']:+.2f} / {p['spearman_epoch2']:+.2f} "
            f"| {p['median_progress_q']:.2f} |"
        )
    text = (
        "\n".join(compact_table(summary))
        + "\n\n"
        + "\n".join(pruner_table(summary))
        + "\n\n"
        + "\n".join(lines)
        + "\n\n"
        + "\n".join(plateau)
        + "\n"
    )
    bar = bar_table(summary)
    if bar:
        text += (
            f"\nThe bar (median epochs at most {BAR_RATIO:.2f}x the best baseline's, share of "
            "seeds at least its) held to each baseline against the best of the others, and to "
            "our pruner against the best of all; each cell: ratio [share] met/miss.\n\n"
            + "\n".join(bar)
            + "\n"
        )
    if left_out:
        text += "\nLeft out, run on other seeds: " + "; ".join(left_out) + ".\n"
    out.with_suffix(".md").write_text(text)
    print(text)
    return summary


def shown(method: str, sampler: str) -> str:
    """A method's name as the tables show it: ``tpe`` read as the sampler replayed."""
    return sampler + method[3:] if method.startswith("tpe") else method


def model_decided(run: dict[str, Any]) -> bool:
    """Did anything but the raw value (the in-study model or the prior) rank a rung or the
    screen in this run?"""
    return any(
        r.get("scorer") not in (None, "raw")
        for t in run["trials"]
        for r in t.get("records", {}).values()
    )


# What our pruner's decisions reduce to with the model out of play: the same run with
# ``SuccessiveHalvingPruner(min_resource=1)``, whose decisions ``LyapunovPruner`` makes exactly
# when no model passes the gate. Seeds where the model ranked a rung are paired against it.
RULE_REFERENCE = {
    "ours_pruner_only": "tpe+sha",
    "ours_prior_rungs": "tpe+sha",
    "ours_prior_by_sampler": "tpe+sha",
    "ours": "ours_sampler_only",
    **dict.fromkeys(BLEND_WEIGHTS, "tpe+sha"),
}


def _model_against_rule(
    entry: dict[str, Any], per: dict[str, dict[int, tuple[float | None, float | None]]]
) -> None:
    """Seed by seed, where the model (not the raw value) ranked at least one rung: ours
    against the same run under plain successive halving, faster / slower / tied in epochs,
    with the two-sided sign test's p-value (ties dropped)."""
    from scipy.stats import binomtest

    for m, ref in RULE_REFERENCE.items():
        stats = entry["methods"].get(m)
        if stats is None or ref not in per:
            continue
        seeds = [s for s in stats["model_seeds"] if s in per[ref]]
        count = _paired({s: per[m][s] for s in seeds}, per[ref], 0)
        n = count["faster"] + count["slower"]
        count["sign_test_p"] = binomtest(count["faster"], n).pvalue if n else None
        count["reference"] = ref
        stats["model_vs_rule_epochs"] = count


def median_ratio_interval(
    ours: dict[int, tuple[float | None, float | None]],
    best: dict[int, tuple[float | None, float | None]],
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[float] | None:
    """95% paired-bootstrap percentile interval of median(ours) / median(best) in epochs.

    Seeds are resampled in pairs (both methods replay the same seeds); a seed that never
    reaches a top-2% trial counts as infinitely slow, and a resample whose ratio is undefined
    (both medians infinite) counts against ours. None with fewer than 5 shared seeds.
    """
    seeds = sorted(set(ours) & set(best))
    if len(seeds) < 5:
        return None
    a = np.array([math.inf if ours[s][0] is None else ours[s][0] for s in seeds])
    b = np.array([math.inf if best[s][0] is None else best[s][0] for s in seeds])
    index = np.random.default_rng(seed).integers(0, len(seeds), size=(n_resamples, len(seeds)))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.median(a[index], axis=1) / np.median(b[index], axis=1)
    ratio = np.where(np.isnan(ratio), math.inf, ratio)
    # Order statistics, not interpolation: an infinite ratio must not turn the bound into NaN.
    low = np.percentile(ratio, 2.5, method="lower")
    high = np.percentile(ratio, 97.5, method="higher")
    return [float(low), float(high)]


def compact_table(summary: dict[str, Any]) -> list[str]:
    """One row per task: the best baseline, ours (median epochs [share of seeds reaching],
    ratios and the paired count against the best baseline), and the ablations' medians."""
    rows = [
        "| task | best baseline | its epochs [share] / s | ours epochs [share] / s | "
        "ratio epochs / s | ours faster/slower/tied (epochs) | pruner only | sampler only "
        "| sampler, no pruner |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for task, e in summary["tasks"].items():
        m = e["methods"]
        best = e.get("best_baseline_epochs")
        if best is None:
            continue

        def show(name: str, m: dict[str, Any] = m) -> str:
            if name not in m:
                return "not run"
            st = m[name]
            seeds = "" if len(st["seeds"]) >= 20 else f" ({len(st['seeds'])} seeds)"
            return (
                f"{_f(st['epochs_to_top2pct'], 0, 'never')} [{st['share_reaching']:.2f}] / "
                f"{_f(st['seconds_to_top2pct'], 0, 'never')}{seeds}"
            )

        ours = m.get("ours", {})
        paired = ours.get("paired_vs_best_epochs")
        rows.append(
            f"| {task} | {shown(best, summary['sampler'])} | {show(best)} | {show('ours')} "
            f"| {_f(ours.get('ratio_epochs'), 2)} / {_f(ours.get('ratio_seconds'), 2)} "
            f"| {'' if paired is None else '{faster}/{slower}/{tie}'.format(**paired)} "
            f"| {show('ours_pruner_only')} | {show('ours_sampler_only')} "
            f"| {show('ours_sampler_nop')} |"
        )
    return rows


# The pruner-alone methods of ``pruner_table``, and how its rows name them.
PRUNER_ROWS = {
    "ours_pruner_only": "default",
    "ours_prior_rungs": "prior_decides=True",
    "ours_prior_by_sampler": "prior_decides=None",
    **{method: f"prior_weight={w}" for method, w in BLEND_WEIGHTS.items()},
}


def pruner_table(summary: dict[str, Any]) -> list[str]:
    """One row per task and pruner-alone method (``PRUNER_ROWS``: the default pruner, and the
    prior blend where it was run): against the best baseline (median epochs [share of seeds
    reaching], the ratio with its 95% paired-bootstrap interval, the paired count), and, in the
    seeds where the model ranked a rung, against the same seeds under plain successive
    halving."""
    sampler = summary["sampler"]
    rows = [
        "| task | pruner | best baseline, epochs [share] | our pruner, epochs [share] "
        "| ratio [95% CI] | faster/slower/tied vs best | seeds where the model ranked a rung "
        "| there vs successive halving: faster/slower/tied (sign test p) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (task, e), (method, label) in itertools.product(
        summary["tasks"].items(), PRUNER_ROWS.items()
    ):
        m = e["methods"]
        best = e.get("best_baseline_epochs")
        ours = m.get(method)
        if best is None or ours is None:
            continue
        ci = ours.get("ratio_epochs_95ci")
        interval = (
            ""
            if ci is None or ours.get("ratio_epochs") is None
            else f" [{_f(ci[0], 2)}, {_f(ci[1], 2, 'inf')}]"
        )
        paired = ours["paired_vs_best_epochs"]
        rule = ours.get("model_vs_rule_epochs")
        there = (
            "-"
            if rule is None
            else "{faster}/{slower}/{tie}".format(**rule) + f" ({_f(rule['sign_test_p'], 2)})"
        )
        rows.append(
            f"| {task} | {label} "
            f"| {shown(best, sampler)}, {_f(m[best]['epochs_to_top2pct'], 0, 'never')} "
            f"[{m[best]['share_reaching']:.2f}] "
            f"| {_f(ours['epochs_to_top2pct'], 0, 'never')} [{ours['share_reaching']:.2f}] "
            f"| {_f(ours.get('ratio_epochs'), 2)}{interval} "
            f"| {paired['faster']}/{paired['slower']}/{paired['tie']} "
            f"| {len(ours['model_seeds'])} of {len(ours['seeds'])} | {there} |"
        )
    return rows


def best_by_epochs(stats: dict[str, dict[str, Any]]) -> str:
    """The method of ``stats`` (by name: ``epochs_to_top2pct``, ``share_reaching``,
    ``seconds_to_top2pct``, None meaning never) with the smallest median epochs to a top-2%
    trial, then the larger share of seeds reaching one, then the fewer seconds."""

    def value(m: str, what: str) -> float:
        v = stats[m][what]
        return math.inf if v is None else v

    return min(
        stats,
        key=lambda m: (
            value(m, "epochs_to_top2pct"),
            -stats[m]["share_reaching"],
            value(m, "seconds_to_top2pct"),
        ),
    )


def _rank_against_best(
    entry: dict[str, Any], per: dict[str, dict[int, tuple[float | None, float | None]]]
) -> None:
    """Name the best baseline (smallest median epochs, then the larger share of seeds reaching
    a top-2% trial, then seconds; likewise for seconds) and give every method its ratios to it
    and ours a paired seed-by-seed count against it."""
    methods = entry["methods"]
    base = [m for m in BASELINES if m in methods]
    if not base:
        return

    def value(m: str, what: str) -> float:
        v = methods[m][what]
        return math.inf if v is None else v

    best_e = best_by_epochs({m: methods[m] for m in base})
    best_s = min(
        base,
        key=lambda m: (
            value(m, "seconds_to_top2pct"),
            -methods[m]["share_reaching"],
            value(m, "epochs_to_top2pct"),
        ),
    )
    entry["best_baseline_epochs"] = best_e
    entry["best_baseline_seconds"] = best_s
    for m, stats in methods.items():
        stats["ratio_epochs"] = _ratio(
            value(m, "epochs_to_top2pct"), value(best_e, "epochs_to_top2pct")
        )
        stats["ratio_seconds"] = _ratio(
            value(m, "seconds_to_top2pct"), value(best_s, "seconds_to_top2pct")
        )
        if m in OURS:
            stats["paired_vs_best_epochs"] = _paired(per[m], per[best_e], 0)
            stats["paired_vs_best_seconds"] = _paired(per[m], per[best_s], 1)
            stats["ratio_epochs_95ci"] = median_ratio_interval(per[m], per[best_e])


# The bar a pruner is held to: median epochs to a top-2% trial at most this many times the best
# baseline's, and a share of seeds reaching one at least the best baseline's.
BAR_RATIO = 1.10


def meets_bar(method: dict[str, Any], best: dict[str, Any]) -> bool:
    """Does ``method`` (summary stats: ``epochs_to_top2pct``, None meaning never, and
    ``share_reaching``) meet the bar against ``best``: median epochs at most ``BAR_RATIO``
    times ``best``'s (a method that never reaches a top-2% trial in the median seed meets it
    only where ``best`` never does either) and a share of seeds reaching one at least
    ``best``'s?"""
    a = math.inf if method["epochs_to_top2pct"] is None else method["epochs_to_top2pct"]
    b = math.inf if best["epochs_to_top2pct"] is None else best["epochs_to_top2pct"]
    fast_enough = a <= BAR_RATIO * b if math.isfinite(b) else True
    return bool(fast_enough and method["share_reaching"] >= best["share_reaching"])


def baselines_against_the_rest(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each baseline held to the bar our pruner is held to: against the best of the *other*
    baselines (chosen as ``best_by_epochs`` chooses), on the same seeds.

    The best of several methods' medians is an optimistic bar (the smallest of noisy
    medians); this says how often a baseline itself meets it. Empty with fewer than 2
    baselines."""
    methods = entry["methods"]
    base = [m for m in BASELINES if m in methods]
    out: dict[str, dict[str, Any]] = {}
    if len(base) < 2:
        return out
    for m in base:
        rest = best_by_epochs({o: methods[o] for o in base if o != m})
        a, b = methods[m]["epochs_to_top2pct"], methods[rest]["epochs_to_top2pct"]
        out[m] = {
            "best_of_the_rest": rest,
            "ratio_epochs": _ratio(math.inf if a is None else a, math.inf if b is None else b),
            "share_reaching": methods[m]["share_reaching"],
            "rest_share_reaching": methods[rest]["share_reaching"],
            "meets_bar": meets_bar(methods[m], methods[rest]),
        }
    return out


def bar_table(summary: dict[str, Any]) -> list[str]:
    """One row per task, one column per baseline and for our pruner alone: the median-epochs
    ratio [share of seeds reaching a top-2% trial] against the best of the *other* baselines
    (ours: of all of them), and whether the bar is met; a last row counts the tables met."""
    sampler = summary["sampler"]
    entries = {t: e for t, e in summary["tasks"].items() if e.get("against_the_rest")}
    if not entries:
        return []
    columns = [m for m in BASELINES if any(m in e["against_the_rest"] for e in entries.values())]
    ours = "ours_pruner_only"
    with_ours = any(ours in e["methods"] for e in entries.values())
    names = [shown(m, sampler) for m in columns] + (["our pruner"] if with_ours else [])
    rows = [
        "| task | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    met = dict.fromkeys(columns + ([ours] if with_ours else []), 0)
    shown_in = dict.fromkeys(met, 0)

    def cell(epochs: float | None, ratio: float | None, share: float, ok: bool) -> str:
        # No ratio: this method never reaches a top-2% trial in the median seed, or the other
        # one never does (then this one is faster).
        shown_ratio = "never" if epochs is None else _f(ratio, 2, "faster, other never")
        return f"{shown_ratio} [{share:.2f}] {'met' if ok else 'miss'}"

    for task, e in entries.items():
        cells = []
        for m in columns:
            r = e["against_the_rest"].get(m)
            if r is None:
                cells.append("not run")
                continue
            epochs = e["methods"][m]["epochs_to_top2pct"]
            cells.append(cell(epochs, r["ratio_epochs"], r["share_reaching"], r["meets_bar"]))
            met[m] += r["meets_bar"]
            shown_in[m] += 1
        if with_ours:
            st = e["methods"].get(ours)
            best = e.get("best_baseline_epochs")
            if st is None or best is None:
                cells.append("not run")
            else:
                ok = meets_bar(st, e["methods"][best])
                epochs = st["epochs_to_top2pct"]
                cells.append(cell(epochs, st.get("ratio_epochs"), st["share_reaching"], ok))
                met[ours] += ok
                shown_in[ours] += 1
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    rows.append("| tables met | " + " | ".join(f"{met[m]} of {shown_in[m]}" for m in met) + " |")
    return rows


def _ratio(a: float, b: float) -> float | None:
    if not math.isfinite(a) or not math.isfinite(b) or b == 0:
        return None
    return a / b


def _paired(
    ours: dict[int, tuple[float | None, float | None]],
    best: dict[int, tuple[float | None, float | None]],
    k: int,
) -> dict[str, int]:
    """Seed by seed: ours faster / slower / tied against the best baseline (never reaching
    counts as infinitely slow)."""
    out = {"faster": 0, "slower": 0, "tie": 0}
    for seed in sorted(set(ours) & set(best)):
        a = ours[seed][k] if ours[seed][k] is not None else math.inf
        b = best[seed][k] if best[seed][k] is not None else math.inf
        out["faster" if a < b else "slower" if a > b else "tie"] += 1
    return out


def decision_report(runs: dict[str, Any]) -> dict[str, Any]:
    """Over every seed: our decision records by rule and scorer, and how many top-2% trials
    were pruned, by the scorer that pruned them."""
    by_rule: dict[str, int] = {}
    top_pruned: dict[str, int] = {}
    top_trials = 0
    screened = 0
    n = 0
    for run in runs.values():
        for t in run["trials"]:
            n += 1
            screened += bool(t.get("screen"))
            for r in t.get("records", {}).values():
                label = f"{r.get('rule', '')}/{r.get('scorer', '')}"
                by_rule[label] = by_rule.get(label, 0) + 1
            if t["top"]:
                top_trials += 1
                if t["stop"] != -1:
                    r = t.get("records", {}).get(str(t["stop"]), {})
                    label = f"step {t['stop']}: {r.get('rule', '')}/{r.get('scorer', '')}"
                    top_pruned[label] = top_pruned.get(label, 0) + 1
    return {
        "trials": n,
        "screened_trials": screened,
        "records_by_rule_scorer": by_rule,
        "top2pct_trials": top_trials,
        "top2pct_pruned_by": top_pruned,
    }


def _f(v: float | None, digits: int, missing: str = "-") -> str:
    return missing if v is None else f"{v:.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=list(BASELINES), choices=METHODS)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget-trainings", type=float, default=BUDGET_TRAININGS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--resume", action="store_true", help="skip seeds already stored")
    parser.add_argument(
        "--seed-list",
        nargs="+",
        type=int,
        default=None,
        help="replay exactly these seeds, replacing their stored runs (instead of --seeds)",
    )
    parser.add_argument("--train-priors", action="store_true", help="(re)train the LOTO priors")
    parser.add_argument("--summarise-only", action="store_true")
    parser.add_argument(
        "--summary-seeds",
        type=int,
        default=None,
        help="summarise seeds 0..N-1 only (default: every stored seed)",
    )
    parser.add_argument(
        "--sampler",
        default="tpe",
        choices=SAMPLERS,
        help="base sampler of every method (runs of other than tpe lie in heldout_runs/<it>/)",
    )
    parser.add_argument(
        "--out", default=None, help="summary file (default heldout_summary[_<sampler>].json)"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        suffix = "" if args.sampler == "tpe" else f"_{args.sampler}"
        args.out = str(RESULTS / f"heldout_summary{suffix}.json")
    tasks = args.tasks or list(table_paths())
    command = "python benchmarks/heldout.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    if args.train_priors:
        manifest_path = RESULTS / "heldout_priors.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        manifest["command"] = command
        manifest.setdefault("priors", {})
        with ProcessPoolExecutor(args.workers) as pool:
            for info in pool.map(_train_job, tasks):
                manifest["priors"][info["held_out"]] = info
                print(f"prior without {info['held_out']}: {info['seconds']}s", flush=True)
                manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
        return
    if not args.summarise_only:
        jobs = []
        # The slowest groups first, so two workers stay busy to the end.
        for method in args.methods:
            for task in tasks:
                budget = budget_of(_table(task), args.budget_trainings)
                stored = load_runs(task, method, args.sampler) if args.resume else None
                done = set()
                if stored is not None and stored["budget_epochs"] == budget:
                    done = {int(s) for s in stored["runs"]}
                wanted = (
                    args.seed_list
                    if args.seed_list is not None
                    else range(args.first_seed, args.first_seed + args.seeds)
                )
                for seed in wanted:
                    if args.seed_list is not None or seed not in done:
                        jobs.append((task, method, seed, budget, args.sampler))
        started = time.time()
        with ProcessPoolExecutor(args.workers) as pool:
            pending = {pool.submit(_job, j) for j in jobs}
            n = 0
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    task, method, seed, run = fut.result()
                    save_run(task, method, run_budget(task, args), run, command, args.sampler)
                    n += 1
                    print(
                        f"[{n}/{len(jobs)}] {time.time() - started:.0f}s {task} {method} "
                        f"seed {seed}: cpu {run['cpu_seconds']:.1f}s, {len(run['trace'])} trials",
                        flush=True,
                    )
    summarise(tasks, args.budget_trainings, Path(args.out), args.sampler, args.summary_seeds)


def run_budget(task: str, args: argparse.Namespace) -> int:
    return budget_of(_table(task), args.budget_trainings)


if __name__ == "__main__":
    main()
