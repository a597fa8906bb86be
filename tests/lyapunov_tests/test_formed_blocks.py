"""Both ways of applying a built-in module's ``J_t``: formed blocks and shared products.

``StackedRNNTangent.apply`` picks formed Jacobian blocks for GRU/LSTM when the basis has at
least ``FORMED_MIN_K`` columns. The tests force each path by patching that threshold and check
it against explicit float64 autograd Jacobians, step by step and through the exponents.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import optuna_lyap as ol
from optuna_lyap.lyapunov import _tangents
from optuna_lyap.lyapunov._spectrum import _rnn_tangent
from tests.lyapunov_tests._reference import module_step_jacobians, reference_spectrum

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
PATHS = ["formed", "matrix_free"]
# (kind, state): an LSTM with both state modes; RNN and GRU have h only.
KINDS = [("rnn", "full"), ("gru", "full"), ("lstm", "h"), ("lstm", "full")]
# (kind, state, proj_size)
WITH_PROJECTION = [(*kind, 0) for kind in KINDS] + [("lstm", "h", 4), ("lstm", "full", 4)]


@pytest.fixture
def force_path(monkeypatch: pytest.MonkeyPatch):
    """``force_path("formed")`` makes every GRU/LSTM step use formed blocks, and the reverse."""

    def force(path: str) -> None:
        threshold = 1 if path == "formed" else 10**9
        monkeypatch.setattr(_tangents, "FORMED_MIN_K", threshold)

    return force


def _make(
    kind: str,
    layers: int,
    *,
    bias: bool = True,
    batch_first: bool = True,
    gain: float = 2.5,
    hidden: int = 6,
    **kw,
) -> nn.RNNBase:
    torch.manual_seed(0)
    cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind]
    model = cls(3, hidden, num_layers=layers, bias=bias, batch_first=batch_first, **kw)
    # By default larger weights than PyTorch's init, so the gates leave their linear regime.
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(gain)
    return model


def _inputs(batch_first: bool = True) -> torch.Tensor:
    x = torch.randn(3, 20, 3, generator=torch.Generator().manual_seed(1))
    return x if batch_first else x.transpose(0, 1)


def _check_against_reference(model: nn.RNNBase, x: torch.Tensor, state: str, **kw) -> None:
    spec = ol.lyapunov_spectrum(model, x, state=state, warmup=2, seed=4, **kw)
    jacs = module_step_jacobians(model.cpu(), x.cpu(), state=state)
    ref = reference_spectrum(jacs, spec.dim, warmup=2, seed=4)
    ref = torch.sort(ref, dim=1, descending=True).values
    tol = 1e-10 if kw.get("dtype") == torch.float64 else 1e-4
    torch.testing.assert_close(spec.per_sequence, ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize(("kind", "state"), KINDS)
def test_spectrum_matches_reference(force_path, kind, state, layers, bias, path):
    force_path(path)
    model = _make(kind, layers, bias=bias)
    _check_against_reference(model, _inputs(), state, dtype=torch.float64)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("state", ["h", "full"])
@pytest.mark.parametrize("layers", [1, 2])
def test_projected_lstm_matches_reference(force_path, layers, state, path):
    force_path(path)
    model = _make("lstm", layers, proj_size=4)
    _check_against_reference(model, _inputs(), state, dtype=torch.float64)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("kind", "state"), KINDS)
def test_time_major_inputs_match_reference(force_path, kind, state, path):
    force_path(path)
    model = _make(kind, 2, batch_first=False)
    _check_against_reference(model, _inputs(batch_first=False), state, dtype=torch.float64)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("kind", "state"), KINDS)
def test_float32_matches_reference(force_path, kind, state, path, device):
    force_path(path)
    # PyTorch's init and a smaller state: with larger weights, or H = 6 for an LSTM's full
    # state (exponents spread over 0.5 to 6), float32 round-off in the smallest exponents
    # exceeds 1e-4 on either path (and did before formed blocks existed).
    model = _make(kind, 2, gain=1.0, hidden=5).to(device)
    _check_against_reference(model, _inputs().to(device), state)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("kind", "state", "proj_size"), WITH_PROJECTION)
def test_each_step_product_equals_explicit_jacobian(
    force_path, kind, state, proj_size, path, device
):
    """``apply(t, Q)`` is ``J_t Q`` for every step and sequence, to float64 round-off."""
    force_path(path)
    kw = {"proj_size": proj_size} if proj_size else {}
    model = _make(kind, 2, **kw).double()
    x = _inputs().double()
    jacs = module_step_jacobians(model, x, state=state)
    with torch.no_grad():  # as in lyapunov_spectrum
        tangent = _rnn_tangent(model.to(device), x.to(device), None, state, torch.float64)
    dim = jacs[0][0].shape[0]
    assert tangent.dim == dim
    gen = torch.Generator().manual_seed(2)
    for k in (1, dim):  # a thin basis and the full one
        q = torch.randn(x.shape[0], dim, k, generator=gen, dtype=torch.float64)
        for t in range(x.shape[1]):
            expected = torch.stack([jacs[b][t] @ q[b] for b in range(x.shape[0])])
            with torch.no_grad():
                got = tangent.apply(t, q.to(device)).cpu()
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("kind", "state"), KINDS)
def test_formed_blocks_are_used_from_the_threshold_on(monkeypatch, kind, state):
    """GRU/LSTM switch to formed blocks at ``k >= FORMED_MIN_K``; an RNN never does."""
    calls = {"formed": 0, "matrix_free": 0}
    for path in calls:
        method = getattr(_tangents.StackedRNNTangent, f"_layer_{path}")

        def counted(self, *args, _method=method, _path=path):
            calls[_path] += 1
            return _method(self, *args)

        monkeypatch.setattr(_tangents.StackedRNNTangent, f"_layer_{path}", counted)
    threshold = _tangents.FORMED_MIN_K
    model = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind](2, threshold + 1)
    x = torch.randn(5, 2, 2)  # 5 steps of 2 sequences, time-major, one layer
    ol.lyapunov_spectrum(model, x, k=threshold - 1, state=state, seed=0)
    assert calls == {"formed": 0, "matrix_free": 5}
    ol.lyapunov_spectrum(model, x, k=threshold, state=state, seed=0)
    expected_formed = 0 if kind == "rnn" else 5
    assert calls == {"formed": expected_formed, "matrix_free": 10 - expected_formed}
