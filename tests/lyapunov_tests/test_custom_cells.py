"""Custom cells: formed Jacobians against column-wise products, classic maps, randomness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import optuna_lyap as ol
from optuna_lyap.lyapunov import _tangents

HENON_A, HENON_B = 1.4, 0.3


def henon(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The Hénon map (a = 1.4, b = 0.3) as a cell; the input is ignored."""
    return torch.stack([1.0 - HENON_A * s[:, 0] ** 2 + s[:, 1], HENON_B * s[:, 0]], dim=1)


class TanhCell(nn.Module):
    def __init__(self, n_in: int, n_hidden: int, gain: float = 1.5) -> None:
        super().__init__()
        self.lin = nn.Linear(n_in + n_hidden, n_hidden)
        with torch.no_grad():
            self.lin.weight.mul_(gain * math.sqrt(n_hidden) / 2)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(torch.cat([h, x], dim=1)))


def _force_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tangents, "FULL_JACOBIAN_MAX_DIM", 0)
    monkeypatch.setattr(_tangents, "FULL_JACOBIAN_WIDE_DIM", 0)


@pytest.mark.parametrize("k", [None, 3])
@pytest.mark.parametrize("qr_interval", [1, 3])
def test_formed_jacobians_match_column_products(
    monkeypatch: pytest.MonkeyPatch, k: int | None, qr_interval: int
):
    torch.manual_seed(0)
    cell = TanhCell(2, 6).double()
    x, h0 = torch.randn(3, 40, 2, dtype=torch.float64), torch.zeros(3, 6, dtype=torch.float64)
    assert _tangents.uses_full_jacobian(6, k or 6)
    formed = ol.lyapunov_spectrum(cell, x, h0=h0, k=k, qr_interval=qr_interval, seed=1)
    # One step per chunk: chunk boundaries (and a redone block crossing them) change nothing.
    monkeypatch.setattr(_tangents, "JACOBIAN_CHUNK_ELEMENTS", 1)
    chunked = ol.lyapunov_spectrum(cell, x, h0=h0, k=k, qr_interval=qr_interval, seed=1)
    _force_columns(monkeypatch)
    assert not _tangents.uses_full_jacobian(6, k or 6)
    columns = ol.lyapunov_spectrum(cell, x, h0=h0, k=k, qr_interval=qr_interval, seed=1)
    torch.testing.assert_close(formed.per_sequence, columns.per_sequence, rtol=0, atol=1e-12)
    torch.testing.assert_close(chunked.per_sequence, columns.per_sequence, rtol=0, atol=1e-12)


def test_full_jacobian_rule():
    assert _tangents.uses_full_jacobian(32, 1)
    assert _tangents.uses_full_jacobian(64, 16)
    assert not _tangents.uses_full_jacobian(64, 15)
    assert not _tangents.uses_full_jacobian(128, 128)


def test_henon_map_matches_published_exponent_and_sum_rule():
    # Published: lambda_1 = 0.41922 (Sprott, "Chaos and Time-Series Analysis", 2003); the sum
    # is exactly log(b) per step, since |det J| = b everywhere.
    h0 = torch.full((4, 2), 0.1, dtype=torch.float64) + 0.01 * torch.arange(4.0)[:, None]
    spec = ol.lyapunov_spectrum(henon, torch.zeros(4, 4000, 1), h0=h0, warmup=200, seed=0)
    assert spec.max == pytest.approx(0.41922, abs=0.01)
    assert float(spec.exponents.sum()) == pytest.approx(math.log(HENON_B), abs=1e-12)


# --- The forward product, not the transposed one (docs/spectrum.md, "Conventions") ----------


def _three_matrices() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(3, 2, 2))


def test_forward_exponents_of_a_cycle_of_three_matrices():
    """``s_{t+1} = M_{t mod 3} s_t`` with M = A, B, C: exponents ``log|eig(C B A)| / 3``.

    The transposed chain ``Q <- J^T Q`` of the seed code measures ``log|eig(A B C)| / 3``
    instead: here a complex pair at -0.4246, against 0.0286 and -0.8777 forward.
    """
    mats = _three_matrices()
    a, b, c = mats
    forward = np.sort(np.log(np.abs(np.linalg.eigvals(c @ b @ a))) / 3)[::-1]
    transposed = np.log(np.abs(np.linalg.eigvals(a @ b @ c))) / 3
    assert forward == pytest.approx([0.02856, -0.87771], abs=1e-5)
    assert transposed == pytest.approx([-0.42457, -0.42457], abs=1e-5)

    weights = torch.from_numpy(mats)

    def cycle(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        m = torch.einsum("bj,jkl->bkl", x, weights)  # x is one-hot: which matrix acts now
        return torch.einsum("bkl,bl->bk", m, s)

    warmup, periods = 60, 300
    onehot = torch.eye(3, dtype=torch.float64)[torch.arange(warmup + 3 * periods) % 3]
    x = onehot.expand(2, -1, -1)
    h0 = torch.tensor([[1.0, 0.5], [-0.3, 2.0]], dtype=torch.float64)
    spec = ol.lyapunov_spectrum(cycle, x, h0=h0, warmup=warmup, seed=0)
    np.testing.assert_allclose(spec.exponents.numpy(), forward, atol=1e-6)

    # The transposed chain, written out: it converges to the other product's exponents.
    q, total = np.eye(2), np.zeros(2)
    for t in range(warmup + 3 * periods):
        q, r = np.linalg.qr(mats[t % 3].T @ q)
        if t >= warmup:
            total += np.log(np.abs(np.diag(r)))
    np.testing.assert_allclose(total / (3 * periods), transposed, atol=1e-2)


# --- Randomness: dropout in training mode ---------------------------------------------------


class DropoutCell(nn.Module):
    def __init__(self, n_in: int, n_hidden: int) -> None:
        super().__init__()
        self.lin = nn.Linear(n_in + n_hidden, n_hidden)
        self.drop = nn.Dropout(0.3)
        self.inner = nn.Sequential(nn.Dropout(0.1), nn.Identity())

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(torch.cat([self.drop(h), self.inner(x)], dim=1)))


@pytest.mark.parametrize("path", ["formed", "columns"])
def test_training_mode_cell_gives_eval_spectrum_and_keeps_its_modes(
    monkeypatch: pytest.MonkeyPatch, path: str
):
    if path == "columns":
        _force_columns(monkeypatch)
    torch.manual_seed(0)
    cell = DropoutCell(3, 6)
    x, h0 = torch.randn(4, 30, 3), torch.zeros(4, 6)
    cell.eval()
    reference = ol.lyapunov_spectrum(cell, x, h0=h0, seed=0)
    cell.train()
    cell.inner.eval()  # a mixed state must come back as it was
    modes = {name: m.training for name, m in cell.named_modules()}
    spec = ol.lyapunov_spectrum(cell, x, h0=h0, seed=0)
    torch.testing.assert_close(spec.per_sequence, reference.per_sequence, rtol=0, atol=0)
    assert {name: m.training for name, m in cell.named_modules()} == modes
    bound = ol.lyapunov_spectrum(cell.forward, x, h0=h0, seed=0)  # a method bound to it
    torch.testing.assert_close(bound.per_sequence, reference.per_sequence, rtol=0, atol=0)
    assert cell.training


@pytest.mark.parametrize("path", ["formed", "columns"])
def test_random_callable_raises_a_clear_error(monkeypatch: pytest.MonkeyPatch, path: str):
    if path == "columns":
        _force_columns(monkeypatch)
    cell = DropoutCell(3, 6).train()
    x, h0 = torch.randn(2, 10, 3), torch.zeros(2, 6)
    with pytest.raises(RuntimeError, match=r"\.eval\(\)"):
        ol.lyapunov_spectrum(lambda h, xt: cell(h, xt), x, h0=h0, seed=0)
    assert cell.training
