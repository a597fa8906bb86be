from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from optuna_lyap import LyapunovMonitor
from optuna_lyap._prediction._prior import (
    NETWORK_ATTR,
    PriorPrediction,
    TrialPrior,
    network_of,
)
from optuna_lyap._storage import encode_floats, spectrum_key
from optuna_lyap.aelle import NetworkDescription, load_shipped_prior
from optuna_lyap.tasks import get_task, make_objective


def _trial(
    number: int,
    values: dict[int, float],
    *,
    params: dict | None = None,
    network: dict | None = None,
    spectrum: np.ndarray | None = None,
    dim: int | None = None,
) -> optuna.trial.FrozenTrial:
    attrs: dict = {}
    if network is not None:
        attrs[NETWORK_ATTR] = network
    if spectrum is not None:
        attrs[spectrum_key(0)] = {
            "dim": dim or len(spectrum),
            "k": len(spectrum),
            "exponents": encode_floats(spectrum),
        }
    distributions = {
        k: optuna.distributions.CategoricalDistribution([v]) for k, v in (params or {}).items()
    }
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING,
        params=params or {},
        distributions=distributions,
        intermediate_values=values,
        system_attrs=attrs,
    )
    trial.number = number
    return trial


def test_network_of_reads_the_attr_then_the_params() -> None:
    stored = NetworkDescription("lstm", 64, 2, 1.5, None, 3.0).to_json()
    trial = _trial(0, {}, params={"learning_rate": 0.01, "hidden_size": 8}, network=stored)
    net = network_of(trial)
    # The attr wins where it knows; the params fill what it does not (the learning rate).
    assert net == NetworkDescription("lstm", 64, 2, 1.5, 0.01, 3.0)
    by_params = network_of(
        _trial(1, {}, params={"rnn_type": "GRU", "n_hidden": 32, "lr": 1e-3, "optim": "adam"})
    )
    assert by_params == NetworkDescription("gru", 32, None, None, 1e-3)
    # Unparseable values are unknown fields, not errors; nothing known gives None.
    odd = network_of(_trial(2, {}, params={"cell": "tcn", "hidden_size": 0, "lr": 1e-3}))
    assert odd == NetworkDescription(None, None, lr=1e-3)
    assert network_of(_trial(3, {}, params={"dropout": 0.1})) is None
    # The README's quick start names the hidden size "hidden".
    assert network_of(_trial(5, {}, params={"hidden": 12})) == NetworkDescription(None, 12)
    damaged = _trial(4, {}, params={"lr": 0.1}, network={"cell": "tcn"})
    assert network_of(damaged) == NetworkDescription(None, None, lr=0.1)


def test_resolve_accepts_the_documented_values(tmp_path: Path) -> None:
    shipped = TrialPrior.resolve("shipped")
    assert shipped is not None and TrialPrior.resolve("shipped") is shipped
    assert shipped.digest == load_shipped_prior().digest()
    assert TrialPrior.resolve(None) is None
    assert TrialPrior.resolve(load_shipped_prior()).digest == shipped.digest  # type: ignore[union-attr]
    path = tmp_path / "bundle.pt"
    load_shipped_prior().save(path)
    assert TrialPrior.resolve(path).digest == shipped.digest  # type: ignore[union-attr]
    assert TrialPrior.resolve(str(path)).digest == shipped.digest  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="'nope.pt'"):
        TrialPrior.resolve("nope.pt")
    with pytest.raises(ValueError, match="42"):
        TrialPrior.resolve(42)
    (tmp_path / "bad.pt").write_bytes(b"xx")
    with pytest.raises(ValueError, match="bad.pt"):
        TrialPrior.resolve(tmp_path / "bad.pt")


def test_predict_trials_uses_what_each_trial_has() -> None:
    prior = TrialPrior.resolve("shipped")
    assert prior is not None
    rng = np.random.default_rng(0)
    net = {"cell": "gru", "hidden_size": 16, "num_layers": 1, "lr": 1e-3}
    spectrum = np.sort(rng.normal(-0.5, 0.3, 16))[::-1]
    trials = [
        _trial(0, {0: 0.1, 1: 0.5}, network=net, spectrum=spectrum),
        _trial(1, {0: 0.2, 1: 0.4}, network=net),
        _trial(2, {0: 0.3, 1: 0.3}, spectrum=spectrum),
        _trial(3, {0: 0.4, 1: 0.2}),  # nothing but the curve: no prediction
        _trial(4, {1: 0.1}, network=net, spectrum=spectrum[:2], dim=16),  # too few exponents
    ]
    out = prior.predict_trials(trials, 1, "maximize")
    assert sorted(out) == [0, 1, 2, 4]
    assert out[0].inputs == "hyperparameters+spectrum+curve" and out[0].model_step == 1
    assert out[1].inputs == "hyperparameters+curve"
    assert out[2].inputs == "spectrum+curve"
    assert out[4].inputs == "hyperparameters+curve"
    for p in out.values():
        assert isinstance(p, PriorPrediction) and 0 < p.quantile < 1
        assert 0 <= p.top_probability <= 1 or math.isnan(p.top_probability)
    # Steps beyond the last model use it; direction flips the curve's ranks.
    later = prior.predict_trials(trials, 7, optuna.study.StudyDirection.MINIMIZE)
    assert later[0].model_step == 2
    with pytest.raises(ValueError, match="direction"):
        prior.predict_trials(trials, 1, "up")
    assert prior.predict_trials([], 1, "maximize") == {}


def test_predict_candidates_at_step_zero() -> None:
    prior = TrialPrior.resolve("shipped")
    assert prior is not None
    spectrum = np.linspace(0.1, -2, 32)
    out = prior.predict_candidates(
        [{"cell": "lstm", "hidden_size": 32, "lr": 1e-3}, {"dropout": 0.2}, {"dropout": 0.2}],
        spectra=[spectrum, None, spectrum],
    )
    assert out[0] is not None and out[0].inputs == "hyperparameters+spectrum"
    assert out[0].model_step == 0 and 0 < out[0].quantile < 1
    assert out[1] is None
    # Without hyperparameters only spectrum+curve would fit, and a candidate has no curve.
    assert out[2] is None
    with pytest.raises(ValueError, match="spectra must have 3"):
        prior.predict_candidates([{}, {}, {}], spectra=[spectrum])


def test_monitor_stores_the_network_and_the_prior_predicts_the_study() -> None:
    task = get_task("copy", delay=2, n_train=8, n_val=8)
    study = optuna.create_study(direction=task.direction, pruner=optuna.pruners.NopPruner())
    cells = ("rnn", "gru", "lstm")
    for i in range(6):  # small networks keep the spectra quick
        study.enqueue_trial(
            {
                "cell": cells[i % 3],
                "hidden_size": 8 + 2 * i,
                "init_scale": 0.5 + 0.3 * i,
                "lr": 10 ** (-3.6 + 0.4 * i),
            }
        )
    study.optimize(make_objective(task, n_epochs=1, seed=0), n_trials=6)
    first = study.trials[0]
    network = first.system_attrs[NETWORK_ATTR]
    assert network["cell"] == first.params["cell"]
    assert network["hidden_size"] == first.params["hidden_size"]
    assert network["lr"] == pytest.approx(first.params["lr"])
    assert network["init_scale"] == pytest.approx(first.params["init_scale"], rel=0.1)
    prior = TrialPrior.resolve("shipped")
    assert prior is not None
    out = prior.predict_trials(study.trials, 1, study.direction)
    assert len(out) == 6
    assert all(0 < p.quantile < 1 for p in out.values())
    assert all(p.inputs == "hyperparameters+spectrum+curve" for p in out.values())


def test_monitor_skips_custom_cells_and_reads_lr_from_the_optimizer() -> None:
    study = optuna.create_study()
    rnn = torch.nn.GRU(3, 8, batch_first=True)
    optimizer = torch.optim.SGD(rnn.parameters(), lr=0.05)
    trial = study.ask()
    monitor = LyapunovMonitor(trial, torch.zeros(2, 5, 3), steps=(), optimizer=optimizer)
    monitor.step(rnn, 0.5, 0, prune=False)
    stored = study.trials[0].system_attrs[NETWORK_ATTR]
    assert stored["cell"] == "gru" and stored["lr"] == 0.05 and stored["num_layers"] == 1

    def cell(state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(state)

    trial = study.ask()
    LyapunovMonitor(trial, torch.zeros(2, 5, 3), steps=(), lr=0.1).step(cell, 0.5, 0)
    assert NETWORK_ATTR not in study.trials[1].system_attrs
    with pytest.raises(ValueError, match="lr"):
        LyapunovMonitor(trial, lr=-1.0)
    with pytest.raises(TypeError, match="optimizer"):
        LyapunovMonitor(trial, optimizer=0.1)


def test_curve_group_matches_the_training_features() -> None:
    from optuna_lyap._prediction._prior import _curve
    from optuna_lyap.aelle._features import curve_rank_features

    rng = np.random.default_rng(1)
    values = rng.uniform(size=(7, 3))
    loss = rng.uniform(size=(7, 3))
    trials = [_trial(i, {s: float(values[i, s]) for s in range(3)}) for i in range(len(values))]
    for i, trial in enumerate(trials):
        trial.user_attrs = {"val_loss:2": float(loss[i, 2])}
    for direction in ("maximize", "minimize"):
        np.testing.assert_allclose(
            _curve(trials, 2, direction), curve_rank_features(values, direction, 2, loss)
        )
    # Without the loss attr its rank is unknown; at the first step the change is 0.
    at0 = _curve(trials, 0, "maximize")
    assert np.isnan(at0[:, 3]).all() and (at0[:, 2] == 0).all()


def test_predicting_200_trials_is_cheap() -> None:
    import time

    prior = TrialPrior.resolve("shipped")
    assert prior is not None
    rng = np.random.default_rng(2)
    net = {"cell": "lstm", "hidden_size": 32, "lr": 1e-3}
    trials = [
        _trial(
            i,
            {0: float(rng.random()), 1: float(rng.random())},
            network=net,
            spectrum=np.sort(rng.normal(-0.5, 0.3, 64))[::-1],
        )
        for i in range(200)
    ]
    prior.predict_trials(trials[:5], 1, "maximize")  # first call pays one-off imports
    start = time.perf_counter()
    out = prior.predict_trials(trials, 1, "maximize")
    elapsed = time.perf_counter() - start
    assert len(out) == 200
    # Measured 0.015-0.03 s on the shared 2-core machine; 1 s leaves room for any load.
    assert elapsed < 1.0
