from __future__ import annotations

import gzip
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from benchmarks.lyapbench import record as record_module
from optuna_lyap.tasks import get_task, trial_seed


@pytest.fixture(scope="module")
def record() -> ModuleType:
    return record_module


TINY = [
    "--task",
    "copy",
    "--option",
    "delay=3",
    "--option",
    "n_train=32",
    "--option",
    "n_val=16",
    "--n-epochs",
    "2",
    "--n-probes",
    "3",
    "--cells",
    "rnn",
    "lstm",
    "--hidden-sizes",
    "4",
    "--init-scales",
    "0.5",
    "2",
    "--lrs",
    "0.01",
]


def test_grid_order_is_a_seeded_permutation_of_the_full_grid(record: ModuleType) -> None:
    grid = {"cell": ["rnn", "gru"], "hidden_size": [4, 8, 16], "lr": [0.1]}
    configs = record.grid_configs(grid, seed=0)
    assert len(configs) == 6 and configs == record.grid_configs(grid, seed=0)
    assert {(c["cell"], c["hidden_size"]) for c in configs} == {
        (cell, h) for cell in ("rnn", "gru") for h in (4, 8, 16)
    }
    assert configs != record.grid_configs(grid, seed=1)


def test_record_resume_and_load(record: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "copy.jsonl.gz"
    record.main([*TINY, "--out", str(out), "--stop", "1"])
    assert len(record.read_records(out)[1]) == 1
    record.main([*TINY, "--out", str(out)])  # resumes: runs the three others
    table = record.load_table(out)
    assert list(table["index"]) == [0, 1, 2, 3]
    assert table["values"].shape == (4, 3) and table["spectra"].shape == (4, 3, 8)
    lstm = table["cell"] == "lstm"
    assert list(table["dim"]) == [8 if is_lstm else 4 for is_lstm in lstm]
    assert np.isnan(table["spectra"][~lstm, :, 4:]).all()
    assert np.isfinite(table["spectra"][~lstm, :, :4]).all()
    spectra = table["spectra"][lstm]
    assert (np.diff(spectra, axis=-1) <= 0).all()  # descending
    assert np.isfinite(table["val_loss"]).all() and (table["val_loss"] > 0).all()
    losses = table["train_loss"]
    assert np.isnan(losses[:, 0]).all() and np.isfinite(losses[:, 1:]).all()
    assert (table["spectrum_seconds"] > 0).all()
    meta = table["meta"]
    assert meta["task"] == "copy" and meta["n_configs"] == 4 and "--stop 1" in meta["command"]
    assert meta["task_config"]["delay"] == 3 and meta["task_config"]["n_symbols"] == 4
    # Epoch 0 is the untrained network a seeded objective would build for that index.
    task = get_task("copy", delay=3, n_train=32, n_val=16)
    params = {k: table[k][2].item() for k in ("cell", "hidden_size", "init_scale", "lr")}
    model = task.build_model(params, seed=trial_seed(0, 2))
    assert table["values"][2, 0] == pytest.approx(task.evaluate(model))


def test_resume_refuses_other_settings(record: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "copy.jsonl.gz"
    record.main([*TINY, "--out", str(out), "--stop", "1"])
    with pytest.raises(SystemExit, match="other settings"):
        record.main([*TINY, "--seed", "1", "--out", str(out)])


def test_a_truncated_last_record_is_dropped(record: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "copy.jsonl.gz"
    record.main([*TINY, "--out", str(out), "--stop", "2"])
    with out.open("ab") as handle:
        handle.write(gzip.compress(b'{"kind": "config", "index": 9')[:20])
    with pytest.warns(UserWarning, match="truncated"):
        _, records = record.read_records(out)
    assert [r["index"] for r in records] == [0, 1]


def test_random_design_is_seeded_in_range_and_extends(record: ModuleType) -> None:
    ranges = {
        "cell": ["rnn", "lstm"],
        "hidden_size": [8, 128],
        "init_scale": [0.25, 8.0],
        "lr": [3e-4, 3e-2],
    }
    configs = record.random_configs(ranges, 50, seed=0)
    assert configs == record.random_configs(ranges, 50, seed=0)
    assert configs[:10] == record.random_configs(ranges, 10, seed=0)  # a prefix of a longer one
    assert configs != record.random_configs(ranges, 50, seed=1)
    assert {c["cell"] for c in configs} == {"rnn", "lstm"}
    for key in ("hidden_size", "init_scale", "lr"):
        low, high = ranges[key]
        values = np.array([c[key] for c in configs])
        assert values.min() >= low and values.max() <= high
        # Log-uniform: about half the draws fall below the geometric midpoint.
        assert 10 <= (values < np.sqrt(low * high)).sum() <= 40
    assert all(isinstance(c["hidden_size"], int) for c in configs)
    with pytest.raises(ValueError, match="n_configs=0"):
        record.random_configs(ranges, 0, seed=0)


def test_spectra_only_at_chosen_epochs_and_capped_k(record: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "xor.jsonl.gz"
    args = [
        "--task",
        "xor",
        "--option",
        "length=8",
        "--option",
        "n_train=32",
        "--option",
        "n_val=16",
        "--n-epochs",
        "3",
        "--n-probes",
        "3",
        "--design",
        "random",
        "--n-configs",
        "3",
        "--hidden-size-range",
        "4",
        "40",
        "--spectrum-epochs",
        "0",
        "2",
        "--max-k",
        "6",
        "--out",
        str(out),
    ]
    record.main(args)
    table = record.load_table(out)
    meta = table["meta"]
    assert meta["design"] == "random" and meta["spectrum_epochs"] == [0, 2] and meta["max_k"] == 6
    assert meta["n_configs"] == 3 and meta["grid"]["hidden_size"] == [4, 40]
    expected = [record.random_configs(meta["grid"], 3, seed=0)[i] for i in range(3)]
    assert [c["hidden_size"] for c in expected] == list(table["hidden_size"])
    finite = np.isfinite(table["spectra"]).sum(axis=-1)
    assert (finite[:, [0, 2]] == np.minimum(table["dim"], 6)[:, None]).all()
    assert (finite[:, [1, 3]] == 0).all()
    assert (table["spectrum_seconds"][:, [1, 3]] < 0.01).all()
    # The recorded dim is the full state's, whatever k was.
    lstm = table["cell"] == "lstm"
    assert list(table["dim"]) == list(table["hidden_size"] * np.where(lstm, 2, 1))
    with pytest.raises(SystemExit, match="other settings"):
        record.main([*args[:-2], "--max-k", "8", "--out", str(out)])
