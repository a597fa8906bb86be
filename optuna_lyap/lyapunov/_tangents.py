"""Products of a recurrent network's state Jacobian with a basis of tangent vectors.

Notation:
    ``B``: number of input sequences, ``T``: sequence length, ``I``: input features,
    ``L``: layers, ``H``: hidden units per layer, ``P``: size of ``h`` (``H``, or ``proj_size``),
    ``D``: state dimension, ``k``: number of tangent vectors (columns of ``Q``).
    ``J_t = d s_{t+1} / d s_t`` is the Jacobian of one step of the network at ``(s_t, x_t)``.

A *tangent* object runs the state trajectory once, precomputes the gate-wise factors of every
``J_t`` in parallel over time, and then applies ``J_t`` to a ``B x D x k`` basis with batched
matrix products and elementwise scalings. The ``D x D`` Jacobian itself is never formed.

State layout for ``nn.RNN``/``nn.GRU``/``nn.LSTM``: ``[h^1, ..., h^L]`` followed, for an LSTM
with ``state="full"``, by ``[c^1, ..., c^L]``. With ``state="h"`` an LSTM's ``c`` is not part of
the state: its perturbation is held at zero at every step (the seed papers' convention).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

CellFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Tangent(Protocol):
    """What the QR iteration needs from a network."""

    dim: int
    n_steps: int
    batch: int
    device: torch.device
    dtype: torch.dtype
    diverged: torch.Tensor  # (B,) bool: the state trajectory left the finite numbers

    def apply(self, t: int, q: torch.Tensor) -> torch.Tensor:
        """Return ``J_t @ q`` for a ``B x D x k`` tensor ``q``."""
        ...


def _weight(module: nn.Module, name: str) -> torch.Tensor:
    tensor = getattr(module, name)
    assert isinstance(tensor, torch.Tensor)
    return tensor


def _single_layer(model: nn.RNNBase, layer: int, dtype: torch.dtype) -> nn.RNNBase:
    """A one-layer copy of ``model``'s ``layer`` (time-major), to run it with the fused kernel."""
    kwargs: dict[str, Any] = {}
    if isinstance(model, nn.RNN):
        kwargs["nonlinearity"] = model.nonlinearity
    if isinstance(model, nn.LSTM) and model.proj_size > 0:
        kwargs["proj_size"] = model.proj_size
    in_size = model.input_size if layer == 0 else model.proj_size or model.hidden_size
    device = next(model.parameters()).device
    cls: Any = type(model)  # RNNBase itself takes a mode string first; its subclasses do not
    single = cls(
        in_size,
        model.hidden_size,
        num_layers=1,
        bias=model.bias,
        batch_first=False,
        device=device,
        dtype=dtype,
        **kwargs,
    )
    with torch.no_grad():
        for name in single._flat_weights_names:
            source = getattr(model, name.replace("_l0", f"_l{layer}"))
            getattr(single, name).copy_(source)
    return single


class StackedRNNTangent:
    """Tangent maps of a (multi-layer) ``nn.RNN``, ``nn.GRU`` or ``nn.LSTM``.

    Args:
        model: The recurrent module (unidirectional).
        inputs: A ``T x B x I`` tensor (time-major).
        h0: ``L x B x P`` initial hidden state.
        c0: ``L x B x H`` initial cell state (LSTM only).
        state: ``"full"`` or ``"h"``.
        dtype: The dtype every product is computed in.
    """

    def __init__(
        self,
        model: nn.RNNBase,
        inputs: torch.Tensor,
        h0: torch.Tensor,
        c0: torch.Tensor | None,
        state: str,
        dtype: torch.dtype,
    ) -> None:
        self.kind = type(model).__name__  # "RNN" | "GRU" | "LSTM"
        self.relu = isinstance(model, nn.RNN) and model.nonlinearity == "relu"
        self.n_layers = model.num_layers
        self.hidden = model.hidden_size
        self.p = model.proj_size if isinstance(model, nn.LSTM) and model.proj_size else 0
        self.h_size = self.p or self.hidden
        self.with_c = self.kind == "LSTM" and state == "full"
        self.n_steps, self.batch = inputs.shape[0], inputs.shape[1]
        self.device, self.dtype = inputs.device, dtype
        c_rows = self.n_layers * self.hidden if self.with_c else 0
        self.dim = self.n_layers * self.h_size + c_rows

        # Per layer: weights and the time-indexed factors of J_t (each T x B x rows x 1).
        self.w_ih: list[torch.Tensor] = []
        self.w_hh: list[torch.Tensor] = []
        self.w_hr: list[torch.Tensor | None] = []
        self.factors: list[dict[str, torch.Tensor]] = []
        self.diverged = torch.zeros(self.batch, dtype=torch.bool, device=self.device)
        x = inputs
        for layer in range(self.n_layers):
            single = _single_layer(model, layer, dtype)
            hx: torch.Tensor | tuple[torch.Tensor, torch.Tensor]
            if self.kind == "LSTM":
                assert c0 is not None
                hx = (h0[layer : layer + 1], c0[layer : layer + 1])
            else:
                hx = h0[layer : layer + 1]
            out, _ = single(x, hx)
            # A ReLU network's Jacobian stays finite while its state overflows: look at states.
            self.diverged |= ~torch.isfinite(out).all(dim=2).all(dim=0)
            w_ih, w_hh = _weight(single, "weight_ih_l0"), _weight(single, "weight_hh_l0")
            b_ih = _weight(single, "bias_ih_l0") if model.bias else None
            b_hh = _weight(single, "bias_hh_l0") if model.bias else None
            h_prev = torch.cat([h0[layer : layer + 1], out[:-1]], dim=0)
            pre_x = nn.functional.linear(x, w_ih, b_ih)
            pre_h = nn.functional.linear(h_prev, w_hh, b_hh)
            if self.kind == "RNN":
                factors = self._rnn_factors(pre_x + pre_h, out)
            elif self.kind == "GRU":
                factors = self._gru_factors(pre_x, pre_h, h_prev)
            else:
                c_init = c0[layer] if c0 is not None else None
                assert c_init is not None
                factors = self._lstm_factors(pre_x + pre_h, c_init)
            self.factors.append({key: v.unsqueeze(-1) for key, v in factors.items()})
            self.w_ih.append(w_ih.detach())
            self.w_hh.append(w_hh.detach())
            self.w_hr.append(_weight(single, "weight_hr_l0").detach() if self.p else None)
            x = out

    def _rnn_factors(self, pre: torch.Tensor, h: torch.Tensor) -> dict[str, torch.Tensor]:
        # h' = phi(a): dh' = phi'(a) * (W_ih dx + W_hh dh).
        slope = (pre > 0).to(pre.dtype) if self.relu else 1.0 - h * h
        return {"slope": slope}

    def _gru_factors(
        self, pre_x: torch.Tensor, pre_h: torch.Tensor, h_prev: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        # PyTorch's GRU: r, z = sigmoid(.), n = tanh(x_n + r * (W_hn h + b_hn)),
        # h' = (1 - z) n + z h. Differentiating and collecting the three gate rows:
        # dh' = a_r * g_r + a_z * g_z + a_n * (W_hn dh) + b_n * (W_in dx) + z * dh,
        # with g_* = W_i* dx + W_h* dh for r and z.
        xr, xz, xn = pre_x.chunk(3, dim=-1)
        hr, hz, hn = pre_h.chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        dn = (1.0 - z) * (1.0 - n * n)
        a_r = dn * hn * r * (1.0 - r)
        a_z = (h_prev - n) * z * (1.0 - z)
        return {
            "scale_h": torch.cat([a_r, a_z, dn * r], dim=-1),
            "scale_x": torch.cat([a_r, a_z, dn], dim=-1),
            "z": z,
        }

    def _lstm_factors(self, pre: torch.Tensor, c0: torch.Tensor) -> dict[str, torch.Tensor]:
        # c' = f c + i g, h' = o tanh(c') (then W_hr for a projected LSTM). With p = W_ih dx +
        # W_hh dh split by gate: dc' = g i(1-i) p_i + c f(1-f) p_f + i (1-g^2) p_g + f dc and
        # dh' = tanh(c') o(1-o) p_o + o (1 - tanh(c')^2) dc'.
        pi, pf, pg, po = pre.chunk(4, dim=-1)
        i, f, g, o = torch.sigmoid(pi), torch.sigmoid(pf), torch.tanh(pg), torch.sigmoid(po)
        c_prev = torch.empty_like(i)
        c = c0
        # An elementwise scan over time: cheap next to the QR chain.
        for t in range(i.shape[0]):
            c_prev[t] = c
            c = f[t] * c + i[t] * g[t]
        c_new = f * c_prev + i * g
        tc = torch.tanh(c_new)
        gate_scale = torch.cat(
            [g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g), tc * o * (1.0 - o)],
            dim=-1,
        )
        return {"scale": gate_scale, "f": f, "out": o * (1.0 - tc * tc)}

    def apply(self, t: int, q: torch.Tensor) -> torch.Tensor:
        """Return ``J_t @ q`` for a ``B x D x k`` tensor ``q``."""
        hs, cs = self.h_size, self.hidden
        c_base = self.n_layers * hs
        new_h: list[torch.Tensor] = []
        new_c: list[torch.Tensor] = []
        dx: torch.Tensor | None = None
        for layer in range(self.n_layers):
            dh = q[:, layer * hs : (layer + 1) * hs]
            fac = self.factors[layer]
            w_ih, w_hh = self.w_ih[layer], self.w_hh[layer]
            if self.kind == "RNN":
                pre = torch.matmul(w_hh, dh)
                if dx is not None:
                    pre = pre + torch.matmul(w_ih, dx)
                out = pre * fac["slope"][t]
            elif self.kind == "GRU":
                gh = torch.matmul(w_hh, dh) * fac["scale_h"][t]
                if dx is not None:
                    gh = gh + torch.matmul(w_ih, dx) * fac["scale_x"][t]
                out = gh.unflatten(1, (3, cs)).sum(dim=1) + fac["z"][t] * dh
            else:
                pre = torch.matmul(w_hh, dh)
                if dx is not None:
                    pre = pre + torch.matmul(w_ih, dx)
                pre = (pre * fac["scale"][t]).unflatten(1, (4, cs))
                dc = pre[:, 0] + pre[:, 1] + pre[:, 2]
                if self.with_c:
                    c_row = c_base + layer * cs
                    dc = dc + fac["f"][t] * q[:, c_row : c_row + cs]
                    new_c.append(dc)
                out = pre[:, 3] + fac["out"][t] * dc
                w_hr = self.w_hr[layer]
                if w_hr is not None:
                    out = torch.matmul(w_hr, out)
            new_h.append(out)
            dx = out
        parts = new_h + new_c
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class CellTangent:
    """Tangent maps of a custom cell ``step(state (B, D), x_t (B, I)) -> state (B, D)``.

    ``J_t @ q`` is a forward-mode derivative (``torch.func.jvp``) vectorised over the ``k``
    columns of ``q`` with ``torch.func.vmap``: one batched evaluation per step.

    Args:
        step: The cell.
        inputs: A ``B x T x I`` tensor (batch-first).
        h0: A ``B x D`` initial state.
    """

    def __init__(self, step: CellFn, inputs: torch.Tensor, h0: torch.Tensor) -> None:
        self.step = step
        self.inputs = inputs
        self.batch, self.n_steps = inputs.shape[0], inputs.shape[1]
        self.dim = h0.shape[1]
        self.device, self.dtype = h0.device, h0.dtype
        states = [h0]
        s = h0
        for t in range(self.n_steps - 1):
            s = step(s, inputs[:, t])
            if s.shape != h0.shape:
                raise ValueError(
                    f"A custom cell must return a state shaped like h0 {tuple(h0.shape)}, "
                    f"but got {tuple(s.shape)}."
                )
            states.append(s)
        self.states = states
        self.diverged = ~torch.isfinite(torch.stack(states)).all(dim=2).all(dim=0)

    def apply(self, t: int, q: torch.Tensor) -> torch.Tensor:
        """Return ``J_t @ q`` for a ``B x D x k`` tensor ``q``."""
        s, x = self.states[t], self.inputs[:, t]

        def column(v: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(lambda state: self.step(state, x), (s,), (v,))[1]

        return torch.func.vmap(column, in_dims=2, out_dims=2)(q)
