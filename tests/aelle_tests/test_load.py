"""AeLLE.load on files it did not write, or that were damaged: a ValueError that names the file
and what is wrong, never a bare KeyError or torch's zip error."""

from __future__ import annotations

import io
import json
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from optuna_lyap.aelle import AeLLE

TINY = {"n_models": 2, "max_steps": 3, "hidden_dim": 4, "head_hidden_dim": 0, "seed": 0}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("aelle") / "model.pt"
    AeLLE(**TINY).fit(rng.normal(size=(6, 5)), rng.normal(size=6)).save(path)
    return path


def _blob(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True)


def _with_config(path: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    blob = _blob(path)
    config = json.loads(blob["config"])
    change(config)
    blob["config"] = json.dumps(config)
    return blob


def _damaged(saved: Path, kind: str, target: Path) -> None:
    data = saved.read_bytes()
    if kind == "truncated":
        target.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "text":
        target.write_text("hidden_dim: 4\n")
    elif kind == "pickle":
        target.write_bytes(pickle.dumps({"config": "{}"}))
    elif kind == "numpy":
        with target.open("wb") as f:
            np.save(f, np.zeros(3))
    elif kind == "other_torch":
        torch.save({"weights": torch.zeros(3)}, target)
    elif kind == "config_not_json":
        torch.save({**_blob(saved), "config": "{not json"}, target)
    elif kind == "config_list":
        torch.save({**_blob(saved), "config": "[1, 2]"}, target)
    elif kind == "newer_version":
        torch.save(_with_config(saved, lambda c: c.update(version=99)), target)
    elif kind == "missing_key":
        torch.save(_with_config(saved, lambda c: c.pop("target_scale_")), target)
    elif kind == "bad_param":
        torch.save(_with_config(saved, lambda c: c["params"].update(n_models=0)), target)
    elif kind == "unknown_param":
        torch.save(_with_config(saved, lambda c: c["params"].update(depth=3)), target)
    elif kind == "missing_tensor":
        blob = _blob(saved)
        del blob["tensors"]["spec_centre"]
        torch.save(blob, target)
    elif kind == "wrong_shape":
        blob = _blob(saved)
        name = next(k for k in blob["tensors"] if k.startswith("network."))
        blob["tensors"][name] = torch.zeros(1)
        torch.save(blob, target)
    else:
        raise AssertionError(kind)


CASES = [
    ("truncated", "not a readable torch file"),
    ("empty", "not a readable torch file"),
    ("text", "not a readable torch file"),
    ("pickle", "not a readable torch file"),
    ("numpy", "not a readable torch file"),
    ("other_torch", r"holds \['weights'\], not AeLLE.save's"),
    ("config_not_json", "config is not JSON"),
    ("config_list", "config is a list"),
    ("newer_version", "version 99"),
    ("missing_key", r"lacks \['target_scale_'\]"),
    ("bad_param", "n_models=0"),
    ("unknown_param", "depth"),
    ("missing_tensor", r"lacks \['tensor spec_centre'\]"),
    ("wrong_shape", "do not fit together"),
]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch, on "pickle"
@pytest.mark.parametrize(("kind", "what"), CASES)
def test_a_damaged_or_foreign_file_is_a_clear_value_error(
    saved: Path, tmp_path: Path, kind: str, what: str
) -> None:
    target = tmp_path / f"{kind}.pt"
    _damaged(saved, kind, target)
    named = rf"AeLLE.load cannot read {re.escape(repr(str(target)))}"
    with pytest.raises(ValueError, match=named):
        AeLLE.load(target)
    with pytest.raises(ValueError, match=what):
        AeLLE.load(target)


def test_a_file_object_is_named_too(saved: Path, tmp_path: Path) -> None:
    target = tmp_path / "truncated.pt"
    _damaged(saved, "truncated", target)
    with target.open("rb") as f, pytest.raises(ValueError, match="truncated.pt"):
        AeLLE.load(f)
    with pytest.raises(ValueError, match="the BytesIO given"):
        AeLLE.load(io.BytesIO(b"garbage"))


def test_a_missing_file_stays_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        AeLLE.load(tmp_path / "absent.pt")


def test_an_intact_file_still_loads(saved: Path) -> None:
    loaded = AeLLE.load(saved)
    rng = np.random.default_rng(0)
    assert loaded.predict(rng.normal(size=(3, 5))).shape == (3,)
