"""The thread policy: the package's computations run on its own torch thread count and give the
caller's setting back."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from torch import nn

import optuna_lyap
from optuna_lyap import AeLLE, InvalidParameterError, lyapunov_spectrum, use_threads
from optuna_lyap._threads import ENV_VAR, limited_threads, thread_setting

FAST = {"n_models": 1, "max_steps": 5, "hidden_dim": 4, "head_hidden_dim": 0}
CALLER = 3  # a count no default produces, so a leak or a missed cap shows


@pytest.fixture(autouse=True)
def caller_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(ENV_VAR, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(CALLER)
    yield
    torch.set_num_threads(before)


def _recording_cell(seen: list[int]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    weight = torch.eye(3) * 0.5

    def cell(state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return torch.tanh(state @ weight.T + x)

    return cell


def _spectrum_threads() -> list[int]:
    seen: list[int] = []
    lyapunov_spectrum(_recording_cell(seen), torch.randn(2, 8, 3), h0=torch.zeros(2, 3), seed=0)
    assert seen
    return seen


@pytest.fixture
def forward_threads() -> Iterator[list[int]]:
    """Thread counts seen by every module forward while the test runs."""
    seen: list[int] = []
    handle = nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: seen.append(torch.get_num_threads())
    )
    yield seen
    handle.remove()


def test_spectrum_runs_on_one_thread_and_restores_the_callers_setting() -> None:
    assert set(_spectrum_threads()) == {1}
    assert torch.get_num_threads() == CALLER


def test_aelle_fit_and_predict_run_on_one_thread(forward_threads: list[int]) -> None:
    rng = np.random.default_rng(0)
    spectra = rng.normal(size=(8, 4))
    model = AeLLE(seed=0, **FAST).fit(spectra, rng.normal(size=8))
    model.predict(spectra)
    assert forward_threads and set(forward_threads) == {1}
    assert torch.get_num_threads() == CALLER


def test_explicit_n_threads_of_aelle_wins(forward_threads: list[int]) -> None:
    rng = np.random.default_rng(0)
    AeLLE(seed=0, n_threads=2, **FAST).fit(rng.normal(size=(8, 4)), rng.normal(size=8))
    assert set(forward_threads) == {2}


def test_use_threads_sets_the_count_inside_the_block_only() -> None:
    with use_threads(2):
        assert thread_setting() == 2
        assert set(_spectrum_threads()) == {2}
        assert torch.get_num_threads() == CALLER  # only the package's calls change it
    with use_threads(None):
        assert set(_spectrum_threads()) == {CALLER}
    assert set(_spectrum_threads()) == {1}
    with pytest.raises(InvalidParameterError, match="n_threads=0"):
        with use_threads(0):
            pass


def test_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "2")
    assert set(_spectrum_threads()) == {2}
    monkeypatch.setenv(ENV_VAR, "torch")
    assert set(_spectrum_threads()) == {CALLER}
    with use_threads(1):  # the block wins over the environment
        assert set(_spectrum_threads()) == {1}
    for bad in ("0", "-1", "many", "1.5"):
        monkeypatch.setenv(ENV_VAR, bad)
        with pytest.raises(InvalidParameterError, match=ENV_VAR):
            lyapunov_spectrum(nn.RNN(3, 2, batch_first=True), torch.randn(1, 4, 3))
    assert torch.get_num_threads() == CALLER


def test_setting_is_restored_after_an_error() -> None:
    def failing(state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("inside the spectrum")

    with pytest.raises(RuntimeError, match="inside the spectrum"):
        lyapunov_spectrum(failing, torch.randn(2, 4, 3), h0=torch.zeros(2, 3))
    assert torch.get_num_threads() == CALLER


def test_overlapping_blocks_in_threads_restore_the_callers_setting() -> None:
    # Block A enters, block B enters, A leaves while B runs, B leaves: a naive save/restore
    # would leave B's count (or A's saved one) behind.
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    inside_b: list[int] = []

    def run_a() -> None:
        with limited_threads(1):
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def run_b() -> None:
        a_in.wait(5)
        with limited_threads(2):
            b_in.set()
            a_out.wait(5)
            inside_b.append(torch.get_num_threads())

    threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert inside_b == [2]  # A leaving did not undo B's count
    assert torch.get_num_threads() == CALLER


def test_built_in_objective_trains_on_the_package_setting(forward_threads: list[int]) -> None:
    from optuna_lyap.tasks import get_task, make_objective

    task = get_task("copy", delay=3, n_train=16, n_val=8, hidden_size_range=(4, 4), n_epochs=1)
    study = optuna.create_study(direction=task.direction)
    study.optimize(make_objective(task, spectrum_steps=(0,), seed=0), n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert forward_threads and set(forward_threads) == {1}
    assert torch.get_num_threads() == CALLER


def test_monitor_leaves_the_training_loop_alone() -> None:
    seen: list[int] = []
    monitor = optuna_lyap.LyapunovMonitor(
        optuna.trial.FixedTrial({}),
        torch.randn(2, 8, 3),
        spectrum_kwargs={"h0": torch.zeros(2, 3)},
        steps=(0,),
    )
    monitor.step(_recording_cell(seen), 0.0, 0)
    assert set(seen) == {1}
    assert torch.get_num_threads() == CALLER


@pytest.mark.slow  # a real run of the command: ~10-20 s on a busy machine
def test_cli_threads_flag_reaches_the_built_in_objective(
    tmp_path: Path, forward_threads: list[int]
) -> None:
    from optuna_lyap import cli

    storage = str(tmp_path / "study.log")
    argv = ["run", "--storage", storage, "--task", "adding", "--n-trials", "1", "--n-epochs", "1"]
    assert cli.main([*argv, "--threads", "2", "--no-progress"]) == 0
    assert forward_threads and set(forward_threads) == {2}
    assert torch.get_num_threads() == 2  # the flag sets the process's own setting as well
