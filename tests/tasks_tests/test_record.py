from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from optuna_lyap.tasks import get_task, trial_seed

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "record.py"


@pytest.fixture(scope="module")
def record() -> ModuleType:
    spec = importlib.util.spec_from_file_location("record", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["record"] = module
    spec.loader.exec_module(module)
    return module


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
