"""A slow, obviously correct float64 reference: explicit autograd Jacobians, one sequence at once.

Used only by the tests. It shares nothing with the engine but the seeded initial basis (finite-T
exponents depend on it, so both must start from the same ``Q_0``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from optuna_lyap.lyapunov._spectrum import _initial_basis


def module_step_jacobians(
    model: nn.RNNBase, inputs: torch.Tensor, state: str = "full"
) -> list[list[torch.Tensor]]:
    """Per sequence, per time step, the full ``D x D`` Jacobian of one step of ``model``.

    Args:
        model: A unidirectional ``nn.RNN``/``nn.GRU``/``nn.LSTM``.
        inputs: Driving sequences in the model's layout.
        state: ``"full"`` or ``"h"`` (LSTM ``c`` held fixed).

    Returns:
        ``jacs[b][t]``: the float64 ``D x D`` Jacobian ``d s_{t+1} / d s_t`` along sequence ``b``.
    """
    m = copy.deepcopy(model).double()
    m.batch_first = False
    x = inputs.double()
    if model.batch_first:
        x = x.transpose(0, 1)
    n_steps, batch = x.shape[0], x.shape[1]
    layers = m.num_layers
    p = m.proj_size if isinstance(m, nn.LSTM) and m.proj_size else m.hidden_size
    is_lstm = isinstance(m, nn.LSTM)
    jacs: list[list[torch.Tensor]] = []
    for b in range(batch):
        h = torch.zeros(layers, 1, p, dtype=torch.float64)
        c = torch.zeros(layers, 1, m.hidden_size, dtype=torch.float64)
        per_step = []
        for t in range(n_steps):
            xt = x[t : t + 1, b : b + 1]

            def step(s: torch.Tensor, c_fixed: torch.Tensor = c, xt: torch.Tensor = xt):
                if not is_lstm:
                    return m(xt, s.view(layers, 1, p))[1].reshape(-1)
                if state == "h":
                    hn, _ = m(xt, (s.view(layers, 1, p), c_fixed))[1]
                    return hn.reshape(-1)
                hs = s[: layers * p].view(layers, 1, p)
                cs = s[layers * p :].view(layers, 1, -1)
                hn, cn = m(xt, (hs, cs))[1]
                return torch.cat([hn.reshape(-1), cn.reshape(-1)])

            s = (
                h.reshape(-1)
                if not is_lstm or state == "h"
                else torch.cat([h.reshape(-1), c.reshape(-1)])
            )
            per_step.append(torch.autograd.functional.jacobian(step, s))
            with torch.no_grad():
                if is_lstm:
                    _, (h, c) = m(xt, (h, c))
                else:
                    _, h = m(xt, h)
        jacs.append(per_step)
    return jacs


def reference_spectrum(
    jacs: list[list[torch.Tensor]], k: int, warmup: int = 0, seed: int = 0
) -> torch.Tensor:
    """Benettin/QR exponents (``B x k``, unsorted) from explicit Jacobians, in float64."""
    batch, dim = len(jacs), jacs[0][0].shape[0]
    q0 = _initial_basis(batch, dim, k, seed, torch.device("cpu"), torch.float64)
    out = torch.zeros(batch, k, dtype=torch.float64)
    for b in range(batch):
        q = q0[b]
        for t, jac in enumerate(jacs[b]):
            q, r = torch.linalg.qr(jac @ q)
            signs = torch.sign(torch.diagonal(r))
            q = q * signs
            if t >= warmup:
                out[b] += torch.log(torch.diagonal(r).abs())
        out[b] /= len(jacs[b]) - warmup
    return out
