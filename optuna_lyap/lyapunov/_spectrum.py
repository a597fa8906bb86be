"""The Lyapunov spectrum of a recurrent network driven by input sequences (Benettin/QR method).

Notation:
    ``B`` sequences of ``T`` steps with ``I`` features drive a network with state ``s_t`` of
    dimension ``D``; ``J_t = d s_{t+1} / d s_t``. ``Q`` is a ``B x D x k`` orthonormal basis.
    Each step ``Z = J_t Q``; every ``qr_interval`` steps ``Q, R = qr(Z)`` with the signs fixed so
    that ``diag(R) > 0``, and ``log R_ii`` is accumulated after the warm-up:
    ``lambda_i = sum_t log R_t[i, i] / (T - warmup)`` (natural log, per time step).

Conventions, and where they differ from the seed papers' code:

=============  ==========================================  ==================================
choice         here (default)                               seed code
=============  ==========================================  ==================================
state          every layer's ``h``, and ``c`` for LSTM      LSTM: ``h`` only, ``c`` held fixed
               (``state="h"`` is the seed's state)
product        forward ``J Q``                              ``J^T Q``: the exponents of the
                                                            reverse-order product (differ)
log            natural log per step                         log2 (bits per step)
precision      model dtype products (float32 for 16-bit     float32
               models), float64 accumulation
warm-up        first ``warmup`` inputs evolve state and     re-feeds the first inputs
               basis (with QR), not averaged                without QR
order          sorted descending                            unsorted
start          random orthonormal ``Q_0`` (seeded),         identity, zeros
               ``h0 = 0`` unless given
=============  ==========================================  ==================================
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn

from optuna_lyap._checks import check_int as _check_int
from optuna_lyap._random import caller_rng_kept, fresh_seed
from optuna_lyap._threads import limited_threads
from optuna_lyap.lyapunov._result import LyapunovSpectrum
from optuna_lyap.lyapunov._tangents import CellFn, CellTangent, StackedRNNTangent, Tangent

_BUILTIN_CELLS = (nn.RNNCell, nn.GRUCell, nn.LSTMCell)
_ACCEPTED = (
    "an nn.RNN, nn.GRU or nn.LSTM, a built-in cell (nn.RNNCell, nn.GRUCell, nn.LSTMCell), a "
    "module containing exactly one nn.RNNBase (the monitor and the sampler pick it out), or a "
    "custom cell step(state (B, D), x_t (B, I)) -> state (B, D) given with h0"
)
_FLUSH = 128  # QR diagonals buffered before their logs are summed in float64


def _check_inputs(inputs: object, n_features: int, layout: str) -> torch.Tensor:
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, but got {type(inputs).__name__}.")
    if inputs.dim() != 3:
        raise ValueError(
            f"inputs must be a 3-D tensor shaped {layout}, but got shape {tuple(inputs.shape)}."
        )
    if inputs.shape[-1] != n_features:
        raise ValueError(
            f"inputs must have {n_features} features in their last dimension ({layout}), "
            f"but got shape {tuple(inputs.shape)}."
        )
    if not inputs.is_floating_point():
        raise TypeError(f"inputs must be floating point, but got dtype {inputs.dtype}.")
    return inputs


def _builtin_cell_step(cell: nn.Module) -> tuple[CellFn, int]:
    """A ``step(state, x)`` for ``nn.RNNCell``/``nn.GRUCell``/``nn.LSTMCell`` and its ``D``."""
    hidden = int(cell.hidden_size)  # type: ignore[arg-type]
    if isinstance(cell, nn.LSTMCell):

        def lstm_step(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            h, c = cell(x, (s[:, :hidden], s[:, hidden:]))
            return torch.cat([h, c], dim=1)

        return lstm_step, 2 * hidden
    return (lambda s, x: cell(x, s)), hidden


def _rnn_tangent(
    model: nn.RNNBase,
    inputs: torch.Tensor,
    h0: object,
    state: str,
    dtype: torch.dtype,
) -> StackedRNNTangent:
    if model.bidirectional:
        raise ValueError(
            "bidirectional recurrent networks have no forward-in-time state map, so they have "
            "no Lyapunov spectrum; pass a unidirectional module (bidirectional=False)."
        )
    if not isinstance(model, (nn.RNN, nn.GRU, nn.LSTM)):
        raise TypeError(
            f"model must be nn.RNN, nn.GRU, nn.LSTM or a custom cell, but got "
            f"{type(model).__name__}."
        )
    layout = "(B, T, I)" if model.batch_first else "(T, B, I)"
    inputs = _check_inputs(inputs, model.input_size, layout)
    device = next(model.parameters()).device
    x = inputs.to(device=device, dtype=dtype)
    if model.batch_first:
        x = x.transpose(0, 1)
    batch = x.shape[1]
    p = model.proj_size if isinstance(model, nn.LSTM) and model.proj_size else model.hidden_size
    h_shape = (model.num_layers, batch, p)
    c_shape = (model.num_layers, batch, model.hidden_size)
    h_init: torch.Tensor
    c_init: torch.Tensor | None = None
    if isinstance(model, nn.LSTM):
        if h0 is None:
            h_init = torch.zeros(h_shape, device=device, dtype=dtype)
            c_init = torch.zeros(c_shape, device=device, dtype=dtype)
        elif isinstance(h0, (tuple, list)) and len(h0) == 2:
            h_init = torch.as_tensor(h0[0]).to(device=device, dtype=dtype)
            c_init = torch.as_tensor(h0[1]).to(device=device, dtype=dtype)
        else:
            raise ValueError(
                f"h0 for an nn.LSTM must be a tuple (h0 {h_shape}, c0 {c_shape}) or None, "
                f"but got {type(h0).__name__}."
            )
        if tuple(c_init.shape) != c_shape:
            raise ValueError(f"c0 must have shape {c_shape}, but got {tuple(c_init.shape)}.")
    else:
        if state == "h":
            state = "full"  # identical for RNN and GRU: h is the whole state
        h_init = (
            torch.zeros(h_shape, device=device, dtype=dtype)
            if h0 is None
            else torch.as_tensor(h0).to(device=device, dtype=dtype)
        )
    if tuple(h_init.shape) != h_shape:
        raise ValueError(f"h0 must have shape {h_shape}, but got {tuple(h_init.shape)}.")
    return StackedRNNTangent(model, x, h_init, c_init, state, dtype)


def _cell_tangent(
    step: CellFn,
    inputs: torch.Tensor,
    h0: object,
    dtype: torch.dtype | None,
) -> CellTangent:
    if h0 is None:
        raise ValueError(
            "A custom cell needs h0, a (B, D) tensor with the initial state; got h0=None. "
            f"The model must be {_ACCEPTED}."
        )
    if not isinstance(h0, torch.Tensor) or h0.dim() != 2:
        shape = tuple(h0.shape) if isinstance(h0, torch.Tensor) else type(h0).__name__
        raise ValueError(f"h0 for a custom cell must be a (B, D) tensor, but got {shape}.")
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs)
        raise ValueError(f"inputs for a custom cell must be (B, T, I), but got {shape}.")
    if inputs.shape[0] != h0.shape[0]:
        raise ValueError(
            f"inputs and h0 must have the same batch size B, but got inputs "
            f"{tuple(inputs.shape)} and h0 {tuple(h0.shape)}."
        )
    cell_dtype = dtype or h0.dtype
    return CellTangent(
        step,
        inputs.to(device=h0.device, dtype=cell_dtype),
        h0.to(dtype=cell_dtype),
        _iteration_dtype(cell_dtype),
    )


def _iteration_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the QR iteration for a network evaluated in ``dtype``: at least float32.

    QR is not implemented for 16-bit tensors, and a 16-bit basis (``eps`` 1e-3 to 8e-3) would
    lose every direction more than 3.5-5 nats per step below the largest.
    """
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


@contextlib.contextmanager
def _deterministic(model: object) -> Iterator[None]:
    """Evaluate ``model`` (an ``nn.Module``, or a method bound to one) in eval mode.

    Dropout and other training-mode behaviour are switched off for the computation; every
    submodule's ``training`` flag is restored afterwards, also when the computation raises.
    """
    owner = model if isinstance(model, nn.Module) else getattr(model, "__self__", None)
    if not isinstance(owner, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in owner.modules()]
    owner.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _initial_basis(
    batch: int, dim: int, k: int, seed: int | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Random orthonormal ``B x D x k`` bases, drawn in float64 on the CPU for reproducibility.

    Columns are drawn one after another, so for a given seed the first ``k`` columns do not
    depend on ``k``: a thin basis is exactly the start of the full one.
    """
    if seed is None:
        seed = fresh_seed()
    gen = torch.Generator().manual_seed(seed)
    columns = [torch.randn(batch, dim, generator=gen, dtype=torch.float64) for _ in range(k)]
    gauss = torch.stack(columns, dim=2)
    q, r = torch.linalg.qr(gauss)
    q = q * torch.sign(r.diagonal(dim1=-2, dim2=-1)).unsqueeze(-2)
    return q.to(device=device, dtype=dtype)


class _LogSum:
    """Per-sequence sums of ``log |R_ii|`` in float64.

    The ``|R_ii|`` of up to ``_FLUSH`` QRs are buffered in the iteration's dtype and their logs
    summed in float64 in one go, which keeps the per-step work to the product and the QR.
    """

    def __init__(self, batch: int, k: int, n_steps: int, device: torch.device, dtype: torch.dtype):
        self.total = torch.zeros(batch, k, device=device, dtype=torch.float64)
        self.pending = torch.empty(min(_FLUSH, n_steps), batch, k, device=device, dtype=dtype)
        self.n_pending = 0

    def add(self, diag: torch.Tensor) -> None:
        torch.abs(diag, out=self.pending[self.n_pending])
        self.n_pending += 1
        if self.n_pending == self.pending.shape[0]:
            self.flush()

    def flush(self) -> torch.Tensor:
        if self.n_pending:
            self.total += self.pending[: self.n_pending].to(torch.float64).log().sum(dim=0)
            self.n_pending = 0
        return self.total


def _orthonormalise(z: torch.Tensor, one: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``Q, diag(R)`` of ``z = Q R``, signs fixed so that ``diag(R) > 0``.

    ``|R_ii|`` does not depend on the signs, but ``Q`` then evolves continuously.
    """
    q, r = torch.linalg.qr(z)
    diag = r.diagonal(dim1=-2, dim2=-1)
    return q * torch.copysign(one, diag).unsqueeze(-2), diag


class _Resolution:
    """What one product of Jacobians between two QRs may span before precision is lost.

    After ``m`` products ``Z = J_m ... J_1 Q``, a column that shrank ``e^s`` times relative to
    the largest carries only the digits the largest leaves it: Householder QR recovers ``R_ii``
    to a relative error of about ``eps e^s``. So a block is accepted when, for every sequence,
    ``max_i log R_ii - min_i log R_ii <= spread`` (``spread = log(1/eps) / 2``: the smallest
    ``R_ii`` keeps half the digits, 8 nats in float32, 18 in float64), and when every ``R_ii``
    stays within ``e^(+-high)`` (``high = log(max) / 2``: far from overflow and underflow).
    """

    def __init__(self, dtype: torch.dtype) -> None:
        info = torch.finfo(dtype)
        self.spread = 0.5 * math.log(1.0 / info.eps)
        self.high = 0.5 * math.log(info.max)
        self.low = 0.5 * math.log(info.tiny)

    def accepts(self, stats: tuple[float, float, float] | None) -> bool:
        if stats is None:
            return True
        spread, high, low = stats
        return spread <= self.spread and high <= self.high and low >= self.low

    def next_interval(self, stats: tuple[float, float, float] | None, steps: int, cap: int) -> int:
        """The next block's length: half of what the last block's growth rates allow."""
        if stats is None:
            return min(cap, 2 * steps)
        if any(math.isnan(v) for v in stats):
            return 1
        spread, high, low = stats
        rates = (spread / steps, max(high, 0.0) / steps, max(-low, 0.0) / steps)
        limits = (self.spread, self.high, -self.low)
        allowed = min(
            (lim / r if r > 0 else math.inf) for lim, r in zip(limits, rates, strict=True)
        )
        wanted = 0.5 * allowed
        if wanted >= 2 * steps:
            return min(cap, 2 * steps)
        return max(1, min(cap, int(wanted)))


def _block_stats(logs: torch.Tensor, live: torch.Tensor) -> tuple[float, float, float] | None:
    """Largest per-sequence spread, largest and smallest of ``log R_ii`` over live sequences.

    ``logs`` is ``B x k`` (float64). Reads three numbers back to the host. NaN anywhere makes
    every statistic NaN; ``None`` when no sequence is live.
    """
    rows = logs[live]
    if rows.shape[0] == 0:
        return None
    top = rows.max(dim=1).values
    spread = (top - rows.min(dim=1).values).max()
    values = torch.stack([spread, top.max(), rows.min()])
    if bool(torch.isnan(rows).any()):
        values = torch.full_like(values, math.nan)
    spread_v, high_v, low_v = values.tolist()
    return spread_v, high_v, low_v


def _qr_chain(
    tangent: Tangent, k: int, warmup: int, qr_interval: int, seed: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the QR iteration; return per-sequence sums of ``log R_ii`` and a divergence mask.

    With ``qr_interval = 1`` everything stays on the tangent's device and nothing is read back
    to the host in the loop. With ``qr_interval > 1`` the products between two QRs are checked
    after each QR (three numbers read back) against the dtype's resolution
    (:class:`_Resolution`): a block that lost precision, overflowed or underflowed is redone
    with a QR after every step, and the next blocks are shortened to what the measured growth
    rates allow (never longer than ``qr_interval``). The result is then that of
    ``qr_interval = 1`` wherever the requested interval would have lost digits.
    """
    batch, device, dtype = tangent.batch, tangent.device, tangent.dtype
    n_steps = tangent.n_steps
    q = _initial_basis(batch, tangent.dim, k, seed, device, dtype)
    acc = _LogSum(batch, k, n_steps, device, dtype)
    one = torch.ones((), device=device, dtype=dtype)
    if qr_interval == 1:
        for t in range(n_steps):
            q, diag = _orthonormalise(tangent.apply(t, q), one)
            if t >= warmup:
                acc.add(diag)
    else:
        resolution = _Resolution(dtype)
        live = ~tangent.diverged
        interval, t = qr_interval, 0
        while t < n_steps:
            # No block straddles the end of the warm-up.
            stop = min(t + interval, warmup if t < warmup else n_steps)
            z = q
            for s in range(t, stop):
                z = tangent.apply(s, z)
            z_q, diag = _orthonormalise(z, one)
            stats = _block_stats(diag.abs().to(torch.float64).log(), live)
            if stop - t > 1 and not resolution.accepts(stats):
                block = torch.zeros(batch, k, device=device, dtype=torch.float64)
                for s in range(t, stop):
                    q, diag = _orthonormalise(tangent.apply(s, q), one)
                    if s >= warmup:
                        acc.add(diag)
                    block += diag.abs().to(torch.float64).log()
                stats = _block_stats(block, live)
            else:
                q = z_q
                if t >= warmup:
                    acc.add(diag)
            interval = resolution.next_interval(stats, stop - t, qr_interval)
            live = live & torch.isfinite(q).flatten(1).all(dim=1)
            t = stop
    log_sum = acc.flush()
    # A NaN or +inf product (a non-finite state, or an overflow at qr_interval = 1) poisons its
    # own sequence only: QR factorises each sequence's basis separately.
    bad = tangent.diverged | torch.isnan(log_sum).any(dim=1) | torch.isposinf(log_sum).any(dim=1)
    return log_sum, bad


def lyapunov_spectrum(
    model: nn.Module | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    *,
    k: int | None = None,
    warmup: int = 0,
    qr_interval: int = 1,
    state: str = "full",
    h0: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
    dtype: torch.dtype | None = None,
    seed: int | None = None,
) -> LyapunovSpectrum:
    """Estimate the Lyapunov spectrum of a recurrent network along input sequences.

    The network is treated as the input-driven map ``s_{t+1} = F(s_t, x_t)``. Jacobian-basis
    products are formed matrix-free (gate-wise scalings of ``W Q`` for the built-in modules,
    ``torch.func.jvp`` under ``vmap`` for a custom cell), batched over the ``B`` sequences, on
    the device the model lives on, with no host synchronisation inside the time loop.

    Args:
        model: An ``nn.RNN`` (tanh or relu), ``nn.GRU`` or ``nn.LSTM`` (any ``num_layers``,
            with or without bias, ``batch_first`` either way, ``proj_size`` supported, not
            bidirectional); an ``nn.RNNCell``/``nn.GRUCell``/``nn.LSTMCell`` (state ``[h, c]``
            for the LSTM cell); or a custom cell, any callable
            ``step(state (B, D), x_t (B, I)) -> state (B, D)``.
        inputs: The driving sequences: ``B x T x I`` if the model is ``batch_first`` or a cell,
            else ``T x B x I``. Moved to the model's device.
        k: Number of exponents (the leading ``k``; a thin basis costs less). ``None``: all ``D``.
        warmup: Initial steps that evolve the state and the basis (with QR) but are not
            averaged; must be ``< T``.
        qr_interval: Apply ``J`` at most this many times between QR factorisations. With
            ``> 1`` each block is checked after its QR against the dtype's resolution: a block
            whose smallest ``R_ii`` fell more than ``log(1/eps) / 2`` nats below the largest
            (8 in float32, 18 in float64), or that neared overflow or underflow, is redone with
            a QR every step, and later blocks are shortened accordingly; this reads three
            numbers back to the host per block. The result is that of ``qr_interval=1``
            wherever a longer interval would lose digits (see ``docs/spectrum.md``).
        state: ``"full"`` (every layer's ``h``, plus ``c`` for an LSTM: ``D = 2 L H``) or
            ``"h"`` (LSTM ``c`` held fixed: the seed papers' convention; the same as ``"full"``
            for RNN/GRU). Must be ``"full"`` for cells.
        h0: Initial state. Built-in modules: ``L x B x P`` (a tuple ``(h0, c0)`` for an LSTM);
            zeros if ``None``. Cells: a ``B x D`` tensor, required for a custom cell.
        dtype: ``torch.float32``, ``torch.float64`` or ``None``: the dtype of the Jacobian
            products and QR (the model's dtype if ``None``; float32 for a float16/bfloat16
            model, which is computed in a float32 copy because QR has no 16-bit kernel and a
            16-bit basis loses the small exponents). Log sums are always accumulated in
            float64. ``torch.float64`` computes everything in float64 (a float64 copy of the
            weights is used; the model is not modified). A custom cell is evaluated in this
            dtype (default: ``h0``'s); a 16-bit cell's products are converted to float32.
        seed: Seed of the random orthonormal initial basis (``None``: a fresh seed from the
            operating system's entropy). The basis is drawn from a generator of its own:
            torch's and numpy's global generators are left as they were, so measuring a network
            does not change the training around it.

    Returns:
        A :class:`LyapunovSpectrum` with ``exponents`` (``k``, descending, natural log per
        step), ``per_sequence`` (``B x k``) and ``stderr`` (``k``). Dropout is not applied:
        the spectrum is that of the deterministic network. An ``nn.Module`` (or a method
        bound to one) is evaluated in eval mode; every submodule's ``training`` flag is
        restored afterwards.

    Raises:
        TypeError: ``model`` is not a supported module or callable (an ``nn.Module`` that is
            neither recurrent nor holds an ``nn.RNNBase``, such as ``nn.Linear``, is refused
            unless ``h0`` makes it a custom cell), or ``inputs`` is no tensor.
        ValueError: bad shapes, ``warmup >= T``, ``k`` outside ``1..D``, a custom cell without
            ``h0``, an unknown ``state``, a ``dtype`` other than float32/float64, or a
            bidirectional module.
        RuntimeError: a custom callable draws random numbers while it is differentiated
            (e.g. dropout in training mode inside a closure): call ``.eval()`` on its modules.

    A sequence whose state or basis becomes non-finite does not raise: its row of
    ``per_sequence`` is NaN, ``diverged`` marks it, a ``RuntimeWarning`` is issued, and the
    remaining sequences are unaffected.

    Example:
        >>> import torch, optuna_lyap as ol
        >>> rnn = torch.nn.LSTM(3, 16, num_layers=2, batch_first=True)
        >>> spec = ol.lyapunov_spectrum(rnn, torch.randn(8, 50, 3), warmup=10, seed=0)
        >>> spec.exponents.shape
        torch.Size([64])
    """
    if state not in ("full", "h"):
        raise ValueError(f"state must be 'full' or 'h', but got {state=!r}.")
    if dtype is not None and dtype not in (torch.float32, torch.float64):
        raise ValueError(
            "dtype must be torch.float32, torch.float64 or None (a 16-bit model is computed in "
            f"float32 by default), but got {dtype=}."
        )
    _check_int("qr_interval", qr_interval, 1)
    _check_int("warmup", warmup, 0)
    if seed is not None:
        _check_int("seed", seed, 0)

    tangent: Tangent
    with torch.no_grad(), limited_threads(), caller_rng_kept(), _deterministic(model):
        if isinstance(model, nn.RNNBase):
            model_dtype = _iteration_dtype(next(model.parameters()).dtype)
            tangent = _rnn_tangent(model, inputs, h0, state, dtype or model_dtype)
        elif isinstance(model, _BUILTIN_CELLS) or callable(model):
            if state != "full":
                raise ValueError(
                    f"state='h' applies to nn.LSTM modules only; a cell's state is what it "
                    f"returns, so use state='full' (got {state=!r})."
                )
            if isinstance(model, _BUILTIN_CELLS):
                params = next(model.parameters())
                cell_dtype = dtype or _iteration_dtype(params.dtype)
                if cell_dtype != params.dtype:
                    model = copy.deepcopy(model).to(cell_dtype)  # leave the caller's cell as is
                step, dim = _builtin_cell_step(model)
                _check_inputs(inputs, int(model.input_size), "(B, T, I)")
                if h0 is None:
                    h0 = torch.zeros(inputs.shape[0], dim, device=params.device, dtype=cell_dtype)
                tangent = _cell_tangent(step, inputs, h0, cell_dtype)
            else:
                if h0 is None and isinstance(model, nn.Module):
                    inner = [m for m in model.modules() if isinstance(m, nn.RNNBase)]
                    if inner:
                        raise TypeError(
                            f"{type(model).__name__} is not a recurrent module but contains "
                            f"{type(inner[0]).__name__}: pass that module (e.g. model.rnn) and "
                            "the inputs it receives, or give h0 to treat the module as a "
                            "custom cell step(state, x) -> state."
                        )
                    raise TypeError(
                        f"{type(model).__name__} is neither a recurrent module nor a cell. The "
                        f"model must be {_ACCEPTED}; a custom cell also needs h0."
                    )
                tangent = _cell_tangent(model, inputs, h0, dtype)
        else:
            raise TypeError(
                "model must be nn.RNN, nn.GRU, nn.LSTM, nn.RNNCell, nn.GRUCell, nn.LSTMCell or "
                f"a callable step(state, x) -> state, but got {type(model).__name__}."
            )

        n_steps = tangent.n_steps
        if n_steps < 1:
            raise ValueError(f"inputs must have at least one time step, but got T={n_steps}.")
        if warmup >= n_steps:
            raise ValueError(
                f"warmup must be smaller than the number of time steps T={n_steps}, "
                f"but got {warmup=}."
            )
        k = tangent.dim if k is None else _check_int("k", k, 1, tangent.dim)
        log_sum, bad = _qr_chain(tangent, k, warmup, qr_interval, seed)

    per_sequence = log_sum / (n_steps - warmup)
    # Sort each sequence's exponents; a diverged sequence's row is overwritten with NaN anyway.
    no_nan = torch.where(torch.isnan(per_sequence), -math.inf, per_sequence)
    ordered = torch.sort(no_nan, dim=1, descending=True)
    result = LyapunovSpectrum.from_per_sequence(ordered.values, bad, tangent.dim)
    n_bad = int(result.diverged.sum())
    if n_bad:
        warnings.warn(
            f"{n_bad} of {tangent.batch} input sequences drove the network to non-finite "
            "states or tangents; their exponents are NaN and the mean uses the others.",
            RuntimeWarning,
            stacklevel=2,
        )
    return result
