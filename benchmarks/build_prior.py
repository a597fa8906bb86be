"""Train the cross-task prior on every recorded table and write the bundle the package ships.

For each step (0 = at initialisation, 1, 2) and each input set of
``optuna_lyap.aelle._bundle.INPUT_SETS`` (hyperparameters; hyperparameters+spectrum;
hyperparameters+curve; all three; spectrum+curve), one ``CrossTaskPrior(model="aelle")`` is
fitted (hyperparameters alone only at the first step: its rows do not change with the step)
on every table with at least ``--min-configs`` configurations, and all of them are saved as
one ``PriorBundle`` in ``optuna_lyap/aelle/weights/prior.pt`` (tensors plus JSON, read by
``torch.load(weights_only=True)``).

Calibration of P(top 10%): for each model, its predictions are made leave-one-task-out (a
model of the same kind fitted on the other tables predicts each table in turn), and scikit-
learn's ``IsotonicRegression`` maps those out-of-sample quantiles to whether the trial ended in
its table's top 10%; the map's breakpoints are stored in the bundle. The reliability of that
probability is reported per step for the richest set, before (the boosted-tree classifier
``CrossTaskPrior`` fits beside the model, out of sample) and after (for each held-out table, an
isotonic map fitted on the other tables' out-of-sample predictions only), in
``prior_calibration.{json,md}`` of ``--reports`` (default ``benchmarks/results/build_prior/
<commit>/``).

Also reports the file size, load time and the time to predict one trial and 200 trials
through ``TrialPrior`` in ``prior_weights.{json,md}`` beside them, and checks that the
loaded bundle predicts exactly what the fitted models did.

The curve group's validation-loss rank is left unknown (NaN) in training by default, since the
Optuna reader only knows it where a trial stores ``val_loss:{step}``; ``--val-loss-rank`` keeps
it.

This is the one documented build of the shipped weights. Usage (from the repository's root)::

    python -m benchmarks.build_prior                      # tables under benchmarks/data
    python -m benchmarks.build_prior --data /path/to/data --no-calibration
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.methods import (
    INPUT_SETS,
    NETWORK_ATTR,
    SHIPPED_PATH,
    CrossTaskPrior,
    PriorBundle,
    PriorInputs,
    TrialPrior,
    encode_floats,
    final_quantile,
    spectrum_key,
)
from benchmarks.lyapbench.record import load_table
from benchmarks.lyapbench.tables import ROOT
from benchmarks.suites import prior_loto as loto

# The reports on the bundle (``--reports``): by commit, as every result.
REPORTS = runfiles.results_dir("build_prior")
RESULTS = REPORTS
BINS = (0.0, 0.05, 0.1, 0.2, 0.4, 1.0)
# Input groups whose rows differ from step to step; a set without them (hyperparameters alone)
# is fitted at the first step only, and ``PriorBundle.select`` falls back to it later.
STEP_DEPENDENT = {"spectrum", "curve"}


def reliability(proba: np.ndarray, hit: np.ndarray) -> list[dict[str, Any]]:
    """Bins of predicted probability with their count, mean prediction and observed share."""
    out = []
    for low, high in zip(BINS[:-1], BINS[1:], strict=True):
        inside = (proba >= low) & ((proba < high) | (high == BINS[-1]))
        if inside.any():
            out.append(
                {
                    "bin": f"[{low:.2f}, {high:.2f}{']' if high == BINS[-1] else ')'}",
                    "n": int(inside.sum()),
                    "mean_predicted": round(float(proba[inside].mean()), 3),
                    "observed": round(float(hit[inside].mean()), 3),
                }
            )
    return out


def brier(proba: np.ndarray, hit: np.ndarray) -> float:
    """Mean squared error of the probabilities (calibration and sharpness together)."""
    return round(float(np.mean((proba - hit) ** 2)), 4)


def calibration_error(proba: np.ndarray, hit: np.ndarray) -> float:
    """Expected calibration error over ``BINS``: the count-weighted mean of
    ``|mean predicted - observed share|`` per bin (calibration alone)."""
    total = 0.0
    for low, high in zip(BINS[:-1], BINS[1:], strict=True):
        inside = (proba >= low) & ((proba < high) | (high == BINS[-1]))
        if inside.any():
            total += inside.sum() * abs(float(proba[inside].mean()) - float(hit[inside].mean()))
    return round(total / proba.size, 4)


def _fit(
    groups: tuple[str, ...], rows: PriorInputs, target: np.ndarray, seed: int
) -> CrossTaskPrior:
    return CrossTaskPrior(inputs=groups, model="aelle", seed=seed).fit(rows, target)


def main(argv: list[str] | None = None) -> None:
    global RESULTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--min-configs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fraction", type=float, default=0.25, help="share of each spectrum")
    parser.add_argument("--data", type=Path, default=None, help="folder of the tables")
    parser.add_argument("--out", type=Path, default=SHIPPED_PATH, help="bundle file")
    parser.add_argument("--no-calibration", action="store_true")
    parser.add_argument("--val-loss-rank", action="store_true", help="keep the loss rank")
    parser.add_argument(
        "--reports", type=Path, default=REPORTS, help="folder of the reports on the bundle"
    )
    parser.add_argument(
        "--no-reports", action="store_true", help="write the bundle only (the held-out priors)"
    )
    args = parser.parse_args(argv)
    RESULTS = args.reports
    torch.set_num_threads(1)
    data = loto.DATA if args.data is None else args.data.resolve()
    tables = {}
    for path in loto.table_paths(args.min_configs, data):
        table = load_table(path)
        if len(table["index"]) >= args.min_configs:
            tables[table["meta"]["task"]] = table
    names = sorted(tables)
    targets = {
        n: final_quantile(
            tables[n]["values"][:, -1],
            tables[n]["meta"]["direction"],
            tie_break=tables[n]["val_loss"][:, -1],
        )
        for n in names
    }
    command = runfiles.command_line("benchmarks.build_prior", argv)
    info = {
        "tables": {n: len(tables[n]["index"]) for n in names},
        "command": command,
        "spectrum_fraction": args.fraction,
        "val_loss_rank": bool(args.val_loss_rank),
        "calibration": None if args.no_calibration else "isotonic, leave one task out",
    }
    print(f"tables: {info['tables']}", flush=True)

    models: dict[tuple[int, tuple[str, ...]], CrossTaskPrior] = {}
    calibration_rows: list[dict[str, Any]] = []
    fit_seconds: dict[str, float] = {}
    started = time.perf_counter()
    for step in args.steps:
        per_table = {n: loto.study_rows(tables[n], step, args.fraction) for n in names}
        if not args.val_loss_rank:
            for rows in per_table.values():
                rows.curve[:, 3] = np.nan
        everything = PriorInputs.concatenate([per_table[n] for n in names])
        target = np.concatenate([targets[n] for n in names])
        for groups in INPUT_SETS:
            if step > min(args.steps) and not set(groups) & STEP_DEPENDENT:
                continue  # the same rows at every step: the first step's model serves
            label = f"{step}:{'+'.join(groups)}"
            start = time.perf_counter()
            prior = _fit(groups, everything, target, args.seed)
            fit_seconds[label] = round(time.perf_counter() - start, 2)
            prior.info_ = {"step": step}
            if not args.no_calibration:
                oof: dict[str, np.ndarray] = {}
                classifier: dict[str, np.ndarray] = {}
                for held in names:
                    train = [n for n in names if n != held]
                    other = _fit(
                        groups,
                        PriorInputs.concatenate([per_table[n] for n in train]),
                        np.concatenate([targets[n] for n in train]),
                        args.seed,
                    )
                    oof[held] = other.predict(per_table[held])
                    classifier[held] = other.predict_top_probability(per_table[held])
                hits = {n: targets[n] >= 1 - prior.top_fraction for n in names}
                pooled = np.concatenate([oof[n] for n in names])
                pooled_hit = np.concatenate([hits[n] for n in names])
                prior.set_calibration(pooled, pooled_hit)
                # Honest "after": each table's probability from a map fitted without it.
                after = []
                for held in names:
                    probe = CrossTaskPrior(inputs=groups, model="aelle")
                    train = [n for n in names if n != held]
                    probe.set_calibration(
                        np.concatenate([oof[n] for n in train]),
                        np.concatenate([hits[n] for n in train]),
                    )
                    after.append(probe.calibrated_top_probability(oof[held]))
                after_p = np.concatenate(after)
                before_p = np.concatenate([classifier[n] for n in names])
                spearman = {
                    n: round(float(spearmanr(oof[n], targets[n]).statistic), 3) for n in names
                }
                calibration_rows.append(
                    {
                        "step": step,
                        "inputs": "+".join(groups),
                        "n": int(pooled.size),
                        "brier_before": brier(before_p, pooled_hit),
                        "brier_after": brier(after_p, pooled_hit),
                        "ece_before": calibration_error(before_p, pooled_hit),
                        "ece_after": calibration_error(after_p, pooled_hit),
                        "brier_base_rate": brier(
                            np.full(pooled.size, pooled_hit.mean()), pooled_hit
                        ),
                        "before": reliability(before_p, pooled_hit),
                        "after": reliability(after_p, pooled_hit),
                        "breakpoints": len(prior.calibration_[0]),  # type: ignore[index]
                        "spearman": spearman,
                    }
                )
            models[(step, groups)] = prior
            print(f"{label}: fit {fit_seconds[label]} s", flush=True)
    # The run's time goes to the report, not into the bundle: the bundle's bytes (and so its
    # digest, which names the prior in stored fits) must depend only on what was trained.
    total_seconds = round(time.perf_counter() - started, 1)

    bundle = PriorBundle(models, info, spectrum_fraction=args.fraction)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bundle.save(args.out)
    start = time.perf_counter()
    loaded = PriorBundle.load(args.out)
    load_seconds = time.perf_counter() - start
    for step in args.steps:
        per_table = {n: loto.study_rows(tables[n], step, args.fraction) for n in names}
        everything = PriorInputs.concatenate([per_table[n] for n in names])
        if not args.val_loss_rank:
            everything.curve[:, 3] = np.nan
        for groups in INPUT_SETS:
            if (step, groups) not in models:
                continue
            np.testing.assert_array_equal(
                loaded.models[(step, groups)].predict(everything),
                models[(step, groups)].predict(everything),
            )
    timing = _time_predictions(args.out)
    report = {
        "command": command,
        "tables": info["tables"],
        "file": str(args.out.resolve().relative_to(ROOT))
        if args.out.resolve().is_relative_to(ROOT)
        else str(args.out),
        "bytes": args.out.stat().st_size,
        "digest": loaded.digest(),
        "load_seconds": round(load_seconds, 4),
        "fit_seconds": fit_seconds,
        "total_seconds": total_seconds,
        **timing,
    }
    if args.no_reports:
        return
    report["meta"] = runfiles.metadata(command, prior=args.out)
    _write_weights_report(report)
    if calibration_rows:
        _write_calibration_report(command, info["tables"], calibration_rows)


def _time_predictions(path: Path) -> dict[str, Any]:
    """Seconds for ``TrialPrior.predict_trials`` on 1 and 200 synthetic trials at steps 0-2."""
    import optuna

    prior = TrialPrior.resolve(path)
    assert prior is not None
    rng = np.random.default_rng(0)
    trials = []
    for number in range(200):
        hidden = int(rng.choice([16, 32, 64]))
        spectrum = np.sort(rng.normal(-0.5, 0.4, hidden))[::-1]
        attrs = {
            NETWORK_ATTR: {"cell": "gru", "hidden_size": hidden, "num_layers": 1, "lr": 1e-3},
            spectrum_key(0): {"dim": hidden, "k": hidden, "exponents": encode_floats(spectrum)},
        }
        trials.append(
            optuna.trial.create_trial(
                value=None,
                state=optuna.trial.TrialState.RUNNING,
                intermediate_values={0: float(rng.random()), 1: float(rng.random())},
                system_attrs=attrs,
            )
        )
        trials[-1].number = number
    out: dict[str, Any] = {}
    for n in (1, 200):
        best = np.inf
        for _ in range(5):
            start = time.perf_counter()
            predictions = prior.predict_trials(trials[:n], 1, "maximize")
            best = min(best, time.perf_counter() - start)
        assert len(predictions) == n
        out[f"predict_{n}_seconds"] = round(best, 4)
    return out


def _write_weights_report(report: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "prior_weights.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        "# Shipped prior weights",
        "",
        f"`{report['command']}`; tables: "
        + ", ".join(f"{k} ({v})" for k, v in report["tables"].items()),
        "",
        "| file | size (KB) | digest | load (s) | predict 1 trial (s) | predict 200 trials (s) |",
        "|---|---|---|---|---|---|",
        f"| `{report['file']}` | {report['bytes'] / 1024:.0f} | `{report['digest']}` "
        f"| {report['load_seconds']} | {report['predict_1_seconds']} "
        f"| {report['predict_200_seconds']} |",
        "",
        "Predict: `TrialPrior.predict_trials` at step 1 (hyperparameters+spectrum+curve), best "
        "of 5. Fit seconds per model (step:inputs), on one thread, including nothing of the "
        f"calibration; whole run {report['total_seconds']} s:",
        "",
        "| model | fit (s) |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in report["fit_seconds"].items()]
    (RESULTS / "prior_weights.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _write_calibration_report(
    command: str, tables: dict[str, int], rows: list[dict[str, Any]]
) -> None:
    (RESULTS / "prior_calibration.json").write_text(
        json.dumps(
            {
                "command": command,
                "meta": runfiles.metadata(command),
                "tables": tables,
                "models": rows,
            },
            indent=1,
        )
        + "\n"
    )
    lines = [
        "# Calibration of the shipped prior's P(top 10%)",
        "",
        f"`{command}`; tables: " + ", ".join(f"{k} ({v})" for k, v in tables.items()),
        "",
        "Pooled over held-out tables, every prediction out of sample. *Before*: the boosted-"
        "tree classifier fitted beside each model on the other tables. *After*: the isotonic "
        "map from the model's predicted quantile, fitted on the other tables' out-of-sample "
        "predictions (the shipped map is fitted on all of them). ECE: expected calibration "
        "error over the bins below (count-weighted mean of |mean predicted - observed|), "
        "calibration alone; Brier score: calibration and sharpness together; lower is better "
        "for both. The base rate predicts the pooled share of top trials for everyone.",
        "",
        "| step | inputs | n | ECE before | ECE after | Brier before | Brier after "
        "| Brier base rate | breakpoints |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['inputs']} | {r['n']} | {r['ece_before']} | {r['ece_after']} "
            f"| {r['brier_before']} | {r['brier_after']} | {r['brier_base_rate']} "
            f"| {r['breakpoints']} |"
        )
    names = list(tables)
    lines += [
        "",
        "Spearman correlation of each model's leave-one-task-out predictions with the final "
        "quantile, per held-out table:",
        "",
    ]
    lines += runfiles.markdown_table(
        ["step", "inputs", *names],
        ([r["step"], r["inputs"], *(f"{r['spearman'][n]:+.2f}" for n in names)] for r in rows),
    )
    lines += [
        "",
        "Reliability tables (bin of predicted probability, n, mean predicted, observed share "
        "in the top 10%):",
    ]
    for r in rows:
        lines += ["", f"Step {r['step']}, {r['inputs']}:", ""]
        lines += ["| | bin | n | mean predicted | observed |", "|---|---|---|---|---|"]
        for when in ("before", "after"):
            for b in r[when]:
                lines.append(
                    f"| {when} | {b['bin']} | {b['n']} | {b['mean_predicted']:.3f} "
                    f"| {b['observed']:.3f} |"
                )
    (RESULTS / "prior_calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[: 12 + 2 * len(rows)]))


if __name__ == "__main__":
    main()
