"""The figure of docs/pruner.md: how the default LyapunovPruner's gate behaves in a replay.

Replays the default ``LyapunovPruner()`` with TPE (seed ``--seed``) on each recorded table (as
``suites/grids.py`` does) and reads back its decision records at rung 0 (step 1, where the replays
store a spectrum). Left: the gate's share (bootstrap resamples in which the model out-ranks
the raw value on the completed trials) at each rung-0 decision, against the trial number, with
the gate at 0.9. Right, for one table: each rung-0 competitor's raw value against its
predicted final value, marked by the rule that decided (``rung``: the raw value ranked,
``model_rung``: the prediction ranked) and by the outcome.

Usage::

    python -m benchmarks.suites.plot_rule            # writes docs/pruner_rule.png
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import optuna
import torch

from benchmarks.lyapbench.methods import Setting, make_pruner, make_sampler
from benchmarks.lyapbench.replay import replay
from benchmarks.lyapbench.tables import ROOT, budget_of, cached_table
from optuna_lyap.pruners import load_predictions

TASKS = ("copy", "sdigits", "sines")


def rung0_records(task: str, seed: int) -> list[dict[str, Any]]:
    """The rung-0 decision records of one replay of the default pruner, by trial number."""
    table = cached_table(task)
    setting = Setting(table=table, seed=seed)
    # As the grid suite replays its "lyapunov" method with TPE.
    pruner = make_pruner("lyapunov", setting)
    study = replay(
        table,
        sampler=make_sampler("lyapunov", setting),
        pruner=pruner,
        budget=budget_of(table, 40),
        study_name=f"replay-{seed}",
        finite_spectra=False,
    ).study
    out = []
    for trial in study.trials:
        record = load_predictions(trial).get(1)
        if record is not None and record.get("rung") == 0:
            out.append({"number": trial.number, "raw": trial.intermediate_values[1], **record})
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detail", default="sdigits", choices=TASKS)
    parser.add_argument("--out", default=str(ROOT / "docs" / "pruner_rule.png"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    records = {task: rung0_records(task, args.seed) for task in TASKS}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    for task, recs in records.items():
        judged = [r for r in recs if "gate_share" in r]
        left.plot(
            [r["number"] for r in judged],
            [r["gate_share"] for r in judged],
            ".-",
            ms=3,
            lw=1,
            label=task,
        )
    left.axhline(0.9, color="k", ls="--", lw=1)
    left.text(left.get_xlim()[0] + 1, 0.92, "gate (0.9)", fontsize=8)
    left.set_xlabel("trial number")
    left.set_ylabel("gate share: model out-ranks raw value")
    left.set_ylim(-0.02, 1.05)
    left.set_title(f"rung 0 (step 1), default LyapunovPruner, TPE seed {args.seed}", fontsize=9)
    left.legend(fontsize=8)

    detail = [r for r in records[args.detail] if "predicted" in r]
    styles = {
        ("rung", False): ("o", "tab:blue", "raw value ranked: promoted"),
        ("rung", True): ("x", "tab:blue", "raw value ranked: pruned"),
        ("model_rung", False): ("o", "tab:red", "prediction ranked: promoted"),
        ("model_rung", True): ("x", "tab:red", "prediction ranked: pruned"),
    }
    for (rule, pruned), (marker, color, label) in styles.items():
        pts = [r for r in detail if r["rule"] == rule and r["pruned"] == pruned]
        if pts:
            right.scatter(
                [r["raw"] for r in pts],
                [r["predicted"] for r in pts],
                marker=marker,
                color=color,
                s=18,
                label=f"{label} ({len(pts)})",
                facecolors="none" if marker == "o" else None,
            )
    right.set_xlabel("value at step 1 (raw)")
    right.set_ylabel("predicted final value")
    right.set_title(f"{args.detail}: rung-0 decisions with a model", fontsize=9)
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    for task, recs in records.items():
        opened = sum(1 for r in recs if r.get("gate_open"))
        print(f"{task}: {len(recs)} rung-0 decisions, {opened} with the gate open")


if __name__ == "__main__":
    main()
