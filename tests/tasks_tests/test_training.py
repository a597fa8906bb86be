from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from optuna_lyap.tasks import MAX_NMSE, get_task

# Settings where one to three epochs of a small network clearly beat chance:
# (task options, epochs, test of the validation metric).
EASY: dict[str, tuple[dict[str, Any], int, Callable[[float], bool]]] = {
    "sdigits": ({}, 1, lambda v: v > 0.4),  # chance 0.1
    "copy": ({"delay": 3, "n_train": 512, "n_val": 128}, 2, lambda v: v > 0.5),  # chance 0.25
    "charlm": ({"max_chars": 8000, "seq_len": 32, "batch_size": 16}, 2, lambda v: v > 0.2),
    "adding": (
        {"length": 4, "n_train": 512, "n_val": 128, "batch_size": 16},
        3,
        lambda v: v < 0.8,  # 1 = answering the mean
    ),
    "sines": (
        {"length": 24, "n_train": 256, "n_val": 64, "horizon": 1, "noise_std": 0, "batch_size": 8},
        3,
        lambda v: v < 0.5,
    ),
    "mackey_glass": (
        {"length": 24, "n_train": 256, "n_val": 64, "horizon": 1, "batch_size": 8},
        3,
        lambda v: v < 0.1,
    ),
}


def test_an_lstm_learns_a_short_temporal_xor() -> None:
    # The XOR defeats small RNN/GRU in a few epochs; an LSTM shows the signal is learnable.
    task = get_task("xor", length=6, n_train=512, n_val=128, batch_size=16)
    params = _params("lstm")
    model = task.build_model(params, seed=0)
    optimizer = task.make_optimizer(model, params)
    assert task.evaluate(model) < 0.65
    for _ in range(3):
        task.train_epoch(model, optimizer)
    assert task.evaluate(model) > 0.75


def _params(cell: str, lr: float = 1e-2) -> dict:
    return {"cell": cell, "hidden_size": 16, "init_scale": 1.0, "lr": lr}


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("name", sorted(EASY))
def test_a_few_epochs_beat_chance(name: str, cell: str) -> None:
    kwargs, n_epochs, good = EASY[name]
    task = get_task(name, **kwargs)
    params = _params(cell, lr=2e-2 if name == "charlm" else 1e-2)
    model = task.build_model(params, seed=0)
    optimizer = task.make_optimizer(model, params)
    before = task.evaluate(model)
    assert not good(before)
    start = time.perf_counter()
    losses = [task.train_epoch(model, optimizer) for _ in range(n_epochs)]
    assert time.perf_counter() - start < 5.0
    after = task.evaluate(model)
    assert good(after), (before, after)
    assert all(math.isfinite(loss) for loss in losses) and model.epochs_trained == n_epochs
    assert not model.diverged
    # Better than guessing uniformly (cross-entropy) or answering the mean (MSE).
    if task.problem == "classification":
        baseline = math.log(task.output_size)
    else:
        baseline = float(task.val_data.targets.double().var(unbiased=False))
    assert 0 < task.validation_loss(model) < baseline


def test_same_seed_trains_to_the_same_weights() -> None:
    task = get_task("copy", delay=3, n_train=128, n_val=32)
    results = []
    for seed in (5, 5, 6):
        model = task.build_model(_params("gru"), seed=seed)
        loss = task.train_epoch(model, task.make_optimizer(model, _params("gru")))
        results.append((loss, model.state_dict()))
    (loss_a, state_a), (loss_b, state_b), (loss_c, state_c) = results
    assert loss_a == loss_b and loss_a != loss_c
    for key, value in state_a.items():
        torch.testing.assert_close(value, state_b[key], rtol=0, atol=0)


def test_evaluate_keeps_the_training_mode() -> None:
    task = get_task("sdigits")
    model = task.build_model(_params("lstm"), seed=0)
    model.train()
    task.evaluate(model)
    assert model.training
    model.eval()
    task.evaluate(model)
    assert not model.training


@pytest.mark.parametrize("name", ["sdigits", "sines"])
def test_a_diverged_model_stops_training_and_scores_worst(name: str) -> None:
    options = {"n_train": 64, "n_val": 32, "length": 16} if name == "sines" else {}
    task = get_task(name, **options)
    params = _params("rnn")
    model = task.build_model(params, seed=0)
    optimizer = task.make_optimizer(model, params)
    with torch.no_grad():
        model.rnn.get_parameter("weight_hh_l0")[0, 0] = float("nan")
    assert task.evaluate(model) == task.worst_value
    assert math.isnan(task.train_epoch(model, optimizer))
    assert model.diverged
    snapshot = {key: value.clone() for key, value in model.state_dict().items()}
    assert math.isnan(task.train_epoch(model, optimizer))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, snapshot[key], rtol=0, atol=0, equal_nan=True)
    assert task.evaluate(model) == task.worst_value
    assert task.worst_value == (0.0 if name == "sdigits" else MAX_NMSE)
    assert task.validation_loss(model) == math.inf


def test_regression_metric_is_normalised_and_capped() -> None:
    task = get_task("adding", length=6, n_train=16, n_val=64)
    model = task.build_model(_params("rnn"), seed=0)
    targets = task.val_data.targets
    with torch.no_grad():
        model.readout.weight.zero_()
        model.readout.bias.fill_(float(targets.mean()))
    # Answering the mean of the validation targets scores exactly 1.
    assert task.evaluate(model) == pytest.approx(1.0, rel=1e-5)
    variance = float(targets.double().var(unbiased=False))
    assert task.validation_loss(model) == pytest.approx(variance, rel=1e-4)
    with torch.no_grad():
        model.readout.bias.fill_(100.0)
    assert task.evaluate(model) == MAX_NMSE
