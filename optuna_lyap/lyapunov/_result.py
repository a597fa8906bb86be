"""The result of a spectrum computation and the quantities derived from it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def _standard_error(kept: torch.Tensor) -> torch.Tensor:
    """Column-wise standard error of the mean of a ``B x k`` tensor whose entries may be -inf.

    Columns that are all finite get ``std / sqrt(B)`` (zero for ``B = 1``), all ``-inf`` get 0,
    a mix of ``-inf`` and finite values gets ``inf``.
    """
    n, k = kept.shape
    if n == 1:
        return torch.zeros(k, dtype=torch.float64)
    dead = torch.isneginf(kept)
    finite = torch.where(dead, 0.0, kept)
    stderr = finite.std(dim=0) / math.sqrt(n)
    stderr = torch.where(dead.all(dim=0), 0.0, stderr)
    return torch.where(dead.any(dim=0) & ~dead.all(dim=0), math.inf, stderr)


@dataclass(frozen=True)
class LyapunovSpectrum:
    """A Lyapunov spectrum estimated over a batch of input sequences.

    Exponents are in natural-log units per time step and sorted in descending order.

    Attributes:
        exponents: A ``k`` float64 tensor: the mean over the sequences that stayed finite.
            All NaN when every sequence diverged.
        per_sequence: A ``B x k`` float64 tensor, one spectrum per input sequence (NaN rows for
            sequences whose state or tangent basis became non-finite).
        stderr: A ``k`` float64 tensor: the standard error of ``exponents`` over the sequences
            that stayed finite (zero for a single sequence). Where some of them give ``-inf``
            (a direction annihilated exactly, e.g. a dead ReLU unit or a saturated gate) the
            mean is ``-inf``: its standard error is 0 when every sequence gives ``-inf`` and
            ``inf`` when some give a finite value (the spread is unbounded). Never NaN unless
            every sequence diverged.
        diverged: A ``B`` bool tensor, True where a sequence's state or basis became non-finite.
        dim: ``D``, the dimension of the state the spectrum was computed on.

    Example:
        >>> import torch
        >>> from optuna_lyap import LyapunovSpectrum, lyapunov_spectrum
        >>> rnn = torch.nn.RNN(2, 8, batch_first=True)
        >>> spectrum = lyapunov_spectrum(rnn, torch.randn(4, 40, 2), seed=0)
        >>> isinstance(spectrum, LyapunovSpectrum), spectrum.dim
        (True, 8)
        >>> spectrum.exponents.shape, spectrum.per_sequence.shape, spectrum.stderr.shape
        (torch.Size([8]), torch.Size([4, 8]), torch.Size([8]))
    """

    exponents: torch.Tensor
    per_sequence: torch.Tensor
    stderr: torch.Tensor
    diverged: torch.Tensor
    dim: int

    @classmethod
    def from_per_sequence(
        cls, per_sequence: torch.Tensor, diverged: torch.Tensor, dim: int
    ) -> LyapunovSpectrum:
        """Build the summary from a ``B x k`` tensor of per-sequence spectra."""
        per_sequence = per_sequence.detach().to(device="cpu", dtype=torch.float64)
        diverged = diverged.detach().to(device="cpu", dtype=torch.bool)
        per_sequence = per_sequence.clone()
        per_sequence[diverged] = math.nan
        kept = per_sequence[~diverged]
        k = per_sequence.shape[1]
        if kept.shape[0] == 0:
            exponents = torch.full((k,), math.nan, dtype=torch.float64)
            stderr = torch.full((k,), math.nan, dtype=torch.float64)
        else:
            exponents = kept.mean(dim=0)
            stderr = _standard_error(kept)
        return cls(exponents, per_sequence, stderr, diverged, dim)

    @property
    def k(self) -> int:
        """The number of exponents."""
        return int(self.exponents.shape[0])

    @property
    def max(self) -> float:
        """The largest exponent ``lambda_1``."""
        return float(self.exponents[0])

    @property
    def sum_positive(self) -> float:
        """The sum of the positive exponents: Pesin's bound on the entropy rate (nats/step)."""
        return float(self.exponents.clamp(min=0.0).sum())

    @property
    def kaplan_yorke_dimension(self) -> float:
        """The Kaplan-Yorke (Lyapunov) dimension ``j + S_j / |lambda_{j+1}|``.

        ``j`` is the largest index whose partial sum ``S_j`` of the exponents is non-negative.
        It is 0 when ``lambda_1 < 0`` and ``k`` when all partial sums of the (possibly thin)
        spectrum are non-negative, in which case it is only a lower bound.
        """
        lam = self.exponents
        if not bool(torch.isfinite(lam[0])) and not bool(lam[0] == -math.inf):
            return math.nan
        partial = torch.cumsum(lam, dim=0)
        nonneg = partial >= 0
        if not bool(nonneg[0]):
            return 0.0
        j = int(nonneg.to(torch.int64).cumprod(dim=0).sum())
        if j == self.k:
            return float(j)
        return j + float(partial[j - 1]) / abs(float(lam[j]))

    def numpy(self) -> np.ndarray:
        """The mean exponents as a float64 NumPy array."""
        return self.exponents.numpy().copy()

    def __repr__(self) -> str:
        head = ", ".join(f"{v:.4f}" for v in self.exponents[:4].tolist())
        more = ", ..." if self.k > 4 else ""
        n_bad = int(self.diverged.sum())
        return (
            f"LyapunovSpectrum(k={self.k}, dim={self.dim}, exponents=[{head}{more}], "
            f"sequences={self.per_sequence.shape[0]}, diverged={n_bad})"
        )
