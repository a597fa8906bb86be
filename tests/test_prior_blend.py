"""The prior-blend suite without held-out priors: a clear exit, no results overwritten."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from benchmarks.suites import prior_blend as prior_blend_suite


@pytest.fixture
def prior_blend() -> ModuleType:
    return prior_blend_suite


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
