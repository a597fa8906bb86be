from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from optuna_lyap.pruners import LyapunovMonitor, load_spectra


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


class Classifier(nn.Module):
    """An embedding, one GRU and a read-out: the shape of a typical sequence model."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.rnn = nn.GRU(4, 6, batch_first=True)
        self.head = nn.Linear(6, 2)


def _probe(batch: int = 3, length: int = 20, features: int = 4) -> torch.Tensor:
    return torch.randn(batch, length, features, generator=torch.Generator().manual_seed(0))


def test_reports_values_and_stores_spectra_on_chosen_steps() -> None:
    torch.manual_seed(0)
    rnn = nn.RNN(4, 5, batch_first=True)
    study = optuna.create_study()
    trial = study.ask()
    monitor = LyapunovMonitor(trial, _probe(), steps=(0, 2))
    results = [monitor.step(rnn, value, step) for step, value in enumerate([0.3, 0.2, 0.1])]
    assert results[1] is None
    assert results[0] is not None and results[2] is not None
    assert set(monitor.spectra) == {0, 2}
    study.tell(trial, 0.1)

    frozen = study.trials[0]
    assert frozen.intermediate_values == {0: 0.3, 1: 0.2, 2: 0.1}
    stored = load_spectra(frozen)
    assert list(stored) == [0, 2]
    np.testing.assert_array_equal(stored[2], results[2].exponents.numpy())
    assert frozen.user_attrs["lyap_step"] == 2
    assert frozen.user_attrs["lyap_max"] == pytest.approx(results[2].max)


def test_finds_the_recurrent_module_and_calls_probe_with_the_model() -> None:
    model = Classifier()
    seen = []

    def probe(m: nn.Module) -> torch.Tensor:
        seen.append(m)
        return _probe()

    study = optuna.create_study()
    monitor = LyapunovMonitor(study.ask(), probe, steps=None, k=3)
    spectrum = monitor.step(model, 1.0, 0)
    assert seen == [model]
    assert spectrum is not None and spectrum.dim == 6 and spectrum.k == 3
    assert monitor.step(model, 1.0, 1) is not None  # steps=None: every step


def test_ambiguous_or_missing_inputs_fail_clearly() -> None:
    study = optuna.create_study()
    two = nn.Sequential(nn.RNN(4, 4, batch_first=True), nn.GRU(4, 4, batch_first=True))
    with pytest.raises(ValueError, match="ambiguous"):
        LyapunovMonitor(study.ask(), _probe()).step(two, 0.0, 0)
    with pytest.raises(ValueError, match="probe"):
        LyapunovMonitor(study.ask()).step(nn.RNN(4, 4), 0.0, 0)
    with pytest.raises(TypeError, match="probe_inputs"):
        LyapunovMonitor(study.ask(), probe_inputs=[1, 2])  # type: ignore[arg-type]


def test_raises_trial_pruned_with_the_step() -> None:
    study = optuna.create_study(pruner=AlwaysPrune())
    monitor = LyapunovMonitor(study.ask(), _probe(), steps=(0,))
    with pytest.raises(optuna.TrialPruned, match="step 0"):
        monitor.step(nn.LSTM(4, 3, batch_first=True), 0.5, 0)
    assert 0 in load_spectra(study.trials[0])


def test_custom_cell_and_fixed_trial() -> None:
    weight = torch.eye(3) * 0.5

    def cell(state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(state @ weight.T + x)

    monitor = LyapunovMonitor(
        optuna.trial.FixedTrial({}), _probe(2, 30, 3), h0=torch.zeros(2, 3), steps=(0,)
    )
    spectrum = monitor.step(cell, 0.0, 0)
    assert spectrum is not None
    # A linear-ish contraction by 0.5 scaled by tanh' <= 1: every exponent below log(0.5).
    assert float(spectrum.exponents.max()) <= np.log(0.5) + 1e-6
