"""What every built-in task shares: search space, model building, training, scoring, probes.

Notation: ``N`` sequences, ``T`` time steps, ``I`` input features, ``S`` scored steps (the last
``S`` of the ``T``), ``O`` outputs per step (classes or regression targets), ``H`` hidden units.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from optuna_lyap._checks import (
    InvalidParameterError,
    check_int,
    check_optional_int,
    check_real,
)
from optuna_lyap._random import caller_rng_kept
from optuna_lyap.tasks._model import CELLS, SequenceModel, _check_cell, init_uniform_

if TYPE_CHECKING:
    import optuna

PARAM_NAMES = ("cell", "hidden_size", "init_scale", "lr")

# A regression model scored above this normalised MSE (ten times worse than predicting the mean)
# is reported at this value, and so is one that diverged: the worst value stays finite and worst.
MAX_NMSE = 10.0

_EVAL_BATCH = 512


@dataclass(frozen=True)
class SequenceData:
    """One split of a task.

    Attributes:
        inputs: A ``N x T x I`` float32 tensor, or a ``N x T`` int64 tensor of token ids.
        targets: A ``N x S`` int64 tensor of classes (classification) or a ``N x S x O`` float32
            tensor (regression), for the last ``S`` steps.

    Example:
        >>> import torch
        >>> from optuna_lyap.tasks import SequenceData
        >>> data = SequenceData(torch.zeros(8, 20, 2), torch.zeros(8, 1, 1))
        >>> len(data)
        8
    """

    inputs: torch.Tensor
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.inputs.shape[0])


def real_pair(name: str, value: Any) -> tuple[float, float]:
    """``value`` as ``(low, high)`` floats if it is a pair of finite real numbers.

    Raises:
        InvalidParameterError: ``value`` is not a tuple or list of two finite numbers
            (booleans and strings are refused).
    """
    ok = isinstance(value, (tuple, list)) and len(value) == 2
    ok = ok and all(
        isinstance(v, (int, float, np.integer, np.floating))
        and not isinstance(v, bool)
        and math.isfinite(v)
        for v in value
    )
    if not ok:
        raise InvalidParameterError(
            f"{name} must be a pair (low, high) of finite numbers, but got {name}={value!r}."
        )
    return float(value[0]), float(value[1])


def _check_range(name: str, value: Sequence[float], *, integer: bool = False) -> tuple[Any, Any]:
    low, high = real_pair(name, value)
    if not (0 < low <= high) or (integer and (int(low) != low or int(high) != high)):
        kind = "positive integers" if integer else "positive numbers"
        raise InvalidParameterError(
            f"{name} must be (low, high) {kind} with low <= high, but got {name}={value!r}."
        )
    return (int(low), int(high)) if integer else (low, high)


def _derive_seeds(seed: int | None, n: int) -> list[int]:
    """``n`` independent 63-bit seeds from one seed (fresh entropy when ``seed`` is None)."""
    sequence = np.random.SeedSequence(seed)
    return [int(s) >> 1 for s in sequence.generate_state(n, dtype=np.uint64)]


class SequenceTask:
    """Base class of the built-in tasks: data, model family, training loop and metric.

    A subclass sets the class attributes, stores its own options in ``__init__`` before calling
    ``super().__init__``, and implements ``_generate``. Data are generated on first use, so that
    building a task (to list it, or read its metric) costs nothing.

    Args:
        seed: Seeds the data and the train/validation split.
        n_epochs: Full training length (``None``: the task's ``default_n_epochs``).
        batch_size: Sequences per training step.
        num_layers: Stacked recurrent layers of every model.
        cells: Cell types the search space offers.
        hidden_size_range: ``(low, high)`` of the hidden size, searched on a log scale.
        init_scale_range: ``(low, high)`` of the initialisation scale, searched on a log scale
            (see ``optuna_lyap.tasks._model`` for its meaning; 1 is PyTorch's default).
        lr_range: ``(low, high)`` of Adam's learning rate, searched on a log scale.
        grad_clip: Largest global gradient norm of one training step.
        probe_length: Time steps of the sequences ``probe_inputs`` returns (``None``: the
            sequence length, at least 64).

    Example:
        >>> import torch
        >>> from optuna_lyap.tasks import Adding
        >>> task = Adding(length=20, n_train=64, n_val=32, seed=0)
        >>> model = task.build_model(task.default_params(), seed=0)
        >>> task.probe_inputs(model, n=4).shape
        torch.Size([4, 64, 2])
        >>> loss = task.train_epoch(model, task.make_optimizer(model, task.default_params()))
        >>> loss > 0 and task.evaluate(model) > 0
        True
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    metric: ClassVar[str] = ""
    direction: ClassVar[Literal["maximize", "minimize"]]
    problem: ClassVar[Literal["classification", "regression"]]
    default_n_epochs: ClassVar[int] = 10

    input_size: int
    output_size: int
    vocab_size: int | None = None
    embedding_dim: int = 16

    def __init__(
        self,
        *,
        seed: int = 0,
        n_epochs: int | None = None,
        batch_size: int = 32,
        num_layers: int = 1,
        cells: Sequence[str] = ("rnn", "gru", "lstm"),
        hidden_size_range: tuple[int, int] = (8, 64),
        init_scale_range: tuple[float, float] = (0.25, 8.0),
        lr_range: tuple[float, float] = (1e-4, 3e-2),
        grad_clip: float = 1.0,
        probe_length: int | None = None,
    ) -> None:
        if n_epochs is None:
            n_epochs = self.default_n_epochs
        n_epochs = check_int("n_epochs", n_epochs, 1)
        batch_size = check_int("batch_size", batch_size, 1)
        num_layers = check_int("num_layers", num_layers, 1)
        if isinstance(cells, str) or not isinstance(cells, Sequence) or len(cells) == 0:
            raise InvalidParameterError(
                f"cells must be a non-empty list of {sorted(CELLS)}, but got {cells=}."
            )
        for cell in cells:
            _check_cell(cell)
        grad_clip = check_real("grad_clip", grad_clip, 0.0, math.inf, closed=False)
        probe_length = check_optional_int("probe_length", probe_length, 1)
        self.seed = check_optional_int("seed", seed, 0)
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.num_layers = num_layers
        self.cells = tuple(cells)
        self.hidden_size_range = _check_range("hidden_size_range", hidden_size_range, integer=True)
        self.init_scale_range = _check_range("init_scale_range", init_scale_range)
        self.lr_range = _check_range("lr_range", lr_range)
        self.grad_clip = float(grad_clip)
        self._probe_length = probe_length

    def __repr__(self) -> str:
        return f"{type(self).__name__}(seed={self.seed}, n_epochs={self.n_epochs})"

    def options(self) -> dict[str, Any]:
        """Every constructor option with its effective value (defaults filled in), JSON-ready.

        ``get_task(task.name, **task.options())`` rebuilds the same task, so a recorded table
        stays reproducible when defaults change.
        """
        names: list[str] = []
        # Walk the whole hierarchy: a variant (a subclass with other defaults) forwards most
        # options to its parent through ``**kwargs``.
        classes = [cls for cls in type(self).__mro__ if issubclass(cls, SequenceTask)]
        for cls in classes:
            for name, param in inspect.signature(cls.__init__).parameters.items():
                if param.kind is param.KEYWORD_ONLY and name not in names:
                    names.append(name)
        values = {name: getattr(self, name) for name in names}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    # -- data ---------------------------------------------------------------------------------

    def _generate(self, rng: np.random.Generator) -> tuple[SequenceData, SequenceData]:
        """The (train, validation) splits, drawn from ``rng`` only."""
        raise NotImplementedError

    @cached_property
    def _splits(self) -> tuple[SequenceData, SequenceData]:
        return self._generate(np.random.default_rng(self.seed))

    @property
    def train_data(self) -> SequenceData:
        """The training split."""
        return self._splits[0]

    @property
    def val_data(self) -> SequenceData:
        """The validation split (the metric is computed on it)."""
        return self._splits[1]

    @property
    def seq_len(self) -> int:
        """Time steps ``T`` of every sequence."""
        return int(self.val_data.inputs.shape[1])

    @property
    def n_scored(self) -> int:
        """Scored steps ``S`` at the end of each sequence."""
        return int(self.val_data.targets.shape[1])

    @property
    def probe_length(self) -> int:
        """Time steps of the sequences ``probe_inputs`` returns."""
        if self._probe_length is not None:
            return self._probe_length
        return max(self.seq_len, 64)

    @property
    def worst_value(self) -> float:
        """The value ``evaluate`` gives a diverged model (0 accuracy, or ``MAX_NMSE``)."""
        return 0.0 if self.problem == "classification" else MAX_NMSE

    @cached_property
    def _target_variance(self) -> float:
        return float(self.val_data.targets.double().var(unbiased=False))

    # -- search space and models --------------------------------------------------------------

    def suggest_params(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Draw one configuration from the task's search space.

        Args:
            trial: The Optuna trial (its ``suggest_*`` methods name the parameters ``cell``,
                ``hidden_size``, ``init_scale`` and ``lr``).

        Returns:
            ``{"cell": str, "hidden_size": int, "init_scale": float, "lr": float}``.
        """
        return {
            "cell": trial.suggest_categorical("cell", list(self.cells)),
            "hidden_size": trial.suggest_int("hidden_size", *self.hidden_size_range, log=True),
            "init_scale": trial.suggest_float("init_scale", *self.init_scale_range, log=True),
            "lr": trial.suggest_float("lr", *self.lr_range, log=True),
        }

    def default_params(self) -> dict[str, Any]:
        """A configuration that trains well enough to try things out (inside the search space)."""
        cell = "lstm" if "lstm" in self.cells else self.cells[0]
        return {
            "cell": cell,
            "hidden_size": int(np.clip(32, *self.hidden_size_range)),
            "init_scale": float(np.clip(1.0, *self.init_scale_range)),
            "lr": float(np.clip(1e-2, *self.lr_range)),
        }

    def check_params(self, params: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming what is wrong with ``params``.

        The cell must be one of ``CELLS``; values outside the search space are allowed.
        """
        missing = [key for key in PARAM_NAMES if key not in params]
        if missing:
            raise ValueError(
                f"params must have the keys {list(PARAM_NAMES)} but {missing} are missing "
                f"from {params=}."
            )
        _check_cell(params["cell"])
        hidden_size = params["hidden_size"]
        if isinstance(hidden_size, bool) or int(hidden_size) != hidden_size or hidden_size < 1:
            raise ValueError(f"hidden_size must be a positive integer but got {hidden_size=}.")
        for key in ("init_scale", "lr"):
            value = float(params[key])
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{key} must be a positive finite number but got {value=}.")

    def build_model(self, params: dict[str, Any], seed: int | None = None) -> SequenceModel:
        """A freshly initialised model for ``params``.

        Args:
            params: ``cell``, ``hidden_size``, ``init_scale`` and ``lr`` (as ``suggest_params``
                returns; ``lr`` is read by ``make_optimizer``).
            seed: Seeds the initial weights and the order of training minibatches; the same
                seed gives the same model and the same training. ``None``: fresh randomness.

        Returns:
            A ``SequenceModel`` on the CPU whose ``.rnn`` has ``batch_first=True``.
        """
        self.check_params(params)
        init_seed, order_seed = _derive_seeds(seed, 2)
        # Module constructors draw default weights from the global generator; keep it so that
        # building a model leaves the caller's random state untouched (we overwrite them anyway).
        with caller_rng_kept():
            model = SequenceModel(
                params["cell"],
                self.input_size,
                int(params["hidden_size"]),
                self.output_size,
                num_layers=self.num_layers,
                vocab_size=self.vocab_size,
                embedding_dim=self.embedding_dim,
            )
        init_uniform_(model, float(params["init_scale"]), torch.Generator().manual_seed(init_seed))
        model.generator.manual_seed(order_seed)
        return model

    def make_optimizer(self, model: nn.Module, params: dict[str, Any]) -> torch.optim.Optimizer:
        """Adam over all of ``model``'s parameters with learning rate ``params["lr"]``."""
        return torch.optim.Adam(model.parameters(), lr=float(params["lr"]))

    # -- training and scoring -----------------------------------------------------------------

    def _loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        scored = outputs[:, -targets.shape[1] :]
        if self.problem == "classification":
            logits = scored.reshape(-1, scored.shape[-1])
            return nn.functional.cross_entropy(logits, targets.ravel())
        return nn.functional.mse_loss(scored, targets)

    def train_epoch(self, model: SequenceModel, optimizer: torch.optim.Optimizer) -> float:
        """One pass over the training split in minibatches (order from ``model.generator``).

        A non-finite loss or gradient norm marks the model ``diverged``: that step is not
        applied, and from then on training leaves the model unchanged.

        Args:
            model: A model from ``build_model`` (on any device).
            optimizer: From ``make_optimizer``.

        Returns:
            The mean training loss of the epoch (cross-entropy in nats, or MSE), NaN once the
            model has diverged.
        """
        if model.diverged:
            return math.nan
        device = next(model.parameters()).device
        data = self.train_data
        order = torch.randperm(len(data), generator=model.generator)
        model.train()
        total, count = 0.0, 0
        for start in range(0, len(data), self.batch_size):
            index = order[start : start + self.batch_size]
            inputs = data.inputs[index].to(device)
            targets = data.targets[index].to(device)
            loss = self._loss(model(inputs), targets)
            if not torch.isfinite(loss):
                model.diverged = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
            if not torch.isfinite(norm):
                model.diverged = True
                break
            optimizer.step()
            total += float(loss.detach()) * len(index)
            count += len(index)
        model.epochs_trained += 1
        return math.nan if model.diverged else total / count

    @torch.no_grad()
    def predict(self, model: SequenceModel, inputs: torch.Tensor) -> torch.Tensor:
        """Model outputs at the scored steps.

        Args:
            model: A ``SequenceModel``.
            inputs: ``N x T x I`` floats or ``N x T`` token ids (on the CPU).

        Returns:
            A ``N x S x O`` tensor on the CPU (logits, or regression outputs).
        """
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        chunks = []
        for start in range(0, inputs.shape[0], _EVAL_BATCH):
            outputs = model(inputs[start : start + _EVAL_BATCH].to(device))
            chunks.append(outputs[:, -self.n_scored :].cpu())
        model.train(was_training)
        return torch.cat(chunks)

    def evaluate(self, model: SequenceModel) -> float:
        """The validation metric (``self.metric``) of ``model``.

        Returns:
            Accuracy in [0, 1] over all scored steps (classification), or the MSE divided by the
            variance of the validation targets (regression: 1 = predicting their mean), capped
            at ``MAX_NMSE``. A diverged model, or one with non-finite outputs, gets
            ``worst_value``.
        """
        if model.diverged:
            return self.worst_value
        outputs = self.predict(model, self.val_data.inputs)
        if not bool(torch.isfinite(outputs).all()):
            return self.worst_value
        targets = self.val_data.targets
        if self.problem == "classification":
            return float((outputs.argmax(dim=-1) == targets).double().mean())
        mse = float((outputs.double() - targets.double()).pow(2).mean())
        return min(mse / self._target_variance, MAX_NMSE)

    def validation_loss(self, model: SequenceModel) -> float:
        """The training loss on the validation split, a finer score than the metric.

        Returns:
            Mean cross-entropy in nats per scored step (classification) or the MSE
            (regression); ``inf`` for a diverged model or non-finite outputs.
        """
        if model.diverged:
            return math.inf
        outputs = self.predict(model, self.val_data.inputs)
        if not bool(torch.isfinite(outputs).all()):
            return math.inf
        return float(self._loss(outputs, self.val_data.targets))

    # -- probes for the Lyapunov spectrum -----------------------------------------------------

    def _probe_sequences(self, n: int) -> torch.Tensor:
        """Validation inputs joined end to end: ``n x probe_length (x I)``."""
        inputs = self.val_data.inputs
        per_probe = -(-self.probe_length // self.seq_len)
        # A small validation set is cycled through rather than refused.
        index = torch.arange(n * per_probe) % len(inputs)
        joined = inputs[index].reshape(n, per_probe * self.seq_len, *inputs.shape[2:])
        return joined[:, : self.probe_length]

    @torch.no_grad()
    def probe_inputs(self, model: SequenceModel, n: int = 15) -> torch.Tensor:
        """Inputs to ``model.rnn`` that drive it for the Lyapunov spectrum.

        The first validation sequences, joined end to end in time where one sequence is shorter
        than ``probe_length`` (so short tasks still give the spectrum enough steps; a small
        validation set is cycled through), then passed through the model's embedding if it has
        one. The same ``n`` and model give the same tensor every time.

        Args:
            model: The model whose ``.rnn`` the probes will drive.
            n: Number of probe sequences ``B``.

        Returns:
            A ``B x probe_length x I`` float tensor on the model's device and dtype
            (``I = model.rnn.input_size``).
        """
        n = check_int("n", n, 1)
        parameter = next(model.parameters())
        inputs = self._probe_sequences(n).to(parameter.device)
        if model.embedding is None:
            inputs = inputs.to(parameter.dtype)
        return model.rnn_inputs(inputs).to(parameter.dtype)
