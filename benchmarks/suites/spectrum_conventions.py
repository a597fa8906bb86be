"""How close ``state="h"`` plus a change of log base gets to the seed code's exponents.

The seed code (shlizee/LyapunovAutoEncode) iterates ``Q <- qr(J_t^T Q)`` from ``Q_0 = I`` with
the LSTM's ``c`` held fixed and reports log2 per step. That chain accumulates
``J_T^T ... J_1^T = (J_1 ... J_T)^T``: it measures the reverse-order product ``J_1 ... J_T``, not
the map's ``J_T ... J_1``. The two agree for a single fixed matrix but not in general (a cycle of
three 2 x 2 matrices: forward ``log|eig(CBA)|/3``, transposed ``log|eig(ABC)|/3``; see
``tests/lyapunov_tests/test_custom_cells.py``).

For random-input one-layer networks this script computes, in float64 on the same inputs:

- ``ours``: ``lyapunov_spectrum(model, x, state="h")`` divided by ``ln 2`` (bits per step);
- ``forward I``: the forward chain ``qr(J Q)`` from ``Q_0 = I`` (explicit Jacobians): differs
  from ``ours`` only by the starting basis, a finite-T effect that shrinks like 1/T;
- ``seed``: the transposed chain ``qr(J^T Q)`` from ``Q_0 = I``, as the seed code computes it.

and reports, per network and T, the largest and the mean absolute difference over the
exponents (bits per step) and the difference in the largest exponent.

Usage::

    python -m benchmarks.suites.spectrum_conventions  # results/spectrum_conventions/<commit>/
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch import nn

import optuna_lyap as ol
from benchmarks.lyapbench import runs as runfiles
from benchmarks.speed.bench_spectrum import explicit_jacobian_spectrum

RESULTS = runfiles.results_dir("spectrum_conventions")


def _bits(exponents: torch.Tensor) -> torch.Tensor:
    """``B x k`` natural-log exponents to bits per step, sorted descending, mean over B."""
    return (torch.sort(exponents, dim=1, descending=True).values / math.log(2.0)).mean(dim=0)


def compare(model: nn.RNNBase, x: torch.Tensor) -> dict[str, float]:
    ours = ol.lyapunov_spectrum(model, x, state="h", seed=0).exponents / math.log(2.0)
    forward = _bits(explicit_jacobian_spectrum(model, x, transpose=False))
    seed = _bits(explicit_jacobian_spectrum(model, x, transpose=True))
    return {
        "max_ours_vs_seed": float((ours - seed).abs().max()),
        "mean_ours_vs_seed": float((ours - seed).abs().mean()),
        "lambda1_ours_minus_seed": float(ours[0] - seed[0]),
        "max_forward_I_vs_seed": float((forward - seed).abs().max()),
        "max_ours_vs_forward_I": float((ours - forward).abs().max()),
        "lambda1_ours": float(ours[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[500, 2000, 10000])
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    header = (
        "| network | T | max \\|ours - seed\\| | mean \\|ours - seed\\| | lambda_1 ours - seed | "
        "max \\|forward I - seed\\| | max \\|ours - forward I\\| | lambda_1 ours |\n"
        + "|---" * 8
        + "|"
    )
    print(header)
    rows = []
    for kind in ("gru", "lstm"):
        torch.manual_seed(0)
        cls = nn.GRU if kind == "gru" else nn.LSTM
        model = cls(4, args.hidden, batch_first=True).double()
        x_all = torch.randn(args.batch, max(args.steps), 4, dtype=torch.float64)
        for steps in args.steps:
            start = time.perf_counter()
            row = {"network": f"{kind.upper()}(4, {args.hidden})", "steps": steps}
            row.update(compare(model, x_all[:, :steps]))
            row["seconds"] = time.perf_counter() - start
            rows.append(row)
            print(_row(row), flush=True)
    command = runfiles.command_line("benchmarks.suites.spectrum_conventions")
    meta = {
        **runfiles.metadata(command),
        "torch": torch.__version__,
        "dtype": "float64",
        "batch": args.batch,
        "units": "bits per step",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / "spectrum_conventions"
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"`{meta['command']}` (float64, B = {args.batch}, bits per step)", "", header]
    stem.with_suffix(".md").write_text("\n".join(lines + [_row(r) for r in rows]) + "\n")


def _row(row: dict) -> str:
    return (
        f"| {row['network']} | {row['steps']} | {row['max_ours_vs_seed']:.4f} | "
        f"{row['mean_ours_vs_seed']:.4f} | {row['lambda1_ours_minus_seed']:+.4f} | "
        f"{row['max_forward_I_vs_seed']:.4f} | {row['max_ours_vs_forward_I']:.4f} | "
        f"{row['lambda1_ours']:.4f} |"
    )


if __name__ == "__main__":
    main()
