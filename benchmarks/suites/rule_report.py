"""The default LyapunovPruner against Optuna's pruners, from stored replays (``suites/grids.py``).

Reads a replay summary (``--summary``, written by ``suites/grids.py --out``) and prints, per
table and sampler:

- each method's median epochs and seconds (spectra charged) to a top-2% trial and the share of
  seeds reaching one;
- the default ``lyapunov`` against the best baseline: the ratio of medians (goal: at most 1.1)
  and whether it reaches top-2% in at least as many seeds;
- seed by seed, against ``successive_halving`` (Optuna's
  ``SuccessiveHalvingPruner(min_resource=1)``, the pruner ours is while its gate is shut, so
  both runs are identical until the model first ranks a rung): in the seeds where the model
  decided at least once, how many reached a top-2% trial in fewer epochs, more, or the same;
- seed by seed, against the best baseline (the one with the lowest median): in how many seeds
  ours reached a top-2% trial in fewer epochs, more, or the same, and the two-sided p-value of a
  sign test on those counts (``scipy.stats.binomtest``, ties left out; a seed that never gets
  there counts as beyond the budget). A median can rank two methods one way while most seeds
  rank them the other: the paired count is the direct comparison;
- the pruner's own CPU seconds per study against the recorded training seconds of the epochs
  the study spent (goal: at most 10%).

Usage::

    python -m benchmarks.suites.rule_report \
        --summary benchmarks/results/archive/hpo_summary_r9.json

Writes ``rule_report.md`` and ``.json`` under ``benchmarks/results/rule_report/<commit>/``
(``--out-dir``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

from benchmarks.lyapbench import runs as runfiles

BASELINES = ("successive_halving", "successive_halving_auto", "hyperband", "median", "topk_epoch1")
OURS = "lyapunov"
PAIRED_WITH = "successive_halving"


def _epochs(hits: list[float | None]) -> list[float]:
    return [math.inf if h is None else float(h) for h in hits]


def _fmt(x: float | None, digits: int = 0) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def report(summary: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Markdown lines and the numbers behind them."""
    lines = [
        "| table | sampler | method | epochs to top-2% (median) | seconds (median) | "
        "seeds reaching | pruner CPU / training (median, max) |",
        "|---|---|---|---|---|---|---|",
    ]
    checks: dict[str, Any] = {}
    for task, entry in summary["tasks"].items():
        for sampler in ("tpe", "random"):
            suffix = "" if sampler == "tpe" else f"+{sampler}_sampler"
            methods = {m: entry["methods"].get(m + suffix) for m in (*BASELINES, OURS)}
            if methods[OURS] is None:
                continue
            for name, stats in methods.items():
                if stats is None:
                    continue
                share = stats.get("pruner_cpu_share_median")
                cpu = (
                    "-"
                    if share is None
                    else f"{100 * share:.2f}% / {100 * stats['pruner_cpu_share_max']:.2f}%"
                )
                lines.append(
                    f"| {task} | {sampler} | {name} | {_fmt(stats['epochs_to_top2pct'])} | "
                    f"{_fmt(stats['seconds_to_top2pct'], 1)} | "
                    f"{stats['share_of_seeds_reaching_top2pct']:.2f} | {cpu} |"
                )
            ours = methods[OURS]
            baselines = {m: s for m, s in methods.items() if m != OURS and s is not None}

            def median(stats: dict[str, Any]) -> float:
                e = stats["epochs_to_top2pct"]
                return math.inf if e is None else float(e)

            best = min(baselines, key=lambda m: median(baselines[m]))
            ratio = median(ours) / median(baselines[best])
            most_seeds = max(s["share_of_seeds_reaching_top2pct"] for s in baselines.values())
            paired = None
            if baselines.get(PAIRED_WITH) is not None:
                mine = _epochs(ours["epochs_to_top2pct_per_seed"])
                theirs = _epochs(baselines[PAIRED_WITH]["epochs_to_top2pct_per_seed"])
                acted = ours["model_decisions_per_seed"]
                faster = sum(1 for a, b, n in zip(mine, theirs, acted, strict=True) if n and a < b)
                slower = sum(1 for a, b, n in zip(mine, theirs, acted, strict=True) if n and a > b)
                same = sum(1 for a, b, n in zip(mine, theirs, acted, strict=True) if n and a == b)
                paired = {
                    "seeds_where_model_decided": sum(1 for n in acted if n),
                    "faster": faster,
                    "slower": slower,
                    "same": same,
                    "model_decisions_per_seed": acted,
                    "decisions_per_seed": ours["decisions_per_seed"],
                }
            mine = _epochs(ours["epochs_to_top2pct_per_seed"])
            theirs = _epochs(baselines[best]["epochs_to_top2pct_per_seed"])
            wins = sum(1 for a, b in zip(mine, theirs, strict=True) if a < b)
            losses = sum(1 for a, b in zip(mine, theirs, strict=True) if a > b)
            sign_p = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
            checks[f"{task}/{sampler}"] = {
                "paired_vs_best_baseline": {
                    "faster": wins,
                    "slower": losses,
                    "same": len(mine) - wins - losses,
                    "sign_test_p": sign_p,
                },
                "best_baseline": best,
                "best_baseline_epochs": median(baselines[best]),
                "lyapunov_epochs": median(ours),
                "ratio": ratio,
                "within_10pct": ratio <= 1.1,
                "lyapunov_seed_share": ours["share_of_seeds_reaching_top2pct"],
                "most_seed_share_of_baselines": most_seeds,
                "seeds_at_least_as_many": ours["share_of_seeds_reaching_top2pct"] >= most_seeds,
                "pruner_cpu_share_median": ours.get("pruner_cpu_share_median"),
                "pruner_cpu_share_max": ours.get("pruner_cpu_share_max"),
                "paired_vs_" + PAIRED_WITH: paired,
            }
    lines += [
        "",
        "| table | sampler | best baseline | its epochs | ours | ratio | seeds reaching "
        "(ours / best of baselines) | seeds where the model ranked a rung | faster / slower / "
        "same as SHA there | faster / slower / same as the best baseline (sign test p) | "
        "pruner CPU / training (median) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, c in checks.items():
        task, sampler = key.split("/")
        p = c["paired_vs_" + PAIRED_WITH] or {}
        b = c["paired_vs_best_baseline"]
        cpu = c["pruner_cpu_share_median"]
        lines.append(
            f"| {task} | {sampler} | {c['best_baseline']} | {_fmt(c['best_baseline_epochs'])} | "
            f"{_fmt(c['lyapunov_epochs'])} | {c['ratio']:.2f} | "
            f"{c['lyapunov_seed_share']:.2f} / {c['most_seed_share_of_baselines']:.2f} | "
            f"{p.get('seeds_where_model_decided', '-')} | "
            f"{p.get('faster', '-')} / {p.get('slower', '-')} / {p.get('same', '-')} | "
            f"{b['faster']} / {b['slower']} / {b['same']} (p = {b['sign_test_p']:.3f}) | "
            f"{'-' if cpu is None else f'{100 * cpu:.1f}%'} |"
        )
    return lines, checks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--summary", required=True, help="a summary written by the grid suite (its --out)"
    )
    parser.add_argument("--out-dir", type=Path, default=runfiles.results_dir("rule_report"))
    args = parser.parse_args(argv)
    path = Path(args.summary)
    lines, checks = report(json.loads(path.read_text()))
    print("\n".join(lines))
    command = runfiles.command_line("benchmarks.suites.rule_report", argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "rule_report.md").write_text("\n".join(lines) + "\n")
    payload = {"command": command, "meta": runfiles.metadata(command), "checks": checks}
    (args.out_dir / "rule_report.json").write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
