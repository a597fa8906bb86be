"""Time ``lyapunov_spectrum`` against an explicit-Jacobian baseline and the QR + matmul floor.

Settings follow the seed papers' measurements: B = 15 sequences, T = 100 steps, the full
spectrum, QR every step, float32, one layer. For each cell and hidden size the table shows:

- ``ours``: ``optuna_lyap.lyapunov_spectrum`` (best of ``--repeats`` warm calls);
- ``explicit``: a baseline that builds ``J_t`` every step with ``diag_embed`` products and
  iterates ``Q <- qr(J^T Q)`` the way the seed code does (state ``h`` only);
- ``floor``: the measured time of the same T batched QRs plus the matrix-product FLOPs the
  engine does (``PRODUCTS``) at the machine's measured batched-matmul rate. It leaves out the
  elementwise work of building the Jacobian blocks.

``--cells custom`` adds a custom tanh cell ``h' = tanh(W [h, x] + b)`` (``D = H``) passed as a
callable ``step(state, x)``, the path every user-written cell takes.

``--suite classic`` times instead four classic maps given as custom cells (Hénon, the
logistic map at r = 4, the Lorenz system and Lorenz-96 with N = 40, F = 8, both as RK4 maps
with dt = 0.01) against a plain NumPy QR loop written here with the analytic Jacobian, on the
same trajectories in the same run, and prints the exponents beside published values. Both
run in float64 and the flows' exponents are reported per unit time (per step / dt).

Usage::

    python -m benchmarks.speed.bench_spectrum                  # CPU table, H = 64, 128, 256
    python -m benchmarks.speed.bench_spectrum --device cuda    # the same on a GPU, H up to 512
    python -m benchmarks.speed.bench_spectrum --suite classic  # classic maps against NumPy

Results are printed and saved to ``benchmarks/results/bench_spectrum/<commit>/spectrum_<device>.
{json,md}`` (classic:
``spectrum_classic_<device>``; ``--stem`` overrides the file name).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

import optuna_lyap as ol
from benchmarks.lyapbench import runs as runfiles

RESULTS = runfiles.results_dir("bench_spectrum")
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


def explicit_jacobian_spectrum(
    model: nn.RNNBase, inputs: torch.Tensor, transpose: bool = True
) -> torch.Tensor:
    """The baseline: build each ``J_t`` (``B x H x H``) with ``diag_embed``, then ``qr(J^T Q)``.

    Covers one-layer RNN/GRU/LSTM with the state ``h`` (LSTM ``c`` held fixed), starting from
    ``Q_0 = I`` as the seed code does. ``transpose=False`` iterates the forward ``qr(J Q)``
    instead. Returns the ``B x H`` exponents (natural log, unsorted).
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
            q, r_mat = torch.linalg.qr((jac.transpose(1, 2) if transpose else jac) @ q)
            diag = r_mat.diagonal(dim1=1, dim2=2)
            q = q * diag.sign().unsqueeze(1)
            log_sum += diag.abs().log().double()
    return log_sum / steps


class TanhCell(nn.Module):
    """A custom cell ``h' = tanh(W [h, x] + b)``, with recurrent gain ``gain``."""

    def __init__(self, n_in: int, hidden: int, gain: float = 1.2) -> None:
        super().__init__()
        self.lin = nn.Linear(n_in + hidden, hidden)
        with torch.no_grad():
            self.lin.weight.normal_(0.0, gain / math.sqrt(hidden))

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(torch.cat([h, x], dim=1)))


# --- Classic maps -------------------------------------------------------------------------


@dataclass
class Classic:
    """A classic map as a custom cell and as NumPy functions with its analytic Jacobian.

    ``step_np(s)`` and ``jac_np(s)`` take ``B x D`` states; ``jac_np`` returns ``B x D x D``.
    ``scale`` converts exponents per step to the published unit (``1 / dt`` for flows).
    """

    name: str
    cell: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    step_np: Callable[[np.ndarray], np.ndarray]
    jac_np: Callable[[np.ndarray], np.ndarray]
    h0: np.ndarray
    steps: int
    warmup: int
    scale: float
    published: str
    published_values: list[float]


def _rk4_np(
    f: Callable[[np.ndarray], np.ndarray], df: Callable[[np.ndarray], np.ndarray], dt: float
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """One RK4 step of ``ds/dt = f(s)`` and its exact Jacobian (the chain rule through stages)."""

    def step(s: np.ndarray) -> np.ndarray:
        k1 = f(s)
        k2 = f(s + 0.5 * dt * k1)
        k3 = f(s + 0.5 * dt * k2)
        k4 = f(s + dt * k3)
        return s + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    def jac(s: np.ndarray) -> np.ndarray:
        eye = np.eye(s.shape[1])
        k1 = f(s)
        d1 = df(s)
        s2 = s + 0.5 * dt * k1
        k2, d2 = f(s2), df(s2) @ (eye + 0.5 * dt * d1)
        s3 = s + 0.5 * dt * k2
        k3, d3 = f(s3), df(s3) @ (eye + 0.5 * dt * d2)
        d4 = df(s + dt * k3) @ (eye + dt * d3)
        return eye + dt / 6.0 * (d1 + 2.0 * d2 + 2.0 * d3 + d4)

    return step, jac


def _rk4_torch(
    f: Callable[[torch.Tensor], torch.Tensor], dt: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def cell(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        k1 = f(s)
        k2 = f(s + 0.5 * dt * k1)
        k3 = f(s + 0.5 * dt * k2)
        k4 = f(s + dt * k3)
        return s + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    return cell


def _spin_up(step: Callable[[np.ndarray], np.ndarray], s: np.ndarray, n: int) -> np.ndarray:
    for _ in range(n):
        s = step(s)
    return s


def classic_systems(batch_scale: int = 1) -> list[Classic]:
    """Hénon, logistic (r = 4), Lorenz RK4 and Lorenz-96 RK4, each with its starting states."""
    rng = np.random.default_rng(0)
    a, b = 1.4, 0.3

    def henon_np(s: np.ndarray) -> np.ndarray:
        return np.stack([1.0 - a * s[:, 0] ** 2 + s[:, 1], b * s[:, 0]], axis=1)

    def henon_jac(s: np.ndarray) -> np.ndarray:
        j = np.zeros((s.shape[0], 2, 2))
        j[:, 0, 0], j[:, 0, 1], j[:, 1, 0] = -2.0 * a * s[:, 0], 1.0, b
        return j

    def henon(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([1.0 - a * s[:, 0] ** 2 + s[:, 1], b * s[:, 0]], dim=1)

    def logistic_np(s: np.ndarray) -> np.ndarray:
        return 4.0 * s * (1.0 - s)

    def logistic_jac(s: np.ndarray) -> np.ndarray:
        return (4.0 - 8.0 * s)[:, :, None]

    def logistic(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return 4.0 * s * (1.0 - s)

    sigma, rho, beta, dt = 10.0, 28.0, 8.0 / 3.0, 0.01

    def lorenz_f(s: np.ndarray) -> np.ndarray:
        x, y, z = s[:, 0], s[:, 1], s[:, 2]
        return np.stack([sigma * (y - x), x * (rho - z) - y, x * y - beta * z], axis=1)

    def lorenz_df(s: np.ndarray) -> np.ndarray:
        x, y, z = s[:, 0], s[:, 1], s[:, 2]
        j = np.zeros((s.shape[0], 3, 3))
        j[:, 0, 0], j[:, 0, 1] = -sigma, sigma
        j[:, 1, 0], j[:, 1, 1], j[:, 1, 2] = rho - z, -1.0, -x
        j[:, 2, 0], j[:, 2, 1], j[:, 2, 2] = y, x, -beta
        return j

    def lorenz_t(s: torch.Tensor) -> torch.Tensor:
        x, y, z = s[:, 0], s[:, 1], s[:, 2]
        return torch.stack([sigma * (y - x), x * (rho - z) - y, x * y - beta * z], dim=1)

    n96, forcing = 40, 8.0

    def l96_f(s: np.ndarray) -> np.ndarray:
        return (
            (np.roll(s, -1, axis=1) - np.roll(s, 2, axis=1)) * np.roll(s, 1, axis=1) - s + forcing
        )

    def l96_df(s: np.ndarray) -> np.ndarray:
        j = np.zeros((s.shape[0], n96, n96))
        i = np.arange(n96)
        # d f_i / d x_{i+1} = x_{i-1}; d / d x_{i-2} = -x_{i-1}; d / d x_{i-1} = x_{i+1} - x_{i-2}
        j[:, i, (i + 1) % n96] = np.roll(s, 1, axis=1)
        j[:, i, (i - 2) % n96] = -np.roll(s, 1, axis=1)
        j[:, i, (i - 1) % n96] = np.roll(s, -1, axis=1) - np.roll(s, 2, axis=1)
        j[:, i, i] = -1.0
        return j

    def l96_t(s: torch.Tensor) -> torch.Tensor:
        return (s.roll(-1, dims=1) - s.roll(2, dims=1)) * s.roll(1, dims=1) - s + forcing

    lorenz_step, lorenz_jac = _rk4_np(lorenz_f, lorenz_df, dt)
    l96_step, l96_jac = _rk4_np(l96_f, l96_df, dt)
    n_henon, n_lorenz, n_l96 = 8 * batch_scale, 16 * batch_scale, 4 * batch_scale
    return [
        Classic(
            "Hénon (a=1.4, b=0.3)",
            henon,
            henon_np,
            henon_jac,
            _spin_up(henon_np, 0.1 * rng.random((n_henon, 2)), 100),
            3000,
            100,
            1.0,
            "0.41922, -1.62319 (Sprott 2003; sum = ln 0.3)",
            [0.41922, -1.62319],
        ),
        Classic(
            "logistic (r=4)",
            logistic,
            logistic_np,
            logistic_jac,
            0.05 + 0.9 * rng.random((n_henon, 1)),
            3000,
            100,
            1.0,
            "ln 2 = 0.693147 (exact)",
            [math.log(2.0)],
        ),
        Classic(
            "Lorenz RK4 (dt=0.01), per unit time",
            _rk4_torch(lorenz_t, dt),
            lorenz_step,
            lorenz_jac,
            _spin_up(lorenz_step, rng.normal(0.0, 5.0, (n_lorenz, 3)) + [0.0, 0.0, 25.0], 1000),
            5000,
            500,
            1.0 / dt,
            "0.9056, 0, -14.5723 (Sprott 2003)",
            [0.9056, 0.0, -14.5723],
        ),
        Classic(
            "Lorenz-96 N=40 F=8 RK4 (dt=0.01), per unit time",
            _rk4_torch(l96_t, dt),
            l96_step,
            l96_jac,
            _spin_up(l96_step, forcing + rng.normal(0.0, 0.1, (n_l96, n96)), 2000),
            3000,
            1000,
            1.0 / dt,
            "sum = -40 (the flow's divergence, exact)",
            [],
        ),
    ]


def numpy_spectrum(system: Classic) -> np.ndarray:
    """The plain loop: ``Q <- qr(J_t Q)`` with the analytic Jacobian, batched over sequences.

    Returns the ``B x D`` exponents per step (natural log, descending within each sequence).
    """
    s = system.h0.copy()
    batch, dim = s.shape
    q = np.broadcast_to(np.eye(dim), (batch, dim, dim)).copy()
    total = np.zeros((batch, dim))
    for t in range(system.steps):
        jac = system.jac_np(s)
        s = system.step_np(s)
        q, r = np.linalg.qr(jac @ q)
        diag = np.diagonal(r, axis1=1, axis2=2)
        q = q * np.sign(diag)[:, None, :]
        if t >= system.warmup:
            total += np.log(np.abs(diag))
    return -np.sort(-total / (system.steps - system.warmup), axis=1)


def _fmt_values(values: np.ndarray | list[float], limit: int = 3) -> str:
    shown = ", ".join(f"{v:.4f}" for v in list(values)[:limit])
    return shown + (", ..." if len(values) > limit else "")


def run_classic(args: argparse.Namespace) -> tuple[list[dict], str]:
    header = (
        "| system | B | T | D | engine (s) | NumPy loop (s) | engine/NumPy | engine exponents | "
        "NumPy exponents | sum (engine) | published |\n" + "|---" * 11 + "|"
    )
    print(header)
    rows = []
    for system in classic_systems():
        batch, dim = system.h0.shape
        h0 = torch.from_numpy(system.h0)
        inputs = torch.zeros(batch, system.steps, 1, dtype=torch.float64)

        def ours(
            system: Classic = system, h0: torch.Tensor = h0, inputs: torch.Tensor = inputs
        ) -> object:
            return ol.lyapunov_spectrum(system.cell, inputs, h0=h0, warmup=system.warmup, seed=0)

        spec = ours()
        assert isinstance(spec, ol.LyapunovSpectrum)
        engine_s = best_time(ours, torch.device("cpu"), args.repeats)
        start = time.perf_counter()
        reference = numpy_spectrum(system)
        numpy_s = time.perf_counter() - start
        for _ in range(args.repeats - 1):
            start = time.perf_counter()
            numpy_spectrum(system)
            numpy_s = min(numpy_s, time.perf_counter() - start)
        engine_values = spec.exponents.numpy() * system.scale
        numpy_values = reference.mean(axis=0) * system.scale
        row = {
            "system": system.name,
            "batch": batch,
            "steps": system.steps,
            "warmup": system.warmup,
            "dim": dim,
            "engine_s": engine_s,
            "numpy_s": numpy_s,
            "engine_over_numpy": engine_s / numpy_s,
            "engine": engine_values.tolist(),
            "numpy": numpy_values.tolist(),
            "engine_sum": float(engine_values.sum()),
            "numpy_sum": float(numpy_values.sum()),
            "published": system.published,
            "published_values": system.published_values,
        }
        rows.append(row)
        print(_classic_row(row))
    return rows, header


def _classic_row(row: dict) -> str:
    return (
        f"| {row['system']} | {row['batch']} | {row['steps']} | {row['dim']} | "
        f"{row['engine_s']:.3f} | {row['numpy_s']:.3f} | {row['engine_over_numpy']:.2f}x | "
        f"{_fmt_values(row['engine'])} | {_fmt_values(row['numpy'])} | "
        f"{row['engine_sum']:.4f} | {row['published']} |"
    )


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


def run_rnn(args: argparse.Namespace, device: torch.device) -> tuple[list[dict], str, float]:
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
        for hidden in hiddens:
            x = torch.randn(args.batch, args.steps, 8, device=device)
            baseline = None
            if cell == "custom":
                step = TanhCell(8, hidden).to(device)
                h0 = torch.zeros(args.batch, hidden, device=device)
                states = ["h"]
            else:
                cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
                model = cls(8, hidden, batch_first=True).to(device)
                if not args.no_baseline:
                    baseline = best_time(
                        lambda m=model, x=x: explicit_jacobian_spectrum(m, x), device, args.repeats
                    )
                states = ["h", "full"] if cell == "lstm" else ["h"]
            for state in states:
                dim = hidden * (2 if state == "full" else 1)
                if cell == "custom":
                    fn = lambda c=step, x=x, h=h0: ol.lyapunov_spectrum(c, x, h0=h, seed=0)  # noqa: E731
                else:
                    fn = lambda m=model, x=x, s=state: ol.lyapunov_spectrum(m, x, state=s, seed=0)  # noqa: E731
                ours = best_time(fn, device, args.repeats)
                products = PRODUCTS[("rnn" if cell == "custom" else cell), state]
                flops = 2 * args.batch * products * hidden * hidden * dim * args.steps
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
    return rows, header, rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", choices=["rnn", "classic"], default="rnn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--hidden", type=int, nargs="+", default=None)
    parser.add_argument(
        "--cells",
        nargs="+",
        default=["lstm", "gru", "rnn"],
        choices=["lstm", "gru", "rnn", "custom"],
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=15)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--no-baseline", action="store_true", help="skip the explicit baseline")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--stem", default=None, help="results file name, without suffix")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rate = None
    if args.suite == "classic":
        if device.type != "cpu":
            parser.error("--suite classic compares against NumPy on the CPU; use --device cpu")
        rows, header = run_classic(args)
        format_row = _classic_row
        stem = RESULTS / (args.stem or f"spectrum_classic_{device.type}")
    else:
        rows, header, rate = run_rnn(args, device)
        format_row = _markdown_row
        stem = RESULTS / (args.stem or f"spectrum_{device.type}")
    command = runfiles.command_line("benchmarks.speed.bench_spectrum")
    meta = {
        **runfiles.metadata(command),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "suite": args.suite,
    }
    if args.suite == "rnn":
        assert rate is not None
        meta.update(batch=args.batch, steps=args.steps, dtype="float32", matmul_gflops=rate / 1e9)
    else:
        meta.update(dtype="float64", numpy=np.__version__)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    speed = f", matmul {rate / 1e9:.0f} GFLOP/s" if rate else ""
    lines = [
        f"`{meta['command']}` ({meta['device_name']}, torch {meta['torch']}, "
        f"{meta['threads']} threads{speed})",
        "",
        header,
    ]
    lines += [format_row(r) for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
