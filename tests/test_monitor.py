from __future__ import annotations

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from optuna_lyap import InvalidParameterError, LyapunovMonitor, load_spectra, lyapunov_spectrum


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
    monitor = LyapunovMonitor(study.ask(), probe, steps=None, spectrum_kwargs={"k": 3})
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
        optuna.trial.FixedTrial({}),
        _probe(2, 30, 3),
        spectrum_kwargs={"h0": torch.zeros(2, 3)},
        steps=(0,),
    )
    spectrum = monitor.step(cell, 0.0, 0)
    assert spectrum is not None
    # A linear-ish contraction by 0.5 scaled by tanh' <= 1: every exponent below log(0.5).
    assert float(spectrum.exponents.max()) <= np.log(0.5) + 1e-6


def _scaled(rnn: nn.Module, factor: float) -> nn.Module:
    with torch.no_grad():
        for p in rnn.parameters():
            p.mul_(factor)
    return rnn


def test_a_repeated_step_keeps_value_and_spectrum_of_the_first_call() -> None:
    # optuna#852: Optuna keeps the first value reported at a step. The spectrum must too, or
    # the pruner pairs one call's value with another call's dynamics.
    torch.manual_seed(0)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    rnn = nn.GRU(3, 6, batch_first=True)
    monitor = LyapunovMonitor(trial, torch.randn(4, 30, 3), steps=(0, 1))
    monitor.step(rnn, 0.5, 0)
    first = monitor.step(rnn, 0.6, 1)
    assert first is not None
    with pytest.warns(UserWarning, match=r"again for step=1 .* not stored"):
        second = monitor.step(_scaled(rnn, 3.0), 0.9, 1)
    assert second is None
    assert monitor.spectra[1] is first

    frozen = study.trials[0]
    assert frozen.intermediate_values[1] == 0.6
    np.testing.assert_array_equal(load_spectra(frozen)[1], first.exponents.numpy())


def test_a_new_monitor_does_not_overwrite_a_step_the_trial_holds() -> None:
    # A retried trial inherits its predecessor's intermediate values; a fresh monitor on it
    # must not store spectra for steps whose value Optuna will keep from the old run.
    study = optuna.create_study()
    template = optuna.trial.create_trial(
        state=optuna.trial.TrialState.RUNNING, intermediate_values={0: 0.25}
    )
    trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
    trial = optuna.Trial(study, trial_id)
    monitor = LyapunovMonitor(trial, _probe(), steps=(0, 1))
    with pytest.warns(UserWarning, match="step=0"):
        assert monitor.step(nn.RNN(4, 3, batch_first=True), 0.75, 0) is None
    assert monitor.step(nn.RNN(4, 3, batch_first=True), 0.5, 1) is not None
    frozen = study._storage.get_trial(trial_id)
    assert frozen.intermediate_values == {0: 0.25, 1: 0.5}
    assert list(load_spectra(frozen)) == [1]


def test_a_repeat_on_a_fixed_trial_is_refused_too() -> None:
    monitor = LyapunovMonitor(optuna.trial.FixedTrial({}), _probe(), steps=None)
    rnn = nn.RNN(4, 3, batch_first=True)
    monitor.step(rnn, 0.1, 0)
    with pytest.warns(UserWarning, match="step=0"):
        assert monitor.step(rnn, 0.2, 0) is None


def test_a_failed_spectrum_stores_nothing_and_the_step_can_be_repeated() -> None:
    study = optuna.create_study()
    trial = study.ask()
    monitor = LyapunovMonitor(trial, steps=(0,))
    rnn = nn.RNN(4, 3, batch_first=True)
    with pytest.raises(ValueError, match="3-D tensor"):
        monitor.step(rnn, 0.1, 0, probe_inputs=torch.zeros(4, 4))
    assert study.trials[0].intermediate_values == {}
    assert monitor.step(rnn, 0.1, 0, probe_inputs=_probe()) is not None
    assert study.trials[0].intermediate_values == {0: 0.1}


@pytest.mark.parametrize("steps", [(0.7,), (0, 1.0), (-1,), 1, (True,)])
def test_steps_that_are_not_non_negative_integers_are_refused(steps: object) -> None:
    # steps=(0.7,) used to become step 0 silently.
    with pytest.raises(InvalidParameterError, match="steps"):
        LyapunovMonitor(optuna.trial.FixedTrial({}), _probe(), steps=steps)  # type: ignore[arg-type]


@pytest.mark.parametrize("step", [0.7, -1, True, "1"])
def test_step_must_be_a_non_negative_integer(step: object) -> None:
    monitor = LyapunovMonitor(optuna.create_study().ask(), _probe())
    with pytest.raises(InvalidParameterError, match="step"):
        monitor.step(nn.RNN(4, 3, batch_first=True), 0.1, step)  # type: ignore[arg-type]


def test_prune_false_does_not_ask_the_pruner() -> None:
    study = optuna.create_study(pruner=AlwaysPrune())
    monitor = LyapunovMonitor(study.ask(), _probe(), steps=())
    assert monitor.step(nn.RNN(4, 3, batch_first=True), 0.5, 0, prune=False) is None
    with pytest.raises(optuna.TrialPruned):
        monitor.step(nn.RNN(4, 3, batch_first=True), 0.5, 1)


def test_a_model_that_is_no_recurrent_network_is_told_what_is_accepted() -> None:
    monitor = LyapunovMonitor(optuna.trial.FixedTrial({}), _probe(), steps=(0,))
    with pytest.raises(TypeError, match=r"Linear is neither a recurrent module nor a cel") as info:
        monitor.step(nn.Linear(4, 4), 0.0, 0)
    for accepted in ("nn.RNN, nn.GRU or nn.LSTM", "exactly one nn.RNNBase", "given with h0"):
        assert accepted in str(info.value)


def test_spectrum_options_come_as_one_mapping_like_the_samplers() -> None:
    monitor = LyapunovMonitor(optuna.trial.FixedTrial({}), spectrum_kwargs={"k": 2})
    assert monitor.spectrum_kwargs == {"seed": 0, "k": 2}  # seeded unless told otherwise
    assert LyapunovMonitor(optuna.trial.FixedTrial({})).spectrum_kwargs == {"seed": 0}
    with pytest.raises(TypeError):
        LyapunovMonitor(optuna.trial.FixedTrial({}), k=2)  # type: ignore[call-arg]


@pytest.mark.parametrize("lr", [0.0, -1.0, True, "0.1", float("nan")])
def test_a_bad_learning_rate_is_refused_with_one_error_type(lr: object) -> None:
    with pytest.raises(InvalidParameterError, match=r"lr"):
        LyapunovMonitor(optuna.trial.FixedTrial({}), lr=lr)  # type: ignore[arg-type]


def test_a_custom_cell_in_training_mode_gets_the_eval_mode_spectrum_through_the_monitor():
    # pytorch/pytorch#92283, functorch#408 (randomness under vmap/jvp), as a user meets it: the
    # monitor is handed a custom cell with dropout between epochs, its h0 in spectrum_kwargs.
    from tests.lyapunov_tests.test_custom_cells import DropoutCell

    torch.manual_seed(0)
    cell = DropoutCell(3, 6)
    probe, h0 = torch.randn(4, 30, 3), torch.zeros(4, 6)
    reference = lyapunov_spectrum(cell.eval(), probe, h0=h0, seed=0).exponents
    trial = optuna.create_study(direction="maximize").ask()
    monitor = LyapunovMonitor(trial, probe, steps=(0,), spectrum_kwargs={"h0": h0})
    spectrum = monitor.step(cell.train(), 0.1, 0)
    assert spectrum is not None and cell.training
    torch.testing.assert_close(spectrum.exponents, reference)


def test_a_missing_trial_is_refused_when_the_monitor_is_built():
    with pytest.raises(TypeError, match=r"optuna.Trial .* but got NoneType"):
        LyapunovMonitor(None, _probe(), steps=(0,))  # type: ignore[arg-type]
