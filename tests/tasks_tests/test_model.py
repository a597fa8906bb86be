from __future__ import annotations

import math

import optuna
import pytest
import torch
from torch import nn

from optuna_lyap.tasks import CELLS, PARAM_NAMES, SequenceModel, get_task


def _params(cell: str = "lstm", hidden_size: int = 16, init_scale: float = 1.0) -> dict:
    return {"cell": cell, "hidden_size": hidden_size, "init_scale": init_scale, "lr": 1e-2}


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_model_has_the_requested_batch_first_recurrent_module(cell: str) -> None:
    task = get_task("sdigits")
    model = task.build_model(_params(cell, hidden_size=12), seed=0)
    assert isinstance(model, SequenceModel) and isinstance(model.rnn, CELLS[cell])
    assert model.rnn.batch_first and model.rnn.hidden_size == 12
    assert model(task.val_data.inputs[:5]).shape == (5, 8, 10)


def test_same_seed_same_weights_and_global_random_state_untouched() -> None:
    task = get_task("charlm", max_chars=4000)
    state = torch.random.get_rng_state()
    first = task.build_model(_params("gru"), seed=7).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    again = task.build_model(_params("gru"), seed=7).state_dict()
    other = task.build_model(_params("gru"), seed=8).state_dict()
    for key, value in first.items():
        torch.testing.assert_close(value, again[key], rtol=0, atol=0)
    assert not torch.equal(first["rnn.weight_hh_l0"], other["rnn.weight_hh_l0"])


@pytest.mark.parametrize("init_scale", [0.3, 1.0, 5.0])
def test_recurrent_parameters_are_uniform_with_the_scaled_bound(init_scale: float) -> None:
    task = get_task("sdigits", num_layers=2)
    model = task.build_model(_params("lstm", hidden_size=25, init_scale=init_scale), seed=0)
    bound = init_scale / math.sqrt(25)
    values = torch.cat([p.detach().ravel() for p in model.rnn.parameters()])
    assert float(values.abs().max()) <= bound
    assert float(values.abs().max()) > 0.99 * bound
    # U(-a, a) has variance a^2 / 3.
    assert float(values.var()) == pytest.approx(bound**2 / 3, rel=0.05)
    assert model.rnn.num_layers == 2
    readout = model.readout.weight.detach()
    assert float(readout.abs().max()) <= 1 / math.sqrt(25)


def test_probe_inputs_join_short_validation_sequences() -> None:
    task = get_task("sdigits")
    model = task.build_model(_params(), seed=0)
    probes = task.probe_inputs(model, n=3)
    assert probes.shape == (3, 64, 8) and task.probe_length == 64
    val = task.val_data.inputs
    torch.testing.assert_close(probes[0, :8], val[0])
    torch.testing.assert_close(probes[0, 8:16], val[1])
    torch.testing.assert_close(probes[1, :8], val[8])
    torch.testing.assert_close(task.probe_inputs(model, n=3), probes, rtol=0, atol=0)
    assert get_task("sdigits", probe_length=20).probe_inputs(model, n=2).shape == (2, 20, 8)
    with pytest.raises(ValueError, match=r"n=0"):
        task.probe_inputs(model, n=0)
    # A validation set too small for n probes is cycled through.
    tiny = get_task("adding", length=40, n_train=4, n_val=3)
    cycled = tiny.probe_inputs(tiny.build_model(_params(), seed=0), n=5)
    assert cycled.shape == (5, 64, 2)
    torch.testing.assert_close(cycled[1, :40], tiny.val_data.inputs[2])
    torch.testing.assert_close(cycled[1, 40:], tiny.val_data.inputs[0, :24])


def test_charlm_probes_are_the_embedded_characters() -> None:
    task = get_task("charlm", max_chars=4000, seq_len=32, embedding_dim=6)
    model = task.build_model(_params("rnn"), seed=0)
    probes = task.probe_inputs(model, n=4)
    assert probes.shape == (4, 64, 6) and not probes.requires_grad
    assert model.embedding is not None
    tokens = torch.cat([task.val_data.inputs[0], task.val_data.inputs[1]])
    torch.testing.assert_close(probes[0], model.embedding(tokens).detach())
    # The probes drive the recurrent module exactly as the model's own forward pass does.
    states, _ = model.rnn(probes[:, :32])
    outputs = model(task.val_data.inputs[[0, 2, 4, 6]])
    torch.testing.assert_close(model.readout(states), outputs)


def test_probes_follow_the_model_dtype() -> None:
    task = get_task("sines", length=20, n_train=16, n_val=16)
    model = task.build_model(_params("gru"), seed=0).double()
    assert task.probe_inputs(model, n=2).dtype == torch.float64


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"cell": "transformer"}, r"\['gru', 'lstm', 'rnn'\].*cell='transformer'"),
        ({"hidden_size": 0}, r"hidden_size=0"),
        ({"hidden_size": 2.5}, r"hidden_size=2.5"),
        ({"init_scale": -1.0}, r"init_scale.*value=-1.0"),
        ({"lr": float("nan")}, r"lr.*value=nan"),
    ],
)
def test_bad_params_name_the_value(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_task("sdigits").build_model({**_params(), **change}, seed=0)


def test_missing_params_are_listed() -> None:
    params = _params()
    del params["init_scale"]
    with pytest.raises(ValueError, match=r"\['init_scale'\] are missing"):
        get_task("sdigits").build_model(params)


def test_suggest_params_draws_from_the_declared_space() -> None:
    task = get_task(
        "sdigits", cells=("gru", "rnn"), hidden_size_range=(4, 6), lr_range=(1e-3, 1e-3)
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        params = task.suggest_params(trial)
        assert tuple(params) == PARAM_NAMES and params == trial.params
        assert params["cell"] in ("gru", "rnn") and 4 <= params["hidden_size"] <= 6
        assert 0.25 <= params["init_scale"] <= 8.0 and params["lr"] == pytest.approx(1e-3)
        study.tell(trial, 0.0)
    distributions = study.trials[0].distributions
    init_scale, hidden_size = distributions["init_scale"], distributions["hidden_size"]
    assert isinstance(init_scale, optuna.distributions.FloatDistribution) and init_scale.log
    assert isinstance(hidden_size, optuna.distributions.IntDistribution) and hidden_size.log
    task.build_model(task.default_params(), seed=0)


def test_built_model_is_on_cpu_and_trainable() -> None:
    model = get_task("adding", n_train=8, n_val=8).build_model(_params("rnn"), seed=None)
    assert all(p.device.type == "cpu" and p.requires_grad for p in model.parameters())
    assert isinstance(model.readout, nn.Linear) and model.embedding is None
