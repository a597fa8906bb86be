"""Does a rank blend of the raw value and the held-out prior rank the final value better?

For every table of ``benchmarks/data`` with a leave-one-task-out prior in
``benchmarks/results/heldout_priors/`` (``python -m benchmarks.suites.heldout --train-priors``), at
steps 1 and 2 over all of the table's configurations: the Spearman correlation with the final
value (its quantile, validation loss breaking ties) and the share of the true top 10% among
the best 20% (``prior_loto.top_recall``), for the raw value at the step, the prior's
prediction (all inputs) and ``optuna_lyap.pruners._rule.blend_ranks`` of the two with the
prior weighted 0.5 (the equal rank average ``LyapunovPruner(prior_weight=0.5)`` ranks a rung
by) and 0.3.

Usage::

    python -m benchmarks.suites.prior_blend        # about a minute

Writes ``benchmarks/results/prior_blend.json`` and ``prior_blend.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from scipy.stats import spearmanr

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.methods import PriorBundle, blend_ranks, final_quantile
from benchmarks.lyapbench.record import load_table
from benchmarks.suites import heldout, prior_loto

PRIORS = heldout.PRIORS
OUT = runfiles.results_dir("prior_blend") / "prior_blend.json"
INPUTS = ("hyperparameters", "spectrum", "curve")
WEIGHTS = (0.5, 0.3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--priors",
        type=Path,
        default=PRIORS,
        help="folder of the held-out bundles <task>.pt (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows_out: list[dict[str, Any]] = []
    for path in prior_loto.table_paths(30):
        table = load_table(path)
        task = table["meta"]["task"]
        bundle_path = args.priors / f"{task}.pt"
        if not bundle_path.exists():
            print(f"skip {task}: no held-out prior at {bundle_path}", flush=True)
            continue
        bundle = PriorBundle.load(bundle_path)
        target = final_quantile(
            table["values"][:, -1], table["meta"]["direction"], tie_break=table["val_loss"][:, -1]
        )
        for step in (1, 2):
            raw = prior_loto.raw_ranking(table, step)
            prior = bundle.models[(step, INPUTS)].predict(prior_loto.study_rows(table, step, 0.25))
            scores = {"raw": raw, "prior": prior}
            for w in WEIGHTS:
                scores[f"blend {w}"] = blend_ranks(raw, prior, w)
            row: dict[str, Any] = {"task": task, "step": step, "digest": bundle.digest()}
            for name, score in scores.items():
                row[name] = {
                    "spearman": round(float(spearmanr(score, target).statistic), 4),
                    "top10_recall_at20": round(prior_loto.top_recall(score, target), 4),
                }
            rows_out.append(row)
    if not rows_out:
        # Nothing to compare: keep the results on disk rather than overwrite them with an
        # empty table.
        raise SystemExit(
            f"no held-out prior under {args.priors}; train them with "
            "`python -m benchmarks.suites.heldout --train-priors`."
        )
    names = ["raw", "prior", *(f"blend {w}" for w in WEIGHTS)]
    seconds = round(time.perf_counter() - started, 1)
    command = runfiles.command_line("benchmarks.suites.prior_blend", argv)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {"command": command, "meta": runfiles.metadata(command), "rows": rows_out}, indent=1
        )
        + "\n"
    )
    lines = [
        "# Raw value, held-out prior and their rank blend",
        "",
        f"`{command}` ({seconds} s). Each cell: Spearman with the final "
        "value / share of the top 10% among the best 20%, over every configuration of the "
        "table; the prior never saw the table.",
        "",
    ]
    lines += runfiles.markdown_table(
        ["task", "step", *names],
        (
            [row["task"], row["step"]]
            + [f"{row[n]['spearman']:+.2f} / {row[n]['top10_recall_at20']:.2f}" for n in names]
            for row in rows_out
        ),
    )
    text = "\n".join(lines) + "\n"
    OUT.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
