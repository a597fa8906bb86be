"""The cross-design corpus: data reading, configuration draws, models, and one recorded row."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmarks.lyapbench import designs as D
from benchmarks.lyapbench import record_designs as R
from benchmarks.lyapbench.record import read_records

TS = """# a comment
@problemName Tiny
@univariate false
@classLabel true a b
@data
1.0,2.0,3.0:4.0,5.0,?:a
0.5,0.5,0.5:1.0,1.0,1.0:b
"""


def test_parse_ts_reads_cases_dimensions_labels_and_missing_values() -> None:
    x, labels = D.parse_ts(TS)
    assert x.shape == (2, 3, 2)  # N x T x I
    np.testing.assert_array_equal(x[0, :, 0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(x[1, :, 1], [1.0, 1.0, 1.0])
    assert math.isnan(x[0, 2, 1])
    assert labels == ["a", "b"]


def test_parse_ts_refuses_unequal_lengths_and_a_missing_data_section() -> None:
    with pytest.raises(ValueError, match="share their length"):
        D.parse_ts("@data\n1,2,3:a\n1,2:b\n")
    with pytest.raises(ValueError, match="@data"):
        D.parse_ts("@problemName x\n")


def test_read_csv_series_takes_the_last_column() -> None:
    np.testing.assert_array_equal(D.read_csv_series("t,v\n1,10\n2,20\n"), [10.0, 20.0])


@pytest.mark.parametrize("name", D.design_names())
def test_every_design_draws_reproducible_configs_inside_its_box(name: str) -> None:
    design = D.DESIGNS[name]
    configs = design.draw_configs(12)
    assert configs == design.draw_configs(12)
    assert configs[:5] == design.draw_configs(5)  # a longer design extends a shorter one
    for config in configs:
        assert set(config) == set(design.space)
        for key, dim in design.space.items():
            if dim.kind == "cat":
                assert config[key] in dim.values
            else:
                low, high = dim.values
                assert low * 0.999 <= config[key] <= high * 1.001
        setting = design.canonical(config)
        assert setting.cell in ("rnn", "gru", "lstm")
    # Every parameter of the box reaches the model or the optimiser.
    assert set(design.names.values()) == set(design.space)


def test_designs_have_distinct_seeds_and_distinct_configurations() -> None:
    seeds = [d.seed for d in D.DESIGNS.values()]
    assert len(set(seeds)) == len(seeds)
    first, other = D.DESIGNS["gunpoint_sgd"], D.DESIGNS["copy_orthogonal"]
    assert first.draw_configs(3) != other.draw_configs(3)


def _tiny_task() -> D.SequenceTask:
    return D.get_task("copy", seed=0, n_epochs=2, delay=3, n_train=32, n_val=16)


@pytest.mark.parametrize("init", ["default", "uniform", "orthogonal"])
def test_build_is_seeded_and_leaves_the_global_generator_alone(init: str) -> None:
    task = _tiny_task()
    setting = D.Setting(cell="gru", hidden_size=6, num_layers=2, dropout=0.1, init=init, scale=0.5)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first, trainer = D.build(task, setting, seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    second, _ = D.build(task, setting, seed=7)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    assert trainer.batch_size == setting.batch_size and trainer is not task
    if init == "orthogonal":
        block = first.rnn.weight_hh_l0[:6].detach().double()
        torch.testing.assert_close(block @ block.T, 0.25 * torch.eye(6, dtype=torch.float64))


def test_make_optimizer_builds_each_kind_and_refuses_others() -> None:
    model, _ = D.build(_tiny_task(), D.Setting(cell="rnn", hidden_size=4), seed=0)
    for kind, cls in (
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("sgd", torch.optim.SGD),
    ):
        setting = D.Setting(cell="rnn", hidden_size=4, optimizer=kind, momentum=0.9)
        assert isinstance(D.make_optimizer(model, setting), cls)
    with pytest.raises(ValueError, match="optimizer must be"):
        D.make_optimizer(model, D.Setting(cell="rnn", hidden_size=4, optimizer="rmsprop"))


def test_record_design_writes_rows_and_resumes(tmp_path) -> None:
    design = D.Design(
        "tiny",
        "a tiny copy task",
        ("builtin", {"name": "copy", "delay": 3, "n_train": 32, "n_val": 16}),
        {"kind": D.cat("gru", "lstm"), "width": D.int_log(3, 6), "eta": D.log(1e-3, 1e-1)},
        {"cell": "kind", "hidden_size": "width", "lr": "eta"},
        {"optimizer": "adamw", "grad_clip": None},
        n_epochs=2,
        seed=5,
    )
    assert R.record_design(design, 2, tmp_path, []) == 2
    assert R.record_design(design, 2, tmp_path, []) == 0  # nothing left to do
    meta, records = read_records(tmp_path / "tiny.jsonl.gz")
    assert meta["design"] == design.to_json()
    row = records[0]
    assert row["params"] == design.draw_configs(1)[0]
    assert row["setting"]["optimizer"] == "adamw"
    assert len(row["values"]) == 3 and row["train_loss"][0] is None
    assert [s is None for s in row["spectra"]] == [False, False, False]  # epochs 0-2 of 0-3
    assert len(row["spectra"][0]) == row["dim"]
    assert row["network"]["cell"] == row["params"]["kind"]
    changed = D.Design(**{**design.__dict__, "n_epochs": 3})
    with pytest.raises(SystemExit, match="another definition"):
        R.record_design(changed, 2, tmp_path, [])


def test_the_fixed_rule_prefers_gated_bigger_faster_networks() -> None:
    from benchmarks.suites.design_transfer import final_scores, fixed_rule
    from optuna_lyap.aelle import NetworkDescription

    small = NetworkDescription("rnn", 8, lr=1e-4)
    big = NetworkDescription("lstm", 128, lr=1e-2)
    mid = NetworkDescription("gru", 32, lr=1e-3)
    score = fixed_rule([small, big, mid])
    assert list(np.argsort(score)) == [0, 2, 1]
    # Minimised metrics turn into scores; a tie is broken by the validation loss.
    scores = final_scores(np.array([0.5, 0.5, 0.2]), np.array([1.0, 2.0, 0.1]), "minimize")
    assert list(np.argsort(-scores)) == [2, 0, 1]
