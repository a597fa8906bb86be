"""How much evidence does the pruner's gate see, and how often could it open on that much?

``LyapunovPruner`` lets a model (the in-study one or the prior) rank a rung only when, in at
least ``gate`` (0.9) of paired bootstrap resamples of the study's completed configurations, the
model's ranking agrees better with the final values than the raw value's does
(``optuna_lyap._prediction._gate.gate_share``; a configuration completed several times counts
once).
This script answers two questions with numbers:

1. **Evidence.** In the stored held-out replays of the default pruner with TPE
   (``benchmarks/results/heldout_runs/<task>__ours_pruner_only.json.gz``), how many trials
   completed, and how many *distinct* configurations were among them, by the time the run first
   completed a top-2% trial and by the end of its budget?
2. **Power.** With ``n`` distinct completed configurations, how often does the gate open for a
   model that ranks them better than the raw value? Final values are drawn i.i.d. normal; the
   raw value and the model's prediction are the final value plus independent normal noise whose
   scale gives a chosen population Spearman correlation with it (for a bivariate normal pair,
   ``rho = (6 / pi) * arcsin(r / 2)`` with ``r`` the Pearson correlation; Kendall & Stuart, *The
   Advanced Theory of Statistics*); each cell repeats the draw ``--repeats`` times.

Usage::

    python -m benchmarks.suites.gate_power            # under a minute on one core

Writes ``benchmarks/results/gate_power.json`` and ``gate_power.md``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.methods import gate_module as _gate
from benchmarks.suites import heldout

OUT = runfiles.results_dir("gate_power") / "gate_power.json"
N_CONFIGURATIONS = (3, 4, 5, 6, 8, 10, 15, 20, 30)
# (model's Spearman with the final value, raw value's): a model that ranks perfectly against a
# raw value that ranks at chance; the held-out prior against the raw value at epoch 1 on
# ``copy`` (0.55 against 0.36, ``prior_loto.md``); a clearly better model against a weak raw
# value; and a model no better than the raw value (where the gate should stay shut).
CASES = ((1.0, 0.0), (0.55, 0.36), (0.8, 0.35), (0.6, 0.6))


def noise_scale(spearman: float) -> float:
    """Standard deviation of the noise added to a standard-normal final value for a given
    population Spearman correlation with it (0 for 1, infinite for 0)."""
    if spearman >= 1.0:
        return 0.0
    if spearman <= 0.0:
        return math.inf
    pearson = 2.0 * math.sin(math.pi * spearman / 6.0)
    return math.sqrt(1.0 / pearson**2 - 1.0)


def _noisy(final: np.ndarray, spearman: float, rng: np.random.Generator) -> np.ndarray:
    scale = noise_scale(spearman)
    if math.isinf(scale):
        return rng.standard_normal(final.size)
    return final + scale * rng.standard_normal(final.size)


def power(
    n: int, model: float, raw: float, *, repeats: int, gate: float, seed: int
) -> dict[str, float]:
    """Share of ``repeats`` simulated studies with ``n`` distinct completed configurations in
    which the gate opens, and the median gate share."""
    rng = np.random.default_rng(seed)
    shares = []
    for k in range(repeats):
        final = rng.standard_normal(n)
        shares.append(
            _gate.gate_share(
                _noisy(final, model, rng),
                _noisy(final, raw, rng),
                final,
                n_resamples=500,
                seed=k,
            )
        )
    values = np.array(shares)
    return {"p_open": float(np.mean(values >= gate)), "median_share": float(np.median(values))}


def evidence(task: str, runs: Path = heldout.ARCHIVED_RUNS) -> dict[str, Any] | None:
    """Completed trials and distinct completed configurations per stored run of the default
    pruner with TPE, at the first top-2% completion and at the end of the budget."""
    path = heldout.runs_path(task, "ours_pruner_only", runs=runs)
    if not path.exists():
        return None
    with gzip.open(path, "rt") as f:
        payload = json.load(f)
    at_hit, at_end, completed_end = [], [], []
    for run in payload["runs"].values():
        done: list[int] = []
        hit = None
        for t in run["trials"]:
            if t["stop"] != -1:
                continue
            done.append(t["i"])
            if hit is None and t["top"]:
                hit = len(set(done[:-1]))
        at_hit.append(hit)
        at_end.append(len(set(done)))
        completed_end.append(len(done))
    reached = [h for h in at_hit if h is not None]
    return {
        "runs": len(at_end),
        "completed_at_end_median": float(np.median(completed_end)),
        "distinct_at_end_median": float(np.median(at_end)),
        "distinct_at_end_iqr": [float(np.percentile(at_end, q)) for q in (25, 75)],
        "distinct_before_hit_median": float(np.median(reached)) if reached else None,
        "runs_reaching": len(reached),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--gate", type=float, default=0.9)
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=heldout.ARCHIVED_RUNS,
        help="held-out runs to read the evidence from (default: the archived ones)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    found = {task: evidence(task, args.runs_dir) for task in heldout.table_paths()}
    seen = {task: e for task, e in found.items() if e is not None}
    grid = {
        f"{model}/{raw}": {
            str(n): power(n, model, raw, repeats=args.repeats, gate=args.gate, seed=n)
            for n in N_CONFIGURATIONS
        }
        for model, raw in CASES
    }
    seconds = round(time.perf_counter() - started, 1)
    command = runfiles.command_line("benchmarks.suites.gate_power", argv)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "command": command,
                "meta": runfiles.metadata(command),
                "gate": args.gate,
                "evidence": seen,
                "power": grid,
            },
            indent=1,
        )
        + "\n"
    )
    lines = [
        "# The gate's evidence and power",
        "",
        f"`{command.strip()}` ({seconds} s).",
        "",
        "Evidence: stored replays of the default `LyapunovPruner()` with TPE "
        "(`heldout_runs/<task>__ours_pruner_only.json.gz`), medians over runs.",
        "",
        "| task | runs | completed trials by the end | distinct configurations among them "
        "(IQR) | distinct completed before the first top-2% completion |",
        "|---|---|---|---|---|",
    ]
    for task, e in seen.items():
        before = e["distinct_before_hit_median"]
        lines.append(
            f"| {task} | {e['runs']} | {e['completed_at_end_median']:.0f} "
            f"| {e['distinct_at_end_median']:.0f} ({e['distinct_at_end_iqr'][0]:.0f}-"
            f"{e['distinct_at_end_iqr'][1]:.0f}) "
            f"| {'never' if before is None else f'{before:.0f}'} "
            f"({e['runs_reaching']} runs) |"
        )
    lines += [
        "",
        f"Power: share of {args.repeats} simulated studies in which the gate ({args.gate}) "
        "opens, by the number of distinct completed configurations; each row a model's and the "
        "raw value's population Spearman correlation with the final value.",
        "",
        "| model / raw | " + " | ".join(str(n) for n in N_CONFIGURATIONS) + " |",
        "|---|" + "---|" * len(N_CONFIGURATIONS),
    ]
    for case, cells in grid.items():
        lines.append(
            f"| {case} | "
            + " | ".join(f"{cells[str(n)]['p_open']:.2f}" for n in N_CONFIGURATIONS)
            + " |"
        )
    text = "\n".join(lines) + "\n"
    OUT.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
