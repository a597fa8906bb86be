"""``LyapunovSpectrum.stderr`` where some sequences give -inf."""

from __future__ import annotations

import math

import torch
from torch import nn

import optuna_lyap as ol

INF = math.inf


def test_stderr_is_defined_where_sequences_give_minus_inf():
    per_sequence = torch.tensor(
        [[0.3, -INF, -INF, -1.0], [0.5, -0.4, -INF, -1.0], [0.4, -0.6, -INF, -1.0]],
        dtype=torch.float64,
    )
    spec = ol.LyapunovSpectrum.from_per_sequence(per_sequence, torch.zeros(3, dtype=bool), 4)
    assert spec.exponents[1:].tolist() == [-INF, -INF, -1.0]
    assert math.isclose(spec.exponents[0], 0.4, rel_tol=1e-12)
    assert not torch.isnan(spec.stderr).any()
    # Finite column: the usual standard error; mixed: unbounded spread; all -inf: none.
    assert math.isclose(spec.stderr[0], 0.1 / math.sqrt(3), rel_tol=1e-12)
    assert spec.stderr[1:].tolist() == [INF, 0.0, 0.0]


def test_stderr_over_the_sequences_that_did_not_diverge():
    per_sequence = torch.tensor(
        [[0.3, -INF], [math.nan, math.nan], [0.5, -0.2]], dtype=torch.float64
    )
    spec = ol.LyapunovSpectrum.from_per_sequence(
        per_sequence, torch.tensor([False, True, False]), 2
    )
    assert math.isclose(spec.stderr[0], 0.1, rel_tol=1e-12)
    assert spec.stderr[1] == INF


def test_engine_stderr_with_a_unit_dead_in_some_sequences():
    rnn = nn.RNN(1, 2, nonlinearity="relu", bias=False, batch_first=True)
    with torch.no_grad():
        rnn.weight_hh_l0.copy_(torch.diag(torch.tensor([0.5, 0.8])))
        rnn.weight_ih_l0.copy_(torch.tensor([[1.0], [1.0]]))
    x = torch.ones(3, 30, 1)
    x[0] = -1.0  # both units stay off: their directions are annihilated
    spec = ol.lyapunov_spectrum(rnn, x, seed=0)
    assert spec.per_sequence[0].tolist() == [-INF, -INF]
    assert torch.isfinite(spec.per_sequence[1:]).all()
    assert spec.stderr.tolist() == [INF, INF]
