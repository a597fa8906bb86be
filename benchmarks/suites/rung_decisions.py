"""Where a model or the prior ranked a rung: what successive halving on the raw value would
have decided about the same trial, and whether that trial was a top-2% configuration.

Epochs to the first top-2% trial (``suites/heldout.py``) judge a study by one event, so a
ranking that prunes top configurations after the first one was found goes unseen. This
script reads every decision the stored replays recorded (``heldout_runs/``) and replays the
rung by the raw value: the competitors are the trials that reached the rung's step before the
judged one (the replays run one trial at a time), ranked by their recorded value at that step,
and the judged trial is promoted as Optuna's ``SuccessiveHalvingPruner`` promotes
(``_rule.promote``, reduction factor 4, the default pruner's). Each decision where the two
disagree is counted by the judged trial's class (top 2% of the table's final values or not)
and by who kept it.

A disagreement on a top-2% trial is the costly kind: "model pruned, raw kept" loses a top
configuration successive halving would have trained on; "model kept, raw pruned" rescues one.
Counts are of decisions and of distinct (seed, configuration) pairs, since TPE draws the same
grid configuration again and again.

Usage::

    python -m benchmarks.suites.rung_decisions     # every stored run of our pruner's variants

Writes ``benchmarks/results/rung_decisions.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.methods import rule_module as _rule
from benchmarks.suites import heldout

RESULTS = runfiles.results_dir("rung_decisions")
# The stored held-out runs read here: the archived ones, which the documented claims rest on.
STORED_RUNS = heldout.ARCHIVED_RUNS

# The default pruner's reduction factor: what its replays promoted with.
REDUCTION_FACTOR = 4
MODEL_RULES = ("prior_rung", "model_rung", "blend_rung")
METHODS = (
    "ours_pruner_only",
    "ours_prior_rungs",
    "ours_prior_by_sampler",
    "ours",
    "ours_blend_30",
    "ours_blend",
)
KINDS = (
    ("top", "model pruned"),
    ("top", "model kept"),
    ("other", "model pruned"),
    ("other", "model kept"),
)


def disagreements(task: str, method: str, sampler: str) -> dict[str, Any] | None:
    """Per rule, the decisions where the recorded ranking and the raw value disagree."""
    stored = heldout.load_runs(task, method, sampler, runs=STORED_RUNS)
    if stored is None:
        return None
    table = heldout._table(task)
    _, values, direction = heldout.objective_of(table)
    sign = 1.0 if direction == "maximize" else -1.0
    scores = np.nan_to_num(sign * values, nan=-np.inf)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    pairs: dict[str, dict[str, set[tuple[str, int]]]] = defaultdict(lambda: defaultdict(set))
    decided: dict[str, set[str]] = defaultdict(set)
    n_decisions: dict[str, int] = defaultdict(int)
    for seed, run in stored["runs"].items():
        trials = run["trials"]
        for k, trial in enumerate(trials):
            for step_text, record in trial.get("records", {}).items():
                rule = record.get("rule")
                if rule not in MODEL_RULES:
                    continue
                step = int(step_text)
                competing = [
                    float(scores[t["i"], step])
                    for t in trials[:k]
                    if t["stop"] == -1 or t["stop"] >= step
                ]
                own = float(scores[trial["i"], step])
                raw_kept = _rule.promote(own, competing + [own], REDUCTION_FACTOR).promoted
                kept = trial["stop"] == -1 or trial["stop"] > step
                n_decisions[rule] += 1
                decided[rule].add(seed)
                if kept == raw_kept:
                    continue
                who = "top" if trial["top"] else "other"
                kind = f"{who} / model {'kept' if kept else 'pruned'}"
                counts[rule][kind] += 1
                pairs[rule][kind].add((seed, int(trial["i"])))
    return {
        "seeds": len(stored["runs"]),
        "rules": {
            rule: {
                "decisions": n_decisions[rule],
                "seeds_deciding": len(decided[rule]),
                "disagreements": {
                    f"{a} / {b}": {
                        "decisions": counts[rule][f"{a} / {b}"],
                        "configurations": len(pairs[rule][f"{a} / {b}"]),
                        "seeds": len({s for s, _ in pairs[rule][f"{a} / {b}"]}),
                    }
                    for a, b in KINDS
                },
            }
            for rule in sorted(n_decisions)
        },
    }


def markdown(summary: dict[str, Any], command: str, seconds: float) -> list[str]:
    lines = [
        "# Model-ranked rungs against successive halving on the raw value",
        "",
        f"`{command}` ({seconds:.1f} s). "
        "Stored replays in `benchmarks/results/archive/heldout_runs/`; "
        "see the script's docstring for the counterfactual.",
        "",
        "Each cell: decisions / distinct (seed, configuration) pairs / seeds, counting only "
        "decisions where the ranking that decided and the raw value disagree. *Top* is a "
        "top-2% configuration of the table.",
        "",
        "| sampler | task | method | rule | seeds | seeds deciding | decisions | top: model "
        "pruned, raw kept | top: model kept, raw pruned | other: model pruned, raw kept | "
        "other: model kept, raw pruned |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["rows"]:
        for rule, entry in row["rules"].items():
            cells = []
            for a, b in KINDS:
                d = entry["disagreements"][f"{a} / {b}"]
                cells.append(f"{d['decisions']} / {d['configurations']} / {d['seeds']}")
            lines.append(
                f"| {row['sampler']} | {row['task']} | {row['method']} | {rule} | "
                f"{row['seeds']} | {entry['seeds_deciding']} | {entry['decisions']} | "
                + " | ".join(cells)
                + " |"
            )
    lines += ["", "Totals over tasks by sampler, method and rule (top-2% configurations):", ""]
    lines += [
        "| sampler | method | rule | top: model pruned, raw kept (pairs) | top: model kept, "
        "raw pruned (pairs) |",
        "|---|---|---|---|---|",
    ]
    for key, total in sorted(summary["totals"].items()):
        sampler, method, rule = key.split("|")
        lines.append(
            f"| {sampler} | {method} | {rule} | {total['top / model pruned']} | "
            f"{total['top / model kept']} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random"])
    parser.add_argument("--out", default=str(RESULTS / "rung_decisions.json"))
    args = parser.parse_args(argv)
    command = runfiles.command_line("benchmarks.suites.rung_decisions", argv)
    started = time.time()
    rows = []
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for sampler in args.samplers:
        for task in args.tasks or list(heldout.table_paths()):
            for method in args.methods:
                found = disagreements(task, method, sampler)
                if found is None or not found["rules"]:
                    continue
                rows.append({"sampler": sampler, "task": task, "method": method, **found})
                for rule, entry in found["rules"].items():
                    for kind in ("top / model pruned", "top / model kept"):
                        pairs = entry["disagreements"][kind]["configurations"]
                        totals[f"{sampler}|{method}|{rule}"][kind] += pairs
    seconds = time.time() - started
    summary = {
        "command": command,
        "meta": runfiles.metadata(command),
        "rows": rows,
        "totals": totals,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    text = "\n".join(markdown(summary, command.strip(), seconds)) + "\n"
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
