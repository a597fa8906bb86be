"""How well a prior ranks the configurations of designs it never saw: the input ablation.

For every table of ``benchmarks/data/designs/`` (``lyapbench/record_designs.py``), the final
values (the design's metric, the validation loss breaking ties) are ranked, by Spearman over the
configurations recorded so far, against the prior's model for each input set and step it has
(``s0:hp`` = step 0 from hyperparameters, ``s1:hp+spectrum`` = after one epoch from the
hyperparameters and the spectrum after epoch 1, ``s0:spectrum+curve`` = without the
hyperparameters, as where names are unknown, ...), and against three baselines:

- ``rule``: the fixed rule ``z(log lr) + z(log H) + z(gated)`` (a gated cell, a bigger
  network, a bigger learning rate), z-scores over the design's configurations;
- ``raw0`` / ``raw1``: the value at initialisation and after one epoch.

The prior reads each network as ``LyapunovMonitor`` describes it from its weights (cell, hidden
size, layers, measured init scale, learning rate, recurrent norm). It is the shipped one unless
``--prior`` names another bundle; the shipped prior was trained on the first corpus (one
design), so every table here is held out from it.

Usage::

    python -m benchmarks.suites.design_transfer                 # every table recorded so far
    python -m benchmarks.suites.design_transfer --prior mine.prior --out benchmarks/results/x.md
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from benchmarks.lyapbench import runs as runfiles
from benchmarks.lyapbench.methods import (
    PriorInputs,
    curve_rank_features,
    hyperparameter_features,
    top_fraction,
)
from benchmarks.lyapbench.record import read_records
from benchmarks.lyapbench.tables import DATA as TABLES
from optuna_lyap.aelle import NetworkDescription, PriorBundle, load_shipped_prior

DATA = TABLES / "designs"
RESULTS = runfiles.results_dir("design_transfer")
FRACTION = 0.25
BASELINES = ("rule", "raw0", "raw1")
_SHORT = {"hyperparameters": "hp", "spectrum": "spectrum", "curve": "curve"}


def model_label(step: int, groups: Sequence[str]) -> str:
    """``s1:hp+spectrum`` for the prior's model at step 1 on those input groups."""
    return f"s{step}:" + "+".join(_SHORT[g] for g in groups)


def final_scores(values: np.ndarray, val_loss: np.ndarray, direction: str) -> np.ndarray:
    """The final value as a score (higher is better), the validation loss breaking ties."""
    sign = 1.0 if direction == "maximize" else -1.0
    loss = np.nan_to_num(val_loss, nan=1e6, posinf=1e6)
    return sign * np.nan_to_num(values, nan=-1e6 * sign) - 1e-6 * loss


def fixed_rule(networks: Sequence[NetworkDescription]) -> np.ndarray:
    """``z(log lr) + z(log H) + z(gated)`` over ``networks`` (higher: predicted better)."""

    def z(column: np.ndarray) -> np.ndarray:
        spread = column.std()
        return (column - column.mean()) / spread if spread > 0 else np.zeros_like(column)

    lr = np.log([n.lr or 1e-3 for n in networks])
    hidden = np.log([n.hidden_size or 1 for n in networks])
    gated = np.array([float(n.cell in ("gru", "lstm")) for n in networks])
    return z(lr) + z(hidden) + z(gated)


def design_rows(records: list[dict[str, Any]], meta: dict[str, Any], step: int) -> PriorInputs:
    """The prior's inputs for every recorded configuration at ``step``."""
    networks = [NetworkDescription.from_json(r["network"]) for r in records]
    spectra = []
    for r in records:
        spectrum = r["spectra"][step] if step < len(r["spectra"]) else None
        keep = max(1, math.ceil(FRACTION * r["dim"] - 1e-9))
        # Beyond D = 256 the recorded top 64 is less than the prior's top quarter: unknown.
        if spectrum is None or len(spectrum) < keep:
            spectra.append(np.full(keep, np.nan))
            continue
        values = np.array([np.nan if v is None else v for v in spectrum], dtype=float)
        spectra.append(top_fraction(values, r["dim"], FRACTION))
    values = _matrix(records, "values")
    losses = _matrix(records, "val_loss")
    curve = curve_rank_features(values, meta["direction"], step, losses)
    dims = np.array([r["dim"] for r in records])
    return PriorInputs(hyperparameter_features(networks), spectra, dims, curve)


def _matrix(records: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in r[key]] for r in records], dtype=float)


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return math.nan
    return float(spearmanr(a[ok], b[ok]).statistic)


def evaluate(path: Path, bundle: PriorBundle) -> dict[str, Any]:
    """Spearman of each of the prior's models and each baseline with one table's finals."""
    meta, records = read_records(path)
    final = final_scores(
        np.array([r["values"][-1] if r["values"][-1] is not None else np.nan for r in records]),
        np.array(
            [r["val_loss"][-1] if r["val_loss"][-1] is not None else np.nan for r in records]
        ),
        meta["direction"],
    )
    sign = 1.0 if meta["direction"] == "maximize" else -1.0
    values = _matrix(records, "values")
    networks = [NetworkDescription.from_json(r["network"]) for r in records]
    columns: dict[str, np.ndarray] = {}
    rows = {
        step: design_rows(records, meta, step) for step in sorted({s for s, _ in bundle.models})
    }
    for (step, groups), model in sorted(bundle.models.items()):
        columns[model_label(step, groups)] = model.predict(rows[step])
    columns["rule"] = fixed_rule(networks)
    columns["raw0"] = sign * values[:, 0]
    columns["raw1"] = sign * values[:, 1]
    return {
        "design": meta["design"]["name"],
        "n_configs": len(records),
        "diverged": int(sum(bool(r["diverged"][-1]) for r in records)),
        **{key: _rho(value, final) for key, value in columns.items()},
    }


def _commit() -> str:
    return runfiles.commit()[0]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DATA, help="folder of design tables")
    parser.add_argument(
        "--prior", type=Path, default=None, help="a prior bundle (default: shipped)"
    )
    parser.add_argument("--out", type=Path, default=None, help="Markdown file (and .json beside)")
    args = parser.parse_args(argv)
    bundle = PriorBundle.load(args.prior) if args.prior else load_shipped_prior()
    rows = [evaluate(p, bundle) for p in sorted(args.data.glob("*.jsonl.gz"))]
    columns = [model_label(*key) for key in sorted(bundle.models)] + list(BASELINES)
    lines = [
        f"Spearman with the final value; prior {bundle.digest()}; commit {_commit()}.",
        "",
        "| design | configs | diverged | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = [f"{row[c]:+.2f}" if math.isfinite(row[c]) else "n/a" for c in columns]
        lines.append(
            f"| {row['design']} | {row['n_configs']} | {row['diverged']} | "
            + " | ".join(cells)
            + " |"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        command = runfiles.command_line("benchmarks.suites.design_transfer", argv)
        meta = runfiles.metadata(command, prior=args.prior or "shipped")
        payload = {
            "commit": _commit(),
            "prior_digest": bundle.digest(),
            "meta": meta,
            "rows": rows,
        }
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
