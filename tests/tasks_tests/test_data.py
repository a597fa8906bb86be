from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from optuna_lyap import InvalidParameterError
from optuna_lyap.tasks import TASKS, SDigits, get_task, list_tasks
from optuna_lyap.tasks._charlm import VOCAB, encode, python_text
from optuna_lyap.tasks._mackey_glass import mackey_glass

# Small versions of every task, so that the data tests take milliseconds.
SMALL = {
    "sdigits": {},
    "adding": {"length": 12, "n_train": 64, "n_val": 32},
    "copy": {"delay": 5, "n_train": 64, "n_val": 32},
    "sines": {"length": 20, "n_train": 64, "n_val": 32},
    "charlm": {"max_chars": 4000, "seq_len": 32},
    "copy_long": {"n_train": 64, "n_val": 32},
    "adding_long": {"n_train": 64, "n_val": 32},
    "psdigits": {},
    "xor": {"length": 20, "n_train": 64, "n_val": 32},
    "mackey_glass": {"length": 20, "n_train": 16, "n_val": 8},
}


def test_registry_lists_every_task_with_a_description() -> None:
    tasks = list_tasks()
    assert set(tasks) == set(SMALL) == set(TASKS)
    assert len(tasks) >= 10
    assert all(isinstance(text, str) and text for text in tasks.values())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_options_rebuild_the_same_task(name: str) -> None:
    task = get_task(name, seed=2, n_epochs=3, **SMALL[name])
    options = task.options()
    assert options["seed"] == 2 and options["n_epochs"] == 3 and "lr_range" in options
    rebuilt = get_task(name, **options)
    assert rebuilt.options() == options
    torch.testing.assert_close(rebuilt.val_data.inputs, task.val_data.inputs, rtol=0, atol=0)


def test_unknown_task_names_the_value_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"name='mnist'.*") as info:
        get_task("mnist")
    assert "sdigits" in str(info.value) and "charlm" in str(info.value)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_data_other_seed_other_split(name: str) -> None:
    first = get_task(name, seed=3, **SMALL[name])
    again = get_task(name, seed=3, **SMALL[name])
    other = get_task(name, seed=4, **SMALL[name])
    for split in ("train_data", "val_data"):
        a, b = getattr(first, split), getattr(again, split)
        torch.testing.assert_close(a.inputs, b.inputs, rtol=0, atol=0)
        torch.testing.assert_close(a.targets, b.targets, rtol=0, atol=0)
    assert not torch.equal(first.val_data.inputs, other.val_data.inputs)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_splits_have_consistent_shapes_and_metadata(name: str) -> None:
    task = get_task(name, **SMALL[name])
    train, val = task.train_data, task.val_data
    assert train.inputs.shape[1:] == val.inputs.shape[1:]
    assert len(train) == len(train.targets) and len(val) == len(val.targets)
    assert task.direction in ("maximize", "minimize")
    assert task.metric.startswith("val_")
    if task.problem == "classification":
        assert train.targets.dtype == torch.int64
        assert int(train.targets.min()) >= 0 and int(train.targets.max()) < task.output_size
    else:
        assert train.targets.shape[2] == task.output_size
        assert bool(torch.isfinite(train.targets).all())
    if task.vocab_size is None:
        assert train.inputs.dtype == torch.float32 and train.inputs.shape[2] == task.input_size


def test_sdigits_orders_and_permutation() -> None:
    row, pixel = get_task("sdigits"), get_task("sdigits", order="pixel")
    assert row.train_data.inputs.shape[1:] == (8, 8)
    assert pixel.train_data.inputs.shape[1:] == (64, 1)
    # Same split, same images: the pixel order is the row order flattened.
    torch.testing.assert_close(row.val_data.inputs.reshape(-1, 64, 1), pixel.val_data.inputs)
    assert len(row.train_data) + len(row.val_data) == 1797
    assert 0 <= float(row.val_data.inputs.min()) and float(row.val_data.inputs.max()) <= 1
    permuted = SDigits(order="pixel", permute=True)
    assert permuted.permutation is not None
    torch.testing.assert_close(
        permuted.val_data.inputs, pixel.val_data.inputs[:, torch.from_numpy(permuted.permutation)]
    )
    # The permutation is fixed: another split seed keeps it.
    other = SDigits(order="pixel", permute=True, seed=1)
    assert other.permutation is not None
    assert (other.permutation == permuted.permutation).all()


def test_adding_targets_are_the_marked_sums() -> None:
    task = get_task("adding", length=12, n_train=64, n_val=32)
    inputs, targets = task.train_data.inputs, task.train_data.targets
    assert torch.equal(inputs[:, :, 1].sum(dim=1), torch.full((64,), 2.0))
    assert bool((inputs[:, :6, 1].sum(dim=1) == 1).all())
    sums = (inputs[:, :, 0] * inputs[:, :, 1]).sum(dim=1)
    torch.testing.assert_close(sums, targets[:, 0, 0])


def test_copy_recall_targets_are_the_presented_symbols() -> None:
    task = get_task("copy", n_symbols=5, delay=4, n_recall=3, n_train=64, n_val=32)
    inputs, targets = task.train_data.inputs, task.train_data.targets
    assert inputs.shape[1:] == (2 * 3 + 4, 5 + 2) and targets.shape == (64, 3)
    assert torch.equal(inputs[:, :3, :5].argmax(dim=-1), targets)
    assert bool((inputs[:, -3:, 6] == 1).all()) and bool((inputs[:, :-3, 6] == 0).all())
    assert float(inputs[:, 3:7, 5].abs().sum()) > 0


def test_sines_targets_are_the_clean_signal_ahead() -> None:
    task = get_task("sines", length=20, horizon=0, noise_std=0.0, burn_in=4, n_train=8, n_val=8)
    torch.testing.assert_close(task.train_data.inputs[:, 4:], task.train_data.targets)
    shifted = get_task("sines", length=20, horizon=3, noise_std=0.0, burn_in=4, n_train=8, n_val=8)
    ahead = shifted.train_data.targets
    torch.testing.assert_close(shifted.train_data.inputs[:, 7:], ahead[:, :-3])


def test_charlm_text_and_next_character_targets() -> None:
    text = python_text()
    assert text.startswith("The Zen of Python") and len(text) > 48_000
    tokens = encode("Zen, of\u2019 \u00e9")
    assert "".join(VOCAB[t] for t in tokens) == "zen, of' #"
    task = get_task("charlm", max_chars=4000, seq_len=32)
    train = task.train_data
    assert train.inputs.shape[1] == 32 and train.inputs.dtype == torch.int64
    torch.testing.assert_close(train.inputs[:, 1:], train.targets[:, :-1])
    assert len(train) + len(task.val_data) == 4000 // 33


def test_variants_change_only_defaults() -> None:
    copy_long = get_task("copy_long", n_train=64, n_val=32)
    assert copy_long.train_data.inputs.shape[1:] == (52, 6) and copy_long.n_epochs == 25
    # A variant is its parent with other defaults: same options, same data.
    parent = get_task("copy", **copy_long.options())
    torch.testing.assert_close(parent.val_data.inputs, copy_long.val_data.inputs, rtol=0, atol=0)
    assert get_task("copy_long", delay=60, n_train=4, n_val=4).seq_len == 62
    assert get_task("adding_long", n_train=8, n_val=4).seq_len == 100
    psdigits = get_task("psdigits")
    pixel = SDigits(order="pixel", permute=True)
    assert psdigits.train_data.inputs.shape[1:] == (64, 1)
    torch.testing.assert_close(psdigits.val_data.inputs, pixel.val_data.inputs, rtol=0, atol=0)


def test_xor_targets_are_the_xor_of_two_distant_marked_bits() -> None:
    task = get_task("xor", length=20, n_train=256, n_val=32)
    inputs, targets = task.train_data.inputs, task.train_data.targets
    bits, markers = inputs[:, :, 0], inputs[:, :, 1]
    assert set(bits.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(markers.sum(dim=1), torch.full((256,), 2.0))
    positions = markers.nonzero()[:, 1].reshape(256, 2)
    assert bool((positions[:, 0] < 5).all()) and bool((positions[:, 1] >= 15).all())
    marked = (bits.gather(1, positions) > 0).long()
    assert torch.equal(marked[:, 0] ^ marked[:, 1], targets[:, 0])
    # Both classes occur about equally: chance is 0.5.
    assert 0.35 < float(targets.double().mean()) < 0.65


def test_mackey_glass_series_is_bounded_chaotic_and_targets_lead_inputs() -> None:
    rng = np.random.default_rng(0)
    series = mackey_glass(4, 400, 1.0, 17.0, rng)
    assert series.shape == (4, 400)
    assert 0.2 < series.min() and series.max() < 1.5  # the attractor's range
    # Different random histories end on the attractor but not in step (chaos), and a series
    # does not settle on the fixed point x = 1.
    assert np.abs(series[0] - series[1]).max() > 0.3
    assert series[0, 200:].std() > 0.1
    task = get_task("mackey_glass", length=20, horizon=3, burn_in=4, n_train=8, n_val=4)
    inputs, targets = task.train_data.inputs, task.train_data.targets
    assert targets.shape == (8, 20 - 4, 1)
    torch.testing.assert_close(inputs[:, 7:], targets[:, :-3])


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("sdigits", {"order": "column"}, r"\['row', 'pixel'\].*order='column'"),
        ("sdigits", {"val_fraction": 1.5}, r"val_fraction=1.5"),
        ("adding", {"length": 1}, r"length=1"),
        ("copy", {"n_symbols": 1}, r"n_symbols=1"),
        ("sines", {"freq_range": (0.1, 0.7)}, r"freq_range=\(0.1, 0.7\)"),
        ("charlm", {"max_chars": 10}, r"max_chars=10"),
        ("xor", {"length": 3}, r"length=3"),
        ("mackey_glass", {"burn_in": 30, "length": 20}, r"burn_in=30"),
        ("mackey_glass", {"tau": 0.0}, r"tau=0.0"),
        ("copy_long", {"delay": -1}, r"delay=-1"),
        ("sdigits", {"cells": ("rnn", "transformer")}, r"'gru'.*cell='transformer'"),
        ("sdigits", {"hidden_size_range": (64, 8)}, r"hidden_size_range"),
        ("sdigits", {"lr_range": (0.0, 0.1)}, r"lr_range"),
        ("sdigits", {"n_epochs": 0}, r"n_epochs=0"),
    ],
)
def test_bad_options_name_the_value(name: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_task(name, **kwargs)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("copy", {"n_symbols": True}, r"n_symbols=True"),
        ("copy", {"noise_std": "1"}, r"noise_std='1'"),
        ("adding", {"length": 30.0}, r"length=30.0"),
        ("xor", {"n_train": 0.5}, r"n_train=0.5"),
        ("mackey_glass", {"horizon": 1.5}, r"horizon=1.5"),
        ("sines", {"freq_range": (True, 0.1)}, r"freq_range=\(True, 0.1\)"),
        ("sines", {"burn_in": 2.0}, r"burn_in=2.0"),
        ("charlm", {"seq_len": False}, r"seq_len=False"),
        ("sdigits", {"permute": 1}, r"permute=1"),
        ("sdigits", {"n_epochs": 2.5}, r"n_epochs=2.5"),
        ("sdigits", {"seed": -1}, r"seed=-1"),
        ("sdigits", {"grad_clip": math.inf}, r"grad_clip=inf"),
    ],
)
def test_options_of_the_wrong_type_are_refused_not_truncated(
    name: str, kwargs: dict[str, Any], match: str
) -> None:
    # One exception type for a bad option, as everywhere in the package: both a TypeError and
    # a ValueError, naming the option and the value given.
    with pytest.raises(InvalidParameterError, match=match):
        get_task(name, **kwargs)
