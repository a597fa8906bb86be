"""The bar of ``benchmarks/suites/heldout.py``, and its being held to each baseline in turn."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from benchmarks.suites import heldout as heldout_suite


@pytest.fixture(scope="module")
def heldout() -> ModuleType:
    return heldout_suite


def _stats(epochs: float | None, share: float, seconds: float | None = 1.0) -> dict[str, Any]:
    return {"epochs_to_top2pct": epochs, "share_reaching": share, "seconds_to_top2pct": seconds}


@pytest.mark.parametrize(
    ("epochs", "share", "best_epochs", "best_share", "met"),
    [
        (110.0, 0.9, 100.0, 0.9, True),  # exactly 1.10x
        (111.0, 0.9, 100.0, 0.9, False),  # just over
        (80.0, 0.89, 100.0, 0.9, False),  # faster, but fewer seeds reach a top-2% trial
        (None, 0.4, 100.0, 0.9, False),  # never, in the median seed
        (300.0, 1.0, None, 0.3, True),  # the best never reaches one in its median seed
        (None, 0.3, None, 0.3, True),
        (None, 0.2, None, 0.3, False),
    ],
)
def test_meets_bar(
    heldout: ModuleType,
    epochs: float | None,
    share: float,
    best_epochs: float | None,
    best_share: float,
    met: bool,
) -> None:
    assert heldout.meets_bar(_stats(epochs, share), _stats(best_epochs, best_share)) is met


def test_each_baseline_is_held_against_the_best_of_the_others(heldout: ModuleType) -> None:
    entry = {
        "methods": {
            "tpe+sha": _stats(100.0, 0.9),
            "tpe+median": _stats(105.0, 0.95),
            "tpe+hyperband": _stats(130.0, 0.95),
            "ours_pruner_only": _stats(50.0, 1.0),
        }
    }
    rest = heldout.baselines_against_the_rest(entry)
    # Ours is not a baseline, and is no baseline's competitor.
    assert set(rest) == {"tpe+sha", "tpe+median", "tpe+hyperband"}
    assert rest["tpe+sha"]["best_of_the_rest"] == "tpe+median"
    assert rest["tpe+sha"]["ratio_epochs"] == pytest.approx(100 / 105)
    assert rest["tpe+sha"]["meets_bar"] is False  # faster, with a smaller share
    assert rest["tpe+median"]["best_of_the_rest"] == "tpe+sha"
    assert rest["tpe+median"]["meets_bar"] is True  # 1.05x, larger share
    assert rest["tpe+hyperband"]["best_of_the_rest"] == "tpe+sha"
    assert rest["tpe+hyperband"]["meets_bar"] is False  # 1.30x


def test_bar_table_counts_the_tables_met(heldout: ModuleType) -> None:
    tasks = {}
    for task, ours in (("a", _stats(100.0, 0.9)), ("b", _stats(200.0, 0.9))):
        entry = {
            "methods": {
                "tpe+sha": _stats(100.0, 0.9),
                "tpe+median": _stats(120.0, 0.9),
                "ours_pruner_only": {**ours, "ratio_epochs": ours["epochs_to_top2pct"] / 100},
            },
            "best_baseline_epochs": "tpe+sha",
        }
        entry["against_the_rest"] = heldout.baselines_against_the_rest(entry)
        tasks[task] = entry
    rows = heldout.bar_table({"sampler": "tpe", "tasks": tasks})
    assert rows[0] == "| task | tpe+sha | tpe+median | our pruner |"
    assert rows[2] == "| a | 0.83 [0.90] met | 1.20 [0.90] miss | 1.00 [0.90] met |"
    assert rows[3] == "| b | 0.83 [0.90] met | 1.20 [0.90] miss | 2.00 [0.90] miss |"
    assert rows[-1] == "| tables met | 2 of 2 | 0 of 2 | 1 of 2 |"
