"""``benchmarks/prior_blend.py`` without held-out priors: a clear exit, no results overwritten."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

_BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def prior_blend(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(_BENCHMARKS))
    spec = importlib.util.spec_from_file_location("prior_blend", _BENCHMARKS / "prior_blend.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_priors_exits_and_writes_nothing(
    prior_blend: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results" / "prior_blend.json"
    out.parent.mkdir()
    monkeypatch.setattr(prior_blend, "OUT", out)
    empty = tmp_path / "no_priors"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no held-out prior under"):
        prior_blend.main(["--priors", str(empty)])
    assert list(out.parent.iterdir()) == []
