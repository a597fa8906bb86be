"""Train the cross-task prior on every recorded table and write the weights the package ships.

One ``CrossTaskPrior(model="aelle")`` per step (0, 1, 2) on all inputs, fitted on every table
``benchmarks/prior_loto.py`` reads, saved to ``optuna_lyap/aelle/weights/prior_step<s>.pt``
(tensors plus JSON, read by ``torch.load(weights_only=True)``). Reports the file sizes, the
seconds to load each file and to predict a table, and checks that the loaded prior predicts
exactly what the fitted one did.

Usage::

    python benchmarks/prior_train.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from optuna_lyap.aelle._prior import (
    SHIPPED_DIR,
    CrossTaskPrior,
    PriorInputs,
    final_quantile,
    load_shipped_prior,
)

ROOT = Path(__file__).resolve().parents[1]


def _loto_module():  # noqa: ANN202 - a script module
    spec = importlib.util.spec_from_file_location(
        "prior_loto", ROOT / "benchmarks" / "prior_loto.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["prior_loto"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--min-configs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    loto = _loto_module()
    record = loto._load_record_module()
    tables = {}
    for path in loto.table_paths(args.min_configs):
        table = record.load_table(path)
        if len(table["index"]) >= args.min_configs:
            tables[table["meta"]["task"]] = table
    names = sorted(tables)
    targets = np.concatenate(
        [
            final_quantile(
                tables[n]["values"][:, -1],
                tables[n]["meta"]["direction"],
                tie_break=tables[n]["val_loss"][:, -1],
            )
            for n in names
        ]
    )
    command = "python " + " ".join(["benchmarks/prior_train.py", *(argv or sys.argv[1:])])
    SHIPPED_DIR.mkdir(parents=True, exist_ok=True)
    report = {"command": command, "tables": {n: len(tables[n]["index"]) for n in names}}
    rows_out = []
    for step in args.steps:
        rows = PriorInputs.concatenate([loto.study_rows(tables[n], step, 0.25) for n in names])
        start = time.perf_counter()
        prior = CrossTaskPrior(model="aelle", seed=args.seed).fit(rows, targets)
        fit_seconds = time.perf_counter() - start
        prior.info_ = {"step": step, "tables": report["tables"], "command": command}
        path = SHIPPED_DIR / f"prior_step{step}.pt"
        prior.save(path)
        start = time.perf_counter()
        loaded = load_shipped_prior(step)
        load_seconds = time.perf_counter() - start
        start = time.perf_counter()
        predicted = loaded.predict(rows)
        predict_seconds = time.perf_counter() - start
        np.testing.assert_array_equal(predicted, prior.predict(rows))
        rows_out.append(
            {
                "step": step,
                "file": str(path.relative_to(ROOT)),
                "bytes": path.stat().st_size,
                "fit_seconds": round(fit_seconds, 2),
                "load_seconds": round(load_seconds, 4),
                "predict_seconds": round(predict_seconds, 4),
                "n_rows": len(rows),
            }
        )
        print(rows_out[-1], flush=True)
    report["files"] = rows_out
    results = ROOT / "benchmarks" / "results"
    (results / "prior_weights.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        "# Shipped prior weights",
        "",
        f"`{command}`; tables: " + ", ".join(f"{k} ({v})" for k, v in report["tables"].items()),
        "",
        "| step | file | size (KB) | fit (s) | load (s) | predict all rows (s) | rows |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows_out:
        lines.append(
            f"| {r['step']} | `{r['file']}` | {r['bytes'] / 1024:.0f} | {r['fit_seconds']} "
            f"| {r['load_seconds']} | {r['predict_seconds']} | {r['n_rows']} |"
        )
    (results / "prior_weights.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
