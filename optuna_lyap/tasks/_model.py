"""The model family shared by the built-in tasks: a recurrent layer with a linear readout.

Initialisation follows the seed papers, which draw every recurrent weight from one uniform
distribution ``U(-a, a)``. We divide the bound by the square root of the hidden size,

    a = init_scale / sqrt(hidden_size),

so that one ``init_scale`` means the same across hidden sizes: ``init_scale = 1`` is exactly
PyTorch's default initialisation, and for a tanh RNN the recurrent gain (weight standard
deviation times ``sqrt(hidden_size)``) is ``init_scale / sqrt(3)``, so its dynamics turn chaotic
near ``init_scale = sqrt(3) ~ 1.73``. All parameters of the recurrent module (input weights,
recurrent weights and biases, every layer) use the same bound; the readout and the embedding keep
PyTorch's usual scales.
"""

from __future__ import annotations

import math

import torch
from torch import nn

RNNClass = type[nn.RNN] | type[nn.GRU] | type[nn.LSTM]

CELLS: dict[str, RNNClass] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def _check_cell(cell: str) -> RNNClass:
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)} but got {cell=}.")
    return CELLS[cell]


class SequenceModel(nn.Module):
    """A recurrent layer (``nn.RNN``/``nn.GRU``/``nn.LSTM``, ``batch_first=True``) and a readout.

    Tokens (``vocab_size`` given) pass through an embedding before the recurrent layer; real-valued
    inputs go straight in. The readout is applied at every time step; each task decides which
    steps it scores.

    Besides its parameters the model carries the little training state a task needs, so that a
    model built with a seed trains the same way every time: ``generator`` (the minibatch order),
    ``epochs_trained`` and ``diverged`` (set once a loss or gradient turns non-finite; the task
    then stops updating the model and scores it with its worst value).

    Args:
        cell: ``"rnn"`` (tanh), ``"gru"`` or ``"lstm"``.
        input_size: Features per time step ``I`` (ignored when ``vocab_size`` is given).
        hidden_size: Units per layer ``H``.
        output_size: Outputs per time step ``O`` (classes, or regression targets).
        num_layers: Stacked recurrent layers.
        vocab_size: Number of token ids for an embedded input, else ``None``.
        embedding_dim: Embedding width (the recurrent layer's input size) when ``vocab_size``
            is given.

    Example:
        >>> import torch
        >>> from optuna_lyap.tasks import SequenceModel
        >>> model = SequenceModel("gru", input_size=3, hidden_size=8, output_size=2)
        >>> model(torch.zeros(4, 5, 3)).shape
        torch.Size([4, 5, 2])
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        num_layers: int = 1,
        vocab_size: int | None = None,
        embedding_dim: int = 16,
    ) -> None:
        super().__init__()
        rnn_class = _check_cell(cell)
        self.cell = cell
        self.embedding: nn.Embedding | None = None
        if vocab_size is not None:
            self.embedding = nn.Embedding(vocab_size, embedding_dim)
            input_size = embedding_dim
        self.rnn: nn.RNNBase = rnn_class(input_size, hidden_size, num_layers, batch_first=True)
        self.readout = nn.Linear(hidden_size, output_size)
        self.generator = torch.Generator()
        self.epochs_trained = 0
        self.diverged = False

    def rnn_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the recurrent layer sees: embedded tokens, or ``x`` itself.

        Args:
            x: A ``B x T`` tensor of token ids (embedded models) or a ``B x T x I`` float tensor.

        Returns:
            A ``B x T x I`` float tensor (``I`` = embedding width for embedded models).
        """
        if self.embedding is not None:
            return self.embedding(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Readout at every step.

        Args:
            x: A ``B x T`` tensor of token ids or a ``B x T x I`` float tensor.

        Returns:
            A ``B x T x O`` tensor.
        """
        states, _ = self.rnn(self.rnn_inputs(x))
        return self.readout(states)


def init_uniform_(
    model: SequenceModel, init_scale: float, generator: torch.Generator
) -> SequenceModel:
    """Initialise ``model`` in place: the recurrent module from ``U(-a, a)``, the rest as PyTorch.

    Args:
        model: The model to initialise.
        init_scale: ``a * sqrt(hidden_size)``, the bound of the uniform distribution in units of
            PyTorch's default bound (see the module docstring).
        generator: The source of randomness (nothing is drawn from the global generator).

    Returns:
        ``model``.

    Example:
        >>> import torch
        >>> from optuna_lyap.tasks import SequenceModel, init_uniform_
        >>> model = SequenceModel("rnn", input_size=3, hidden_size=16, output_size=1)
        >>> model = init_uniform_(model, 2.0, torch.Generator().manual_seed(0))
        >>> bool(model.rnn.weight_hh_l0.abs().max() <= 2.0 / 16 ** 0.5)
        True
    """
    hidden_size = model.rnn.hidden_size
    bound = init_scale / math.sqrt(hidden_size)
    with torch.no_grad():
        for param in model.rnn.parameters():
            nn.init.uniform_(param, -bound, bound, generator=generator)
        readout_bound = 1.0 / math.sqrt(hidden_size)
        nn.init.uniform_(model.readout.weight, -readout_bound, readout_bound, generator=generator)
        nn.init.uniform_(model.readout.bias, -readout_bound, readout_bound, generator=generator)
        if model.embedding is not None:
            nn.init.normal_(model.embedding.weight, generator=generator)
    return model
