"""The AeLLE network: an ensemble of autoencoders with a prediction head, trained in one batch.

Notation:
    ``M``: ensemble members; ``n``: samples; ``S``: standardised spectrum inputs (grid + side
    inputs); ``F``: standardised extra features; ``L``: latent dimension; ``H``: hidden width.

Every layer holds the weights of all ``M`` members stacked on a leading axis, so one batched
matrix product trains the whole ensemble: ``n_models`` costs about as much as one model on the
small data a study produces. Members differ in their initialisation, their dropout masks and the
labelled samples they hold out for early stopping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


class EnsembleLinear(nn.Module):
    """``M`` independent affine maps ``in -> out`` applied to an ``M x n x in`` tensor.

    Initialised like ``torch.nn.Linear`` (uniform in ``+-1/sqrt(in)``) from ``generator``.
    """

    def __init__(
        self, n_models: int, in_features: int, out_features: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)
        weight = torch.rand(n_models, in_features, out_features, generator=generator)
        bias = torch.rand(n_models, 1, out_features, generator=generator)
        self.weight = nn.Parameter((2.0 * weight - 1.0) * bound)
        self.bias = nn.Parameter((2.0 * bias - 1.0) * bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map an ``M x n x in`` tensor to ``M x n x out``."""
        return torch.baddbmm(self.bias, x, self.weight)


def _dropout(x: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    # Inverted dropout drawn from our own generator, so training never touches torch's global RNG.
    if generator is None or p == 0.0:
        return x
    keep = torch.rand(x.shape, generator=generator, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


class AeLLENetwork(nn.Module):
    """Encoder ``S -> H -> L``, mirrored decoder ``L -> H -> S`` and head ``L + F -> 1``.

    With ``n_spectrum_inputs == 0`` there is no autoencoder and the head reads the features only.
    With ``head_hidden_dim == 0`` the head is affine, as in the seed model; otherwise it has one
    tanh hidden layer of that width.
    """

    def __init__(
        self,
        *,
        n_models: int,
        n_spectrum_inputs: int,
        n_features: int,
        latent_dim: int,
        hidden_dim: int,
        head_hidden_dim: int,
        dropout: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.n_models = n_models
        self.dropout = dropout
        self.has_spectra = n_spectrum_inputs > 0
        head_in = n_features
        if self.has_spectra:
            self.enc1 = EnsembleLinear(n_models, n_spectrum_inputs, hidden_dim, generator)
            self.enc2 = EnsembleLinear(n_models, hidden_dim, latent_dim, generator)
            self.dec1 = EnsembleLinear(n_models, latent_dim, hidden_dim, generator)
            self.dec2 = EnsembleLinear(n_models, hidden_dim, n_spectrum_inputs, generator)
            head_in += latent_dim
        self.head_layers = nn.ModuleList()
        if head_hidden_dim > 0:
            self.head_layers.append(EnsembleLinear(n_models, head_in, head_hidden_dim, generator))
            head_in = head_hidden_dim
        self.head_layers.append(EnsembleLinear(n_models, head_in, 1, generator))

    def _expand(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(0).expand(self.n_models, -1, -1)

    def encode(
        self, x_spec: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Latent codes, an ``M x n x L`` tensor, of an ``n x S`` input (dropout if generator)."""
        hidden = torch.tanh(self.enc1(self._expand(x_spec)))
        return self.enc2(_dropout(hidden, self.dropout, generator))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Reconstructions, ``M x n x S``, of ``M x n x L`` latent codes."""
        return self.dec2(torch.tanh(self.dec1(latent)))

    def forward(
        self,
        x_spec: torch.Tensor | None,
        x_feat: torch.Tensor | None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Predict standardised targets and reconstruct the spectrum inputs.

        Args:
            x_spec: An ``n x S`` tensor, or None for a features-only network.
            x_feat: An ``n x F`` tensor, or None without features.
            generator: Draws dropout masks when given (training); None disables dropout.

        Returns:
            ``(prediction, reconstruction)``: an ``M x n`` tensor and an ``M x n x S`` tensor
            (None for a features-only network).
        """
        parts = []
        reconstruction = None
        if x_spec is not None:
            latent = self.encode(x_spec, generator)
            reconstruction = self.decode(latent)
            parts.append(latent)
        if x_feat is not None:
            parts.append(self._expand(x_feat))
        h = torch.cat(parts, dim=-1)
        for layer in self.head_layers[:-1]:
            h = _dropout(torch.tanh(layer(h)), self.dropout, generator)
        return self.head_layers[-1](h).squeeze(-1), reconstruction


@dataclass(frozen=True)
class TrainingSettings:
    """How :func:`train_ensemble` runs; see ``AeLLE`` for the meaning of each field."""

    alpha_schedule: tuple[float, ...]
    lr: float
    weight_decay: float
    max_steps: int
    batch_size: int
    eval_every: int = 5


def holdout_masks(
    labelled: np.ndarray,
    n_models: int,
    validation_fraction: float,
    min_labels_for_validation: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The samples each member trains on and holds out, two ``M x n`` bool arrays.

    Below ``min_labels_for_validation`` labelled samples nothing is held out (the second array
    is None) and every member trains on every labelled sample. Otherwise member ``m`` holds out
    a window of a shuffled list of the labelled samples; the windows tile the list, so with
    ``n_models * validation_fraction >= 1`` every sample is held out by some member.
    """
    n_labelled = int(labelled.sum())
    n = labelled.shape[0]
    train_mask = np.tile(labelled, (n_models, 1))
    if n_labelled < min_labels_for_validation:
        return train_mask, None
    order = rng.permutation(np.flatnonzero(labelled))
    k = max(1, round(validation_fraction * n_labelled))
    val_mask = np.zeros((n_models, n), dtype=bool)
    for m in range(n_models):
        val_mask[m, order[(m * k + np.arange(k)) % n_labelled]] = True
    train_mask &= ~val_mask
    return train_mask, val_mask


def _masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-member mean squared error over the samples in ``mask``; ``M x n`` inputs -> ``M``."""
    sq = torch.where(mask, (pred - target) ** 2, torch.zeros((), dtype=pred.dtype))
    return sq.sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def train_ensemble(
    network: AeLLENetwork,
    x_spec: torch.Tensor | None,
    x_feat: torch.Tensor | None,
    y: torch.Tensor,
    train_mask: torch.Tensor,
    val_mask: torch.Tensor | None,
    settings: TrainingSettings,
    generator: torch.Generator,
) -> torch.Tensor:
    """Train all members at once; keep each member's weights from its best validation step.

    The loss of member ``m`` is the L1 reconstruction error over every sample (labelled or not)
    plus ``alpha`` times the squared prediction error over its training samples; ``alpha`` steps
    through ``settings.alpha_schedule`` in equal phases of ``max_steps``.

    Args:
        network: The ensemble, trained in place.
        x_spec: ``n x S`` standardised spectrum inputs, or None.
        x_feat: ``n x F`` standardised features, or None.
        y: ``n`` standardised targets (any value where no mask selects them).
        train_mask: ``M x n`` bool, the samples each member fits the prediction loss on.
        val_mask: ``M x n`` bool, each member's held-out samples, or None to keep the last step.
        settings: Optimiser and schedule settings.
        generator: Draws mini-batches and dropout masks.

    Returns:
        ``M`` int64 tensor: the step whose weights each member kept.
    """
    n = y.shape[0]
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, foreach=True
    )
    params = list(network.parameters())
    n_models = network.n_models
    best_loss = torch.full((n_models,), math.inf, dtype=y.dtype)
    best_step = torch.full((n_models,), settings.max_steps, dtype=torch.int64)
    best_params = [p.detach().clone() for p in params]
    n_phases = len(settings.alpha_schedule)
    target = y.unsqueeze(0).expand(n_models, -1)
    for step in range(settings.max_steps):
        alpha = settings.alpha_schedule[min(step * n_phases // settings.max_steps, n_phases - 1)]
        if n > settings.batch_size:
            idx = torch.randperm(n, generator=generator)[: settings.batch_size]
            xs = None if x_spec is None else x_spec[idx]
            xf = None if x_feat is None else x_feat[idx]
            yb, mb = target[:, idx], train_mask[:, idx]
        else:
            xs, xf, yb, mb = x_spec, x_feat, target, train_mask
        pred, recon = network(xs, xf, generator)
        loss_per_member = alpha * _masked_mse(pred, yb, mb)
        if recon is not None and xs is not None:
            loss_per_member = loss_per_member + (recon - xs).abs().mean(dim=(1, 2))
        optimizer.zero_grad(set_to_none=True)
        loss_per_member.sum().backward()
        optimizer.step()
        last = step == settings.max_steps - 1
        if val_mask is not None and (step % settings.eval_every == 0 or last):
            with torch.no_grad():
                val_pred, _ = network(x_spec, x_feat)
                val_loss = _masked_mse(val_pred, target, val_mask)
                better = val_loss < best_loss
                if bool(better.any()):
                    best_loss = torch.where(better, val_loss, best_loss)
                    best_step = torch.where(better, step + 1, best_step)
                    for p, kept in zip(params, best_params, strict=True):
                        shape = (n_models,) + (1,) * (p.dim() - 1)
                        kept.copy_(torch.where(better.view(shape), p.detach(), kept))
    if val_mask is not None:
        with torch.no_grad():
            for p, kept in zip(params, best_params, strict=True):
                p.copy_(kept)
    return best_step
