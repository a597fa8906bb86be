"""The spectrum of a recurrent cell of your own: any step(state, x) -> state is differentiated.

Here a leaky tanh network with an input gain, a cell none of torch.nn's modules provides.
"""

import torch

import optuna_lyap


class LeakyTanhCell(torch.nn.Module):
    def __init__(self, n_in: int, n_hidden: int, leak: float = 0.3, gain: float = 1.5) -> None:
        super().__init__()
        self.leak = leak
        self.w = torch.nn.Parameter(gain * torch.randn(n_hidden, n_hidden) / n_hidden**0.5)
        self.u = torch.nn.Parameter(torch.randn(n_hidden, n_in))

    def forward(self, state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """state: (B, D), x: (B, I) -> (B, D)."""
        return (1 - self.leak) * state + self.leak * torch.tanh(state @ self.w.T + x @ self.u.T)


torch.manual_seed(0)
cell = LeakyTanhCell(n_in=2, n_hidden=64)
inputs = 0.5 * torch.randn(8, 300, 2)  # B x T x I
h0 = torch.zeros(8, 64)  # a custom cell needs its initial state

spec = optuna_lyap.lyapunov_spectrum(cell, inputs, h0=h0, k=10, warmup=100, seed=0)
print(spec)
print("leading exponents:", [round(v, 4) for v in spec.exponents.tolist()])
