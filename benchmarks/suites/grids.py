"""Replay HPO methods on recorded tables: which finds a top network for the fewest epochs?

Every configuration of a table (``benchmarks/record.py``) was trained to the end once, with its
validation metric and Lyapunov spectrum stored per epoch. A replayed trial asks the sampler for
a configuration (one categorical per grid axis, so TPE sees the real search space), then reads
its recorded epochs one by one: it stores the spectrum on steps 0 and 1 (as ``LyapunovMonitor``
would), reports the objective, and stops when the pruner says so. Epoch ``e`` costs one epoch;
step 0 (the untrained network) costs none. A run ends when the epoch budget is spent.

The objective is the table's metric, except on ``copy``, where it is the validation loss
(``OBJECTIVES``): 76 of its 288 configurations copy perfectly, so the accuracy's top 2% would
be any of them.

Samplers: ``tpe`` is Optuna's TPE; ``lyapunov`` is :class:`~optuna_lyap.LyapunovSampler` over the
same TPE, screening 8 candidates per trial by their spectrum at initialisation (read from the
table, ``TableScreeningSampler``) and showing TPE pruned trials at their predicted value.

Per task, sampler and method, over ``--seeds`` seeds:

- ``epochs_to_top2pct``: cumulative epochs until a trial COMPLETES with a final value in the
  table's top 2% (median over seeds, seeds that never get there counted as beyond the budget;
  null when half of them or more never get there);
- the anytime curve: best completed final value against cumulative epochs (median and
  quartiles over seeds), saved as PNG;
- ``best_at_budget``: the best completed final value at fixed fractions of the budget;
- for our predictors, the Spearman correlation of the recorded predictions with the final
  values, per step.

Usage::

    python benchmarks/replay.py                      # all tables in benchmarks/data, 20 seeds
    python benchmarks/replay.py --tasks sdigits --seeds 5 --methods median lyapunov_hybrid
    python benchmarks/replay.py --samplers lyapunov --methods median lyapunov_hybrid
    python benchmarks/replay.py --methods lyapunov_hybrid --rank --variant rank  # RankRule
    python benchmarks/replay.py --summarise-only     # rebuild the summary from stored runs
    python benchmarks/replay.py --methods lyapunov successive_halving --samplers tpe random \
        --resume --runs-dir benchmarks/results/replay_runs_r9 \
        --out benchmarks/results/hpo_summary_r9.json   # round 9, the default pruner

Each (task, sampler, method) group's runs are stored in ``benchmarks/results/replay_runs/``
(``--runs-dir``), so groups can be run apart; the summary is rebuilt from every stored group
each time: ``benchmarks/results/hpo_summary.json``, ``hpo_summary.md`` and
``hpo_anytime_<task>[_lyapunov_sampler].png`` (the figures beside ``--out``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

import optuna_lyap
from optuna_lyap._prediction import rank_correlation
from optuna_lyap.pruners import curve_features, load_predictions

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from record import load_table  # noqa: E402

# Small AeLLE ensembles, as the benchmarks fit them (the pruner fits 2 members of 100 steps).
BENCHMARK_AELLE_PARAMS: dict[str, Any] = {"n_models": 2, "max_steps": 150}

RESULTS = HERE / "results"
RUNS = RESULTS / "replay_runs"
DATA = HERE / "data"
AXES = ("cell", "hidden_size", "init_scale", "lr")
SPECTRUM_STEPS = (0, 1)


class TopKAfterFirstEpoch(BasePruner):
    """Keep a trial after its first epoch only if its value ranks in the best ``share`` so far.

    The "top-K after one epoch" rule: every trial pays one epoch, and only those whose epoch-1
    value is among the best ``share`` of all epoch-1 values seen train on.
    """

    def __init__(self, share: float = 0.2, n_startup_trials: int = 5) -> None:
        self._share = share
        self._n_startup = n_startup_trials

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if trial.last_step != 1:
            return False
        others = [
            t.intermediate_values[1]
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and 1 in t.intermediate_values
        ]
        if len(others) < self._n_startup:
            return False
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        scores = sign * np.array(others)
        bar = np.quantile(scores, 1.0 - self._share)
        return bool(sign * trial.intermediate_values[1] < bar)


# The rank rule's check steps and the share each keeps: successive halving's budget
# allocation (most trials cost one epoch, a third of them four), at steps where our tables
# separate trials (see ``rank_by_epoch.md``).
RANK_SHARES = {1: 1.0 / 3.0, 4: 1.0 / 3.0}


def _kept(score: float, scores: Sequence[float], share: float) -> bool:
    """Whether ``score`` is among the best ``share`` of ``scores`` (which include it; higher
    is better): the best ``max(1, floor(share * n))`` are kept, ties with the last kept too."""
    if not math.isfinite(score):
        return False
    ordered = np.sort(np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf))[::-1]
    return bool(score >= ordered[max(1, int(share * len(ordered))) - 1])


class RankRule(BasePruner):
    """Keep a trial at each step of ``shares`` only if it ranks among the best ``shares[step]``
    of every trial that reached the step, itself included (the first trial always passes).

    On the raw value (``lyapunov=None``) this is a reference: successive halving's budget
    allocation with rungs at ``RANK_SHARES``' steps. With a ``LyapunovPruner``, the score at a
    step where that pruner's model acts (:meth:`LyapunovPruner.predict`) is the predicted final
    value, for the running trial and for every trial it is ranked against, from the same model.
    With ``rescue``, the raw ranking decides and the model can only keep a trial more: one the
    raw value would prune is kept when its prediction ranks among the best ``rescue``.

    With a model, each decision is written to the trial's user attr ``rank_by_<step>``:
    ``"model"`` where the model acted, ``"raw"`` where it could not (no model yet, or one that
    does not out-rank the raw value there).
    """

    def __init__(
        self,
        lyapunov: optuna_lyap.LyapunovPruner | None = None,
        shares: dict[int, float] | None = None,
        rescue: float | None = None,
    ) -> None:
        self._lyap = lyapunov
        self._shares = dict(RANK_SHARES if shares is None else shares)
        self._rescue = rescue

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step not in self._shares:
            return False
        share = self._shares[step]
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        others = [
            t
            for t in study.get_trials(deepcopy=False)
            if t.number != trial.number and step in t.intermediate_values
        ]
        raw = [sign * t.intermediate_values[step] for t in others]
        mine_raw = sign * trial.intermediate_values[step]
        raw_kept = _kept(mine_raw, [*raw, mine_raw], share)
        if self._lyap is None:
            return not raw_kept
        mine = self._lyap.predict(study, trial, step)
        acts = mine is not None and mine["acts"]
        study._storage.set_trial_user_attr(
            trial._trial_id, f"rank_by_{step}", "model" if acts else "raw"
        )
        if mine is None or not acts:
            return not raw_kept
        if self._rescue is not None and raw_kept:
            return False
        predicted = []
        for t in others:
            record = self._lyap.predict(study, t, step)
            predicted.append(-math.inf if record is None else sign * record["predicted"])
        mine_score = sign * mine["predicted"]
        model_kept = _kept(
            mine_score, [*predicted, mine_score], share if self._rescue is None else self._rescue
        )
        return not model_kept


class OraclePruner(BasePruner):
    """A reference, not a method: prune at ``step`` every trial whose recorded final value is
    outside the table's top 2%.

    A perfect predictor acting at one step. ``step=1`` is the issue's "perfect one-epoch
    predictor" (every trial pays one epoch); ``step=0`` is a perfect predictor at
    initialisation (every trial pays only the spectrum, see ``seconds_to_top2pct``).
    """

    def __init__(self, table: dict[str, Any], step: int) -> None:
        top = top_configurations(table)
        self._top = {key for key, i in _lookup(table).items() if top[i]}
        self._step = step

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if trial.last_step != self._step:
            return False
        return tuple(trial.params[a] for a in AXES) not in self._top


def make_pruner(
    name: str, seed: int, rule: dict[str, Any] | None = None, table: dict[str, Any] | None = None
) -> BasePruner:
    """Optuna's pruners as a user would set them, and ours.

    ``lyapunov`` is the default ``LyapunovPruner(seed=seed)`` (round 9 on). ``curve_only``,
    ``lyapunov_spectrum`` and ``lyapunov_hybrid`` (and their ``@`` variants) were the threshold
    rule of rounds 1-8, since removed: their stored runs document those rounds, and rerunning
    them now builds the current pruner with a ``MedianPruner`` fallback, the threshold rule's
    arguments (``quantile``, ``confidence``, ``min_unpruned_share``) ignored with a warning.
    ``rule`` overrides any of those pruners' arguments (``model_steps``, ``use_params``, ...);
    its ``fallback`` names the fallback: ``"median"`` (the default) or ``"successive_halving"``
    (``SuccessiveHalvingPruner(min_resource=1)``).
    """
    p = optuna.pruners
    warm = 1  # never prune the untrained network on its chance-level value
    rule = dict(rule or {})
    prior = rule.pop("prior", None)
    if prior is not None:
        rule["aelle"] = prior_aelle(prior)
    rank = rule.pop("rank", None)
    fallbacks = {
        "median": lambda: p.MedianPruner(n_startup_trials=5, n_warmup_steps=warm),
        "successive_halving": lambda: p.SuccessiveHalvingPruner(min_resource=1),
    }
    lyap = {
        "n_startup_trials": 5,
        "n_warmup_steps": 0,
        "model_steps": SPECTRUM_STEPS,
        "seed": seed,
        **rule,
        "fallback": fallbacks[rule.get("fallback", "median")](),
    }
    pruners: dict[str, Callable[[], BasePruner]] = {
        "nop": p.NopPruner,
        "median": fallbacks["median"],
        "percentile25": lambda: p.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=warm),
        "successive_halving": lambda: p.SuccessiveHalvingPruner(min_resource=1),
        "hyperband": lambda: p.HyperbandPruner(min_resource=1),
        "patient_median": lambda: p.PatientPruner(
            p.MedianPruner(n_startup_trials=5, n_warmup_steps=warm), patience=1
        ),
        "topk_epoch1": TopKAfterFirstEpoch,
        "curve_only": lambda: lyapunov_pruner(
            **{"use_spectrum": False, "use_curve": True, **lyap}
        ),
        "lyapunov_spectrum": lambda: lyapunov_pruner(
            **{"use_spectrum": True, "use_curve": False, **lyap}
        ),
        "lyapunov_hybrid": lambda: lyapunov_pruner(
            **{"use_spectrum": True, "use_curve": True, **lyap}
        ),
        "rank_raw": RankRule,
        "successive_halving_auto": p.SuccessiveHalvingPruner,
        "lyapunov": lambda: lyapunov_pruner(
            seed=seed, **{k: rule[k] for k in LYAPUNOV_OPTIONS if k in rule}
        ),
        "oracle_epoch1": lambda: OraclePruner(_need(table), 1),
        "oracle_init": lambda: OraclePruner(_need(table), 0),
    }
    pruner = pruners[name]()
    if rank is not None and name in OURS:
        assert isinstance(pruner, optuna_lyap.LyapunovPruner)
        return RankRule(pruner, rescue=rank.get("rescue"))
    return pruner


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


def curve_columns(values: np.ndarray, epoch: int, direction: str) -> np.ndarray:
    """``n x 2``: each configuration's curve features at ``epoch``, as the pruner computes them."""
    study_direction = StudyDirection[direction.upper()]
    return np.stack(
        [curve_features(dict(enumerate(row)), epoch, study_direction) for row in values]
    )


def spectra_at(table: dict[str, Any], epoch: int) -> list[np.ndarray]:
    return [table["spectra"][i, epoch, : table["dim"][i]] for i in range(len(table["dim"]))]


def _need(table: dict[str, Any] | None) -> dict[str, Any]:
    if table is None:
        raise ValueError("the oracle pruners need the table")
    return table


METHODS = (
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
OURS = ("lyapunov", "curve_only", "lyapunov_spectrum", "lyapunov_hybrid")
# The arguments of the default pruner (``lyapunov``) that ``--gate`` and friends set.
LYAPUNOV_OPTIONS = ("gate", "screen_fraction", "n_startup_trials")
# InStudyModel's arguments among a rule's options (the others are LyapunovPruner's).
_MODEL_OPTIONS = (
    "aelle", "aelle_params", "select_inputs", "cv_folds", "use_unlabelled", "model_steps",
    "refit_growth", "n_resamples", "seed", "artifact_store",
)  # fmt: skip
# The threshold rule's arguments (rounds 1-8): the pruner no longer takes them.
_REMOVED_OPTIONS = ("quantile", "confidence", "min_unpruned_share", "require_beating_raw")


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


class TimedPruner(BasePruner):
    """Any pruner, with the CPU seconds its ``prune`` calls take added up in ``seconds``."""

    def __init__(self, pruner: BasePruner) -> None:
        self.pruner = pruner
        self.seconds = 0.0

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        started = time.process_time()
        try:
            return self.pruner.prune(study, trial)
        finally:
            self.seconds += time.process_time() - started


class TableScreeningSampler(optuna_lyap.LyapunovSampler):
    """``LyapunovSampler`` whose candidates' spectra at initialisation come from the table.

    The recorded step-0 spectrum of a configuration is the one of the very network the replay
    then "trains", so this is what the sampler would compute, without rebuilding it.
    """

    def __init__(
        self, base: optuna.samplers.BaseSampler, table: dict[str, Any], seed: int
    ) -> None:
        super().__init__(
            base, model_factory=_never_built, probe_inputs=torch.zeros(1, 1, 1), seed=seed
        )
        self._lookup = _lookup(table)
        self._spectra0 = table["spectra"][:, 0]
        self._dims = table["dim"]

    def _candidate_spectrum(self, params: Any, number: int, index: int) -> np.ndarray:
        i = self._lookup[tuple(params[a] for a in AXES)]
        return self._spectra0[i, : self._dims[i]]


def _never_built(params: Any) -> Any:
    raise AssertionError("the replay reads spectra from the table")


def _lookup(table: dict[str, Any]) -> dict[tuple[Any, ...], int]:
    return {tuple(table[a][i].item() for a in AXES): i for i in range(len(table["index"]))}


SAMPLERS = ("tpe", "lyapunov", "random")


def make_sampler(name: str, seed: int, table: dict[str, Any]) -> optuna.samplers.BaseSampler:
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    tpe = optuna.samplers.TPESampler(seed=seed)
    if name == "tpe":
        return tpe
    if name == "lyapunov":
        return TableScreeningSampler(tpe, table, seed)
    raise ValueError(f"sampler must be one of {SAMPLERS}, but got {name!r}.")


# The recorded metric a task's replay optimises, where it is not the task's own. On copy,
# 76 of 288 configurations reach accuracy 1.0, so its top 2% would be any of them: the
# validation loss still ranks those.
OBJECTIVES: dict[str, tuple[str, str]] = {"copy": ("val_loss", "minimize")}


def top_configurations(table: dict[str, Any], share: float = 0.02) -> np.ndarray:
    """``n`` booleans: whether a configuration's final objective is in the table's best ``share``
    (a diverged, NaN final is never)."""
    _, values, direction = objective_of(table)
    sign = 1.0 if direction == "maximize" else -1.0
    scores = np.nan_to_num(sign * values[:, -1], nan=-np.inf)
    return np.asarray(scores >= np.quantile(scores, 1.0 - share) - 1e-12)


def objective_of(table: dict[str, Any]) -> tuple[str, np.ndarray, str]:
    """The name, ``(n, E + 1)`` values and direction of what a replay on ``table`` optimises."""
    task = table["meta"]["task"]
    key, direction = OBJECTIVES.get(task, ("values", table["meta"]["direction"]))
    name = table["meta"]["metric"] if key == "values" else key
    return name, table[key], direction


def replay(
    table: dict[str, Any],
    method: str,
    sampler: str,
    seed: int,
    budget: int,
    rule: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One HPO run on a table; returns the trace of finished trials and the predictions."""
    meta = table["meta"]
    grid = meta["grid"]
    _, values, direction = objective_of(table)
    spectra, dims = table["spectra"], table["dim"]
    n_epochs = values.shape[1] - 1
    lookup = _lookup(table)
    spent = 0
    trace: list[tuple[int, float | None]] = []  # (cumulative epochs at the end, final or None)

    def objective(trial: optuna.Trial) -> float:
        nonlocal spent
        key = tuple(trial.suggest_categorical(a, grid[a]) for a in AXES)
        i = lookup[key]
        for step in range(n_epochs + 1):
            if step > 0:
                spent += 1
            trial.set_user_attr("epochs_trained", step)
            if step in SPECTRUM_STEPS:
                optuna_lyap.report_spectrum(trial, spectra[i, step, : dims[i]], step)
            trial.report(float(values[i, step]), step)
            if trial.should_prune():
                trace.append((spent, None))
                raise optuna.TrialPruned()
        trace.append((spent, float(values[i, -1])))
        return float(values[i, -1])

    def stop_at_budget(study: optuna.Study, trial: FrozenTrial) -> None:
        if spent >= budget:
            study.stop()

    pruner = make_pruner(method, seed, rule, table)
    # HyperbandPruner must see itself as the study's pruner (it checks the type); time the rest.
    timed = None if isinstance(pruner, optuna.pruners.HyperbandPruner) else TimedPruner(pruner)
    study = optuna.create_study(
        # A fixed name: HyperbandPruner assigns brackets by hashing it with the trial number.
        study_name=f"replay-{seed}",
        direction=direction,
        sampler=make_sampler(sampler, seed, table),
        pruner=pruner if timed is None else timed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, callbacks=[stop_at_budget], n_trials=100 * budget)

    predictions = []
    finals = {t.number: t.value for t in study.trials if t.state == TrialState.COMPLETE}
    if method in OURS:
        for t in study.trials:
            if t.number in finals:
                for step, record in load_predictions(t).items():
                    if record.get("predicted") is not None:
                        predictions.append((step, record["predicted"], finals[t.number]))
    # Per finished trial: its configuration, the step it was pruned at (-1: completed), for
    # ours the rule that decided there ("model", "fallback", "kept"; "" without a record), and
    # whether the sampler screened candidates for it (1) or not (0).
    trials = []
    for t in study.trials:
        if t.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        i = lookup[tuple(t.params[a] for a in AXES)]
        step = -1 if t.state == TrialState.COMPLETE else int(t.last_step or 0)
        record = load_predictions(t).get(step, {}) if method in OURS else {}
        screened = int("lyap_screen_predicted" in t.user_attrs)
        trials.append([i, step, record.get("rule", ""), screened])
    # RankRule with a model: which score decided at step 1 ("model" or "raw"), per trial there.
    rank_by = [t.user_attrs["rank_by_1"] for t in study.trials if "rank_by_1" in t.user_attrs]
    run = {"trace": trace, "predictions": predictions, "trials": trials}
    if timed is not None:
        run["pruner_cpu_seconds"] = timed.seconds
    if method in OURS:
        # Every decision record, by the rule that made it ("rung", "model_rung", ...).
        rules = [r.get("rule", "") for t in study.trials for r in load_predictions(t).values()]
        run["rules"] = {k: rules.count(k) for k in sorted(set(rules))}
    if rank_by:
        run["rank_by_step1"] = {k: rank_by.count(k) for k in ("model", "raw")}
    return run


def _run_job(
    job: tuple[str, str, str, int, int, dict[str, Any]],
) -> tuple[str, str, str, int, dict[str, Any]]:
    path, method, sampler, seed, budget, rule = job
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = _tables_cache(path)
    started = time.process_time()
    run = replay(table, method, sampler, seed, budget, rule)
    run["cpu_seconds"] = time.process_time() - started
    return path, method, sampler, seed, run


_TABLES: dict[str, dict[str, Any]] = {}


def _tables_cache(path: str) -> dict[str, Any]:
    if path not in _TABLES:
        _TABLES[path] = load_table(path)
    return _TABLES[path]


def runs_path(task: str, sampler: str, method: str) -> Path:
    """Where the runs of one (task, sampler, method) are kept, so tables can grow by parts.

    ``method`` may carry a variant after ``@`` (``lyapunov_hybrid@no_step0``): the same
    method with other pruner arguments, kept apart.
    """
    return RUNS / f"{task}__{sampler}__{method}.json.gz"


def save_runs(task: str, sampler: str, method: str, payload: dict[str, Any]) -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    with gzip.open(runs_path(task, sampler, method), "wt") as f:
        json.dump(payload, f)


def load_runs(task: str, sampler: str, method: str) -> dict[str, Any] | None:
    path = runs_path(task, sampler, method)
    if not path.exists():
        return None
    with gzip.open(path, "rt") as f:
        payload: dict[str, Any] = json.load(f)
    return payload


# Candidates LyapunovSampler screens per trial (its default), each costing a spectrum.
SCREENED_CANDIDATES = 8


def charged_spectrum_steps(method: str, sampler: str) -> tuple[int, ...]:
    """The steps at which a trial of ``method`` (with ``sampler``) computes a spectrum."""
    base = method.split("@")[0]
    if base in OURS:
        return SPECTRUM_STEPS
    if sampler == "lyapunov" or base == "oracle_init":
        return (0,)
    return ()


def trial_seconds(
    table: dict[str, Any], run: dict[str, Any], spectrum_steps: tuple[int, ...], screens: bool
) -> np.ndarray:
    """Seconds each finished trial of ``run`` cost on the machine that recorded the table.

    Every trial pays the recorded training and evaluation time of each epoch it trained, and
    the recorded spectrum time at each of ``spectrum_steps`` it got to: ``(0, 1)`` for our
    pruners, ``(0,)`` for LyapunovSampler's labels alone, ``()`` otherwise. Our pruners also
    read the untrained network's value (a curve feature at step 0), so with ``spectrum_steps``
    ``(0, 1)`` a trial also pays the evaluation at step 0.
    With ``screens`` (LyapunovSampler), each trial the sampler screened pays
    ``SCREENED_CANDIDATES`` spectra at initialisation at the table's mean time.
    """
    epoch = table["train_seconds"] + table["eval_seconds"]  # (n, E + 1); column 0 unused
    spectrum = table["spectrum_seconds"]
    n_epochs = epoch.shape[1] - 1
    screen_cost = SCREENED_CANDIDATES * float(spectrum[:, 0].mean())
    out = []
    for record in run["trials"]:
        i, stop = record[0], record[1]
        last = n_epochs if stop == -1 else stop
        cost = float(epoch[i, 1 : last + 1].sum())
        cost += sum(float(spectrum[i, step]) for step in spectrum_steps if step <= last)
        if spectrum_steps == SPECTRUM_STEPS:
            cost += float(table["eval_seconds"][i, 0])
        if screens and record[3]:
            cost += screen_cost
        out.append(cost)
    return np.array(out)


def training_seconds(table: dict[str, Any], run: dict[str, Any]) -> np.ndarray:
    """Recorded training and evaluation seconds of the epochs each finished trial trained."""
    epoch = table["train_seconds"] + table["eval_seconds"]
    n_epochs = epoch.shape[1] - 1
    return np.array(
        [
            float(epoch[i, 1 : (n_epochs if stop == -1 else stop) + 1].sum())
            for i, stop, *_ in run["trials"]
        ]
    )


def summarise(
    table: dict[str, Any],
    runs: list[dict[str, Any]],
    budget: int,
    spectrum_steps: tuple[int, ...] = (),
    screens: bool = False,
) -> tuple[dict[str, Any], np.ndarray]:
    """Headline numbers of one method on one table, and its anytime curves (seeds x budget).

    ``spectrum_steps`` and ``screens`` say which spectra the method pays for in
    ``seconds_to_top2pct`` (see :func:`trial_seconds`).
    """
    _, values, direction = objective_of(table)
    maximize = direction == "maximize"
    finals = values[:, -1]
    sign = 1.0 if maximize else -1.0
    top = np.quantile(sign * finals, 0.98)  # the table's top 2% in score units
    hits, curves = [], np.full((len(runs), budget + 1), np.nan)
    n_trials, n_complete, second_hits = [], [], []
    for r, run in enumerate(runs):
        trace = run["trace"]
        n_trials.append(len(trace))
        n_complete.append(sum(v is not None for _, v in trace))
        at = next(
            (k for k, (_, v) in enumerate(trace) if v is not None and sign * v >= top - 1e-12),
            None,
        )
        hits.append(None if at is None else trace[at][0])
        best = -math.inf
        last = 0
        for epochs, value in trace:
            epochs = min(epochs, budget)
            curves[r, last:epochs] = best if math.isfinite(best) else np.nan
            if value is not None:
                best = max(best, sign * value)
            last = epochs
        curves[r, last:] = best if math.isfinite(best) else np.nan
        seconds = np.cumsum(trial_seconds(table, run, spectrum_steps, screens))
        if len(seconds) != len(trace):
            raise ValueError(f"a run has {len(trace)} trace entries but {len(seconds)} trials")
        second_hits.append(None if at is None else float(seconds[at]))
    reached = [h for h in hits if h is not None]
    # Seeds that never get there count as beyond the budget: the median over all seeds.
    median = float(np.median([h if h is not None else math.inf for h in hits]))
    epochs_to_top = median if math.isfinite(median) else None
    median_s = float(np.median([h if h is not None else math.inf for h in second_hits]))
    fractions = (0.1, 0.25, 0.5, 1.0)
    best_at = {}
    for frac in fractions:
        col = curves[:, int(frac * budget)]
        ok = col[np.isfinite(col)]
        best_at[str(frac)] = None if len(ok) == 0 else float(sign * np.median(ok))
    summary: dict[str, Any] = {
        "epochs_to_top2pct": epochs_to_top,
        "share_of_seeds_reaching_top2pct": len(reached) / len(runs),
        "epochs_to_top2pct_per_seed": hits,
        "seconds_to_top2pct": median_s if math.isfinite(median_s) else None,
        "seconds_to_top2pct_per_seed": second_hits,
        "best_at_budget": best_at,
        "median_trials": float(np.median(n_trials)),
        "median_completed": float(np.median(n_complete)),
        "median_cpu_seconds": float(np.median([r.get("cpu_seconds", np.nan) for r in runs])),
    }
    if all("pruner_cpu_seconds" in r for r in runs):
        # The pruner's own CPU against the recorded training time of the epochs the run spent.
        train = [float(training_seconds(table, r).sum()) for r in runs]
        share = [r["pruner_cpu_seconds"] / t for r, t in zip(runs, train, strict=True)]
        summary["pruner_cpu_seconds_median"] = float(
            np.median([r["pruner_cpu_seconds"] for r in runs])
        )
        summary["train_seconds_median"] = float(np.median(train))
        summary["pruner_cpu_share_median"] = float(np.median(share))
        summary["pruner_cpu_share_max"] = float(np.max(share))
    if all("rules" in r for r in runs):
        # Per seed: decisions where the model's ranking decided, and all decisions.
        summary["model_decisions_per_seed"] = [
            r["rules"].get("model_rung", 0) + r["rules"].get("screen", 0) for r in runs
        ]
        summary["decisions_per_seed"] = [sum(r["rules"].values()) for r in runs]
    counts = [r["rank_by_step1"] for r in runs if "rank_by_step1" in r]
    if counts:
        # RankRule: the share of step-1 decisions the model's ranking made, over all seeds.
        by_model = sum(c["model"] for c in counts)
        summary["rank_by_model_step1"] = {
            "model": by_model,
            "decisions": by_model + sum(c["raw"] for c in counts),
        }
    preds = [p for run in runs for p in run["predictions"]]
    if preds:
        per_step = {}
        for step in sorted({p[0] for p in preds}):
            rows = np.array([(p[1], p[2]) for p in preds if p[0] == step])
            rho = rank_correlation(rows[:, 0], rows[:, 1])
            per_step[str(step)] = {"spearman": rho, "n": len(rows)}
        summary["prediction_spearman_by_step"] = per_step
    return summary, sign * curves


def plot_anytime(
    task: str, curves: dict[str, np.ndarray], path: Path, maximize: bool, title: str = ""
) -> None:
    """Best completed final value against cumulative epochs, median and quartiles over seeds.

    Optuna's pruners are dashed, ours solid, the oracles dotted; a log scale where the values
    span more than two decades (copy's validation loss).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    finite = np.concatenate([c[np.isfinite(c)] for c in curves.values()])
    if finite.size and finite.min() > 0 and finite.max() / finite.min() > 100:
        ax.set_yscale("log")
    for name, c in curves.items():
        x = np.arange(c.shape[1])
        sign = 1.0 if maximize else -1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            med = np.nanmedian(sign * c, axis=0) * sign
            lo = np.nanpercentile(sign * c, 25, axis=0) * sign
            hi = np.nanpercentile(sign * c, 75, axis=0) * sign
        style = (
            ":"
            if name.startswith("oracle")
            else "-"
            if name.startswith(("lyapunov", "curve"))
            else "--"
        )
        (line,) = ax.plot(x, med, style, label=name, lw=1.6)
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.1)
    ax.set_xlabel("cumulative epochs")
    ax.set_ylabel("best final value found (median, quartiles over seeds)")
    ax.set_title(f"{task}: anytime performance{title}")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None, help="tables in benchmarks/data")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--samplers", nargs="+", default=["tpe"], choices=SAMPLERS)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--budget-trainings",
        type=float,
        default=40.0,
        help="budget in full trainings (epochs = this x n_epochs); default 40",
    )
    parser.add_argument("--quantile", type=float, default=0.25, help="our pruners' quantile")
    parser.add_argument("--confidence", type=float, default=0.75, help="our pruners' confidence")
    parser.add_argument(
        "--model-steps", type=int, nargs="+", default=None, help="our pruners' model_steps"
    )
    parser.add_argument(
        "--min-unpruned-share", type=float, default=None, help="our pruners' protected share"
    )
    parser.add_argument(
        "--use-params",
        action="store_true",
        help="offer our pruners the hyperparameters as an input too",
    )
    parser.add_argument(
        "--fallback",
        default="median",
        choices=("median", "successive_halving"),
        help="our pruners' fallback rule",
    )
    parser.add_argument(
        "--prior",
        action="store_true",
        help="give our pruners an AeLLE fitted on benchmarks/data/prior/<task>_seed1.jsonl.gz",
    )
    parser.add_argument(
        "--rank",
        action="store_true",
        help="our pruners rank trials at steps 1 and 4 by their prediction (RankRule)",
    )
    parser.add_argument(
        "--rescue",
        type=float,
        default=None,
        help="with --rank: the raw value ranks, the prediction only rescues (its share)",
    )
    parser.add_argument("--gate", type=float, default=None, help="lyapunov's gate")
    parser.add_argument(
        "--screen-fraction", type=float, default=None, help="lyapunov's step-0 screen"
    )
    parser.add_argument(
        "--variant", default="", help="name for these pruner arguments (stored apart)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--resume", action="store_true", help="skip groups already stored with --seeds runs"
    )
    parser.add_argument(
        "--summarise-only", action="store_true", help="rebuild the summary from stored runs"
    )
    parser.add_argument("--out", default=str(RESULTS / "hpo_summary.json"))
    parser.add_argument(
        "--runs-dir", default=None, help="where each group's runs are stored and read"
    )
    args = parser.parse_args(argv)
    if args.runs_dir is not None:
        global RUNS
        RUNS = Path(args.runs_dir)
    rule: dict[str, Any] = {"quantile": args.quantile, "confidence": args.confidence}
    if args.model_steps is not None:
        rule["model_steps"] = tuple(args.model_steps)
    if args.min_unpruned_share is not None:
        rule["min_unpruned_share"] = args.min_unpruned_share
    if args.use_params:
        rule["use_params"] = True
    if args.fallback != "median":
        rule["fallback"] = args.fallback
    if args.prior:
        rule["prior"] = "prior"  # resolved per task in run_all
    if args.gate is not None:
        rule["gate"] = args.gate
    if args.screen_fraction is not None:
        rule["screen_fraction"] = args.screen_fraction
    if args.rank:
        rule["rank"] = {"rescue": args.rescue}
    elif args.rescue is not None:
        parser.error("--rescue needs --rank")

    paths = sorted(DATA.glob("*.jsonl.gz"))
    if args.tasks:
        paths = [DATA / f"{t}.jsonl.gz" for t in args.tasks]
    tables = {p.name.split(".")[0]: load_table(p) for p in paths}
    budgets = {
        task: int(args.budget_trainings * (table["values"].shape[1] - 1))
        for task, table in tables.items()
    }
    if not args.summarise_only:
        run_all(args, tables, budgets, rule)
    write_summary(tables, budgets, Path(args.out))


def run_all(
    args: argparse.Namespace,
    tables: dict[str, dict[str, Any]],
    budgets: dict[str, int],
    rule: dict[str, Any],
) -> None:
    """Replay every (task, sampler, method, seed) asked for and store each group's runs."""
    jobs = []
    for task in tables:
        for sampler in args.samplers:
            for method in args.methods:
                name = f"{method}@{args.variant}" if args.variant else method
                stored = load_runs(task, sampler, name)
                if args.resume and stored is not None and len(stored["runs"]) == args.seeds:
                    continue  # this group is done
                for seed in range(args.seeds):
                    path = str(DATA / f"{task}.jsonl.gz")
                    job_rule = dict(rule)
                    if "prior" in rule:
                        job_rule["prior"] = str(DATA / "prior" / f"{task}_seed1.jsonl.gz")
                    jobs.append((path, method, sampler, seed, budgets[task], job_rule))
    started = time.time()
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    if not jobs:
        return
    with ProcessPoolExecutor(args.workers) as pool:
        for n, (path, method, sampler, _seed, run) in enumerate(pool.map(_run_job, jobs), 1):
            task = Path(path).name.split(".")[0]
            group = results.setdefault((task, method, sampler), [])
            group.append(run)
            if len(group) == args.seeds:
                payload = {
                    "command": "python benchmarks/replay.py " + " ".join(sys.argv[1:]),
                    "budget_epochs": budgets[task],
                    "rule": rule if method in OURS else None,
                    "runs": group,
                }
                name = f"{method}@{args.variant}" if args.variant else method
                save_runs(task, sampler, name, payload)
            if n % 20 == 0 or n == len(jobs):
                print(f"[{n}/{len(jobs)}] {time.time() - started:.0f}s", file=sys.stderr)


def stored_methods(task: str, sampler: str) -> list[str]:
    """The methods (and variants) with stored runs for ``task`` and ``sampler``, in order."""
    prefix = f"{task}__{sampler}__"
    names = [p.name[len(prefix) : -len(".json.gz")] for p in RUNS.glob(f"{prefix}*.json.gz")]
    return sorted(names, key=lambda n: (METHODS.index(n.split("@")[0]), n))


def write_summary(tables: dict[str, dict[str, Any]], budgets: dict[str, int], out: Path) -> None:
    """Summarise every stored group of runs of these tables: JSON, a markdown table, plots."""
    summary: dict[str, Any] = {"tasks": {}}
    lines = [
        "| task | sampler | method | epochs to top-2% (median) | seconds to top-2% (median) | "
        "seeds reaching | best @25% | best @100% | trials | completed | CPU s/run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    # Plots of a summary other than the main one carry its name's tail (hpo_summary_r9: _r9).
    tag = out.stem.removeprefix("hpo_summary")
    for task, table in tables.items():
        metric, values, direction = objective_of(table)
        maximize = direction == "maximize"
        finals = values[:, -1]
        entry: dict[str, Any] = {
            "metric": metric,
            "direction": direction,
            "n_configs": len(finals),
            "n_epochs": values.shape[1] - 1,
            "budget_epochs": budgets[task],
            "top2pct_threshold": float(np.quantile(finals, 0.98 if maximize else 0.02)),
            "methods": {},
        }
        for sampler in SAMPLERS:
            curves = {}
            for method in stored_methods(task, sampler):
                payload = load_runs(task, sampler, method)
                if payload is None or payload["budget_epochs"] != budgets[task]:
                    continue
                stats, c = summarise(
                    table,
                    payload["runs"],
                    budgets[task],
                    spectrum_steps=charged_spectrum_steps(method, sampler),
                    screens=sampler == "lyapunov",
                )
                stats["seeds"] = len(payload["runs"])
                stats["command"] = payload["command"]
                if payload.get("rule"):
                    stats["rule"] = payload["rule"]
                name = method if sampler == "tpe" else f"{method}+{sampler}_sampler"
                entry["methods"][name] = stats
                curves[name] = c
                e2t = stats["epochs_to_top2pct"]
                s2t = stats["seconds_to_top2pct"]
                lines.append(
                    f"| {task} | {sampler} | {method} | {'-' if e2t is None else f'{e2t:.0f}'} | "
                    f"{'-' if s2t is None else f'{s2t:.1f}'} | "
                    f"{stats['share_of_seeds_reaching_top2pct']:.2f} | "
                    f"{_fmt(stats['best_at_budget']['0.25'])} | "
                    f"{_fmt(stats['best_at_budget']['1.0'])} | {stats['median_trials']:.0f} | "
                    f"{stats['median_completed']:.0f} | {stats['median_cpu_seconds']:.1f} |"
                )
            if curves:
                suffix = "" if sampler == "tpe" else f"_{sampler}_sampler"
                main = {n: c for n, c in curves.items() if "@" not in n.split("+")[0]}
                plot_anytime(
                    task, main, out.parent / f"hpo_anytime_{task}{suffix}{tag}.png", maximize
                )
                variants = {
                    n: c
                    for n, c in curves.items()
                    if n.split("+")[0].split("@")[0] in ("median", "successive_halving")
                    or n.split("+")[0].startswith("lyapunov_hybrid")
                }
                if len(variants) > len([n for n in variants if n in main]):
                    plot_anytime(
                        task,
                        variants,
                        out.parent / f"hpo_anytime_{task}{suffix}_variants{tag}.png",
                        maximize,
                        title=" (our variants)",
                    )
        summary["tasks"][task] = entry
    print("\n".join(lines))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
