"""Time ``lyapunov_spectrum`` against an explicit-Jacobian baseline and the QR + matmul floor.

Settings follow the seed papers' measurements: B = 15 sequences, T = 100 steps, the full
spectrum, QR every step, float32, one layer. For each cell and hidden size the table shows:

- ``ours``: ``optuna_lyap.lyapunov_spectrum`` (best of ``--repeats`` warm calls);
- ``explicit``: a baseline that builds ``J_t`` every step with ``diag_embed`` products and
  iterates ``Q <- qr(J^T Q)`` the way the seed code does (state ``h`` only);
- ``floor``: the measured time of the same T batched QRs plus the matrix-product FLOPs the
  engine does (``PRODUCTS``) at the machine's measured batched-matmul rate. It leaves out the
  elementwise work of building the Jacobian blocks.

Usage::

    python benchmarks/bench_spectrum.py                  # CPU table, H = 64, 128, 256
    python benchmarks/bench_spectrum.py --device cuda    # the same on a GPU, H up to 512

Results are printed and saved to ``benchmarks/results/spectrum_<device>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import optuna_lyap as ol

RESULTS = Path(__file__).resolve().parent / "results"
# H x H matrix products per step the engine does for the full spectrum (k = D >= 16, so GRU and
# LSTM use formed Jacobian blocks): one (RNN: W_hh; GRU and LSTM state h: the formed block), two
# for LSTM state full (the block of c and the o gate's shared product).
PRODUCTS = {("rnn", "h"): 1, ("gru", "h"): 1, ("lstm", "h"): 1, ("lstm", "full"): 2}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call, in seconds."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def explicit_jacobian_spectrum(model: nn.RNNBase, inputs: torch.Tensor) -> torch.Tensor:
    """The baseline: build each ``J_t`` (``B x H x H``) with ``diag_embed``, then ``qr(J^T Q)``.

    Covers one-layer RNN/GRU/LSTM with the state ``h`` (LSTM ``c`` held fixed). Returns the
    ``B x H`` exponents (natural log, unsorted).
    """
    x = inputs.transpose(0, 1) if model.batch_first else inputs
    steps, batch, hidden = x.shape[0], x.shape[1], model.hidden_size
    w_ih, w_hh = model.weight_ih_l0, model.weight_hh_l0
    b_ih, b_hh = model.bias_ih_l0, model.bias_hh_l0
    h = torch.zeros(batch, hidden, device=x.device, dtype=x.dtype)
    c = torch.zeros_like(h)
    q = torch.eye(hidden, device=x.device, dtype=x.dtype).expand(batch, hidden, hidden)
    log_sum = torch.zeros(batch, hidden, device=x.device, dtype=torch.float64)
    with torch.no_grad():
        for t in range(steps):
            gi = x[t] @ w_ih.T + b_ih
            gh = h @ w_hh.T + b_hh
            if isinstance(model, nn.LSTM):
                i, f, g, o = (gi + gh).chunk(4, dim=1)
                i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
                w_i, w_f, w_g, w_o = w_hh.chunk(4, dim=0)
                c_new = f * c + i * g
                tc = c_new.tanh()
                dc = (
                    torch.diag_embed(c * f * (1 - f)) @ w_f
                    + torch.diag_embed(g * i * (1 - i)) @ w_i
                    + torch.diag_embed(i * (1 - g * g)) @ w_g
                )
                jac = (
                    torch.diag_embed(tc * o * (1 - o)) @ w_o
                    + torch.diag_embed(o * (1 - tc * tc)) @ dc
                )
                h, c = o * tc, c_new
            elif isinstance(model, nn.GRU):
                xr, xz, xn = gi.chunk(3, dim=1)
                hr, hz, hn = gh.chunk(3, dim=1)
                w_r, w_z, w_n = w_hh.chunk(3, dim=0)
                r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
                n = (xn + r * hn).tanh()
                dr = torch.diag_embed(r * (1 - r)) @ w_r
                dz = torch.diag_embed(z * (1 - z)) @ w_z
                dn = torch.diag_embed(1 - n * n) @ (
                    torch.diag_embed(hn) @ dr + torch.diag_embed(r) @ w_n
                )
                jac = (
                    torch.diag_embed(1 - z) @ dn
                    + torch.diag_embed(h - n) @ dz
                    + torch.diag_embed(z)
                )
                h = (1 - z) * n + z * h
            else:
                h = (gi + gh).tanh()
                jac = torch.diag_embed(1 - h * h) @ w_hh
            q, r_mat = torch.linalg.qr(jac.transpose(1, 2) @ q)
            diag = r_mat.diagonal(dim1=1, dim2=2)
            q = q * diag.sign().unsqueeze(1)
            log_sum += diag.abs().log().double()
    return log_sum / steps


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    """The measured batched-matmul rate in FLOP/s (15 products of 512 x 512 matrices)."""
    a = torch.randn(15, 512, 512, device=device, dtype=dtype)
    seconds = best_time(lambda: torch.bmm(a, a), device, 10)
    return 2 * 15 * 512**3 / seconds


def qr_floor(batch: int, dim: int, steps: int, device: torch.device, dtype: torch.dtype) -> float:
    """Measured time of ``steps`` batched QRs of ``batch`` matrices ``dim x dim``, back to back.

    Timed as one loop of ``steps`` QRs (best of 3), the way the engine runs them back to back,
    rather than ``steps`` times one QR timed alone.
    """
    z = torch.randn(batch, dim, dim, device=device, dtype=dtype)

    def chain() -> None:
        for _ in range(steps):
            torch.linalg.qr(z)

    return best_time(chain, device, 3)


def _markdown_row(row: dict) -> str:
    def fmt(value: float | None, spec: str, suffix: str = "") -> str:
        return "-" if value is None else f"{value:{spec}}{suffix}"

    return (
        f"| {row['cell']} | {row['hidden']} | {row['state']} | {row['dim']} | "
        f"{fmt(row['ours_s'], '.3f')} | {fmt(row['explicit_s'], '.3f')} | "
        f"{fmt(row['floor_s'], '.3f')} | {fmt(row['speedup_vs_explicit'], '.2f', 'x')} | "
        f"{fmt(row['ours_over_floor'], '.2f')} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hidden", type=int, nargs="+", default=None)
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=15)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--no-baseline", action="store_true", help="skip the explicit baseline")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    hiddens = args.hidden or ([64, 128, 256, 512] if device.type == "cuda" else [64, 128, 256])
    dtype = torch.float32
    torch.manual_seed(0)
    rate = matmul_rate(device, dtype)
    rows = []
    header = (
        "| cell | H | state | D | ours (s) | explicit J (s) | floor (s) | explicit/ours | "
        "ours/floor |\n|---|---|---|---|---|---|---|---|---|"
    )
    print(f"device={device} threads={torch.get_num_threads()} matmul={rate / 1e9:.0f} GFLOP/s")
    print(header)
    for cell in args.cells:
        cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
        for hidden in hiddens:
            model = cls(8, hidden, batch_first=True).to(device)
            x = torch.randn(args.batch, args.steps, 8, device=device)
            baseline = None
            if not args.no_baseline:
                baseline = best_time(
                    lambda m=model, x=x: explicit_jacobian_spectrum(m, x), device, args.repeats
                )
            states = ["h", "full"] if cell == "lstm" else ["h"]
            for state in states:
                dim = hidden * (2 if state == "full" else 1)
                ours = best_time(
                    lambda m=model, x=x, s=state: ol.lyapunov_spectrum(m, x, state=s, seed=0),
                    device,
                    args.repeats,
                )
                flops = 2 * args.batch * PRODUCTS[cell, state] * hidden * hidden * dim * args.steps
                floor = qr_floor(args.batch, dim, args.steps, device, dtype) + flops / rate
                base = baseline if state == "h" else None
                row = {
                    "cell": cell,
                    "hidden": hidden,
                    "state": state,
                    "dim": dim,
                    "ours_s": ours,
                    "explicit_s": base,
                    "floor_s": floor,
                    "speedup_vs_explicit": base / ours if base else None,
                    "ours_over_floor": ours / floor,
                }
                rows.append(row)
                print(_markdown_row(row))
    meta = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "steps": args.steps,
        "dtype": "float32",
        "matmul_gflops": rate / 1e9,
        "command": "python benchmarks/bench_spectrum.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"spectrum_{device.type}"
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [
        f"`{meta['command']}` ({meta['device_name']}, torch {meta['torch']}, "
        f"{meta['threads']} threads, matmul {rate / 1e9:.0f} GFLOP/s)",
        "",
        header,
    ]
    lines += [_markdown_row(r) for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
