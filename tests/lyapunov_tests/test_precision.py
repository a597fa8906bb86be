"""Precision: products between QRs (``qr_interval > 1``) and 16-bit models."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import optuna_lyap as ol
from optuna_lyap.lyapunov import _spectrum


def _count_qrs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = _spectrum._orthonormalise

    def counting(z: torch.Tensor, one: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls[0] += 1
        return original(z, one)

    monkeypatch.setattr(_spectrum, "_orthonormalise", counting)
    return calls


def _contracting_rnn() -> nn.RNN:
    torch.manual_seed(0)
    rnn = nn.RNN(2, 8, batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.mul_(0.02)
    return rnn


@pytest.mark.parametrize(
    ("name", "dtype", "qr_interval"),
    [("lstm", torch.float32, 5), ("lstm2", torch.float64, 10), ("contracting", torch.float32, 40)],
)
def test_long_qr_interval_keeps_every_exponent(name: str, dtype: torch.dtype, qr_interval: int):
    """Blocks that lost the small directions are redone: the result is QR-every-step's.

    Before: float32 ``qr_interval=5`` put a 1-layer LSTM's smallest exponents 2.7 nats off,
    float64 ``qr_interval=10`` a 2-layer LSTM's 1.56 nats off, and a contracting RNN at
    ``qr_interval=40`` gave all exponents -inf, all without a warning.
    """
    torch.manual_seed(0)
    if name == "contracting":
        model, x = _contracting_rnn(), torch.randn(3, 200, 2)
    else:
        layers = 2 if name == "lstm2" else 1
        model, x = nn.LSTM(4, 16, num_layers=layers, batch_first=True), torch.randn(5, 100, 4)
    model = model.to(dtype)
    reference = ol.lyapunov_spectrum(model, x, seed=0, dtype=torch.float64)
    every = ol.lyapunov_spectrum(model, x, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sparse = ol.lyapunov_spectrum(model, x, seed=0, qr_interval=qr_interval)
    assert not sparse.diverged.any()
    assert torch.isfinite(sparse.exponents).all()
    torch.testing.assert_close(sparse.exponents, reference.exponents, rtol=0, atol=1e-3)
    torch.testing.assert_close(sparse.per_sequence, every.per_sequence, rtol=0, atol=1e-3)


def test_safe_qr_interval_is_kept(monkeypatch: pytest.MonkeyPatch):
    """A map whose exponents are all equal never loses digits: one QR per block of 10."""
    torch.manual_seed(0)
    w = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0] * 0.9
    x, h0 = torch.zeros(2, 200, 1, dtype=torch.float64), torch.ones(2, 6, dtype=torch.float64)
    calls = _count_qrs(monkeypatch)
    spec = ol.lyapunov_spectrum(lambda s, xt: s @ w.T, x, h0=h0, qr_interval=10, seed=0)
    assert calls[0] == 20
    torch.testing.assert_close(
        spec.exponents, torch.full((6,), math.log(0.9), dtype=torch.float64), rtol=0, atol=1e-12
    )


def test_interval_shrinks_to_what_the_spread_allows(monkeypatch: pytest.MonkeyPatch):
    """Exponents 0 and -3 nats per step: float64 keeps 18 nats, so blocks of at most 6 steps;
    the adaptive rule settles at half of that and the result is exact."""
    w = torch.diag(torch.tensor([1.0, math.exp(-3.0)], dtype=torch.float64))
    x, h0 = torch.zeros(1, 300, 1, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
    every = ol.lyapunov_spectrum(lambda s, xt: s @ w.T, x, h0=h0, seed=0)
    calls = _count_qrs(monkeypatch)
    spec = ol.lyapunov_spectrum(lambda s, xt: s @ w.T, x, h0=h0, qr_interval=50, seed=0)
    torch.testing.assert_close(spec.exponents, every.exponents, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        spec.exponents, torch.tensor([0.0, -3.0], dtype=torch.float64), rtol=0, atol=1e-3
    )
    assert 300 / 3 <= calls[0] <= 300 / 3 + 60  # blocks of 3 after the first, redone one


def test_dead_direction_at_long_interval_is_minus_inf_not_divergence():
    rnn = nn.RNN(1, 3, nonlinearity="relu", bias=False, batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(torch.diag(torch.tensor([0.5, -1.0, -1.0])))
        rnn.weight_ih_l0.fill_(1.0)
    x = torch.ones(2, 40, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = ol.lyapunov_spectrum(rnn, x, warmup=2, seed=0, qr_interval=8)
    assert not spec.diverged.any()
    assert spec.exponents[0] == pytest.approx(math.log(0.5), abs=1e-6)
    assert spec.exponents[1:].tolist() == [-math.inf, -math.inf]


def test_real_divergence_at_long_interval_is_still_flagged():
    rnn = nn.RNN(1, 4, nonlinearity="relu", bias=False, batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(2.0 * torch.eye(4) + 0.1)
        rnn.weight_ih_l0.fill_(1.0)
    x = torch.rand(3, 40, 1, generator=torch.Generator().manual_seed(0))
    x[1] = 1e37
    with pytest.warns(RuntimeWarning, match="1 of 3"):
        spec = ol.lyapunov_spectrum(rnn, x, seed=0, qr_interval=6)
    assert spec.diverged.tolist() == [False, True, False]
    with pytest.warns(RuntimeWarning, match="1 of 3"):
        every = ol.lyapunov_spectrum(rnn, x, seed=0)
    torch.testing.assert_close(
        spec.per_sequence, every.per_sequence, rtol=0, atol=1e-4, equal_nan=True
    )


# --- 16-bit models ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", ["lstm", "gru_cell"])
def test_16bit_model_is_computed_in_float32(dtype: torch.dtype, kind: str):
    torch.manual_seed(0)
    model = nn.LSTM(3, 8, batch_first=True) if kind == "lstm" else nn.GRUCell(3, 8)
    model = model.to(dtype)
    x = torch.randn(4, 20, 3)
    spec = ol.lyapunov_spectrum(model, x.to(dtype), seed=0)
    assert torch.isfinite(spec.exponents).all()
    assert spec.exponents.dtype == torch.float64
    # Upcasting the weights is exact: the same as the float32 copy of the model.
    as_float = ol.lyapunov_spectrum(model.float(), x.to(dtype).float(), seed=0)
    torch.testing.assert_close(spec.per_sequence, as_float.per_sequence, rtol=0, atol=0)
    assert next(model.parameters()).dtype == torch.float32  # .float() above, not the engine


def test_16bit_model_is_not_modified():
    model = nn.GRU(3, 8, batch_first=True).half()
    ol.lyapunov_spectrum(model, torch.randn(2, 10, 3), seed=0)
    assert all(p.dtype == torch.float16 for p in model.parameters())


def test_16bit_custom_cell_runs_its_own_dtype_and_qr_in_float32():
    torch.manual_seed(0)
    lin = nn.Linear(8 + 3, 8).to(torch.bfloat16)
    x, h0 = torch.randn(3, 30, 3), torch.zeros(3, 8)

    def cell(h: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        return torch.tanh(lin(torch.cat([h, xt], dim=1)))

    spec = ol.lyapunov_spectrum(cell, x.bfloat16(), h0=h0.bfloat16(), seed=0)
    assert torch.isfinite(spec.exponents).all()
    lin.float()
    exact = ol.lyapunov_spectrum(cell, x.bfloat16().float(), h0=h0, seed=0)
    # bfloat16 products carry ~3 significant digits.
    torch.testing.assert_close(spec.exponents, exact.exponents, rtol=0, atol=0.1)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16bit_dtype_argument_is_refused_by_name(dtype: torch.dtype):
    name = str(dtype)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        ol.lyapunov_spectrum(nn.GRU(3, 4, batch_first=True), torch.randn(2, 5, 3), dtype=dtype)


def test_next_interval_follows_each_limit():
    res = _spectrum._Resolution(torch.float32)  # spread 7.97, high 44.4, low -43.7 nats
    assert res.next_interval((0.0, 0.0, 0.0), 5, 100) == 10  # nothing grows: double
    assert res.next_interval((0.0, 0.0, 0.0), 5, 7) == 7  # never above qr_interval
    assert res.next_interval((4.0, 0.0, -4.0), 1, 100) == 1  # 8 nats of spread per step
    assert res.next_interval((0.0, -40.0, -40.0), 5, 100) == 2  # underflow: 8 nats per step
    assert res.next_interval((0.0, 40.0, 40.0), 5, 100) == 2  # overflow: 8 nats per step
    assert res.next_interval((math.inf, 0.0, -math.inf), 4, 100) == 1  # a dead direction
    assert res.next_interval((math.nan, math.nan, math.nan), 4, 100) == 1
    assert res.next_interval(None, 4, 100) == 8  # no live sequence
