"""What the replays report: epochs and seconds to a top-2% trial, anytime curves, the bar.

The headline number of a method on a table is its median, over seeds, of the cumulative epochs
until a trial COMPLETES with a final value in the table's top 2% (a seed that never gets there
counts as beyond the budget; None when half of the seeds or more never get there). Beside it:
the seconds to that trial (:mod:`benchmarks.lyapbench.cost`), the anytime curve (best completed
final value against cumulative epochs), the best baseline and paired seed-by-seed counts against
it, and the bar a pruner is held to (:func:`meets_bar`). Tables are Markdown; plots PNG.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lyapbench.cost import (
    charged_spectrum_steps,
    grid_trial_seconds,
    heldout_trial_seconds,
    training_seconds,
)
from benchmarks.lyapbench.methods import (
    BLEND_WEIGHTS,
    HELDOUT_BASELINES,
    HELDOUT_METHODS,
    HELDOUT_OURS,
    rank_correlation,
)
from benchmarks.lyapbench.runs import metadata, save_json
from benchmarks.lyapbench.tables import TOP_SHARE, budget_of, cached_table, is_grid, objective_of

BASELINES = HELDOUT_BASELINES
OURS = HELDOUT_OURS


# -- held-out replays -------------------------------------------------------------------------


def per_seed(
    table: dict[str, Any], method: str, run: dict[str, Any]
) -> tuple[float | None, float | None]:
    """Epochs and seconds until the first completed trial with a top-2% final value."""
    _, values, direction = objective_of(table)
    sign = 1.0 if direction == "maximize" else -1.0
    bar = np.quantile(np.nan_to_num(sign * values[:, -1], nan=-np.inf), 1.0 - TOP_SHARE)
    seconds = np.cumsum(heldout_trial_seconds(table, method, run))
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


def heldout_summary(
    tasks: list[str],
    trainings: float,
    out: Path,
    load_runs: Callable[[str, str, str], dict[str, Any] | None],
    command: str,
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
        table = cached_table(task)
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
        for method in HELDOUT_METHODS:
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
    summary["meta"] = metadata(command)
    save_json(out, summary)
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


# -- grid replays ------------------------------------------------------------------------------


def grid_summary(
    table: dict[str, Any],
    runs: list[dict[str, Any]],
    budget: int,
    spectrum_steps: tuple[int, ...] = (),
    screens: bool = False,
) -> tuple[dict[str, Any], np.ndarray]:
    """Headline numbers of one method on one table, and its anytime curves (seeds x budget).

    ``spectrum_steps`` and ``screens`` say which spectra the method pays for in
    ``seconds_to_top2pct`` (see :func:`~benchmarks.lyapbench.cost.grid_trial_seconds`).
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
        seconds = np.cumsum(grid_trial_seconds(table, run, spectrum_steps, screens))
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


def fmt_value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def grid_report(
    tables: dict[str, dict[str, Any]],
    budgets: dict[str, int],
    out: Path,
    stored_methods: Callable[[str, str], list[str]],
    load_runs: Callable[[str, str, str], dict[str, Any] | None],
    command: str,
    samplers: Sequence[str],
) -> None:
    """Summarise every stored group of runs of these tables: JSON, a markdown table, plots.

    ``stored_methods(task, sampler)`` names the stored groups, ``load_runs(task, sampler,
    method)`` reads one."""
    out.parent.mkdir(parents=True, exist_ok=True)
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
        for sampler in samplers:
            curves = {}
            for method in stored_methods(task, sampler):
                payload = load_runs(task, sampler, method)
                if payload is None or payload["budget_epochs"] != budgets[task]:
                    continue
                stats, c = grid_summary(
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
                    f"{fmt_value(stats['best_at_budget']['0.25'])} | "
                    f"{fmt_value(stats['best_at_budget']['1.0'])} | "
                    f"{stats['median_trials']:.0f} | "
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
    out.parent.mkdir(parents=True, exist_ok=True)
    summary["meta"] = metadata(command)
    save_json(out, summary)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
