"""Products of a recurrent network's state Jacobian with a basis of tangent vectors.

Notation:
    ``B``: number of input sequences, ``T``: sequence length, ``I``: input features,
    ``L``: layers, ``H``: hidden units per layer, ``P``: size of ``h`` (``H``, or ``proj_size``),
    ``D``: state dimension, ``k``: number of tangent vectors (columns of ``Q``).
    ``J_t = d s_{t+1} / d s_t`` is the Jacobian of one step of the network at ``(s_t, x_t)``.

A *tangent* object runs the state trajectory once, precomputes the gate-wise factors of every
``J_t`` in parallel over time, and then applies ``J_t`` to a ``B x D x k`` basis, layer by
layer (layer ``l``'s new ``h`` depends on its own old ``h`` and ``c`` and on layer ``l - 1``'s
new ``h``), in one of two ways:

- *shared products*: ``W @ Q`` with a layer's stacked gate weights (``G H x P``, ``G`` = 1, 3, 4
  gates for RNN, GRU, LSTM), the same for all ``B`` sequences, then every gate row scaled by its
  factor and the gates added: ``2 G H P k`` FLOPs per sequence and layer input;
- *formed blocks* (GRU and LSTM, when ``k >= FORMED_MIN_K``): per step and sequence the
  ``H x P`` block ``sum_g diag(a_g) W_g`` of ``J_t`` is built by broadcasting the ``B x H x 1``
  factors against the weight rows (``O(B G H P)`` elementwise work, no products with diagonal
  matrices), then applied with one batched product: ``2 H P k`` FLOPs. Blocks are built one
  step at a time into one reused buffer. A GRU's ``diag(z)`` is added to its block's diagonal;
  an LSTM's ``dc' = f dc + ...`` stays elementwise, and with ``state="full"`` its single o
  gate stays a shared product (a formed block would cost as much).

The whole ``D x D`` Jacobian is never built.

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

# GRU and LSTM layers use formed Jacobian blocks when the basis has at least this many columns,
# and shared products below. Forming a block costs O(B G H P) elementwise work per step, which
# the k columns repay by saving 2 (G - 1) B H P k matmul FLOPs, so the crossover is a number of
# columns, much the same at every H. Measured per step on the CPU (one thread, B = 15,
# H = 64, 128, 256, one and two layers): shared products were faster at k <= 10, formed blocks
# from k = 12 (one layer) or k = 16 (two layers, but for LSTM state "full" at H = 64: k = 24).
# Not yet measured on a GPU.
FORMED_MIN_K = 16


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
    # Built on the meta device, then given uninitialised storage: the copy below overwrites the
    # weights, and initialising them would draw from torch's global generator.
    single = cls(
        in_size,
        model.hidden_size,
        num_layers=1,
        bias=model.bias,
        batch_first=False,
        device="meta",
        dtype=dtype,
        **kwargs,
    ).to_empty(device=device)
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
        # Workspace for one formed B x H x P Jacobian block (GRU/LSTM), rebuilt for every block
        # of every step: reusing it spares a large allocation, and its page faults, each time.
        block_shape = (self.batch, self.hidden, self.h_size) if self.kind != "RNN" else (0,)
        self.block = torch.empty(block_shape, device=self.device, dtype=dtype)
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
            self.factors.append({key: v.unsqueeze(-1).detach() for key, v in factors.items()})
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
        out = o * (1.0 - tc * tc)
        factors = {"scale": gate_scale, "f": f, "out": out}
        if not self.with_c:
            # State "h": dh' = sum over the four gates of diag(b_g) W_g p_g, with b_g = out * a_g
            # for i, f, g and b_o = a_o. Folded here once, in parallel over time, not per step.
            factors["h_scale"] = gate_scale * torch.cat([out, out, out, torch.ones_like(out)], -1)
        return factors

    def apply(self, t: int, q: torch.Tensor) -> torch.Tensor:
        """Return ``J_t @ q`` for a ``B x D x k`` tensor ``q``."""
        # The choice depends on shapes only, never on values: no host synchronisation.
        formed = self.kind != "RNN" and q.shape[2] >= FORMED_MIN_K
        layer_step = self._layer_formed if formed else self._layer_matrix_free
        hs, cs = self.h_size, self.hidden
        c_base = self.n_layers * hs
        new_h: list[torch.Tensor] = []
        new_c: list[torch.Tensor] = []
        dx: torch.Tensor | None = None  # the new h tangent of the layer below
        for layer in range(self.n_layers):
            dh = q[:, layer * hs : (layer + 1) * hs]
            c_row = c_base + layer * cs
            dc = q[:, c_row : c_row + cs] if self.with_c else None
            out, dc_new = layer_step(layer, t, dh, dx, dc)
            if dc_new is not None:
                new_c.append(dc_new)
            w_hr = self.w_hr[layer]
            if w_hr is not None:
                out = _shared_product(w_hr, out)
            new_h.append(out)
            dx = out
        parts = new_h + new_c
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def _layer_matrix_free(
        self,
        layer: int,
        t: int,
        dh: torch.Tensor,
        dx: torch.Tensor | None,
        dc: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One layer's new ``(h, c)`` tangents from the shared products ``W @ tangent``.

        ``W_hh dh`` and ``W_ih dx`` are computed for all gates at once (``4 H`` rows for an
        LSTM), then every gate row is scaled by its factor and the gates are added.
        """
        fac, cs = self.factors[layer], self.hidden
        w_ih, w_hh = self.w_ih[layer], self.w_hh[layer]
        if self.kind == "RNN":
            pre = _shared_product(w_hh, dh)
            if dx is not None:
                pre = pre + _shared_product(w_ih, dx)
            return pre * fac["slope"][t], None
        if self.kind == "GRU":
            gh = _shared_product(w_hh, dh) * fac["scale_h"][t]
            if dx is not None:
                gh = gh + _shared_product(w_ih, dx) * fac["scale_x"][t]
            return gh.unflatten(1, (3, cs)).sum(dim=1) + fac["z"][t] * dh, None
        pre = _shared_product(w_hh, dh)
        if dx is not None:
            pre = pre + _shared_product(w_ih, dx)
        pre = (pre * fac["scale"][t]).unflatten(1, (4, cs))
        dc_new = pre[:, 0] + pre[:, 1] + pre[:, 2]
        if dc is None:  # state "h": c's own perturbation is held at zero
            return pre[:, 3] + fac["out"][t] * dc_new, None
        dc_new = dc_new + fac["f"][t] * dc
        return pre[:, 3] + fac["out"][t] * dc_new, dc_new

    def _layer_formed(
        self,
        layer: int,
        t: int,
        dh: torch.Tensor,
        dx: torch.Tensor | None,
        dc: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One layer's new ``(h, c)`` tangents through formed Jacobian blocks (GRU and LSTM).

        A block is one ``H x P`` matrix per sequence, ``sum_g diag(a_g) W_g`` over the gates
        (see :func:`_gate_block`), applied with a batched product: ``2 H P k`` FLOPs per
        sequence and block instead of ``2 G H P k`` for the shared products of ``G`` gates.
        """
        fac, cs = self.factors[layer], self.hidden
        if self.kind == "GRU":
            # dh'/dh = diag(z) + sum_g diag(scale_h_g) W_hg; dh'/dx = sum_g diag(scale_x_g) W_ig.
            own = _gate_block(fac["scale_h"][t], self.w_hh[layer], 3, self.block)
            own.diagonal(dim1=1, dim2=2).add_(fac["z"][t].squeeze(-1))
            out = torch.bmm(own, dh)
            if dx is not None:
                from_below = _gate_block(fac["scale_x"][t], self.w_ih[layer], 3, self.block)
                out = out.baddbmm_(from_below, dx)
            return out, None

        # LSTM: every term is (tangent, its weight rows for the gates i, f, g, o).
        terms = [(dh, self.w_hh[layer])]
        if dx is not None:
            terms.append((dx, self.w_ih[layer]))
        if dc is None:
            # state "h": dh'/dv = diag(a_o) W_o + diag(s_out) dc'/dv = sum over the four gates
            # of diag(b_g) W_g, with b_g = s_out a_g for i, f, g and b_o = a_o ("h_scale").
            b = fac["h_scale"][t]
            dh_new: torch.Tensor | None = None
            for v, weight in terms:
                block = _gate_block(b, weight, 4, self.block)
                dh_new = torch.bmm(block, v) if dh_new is None else dh_new.baddbmm_(block, v)
            assert dh_new is not None
            return dh_new, None
        scale, s_out = fac["scale"][t], fac["out"][t]  # s_out = o (1 - tanh(c')^2)
        a_ifg, a_o = scale[:, : 3 * cs], scale[:, 3 * cs :]
        # state "full": c' needs its own block dc'/dv = sum over i, f, g of diag(a_g) W_g. Then
        # dh' = a_o * (W_o v) + s_out * dc': the o gate is a single gate, whose shared product
        # costs what a formed block would, so it stays a shared product.
        dc_new = fac["f"][t] * dc
        pre_o: torch.Tensor | None = None
        for v, weight in terms:
            dc_new = dc_new.baddbmm_(_gate_block(a_ifg, weight[: 3 * cs], 3, self.block), v)
            o_term = _shared_product(weight[3 * cs :], v)
            pre_o = o_term if pre_o is None else pre_o + o_term
        assert pre_o is not None
        return a_o * pre_o + s_out * dc_new, dc_new


def _shared_product(weight: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``weight @ v[b]`` for every sequence ``b``: ``(R, P)`` and ``(B, P, k)`` to ``(B, R, k)``.

    One 2-D matrix product over all ``B k`` columns; ``torch.matmul`` would broadcast the weight
    to ``B`` copies, which is several times slower for thin bases.
    """
    batch, size, k = v.shape
    columns = v.transpose(0, 1).reshape(size, batch * k)
    return (weight @ columns).view(-1, batch, k).transpose(0, 1)


def _gate_block(
    scale: torch.Tensor, weight: torch.Tensor, gates: int, out: torch.Tensor
) -> torch.Tensor:
    """The per-sequence block ``sum_g diag(a_g) W_g`` over ``gates`` gates stacked in ``weight``.

    Args:
        scale: ``B x (G H) x 1``: the factors ``a_g`` of every gate row, per sequence.
        weight: ``(G H) x P``: the gates' weight rows ``W_g``, stacked like ``scale``.
        gates: ``G``.
        out: A ``B x H x P`` buffer that receives the block (overwritten).

    Returns:
        ``out``. Built by broadcasting each ``B x H x 1`` factor against its ``H x P`` weight
        rows (``O(B G H P)`` elementwise work), never by products with diagonal matrices.
    """
    scales, weights = scale.chunk(gates, dim=1), weight.chunk(gates, dim=0)
    block = torch.mul(scales[0], weights[0], out=out)
    for a_g, w_g in zip(scales[1:], weights[1:], strict=True):
        block.addcmul_(a_g, w_g)
    return block


# A custom cell's Jacobians are formed in full (``D`` forward-mode columns, vectorised over a
# chunk of time steps at once, then one batched product per step) when the state is small, or
# when the basis is wide enough that ``D`` columns cost little more than ``k``. Otherwise each
# step differentiates the cell along the ``k`` columns of ``Q``. Measured on the CPU (one thread,
# B = 15, a tanh cell, a heavily shared machine): per step the column products cost ~1-2 ms of
# dispatch whatever ``D``, formed Jacobians 0.02-0.15 ms up to D = 32; at D = 64 the two were
# level from k = 16; at D >= 128 formed Jacobians lost (they double the matmul work).
FULL_JACOBIAN_MAX_DIM = 32
FULL_JACOBIAN_WIDE_DIM = 64  # up to here, formed when 4 k >= D
# Elements of the formed Jacobians held at once (``chunk x B x D x D``): 32 MiB in float64.
JACOBIAN_CHUNK_ELEMENTS = 2**22


def uses_full_jacobian(dim: int, k: int) -> bool:
    """Whether a custom cell's ``J_t`` is formed in full for a ``D x k`` basis (see above)."""
    return dim <= FULL_JACOBIAN_MAX_DIM or (dim <= FULL_JACOBIAN_WIDE_DIM and 4 * k >= dim)


def _randomness_error(err: RuntimeError) -> RuntimeError:
    return RuntimeError(
        "The custom cell called a random operation while it was being differentiated (e.g. "
        "nn.Dropout in training mode): a Lyapunov spectrum is defined for the deterministic "
        "map. Pass the cell as an nn.Module (it is then evaluated in eval mode and its mode "
        "restored afterwards), or call .eval() on the modules it uses, or remove the "
        f"randomness. ({err})"
    )


class CellTangent:
    """Tangent maps of a custom cell ``step(state (B, D), x_t (B, I)) -> state (B, D)``.

    ``J_t @ q`` comes from forward-mode derivatives (``torch.func.jvp``). For a small state
    (:func:`uses_full_jacobian`) the ``B x D x D`` Jacobians of a chunk of steps are formed at
    once (``vmap`` over time and over the ``D`` unit vectors) and each step is one batched
    product; otherwise each step differentiates along the ``k`` columns of ``q`` (``vmap`` over
    the columns). Either way the cell is only ever called with ``B x D`` states.

    Args:
        step: The cell.
        inputs: A ``B x T x I`` tensor (batch-first), in the dtype the cell is evaluated in.
        h0: A ``B x D`` initial state, in the same dtype.
        dtype: The dtype of the products handed to the QR iteration (at least float32; a
            16-bit cell is evaluated in its own dtype and its products converted).
    """

    def __init__(
        self, step: CellFn, inputs: torch.Tensor, h0: torch.Tensor, dtype: torch.dtype
    ) -> None:
        self.step = step
        self.inputs = inputs
        self.batch, self.n_steps = inputs.shape[0], inputs.shape[1]
        self.dim = h0.shape[1]
        self.device, self.dtype, self.cell_dtype = h0.device, dtype, h0.dtype
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
        # The state before each step: a list for the column products (a primal that is a view
        # into a stacked tensor makes every forward-mode product slower), stacked (T x B x D)
        # for forming Jacobians over a chunk of time steps.
        self.state_list = states
        self.states = torch.stack(states)
        self.diverged = ~torch.isfinite(self.states).all(dim=2).all(dim=0)
        per_step = self.batch * self.dim * self.dim
        self.chunk_steps = max(1, min(self.n_steps, JACOBIAN_CHUNK_ELEMENTS // per_step))
        self._chunk_start = -1
        self._chunk = torch.empty(0)

    def apply(self, t: int, q: torch.Tensor) -> torch.Tensor:
        """Return ``J_t @ q`` for a ``B x D x k`` tensor ``q``."""
        if uses_full_jacobian(self.dim, q.shape[2]):
            return torch.bmm(self.jacobian(t), q)
        s, x = self.state_list[t], self.inputs[:, t]

        def column(v: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(lambda state: self.step(state, x), (s,), (v,))[1]

        try:
            out = torch.func.vmap(column, in_dims=2, out_dims=2)(q.to(self.cell_dtype))
        except RuntimeError as err:
            if "randomness" in str(err):
                raise _randomness_error(err) from err
            raise
        return out.to(self.dtype)

    def jacobian(self, t: int) -> torch.Tensor:
        """``J_t``, a ``B x D x D`` tensor in the iteration's dtype (formed a chunk at a time)."""
        start = t - t % self.chunk_steps
        if start != self._chunk_start:
            stop = min(start + self.chunk_steps, self.n_steps)
            self._chunk = self._form(start, stop)
            self._chunk_start = start
        return self._chunk[t - start]

    def _form(self, start: int, stop: int) -> torch.Tensor:
        """The Jacobians of steps ``start .. stop - 1``: ``(stop - start) x B x D x D``."""
        eye = torch.eye(self.dim, device=self.device, dtype=self.cell_dtype)
        units = eye.unsqueeze(1).expand(self.dim, self.batch, self.dim)  # e_j for every sequence

        def one_step(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            def column(v: torch.Tensor) -> torch.Tensor:
                return torch.func.jvp(lambda state: self.step(state, x), (s,), (v,))[1]

            return torch.func.vmap(column, out_dims=2)(units)  # column j is J e_j

        try:
            jac = torch.func.vmap(one_step, in_dims=(0, 1))(
                self.states[start:stop], self.inputs[:, start:stop]
            )
        except RuntimeError as err:
            if "randomness" in str(err):
                raise _randomness_error(err) from err
            raise
        return jac.to(self.dtype)
