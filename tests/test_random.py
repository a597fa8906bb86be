"""Adding the package must not change the user's training: every entry point that draws random
numbers leaves torch's, numpy's and Python's global generators as they were."""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from torch import nn

import optuna_lyap as ol
from optuna_lyap._random import caller_rng_kept, fresh_seed
from optuna_lyap.aelle import CrossTaskPrior
from optuna_lyap.aelle._features import PriorInputs
from optuna_lyap.tasks import get_task
from tests.aelle_tests._synthetic import spectrum_family

CUDA = torch.cuda.is_available()


def _states() -> tuple[Any, ...]:
    cuda = tuple(torch.cuda.get_rng_state_all()) if CUDA and torch.cuda.is_initialized() else ()
    return (torch.get_rng_state(), cuda, np.random.get_state(), random.getstate())


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    torch_a, cuda_a, numpy_a, python_a = a
    torch_b, cuda_b, numpy_b, python_b = b
    return (
        torch.equal(torch_a, torch_b)
        and len(cuda_a) == len(cuda_b)
        and all(torch.equal(x, y) for x, y in zip(cuda_a, cuda_b, strict=True))
        and numpy_a[0] == numpy_b[0]
        and np.array_equal(numpy_a[1], numpy_b[1])
        and numpy_a[2:] == numpy_b[2:]
        and python_a == python_b
    )


@contextmanager
def _generators_untouched(what: str) -> Iterator[None]:
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    before = _states()
    yield
    assert _same(before, _states()), f"{what} changed a global random generator"


def _probe() -> torch.Tensor:
    return torch.randn(4, 20, 3, generator=torch.Generator().manual_seed(1))


def test_the_helper_restores_every_generator_also_on_error() -> None:
    with _generators_untouched("caller_rng_kept"):
        with caller_rng_kept():
            torch.rand(3)
            np.random.rand(3)
            random.random()
    with _generators_untouched("caller_rng_kept on error"), pytest.raises(RuntimeError):
        with caller_rng_kept():
            torch.rand(3)
            raise RuntimeError("boom")


def test_a_fresh_seed_reads_no_global_state() -> None:
    with _generators_untouched("fresh_seed"):
        seeds = {fresh_seed() for _ in range(4)}
    assert len(seeds) == 4 and all(0 <= s < 2**62 for s in seeds)


# The checks of ../shared/cases/17_global_rng.py, which failed before.
@pytest.mark.parametrize("cls", [nn.RNN, nn.GRU, nn.LSTM])
@pytest.mark.parametrize("seed", [0, None])
def test_a_spectrum_leaves_the_generators(cls: type[nn.RNNBase], seed: int | None) -> None:
    torch.manual_seed(0)
    net = cls(3, 8, num_layers=2, batch_first=True)
    with _generators_untouched(f"lyapunov_spectrum({cls.__name__}, {seed=})"):
        ol.lyapunov_spectrum(net, _probe(), seed=seed)


def test_a_spectrum_of_a_cell_leaves_the_generators() -> None:
    cell = nn.GRUCell(3, 5)
    with _generators_untouched("lyapunov_spectrum(GRUCell)"):
        ol.lyapunov_spectrum(cell, _probe(), seed=0)


def test_seed_none_still_draws_a_new_basis_each_call() -> None:
    net = nn.GRU(3, 6, batch_first=True)
    first = ol.lyapunov_spectrum(net, _probe(), k=2, seed=None)
    second = ol.lyapunov_spectrum(net, _probe(), k=2, seed=None)
    assert not torch.equal(first.per_sequence, second.per_sequence)


def test_a_monitor_step_leaves_the_generators() -> None:
    study = optuna.create_study(direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        net = nn.LSTM(3, 8, batch_first=True)
        monitor = ol.LyapunovMonitor(trial, _probe(), steps=(0, 1))
        with _generators_untouched("LyapunovMonitor.step"):
            monitor.step(net, 0.5, 0)
        return 0.5

    study.optimize(objective, n_trials=1)
    assert ol.load_spectra(study.trials[0])


def test_the_samplers_screening_leaves_the_generators() -> None:
    probe = _probe()

    def factory(params: dict[str, Any], seed: int = 0) -> nn.Module:
        return nn.GRU(3, int(params["hidden_size"]), batch_first=True)

    sampler = ol.LyapunovSampler(model_factory=factory, probe_inputs=probe, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: t.suggest_int("hidden_size", 4, 16) / 16, n_trials=2)
    with _generators_untouched("LyapunovSampler's screening"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(lambda t: t.suggest_int("hidden_size", 4, 16) / 16, n_trials=1)


def test_aelle_leaves_the_generators() -> None:
    spectra, targets, _ = spectrum_family(24, seed=0)
    fast = {"n_models": 2, "max_steps": 20, "latent_dim": 2}
    for seed in (0, None):
        with _generators_untouched(f"AeLLE(seed={seed}).fit"):
            model = ol.AeLLE(seed=seed, **fast).fit(spectra, targets)
        with _generators_untouched("AeLLE.predict"):
            model.predict(spectra, return_std=True)
        with _generators_untouched("AeLLE.transform and reconstruct"):
            model.transform(spectra)
            model.reconstruct(spectra)
        with _generators_untouched("AeLLE.embed"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.embed(spectra, method="pca")


@pytest.mark.parametrize("model", ["hgb", "aelle"])
def test_the_cross_task_prior_fit_leaves_the_generators(model: str) -> None:
    rng = np.random.default_rng(0)
    n = 60
    spectra = [np.sort(rng.uniform(-2.0, 0.5, 16))[::-1] for _ in range(n)]
    inputs = PriorInputs(rng.random((n, 8)), spectra, np.full(n, 16), rng.random((n, 4)))
    target = rng.random(n)
    extra = {"aelle_params": {"n_models": 1, "max_steps": 10}} if model == "aelle" else {}
    with _generators_untouched(f"CrossTaskPrior(model={model!r}).fit"):
        CrossTaskPrior(model=model, **extra).fit(inputs, target)  # type: ignore[arg-type]


def test_building_a_task_model_leaves_the_generators() -> None:
    task = get_task("sdigits")
    with _generators_untouched("SequenceTask.build_model"):
        task.build_model(task.default_params(), seed=0)


def _train(monitor_for: Callable[[], ol.LyapunovMonitor] | None) -> dict[str, torch.Tensor]:
    """A user's own seeded loop: global-RNG init, shuffling and dropout, a few epochs."""
    torch.manual_seed(0)
    np.random.seed(0)
    x = torch.randn(48, 12, 3)
    y = x.sum(dim=(1, 2)).gt(0).long()

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(3, 8, batch_first=True)
            self.drop = nn.Dropout(0.2)
            self.head = nn.Linear(8, 2)

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            out, _ = self.rnn(inputs)
            return self.head(self.drop(out[:, -1]))

    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    monitor = monitor_for() if monitor_for is not None else None
    for epoch in range(4):
        net.train()
        for batch in torch.randperm(len(x)).split(16):
            jitter = torch.as_tensor(np.random.normal(0.0, 0.01, x[batch].shape), dtype=x.dtype)
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[batch] + jitter), y[batch]).backward()
            opt.step()
        if monitor is not None:
            monitor.step(net, float(epoch), epoch, prune=False)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_a_seeded_training_loop_trains_the_same_weights_with_the_monitor() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    probe = torch.randn(4, 12, 3, generator=torch.Generator().manual_seed(5))
    monitor = ol.LyapunovMonitor(trial, probe, steps=None)  # a spectrum every epoch
    without = _train(None)
    with_monitor = _train(lambda: monitor)
    assert set(monitor.spectra) == {0, 1, 2, 3}
    assert without.keys() == with_monitor.keys()
    for name, value in without.items():
        assert torch.equal(value, with_monitor[name]), f"{name} differs with the monitor"


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_a_spectrum_on_cuda_leaves_the_cuda_generator() -> None:
    torch.cuda.init()
    net = nn.LSTM(3, 8, num_layers=2, batch_first=True).cuda()
    with _generators_untouched("lyapunov_spectrum on CUDA"):
        ol.lyapunov_spectrum(net, _probe().cuda(), seed=0)
        ol.lyapunov_spectrum(net, _probe().cuda(), seed=None)
