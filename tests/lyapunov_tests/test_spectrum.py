from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.special import digamma
from torch import nn

import optuna_lyap as ol
from tests.lyapunov_tests._reference import module_step_jacobians, reference_spectrum

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# (rtol, atol) against the float64 reference; float32 products carry ~1e-7 relative round-off
# per step into exponents of magnitude up to ~5.
DTYPE_TOL = {torch.float64: (0.0, 1e-10), torch.float32: (1e-4, 1e-4)}


def _make(kind: str, layers: int, bias: bool = True, seed: int = 0, **kw) -> nn.RNNBase:
    torch.manual_seed(seed)
    cls = {"rnn": nn.RNN, "rnn_relu": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind]
    if kind == "rnn_relu":
        kw["nonlinearity"] = "relu"
    model = cls(3, 5, num_layers=layers, bias=bias, batch_first=True, **kw)
    if kind == "rnn_relu":
        # With positive weights and inputs every unit stays active. Where units die, the
        # directions they annihilate have exponents of -inf and the basis vectors that replace
        # them are arbitrary, so only the leading exponents are defined (tested below).
        with torch.no_grad():
            for param in model.parameters():
                param.abs_()
    return model


def _inputs(batch: int = 3, steps: int = 25, features: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, steps, features, generator=torch.Generator().manual_seed(seed))


# --- Oracle 5: the float64 autograd-Jacobian reference -------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", ["rnn", "rnn_relu", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_matches_autograd_reference(kind: str, layers: int, dtype: torch.dtype, device: str):
    model = _make(kind, layers).to(device=device, dtype=dtype)
    x = _inputs().abs() if kind == "rnn_relu" else _inputs()
    spec = ol.lyapunov_spectrum(model, x.to(device), warmup=3, seed=7)
    ref = reference_spectrum(module_step_jacobians(model.cpu(), x), spec.dim, warmup=3, seed=7)
    ref = torch.sort(ref, dim=1, descending=True).values
    rtol, atol = DTYPE_TOL[dtype]
    torch.testing.assert_close(spec.per_sequence, ref, rtol=rtol, atol=atol)
    assert spec.exponents.dtype == torch.float64
    assert spec.dim == layers * (10 if kind == "lstm" else 5)


@pytest.mark.parametrize("state", ["full", "h"])
@pytest.mark.parametrize("bias", [True, False])
def test_lstm_state_modes_match_reference(state: str, bias: bool):
    model = _make("lstm", 2, bias=bias)
    x = _inputs()
    spec = ol.lyapunov_spectrum(model, x, state=state, seed=3, dtype=torch.float64)
    assert spec.dim == (20 if state == "full" else 10)
    ref = reference_spectrum(module_step_jacobians(model, x, state=state), spec.dim, seed=3)
    ref = torch.sort(ref, dim=1, descending=True).values
    torch.testing.assert_close(spec.per_sequence, ref, rtol=0, atol=1e-10)


def test_projected_lstm_matches_reference():
    model = _make("lstm", 2, proj_size=3)
    x = _inputs()
    spec = ol.lyapunov_spectrum(model, x, seed=3, dtype=torch.float64)
    assert spec.dim == 2 * 3 + 2 * 5
    ref = reference_spectrum(module_step_jacobians(model, x), spec.dim, seed=3)
    torch.testing.assert_close(
        spec.per_sequence, torch.sort(ref, dim=1, descending=True).values, rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_batch_first_layouts_agree(kind: str):
    model = _make(kind, 2)
    time_major = _make(kind, 2)
    time_major.batch_first = False
    x = _inputs()
    a = ol.lyapunov_spectrum(model, x, seed=0, dtype=torch.float64)
    b = ol.lyapunov_spectrum(time_major, x.transpose(0, 1), seed=0, dtype=torch.float64)
    torch.testing.assert_close(a.per_sequence, b.per_sequence, rtol=0, atol=1e-12)


def test_float64_option_does_not_modify_model():
    model = _make("gru", 1)
    before = {n: p.clone() for n, p in model.named_parameters()}
    ol.lyapunov_spectrum(model, _inputs(), dtype=torch.float64, seed=0)
    for name, param in model.named_parameters():
        assert param.dtype == torch.float32
        assert torch.equal(param, before[name])


# --- Oracle 1: linear maps ----------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_scaled_orthogonal_map_gives_log_a(dtype: torch.dtype, device: str):
    gen = torch.Generator().manual_seed(0)
    w = 0.8 * torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))[0]
    w = w.to(device=device, dtype=dtype)
    spec = ol.lyapunov_spectrum(
        lambda s, x: s @ w.T,
        torch.zeros(2, 40, 1, device=device, dtype=dtype),
        h0=torch.zeros(2, 6, device=device, dtype=dtype),
        seed=1,
    )
    expected = torch.full((6,), math.log(0.8), dtype=torch.float64)
    torch.testing.assert_close(spec.exponents, expected, rtol=0, atol=10 * DTYPE_TOL[dtype][1])


def test_linear_map_gives_log_abs_eigenvalues():
    gen = torch.Generator().manual_seed(0)
    v = torch.eye(5, dtype=torch.float64) + 0.3 * torch.randn(
        5, 5, generator=gen, dtype=torch.float64
    )
    mu = torch.tensor([1.5, -1.1, 0.9, 0.5, -0.2], dtype=torch.float64)
    w = v @ torch.diag(mu) @ torch.linalg.inv(v)
    steps = 4000
    spec = ol.lyapunov_spectrum(
        lambda s, x: s @ w.T,
        torch.zeros(1, steps, 1, dtype=torch.float64),
        h0=torch.zeros(1, 5, dtype=torch.float64),
        warmup=200,
        seed=0,
    )
    expected = torch.sort(torch.log(mu.abs()), descending=True).values
    # The error of a finite-time estimate for a non-normal map decays like 1 / T.
    torch.testing.assert_close(spec.exponents, expected, rtol=0, atol=20.0 / steps)


# --- Oracle 2: Newman's law for products of Gaussian matrices ------------------------------


def test_products_of_gaussian_matrices_follow_newman():
    n, gain, batch, steps = 6, 1.3, 32, 800
    gen = torch.Generator().manual_seed(0)
    mats = torch.randn(batch, steps, n * n, generator=gen, dtype=torch.float64) * gain / n**0.5

    def step(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x.view(-1, n, n), s.unsqueeze(-1)).squeeze(-1)

    spec = ol.lyapunov_spectrum(step, mats, h0=torch.zeros(batch, n, dtype=torch.float64), seed=0)
    i = np.arange(1, n + 1)
    newman = math.log(gain) + (math.log(2 / n) + digamma((n - i + 1) / 2)) / 2
    z = (spec.exponents.numpy() - newman) / spec.stderr.numpy()
    assert np.all(np.abs(z) < 4.5), z
    # And the estimate is tight enough for the test to mean something.
    assert spec.stderr.max() < 0.02


# --- Oracle 3: the sum rule -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_sum_rule(kind: str, layers: int):
    model = _make(kind, layers)
    x = _inputs(batch=2, steps=30)
    spec = ol.lyapunov_spectrum(model, x, seed=0, dtype=torch.float64)
    jacs = module_step_jacobians(model, x)
    for b in range(2):
        logdet = torch.stack([torch.linalg.slogdet(j)[1] for j in jacs[b]]).mean()
        assert abs(float(spec.per_sequence[b].sum() - logdet)) < 1e-9


# --- Oracle 4: a thin basis is the start of the full one -----------------------------------


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_thin_basis_equals_leading_exponents(kind: str):
    model = _make(kind, 2)
    # Long enough for the QR order to settle into descending order before sorting.
    x = _inputs(steps=300)
    full = ol.lyapunov_spectrum(model, x, seed=5, warmup=50, dtype=torch.float64)
    for k in (1, 3, 7):
        thin = ol.lyapunov_spectrum(model, x, k=k, seed=5, warmup=50, dtype=torch.float64)
        assert thin.exponents.shape == (k,)
        torch.testing.assert_close(thin.per_sequence, full.per_sequence[:, :k], rtol=0, atol=1e-10)


# --- Oracle 6: two nearby trajectories -------------------------------------------------------


def test_largest_exponent_from_two_trajectories():
    torch.manual_seed(0)
    n, steps, eps = 40, 3000, 1e-7
    w = torch.randn(n, n, dtype=torch.float64) * 2.0 / n**0.5
    u = torch.randn(n, 1, dtype=torch.float64)
    x = 0.2 * torch.randn(
        1, steps, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )

    def step(s: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
        return torch.tanh(s @ w.T + xt @ u.T)

    h0 = 0.1 * torch.ones(1, n, dtype=torch.float64)
    spec = ol.lyapunov_spectrum(step, x, h0=h0, k=1, warmup=100, seed=0)
    a, d = h0.clone(), torch.randn(1, n, dtype=torch.float64)
    b = a + eps * d / d.norm()
    total = 0.0
    for t in range(steps):
        a, b = step(a, x[:, t]), step(b, x[:, t])
        dist = float((b - a).norm())
        if t >= 100:
            total += math.log(dist / eps)
        b = a + (b - a) * (eps / dist)
    assert spec.max > 0.05  # chaotic: the check below is not about decay to zero
    assert abs(spec.max - total / (steps - 100)) < 0.01


# --- Oracle 7: mean-field largest exponent of a random tanh network -------------------------


def test_random_tanh_network_mean_field():
    n, gain, steps = 300, 2.0, 600
    gen = torch.Generator().manual_seed(0)
    rnn = nn.RNN(1, n, bias=False, batch_first=True).double()
    with torch.no_grad():
        rnn.weight_ih_l0.zero_()
        rnn.weight_hh_l0.copy_(
            torch.randn(n, n, generator=gen, dtype=torch.float64) * gain / n**0.5
        )
    h0 = torch.randn(1, 2, n, generator=gen, dtype=torch.float64)
    x = torch.zeros(2, steps, 1, dtype=torch.float64)
    spec = ol.lyapunov_spectrum(rnn, x, h0=h0, k=1, warmup=100, seed=0)
    out, _ = rnn(x, h0)
    slope2 = ((1 - out[:, 100:] ** 2) ** 2).mean()
    predicted = 0.5 * math.log(gain**2 * float(slope2.detach()))
    assert abs(spec.max - predicted) < 0.05


# --- Cells and custom cells ---------------------------------------------------------------


def test_custom_cell_matches_builtin_module():
    gru = _make("gru", 1).double()
    cell = nn.GRUCell(3, 5).double()
    with torch.no_grad():
        cell.weight_ih.copy_(gru.weight_ih_l0)
        cell.weight_hh.copy_(gru.weight_hh_l0)
        cell.bias_ih.copy_(gru.bias_ih_l0)
        cell.bias_hh.copy_(gru.bias_hh_l0)
    x = _inputs().double()
    module = ol.lyapunov_spectrum(gru, x, seed=2)
    as_callable = ol.lyapunov_spectrum(
        lambda s, xt: cell(xt, s), x, h0=torch.zeros(3, 5, dtype=torch.float64), seed=2
    )
    as_cell = ol.lyapunov_spectrum(cell, x, seed=2)
    torch.testing.assert_close(as_callable.per_sequence, module.per_sequence, rtol=0, atol=1e-12)
    torch.testing.assert_close(as_cell.per_sequence, module.per_sequence, rtol=0, atol=1e-12)


def test_lstm_cell_uses_h_and_c():
    lstm = _make("lstm", 1).double()
    cell = nn.LSTMCell(3, 5).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(lstm, name + "_l0"))
    x = _inputs().double()
    a = ol.lyapunov_spectrum(lstm, x, seed=4)
    b = ol.lyapunov_spectrum(cell, x, seed=4)
    assert b.dim == 10
    torch.testing.assert_close(a.per_sequence, b.per_sequence, rtol=0, atol=1e-12)


# --- Results and derived quantities -------------------------------------------------------


def test_result_fields_and_derived_quantities():
    spec = ol.LyapunovSpectrum.from_per_sequence(
        torch.tensor([[0.3, 0.1, -0.2, -1.0], [0.5, 0.1, -0.4, -1.0]], dtype=torch.float64),
        torch.tensor([False, False]),
        dim=4,
    )
    torch.testing.assert_close(
        spec.exponents, torch.tensor([0.4, 0.1, -0.3, -1.0], dtype=torch.float64)
    )
    assert spec.max == pytest.approx(0.4)
    assert spec.sum_positive == pytest.approx(0.5)
    # Partial sums 0.4, 0.5, 0.2, -0.8: j = 3, D_KY = 3 + 0.2 / 1.0.
    assert spec.kaplan_yorke_dimension == pytest.approx(3.2)
    assert spec.stderr[0] == pytest.approx(0.1)
    stable = ol.LyapunovSpectrum.from_per_sequence(
        torch.tensor([[-0.1, -0.2]], dtype=torch.float64), torch.tensor([False]), dim=2
    )
    assert stable.kaplan_yorke_dimension == 0.0
    assert stable.stderr.tolist() == [0.0, 0.0]


def test_seed_makes_results_reproducible():
    model = _make("lstm", 1)
    x = _inputs()
    a = ol.lyapunov_spectrum(model, x, seed=11)
    b = ol.lyapunov_spectrum(model, x, seed=11)
    assert torch.equal(a.per_sequence, b.per_sequence)


def test_qr_interval_and_warmup_are_consistent():
    model = _make("gru", 1)
    x = _inputs(steps=60)
    every = ol.lyapunov_spectrum(model, x, warmup=10, seed=0, dtype=torch.float64)
    sparse = ol.lyapunov_spectrum(model, x, warmup=10, qr_interval=4, seed=0, dtype=torch.float64)
    # Fewer QRs of the same products give the same exponents up to round-off in float64.
    torch.testing.assert_close(sparse.per_sequence, every.per_sequence, rtol=0, atol=1e-8)


# --- Divergence and bad input -------------------------------------------------------------


def test_diverging_sequences_are_flagged_and_others_kept():
    rnn = nn.RNN(1, 4, nonlinearity="relu", bias=False, batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(2.0 * torch.eye(4) + 0.1)
        rnn.weight_ih_l0.fill_(1.0)
    x = torch.rand(3, 40, 1, generator=torch.Generator().manual_seed(0))
    tame = x.clone()
    x[1] = 1e37  # overflows float32 within a step or two
    with pytest.warns(RuntimeWarning, match="1 of 3"):
        spec = ol.lyapunov_spectrum(rnn, x, seed=0)
    assert spec.diverged.tolist() == [False, True, False]
    assert torch.isnan(spec.per_sequence[1]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference = ol.lyapunov_spectrum(rnn, tame, seed=0)
    assert torch.isfinite(spec.exponents).all()
    rows = [0, 2]
    torch.testing.assert_close(spec.per_sequence[rows], reference.per_sequence[rows])
    torch.testing.assert_close(spec.exponents, reference.per_sequence[rows].mean(0))


def test_all_diverged_gives_nan_without_raising():
    rnn = nn.RNN(1, 2, nonlinearity="relu", bias=False, batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.fill_(1.0)
        rnn.weight_ih_l0.fill_(1.0)
    with pytest.warns(RuntimeWarning):
        spec = ol.lyapunov_spectrum(rnn, torch.full((2, 5, 1), float("inf")), seed=0)
    assert torch.isnan(spec.exponents).all()
    assert math.isnan(spec.max)


def test_dead_relu_direction_gives_minus_inf_not_divergence():
    rnn = nn.RNN(1, 3, nonlinearity="relu", bias=False, batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(torch.diag(torch.tensor([0.5, -1.0, -1.0])))
        rnn.weight_ih_l0.fill_(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = ol.lyapunov_spectrum(rnn, torch.ones(2, 20, 1), warmup=2, seed=0)
    # Units 2 and 3 switch off every other step: their directions are annihilated.
    assert not spec.diverged.any()
    assert spec.exponents[0] == pytest.approx(math.log(0.5), abs=1e-6)
    assert spec.exponents[1:].tolist() == [-math.inf, -math.inf]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"warmup": 25}, "warmup must be smaller"),
        ({"k": 0}, "k must be in"),
        ({"k": 6}, "k must be in"),
        ({"qr_interval": 0}, "qr_interval must be"),
        ({"state": "c"}, "state must be"),
        ({"dtype": torch.int32}, "dtype must be"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str):
    with pytest.raises(ValueError, match=match):
        ol.lyapunov_spectrum(_make("gru", 1), _inputs(), **kwargs)


def test_bad_inputs_and_models():
    gru = _make("gru", 1)
    with pytest.raises(ValueError, match="3 features"):
        ol.lyapunov_spectrum(gru, torch.randn(2, 10, 4))
    with pytest.raises(ValueError, match="3-D tensor"):
        ol.lyapunov_spectrum(gru, torch.randn(10, 3))
    with pytest.raises(ValueError, match="bidirectional"):
        ol.lyapunov_spectrum(nn.LSTM(3, 4, bidirectional=True), torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match="needs h0"):
        ol.lyapunov_spectrum(lambda s, x: s, torch.randn(2, 5, 1))
    with pytest.raises(TypeError, match="model must be"):
        ol.lyapunov_spectrum("lstm", torch.randn(2, 5, 1))  # type: ignore[arg-type]

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(3, 4, batch_first=True)

    with pytest.raises(TypeError, match="model.rnn"):
        ol.lyapunov_spectrum(Net(), torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="h0 must have shape"):
        ol.lyapunov_spectrum(gru, _inputs(), h0=torch.zeros(1, 2, 5))
    with pytest.raises(ValueError, match="state='h' applies"):
        ol.lyapunov_spectrum(lambda s, x: s, torch.randn(2, 5, 1), h0=torch.zeros(2, 2), state="h")
