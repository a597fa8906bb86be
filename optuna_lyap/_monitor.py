"""``LyapunovMonitor``: the one line a training loop adds to report values and spectra."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import optuna
import torch

from optuna_lyap._checks import check_int, check_real, check_steps
from optuna_lyap._random import caller_rng_kept
from optuna_lyap._storage import report_network, report_spectrum, reported_steps
from optuna_lyap.aelle._features import NetworkDescription
from optuna_lyap.lyapunov import LyapunovSpectrum, lyapunov_spectrum
from optuna_lyap.lyapunov._arguments import check_spectrum_kwargs, recurrent_part

ProbeInputs = torch.Tensor | Callable[[Any], torch.Tensor]


class LyapunovMonitor:
    """Report a trial's metric, store its Lyapunov spectrum on chosen steps, prune on request.

    Call :meth:`step` once per epoch (or evaluation) of the training loop. On every step it
    reports ``value`` with :meth:`optuna.Trial.report`; on the steps in ``steps`` it also
    computes the spectrum of the recurrent part of the model along ``probe_inputs`` and stores
    it with :func:`~optuna_lyap.report_spectrum`; then it raises :class:`optuna.TrialPruned`
    when the study's pruner says so.

    A step's value and spectrum always come from the same call. Optuna keeps the first value
    reported at a step, so a second call for a step the trial already holds (an epoch re-run
    after resuming, a retried trial's inherited steps) stores nothing: it warns, and only asks
    the pruner.

    The spectrum runs on the package's torch thread setting (one thread unless
    :func:`~optuna_lyap.use_threads` or ``OPTUNA_LYAP_NUM_THREADS`` says otherwise); the
    training loop around the monitor keeps its own. Its random state is kept too: a call of
    :meth:`step` leaves torch's CPU and CUDA generators, numpy's global state and Python's
    ``random`` as they were, so a seeded training loop trains the same weights with the
    monitor as without it.

    Example:

        .. code-block:: python

            def objective(trial):
                model = build(trial)
                monitor = optuna_lyap.LyapunovMonitor(trial, probe_inputs, steps=(0, 1))
                monitor.step(model, evaluate(model), 0)  # the untrained network
                for epoch in range(1, 11):
                    train_epoch(model)
                    # Never prune after the last epoch: its cost is already spent.
                    monitor.step(model, evaluate(model), epoch, prune=epoch < 10)
                return evaluate(model)

    Args:
        trial: The running trial (an :class:`optuna.trial.FixedTrial` is accepted; nothing is
            stored then).
        probe_inputs: The sequences that drive the network while its spectrum is measured: a
            tensor laid out as the recurrent module expects (``B x T x I`` when ``batch_first``
            or for a cell), or ``callable(model) -> tensor`` (e.g. a task's probe inputs, which
            depend on the model's embedding). May be given per call instead.
        steps: The steps whose spectrum is computed and stored, non-negative integers; None
            computes it on every step.
        spectrum_kwargs: Keyword arguments of :func:`~optuna_lyap.lyapunov_spectrum` (``k``,
            ``warmup``, ``qr_interval``, ``state``, ``h0``, ``dtype``, ``seed``), as
            :class:`~optuna_lyap.LyapunovSampler` takes them; checked now. Default
            ``{"seed": 0}``: the full spectrum (the pruner compares spectra on a grid of
            normalised index, so full spectra serve it best) from a seeded initial basis, so
            spectra are reproducible. A custom cell needs ``h0``.
        optimizer: The model's optimiser; its learning rate (``param_groups[0]["lr"]`` at the
            first step) is stored with the network's description (see below).
        lr: The learning rate, when no optimiser is given (or to override it).

    At the first call of :meth:`step` the monitor also stores what the cross-task prior reads
    about the network, read from the recurrent module itself
    (:meth:`~optuna_lyap.aelle.NetworkDescription.from_module`: cell, hidden size,
    layers, initialisation scale, recurrent spectral norm) with the learning rate, as the
    trial's system attr ``optuna_lyap:network`` (a JSON object). A custom cell, or a model
    that holds no single ``nn.RNN``/``nn.GRU``/``nn.LSTM``, is skipped silently.

    Raises:
        InvalidParameterError: A step that is not a non-negative integer (``0.7`` is not
            rounded), a spectrum argument of the wrong name, type or range, or an ``lr`` that
            is not a positive finite number (a subclass of ``ValueError`` and ``TypeError``).
        TypeError: ``probe_inputs`` is neither a tensor nor a callable, or ``optimizer`` has
            no ``param_groups``.
    """

    def __init__(
        self,
        trial: optuna.trial.BaseTrial,
        probe_inputs: ProbeInputs | None = None,
        *,
        steps: Iterable[int] | None = (0, 1),
        spectrum_kwargs: Mapping[str, Any] | None = None,
        optimizer: Any = None,
        lr: float | None = None,
    ) -> None:
        if optimizer is not None and not hasattr(optimizer, "param_groups"):
            raise TypeError(
                "optimizer must be a torch optimizer (with param_groups) or None, but got "
                f"{type(optimizer).__name__}."
            )
        if lr is not None:
            lr = check_real("lr", lr, 0.0, math.inf, closed=False)
        self.optimizer = optimizer
        self.lr = lr
        self._described = False
        if probe_inputs is not None and not (
            isinstance(probe_inputs, torch.Tensor) or callable(probe_inputs)
        ):
            raise TypeError(
                "probe_inputs must be a tensor or a callable(model) -> tensor, but got "
                f"{type(probe_inputs).__name__}."
            )
        if not isinstance(trial, optuna.trial.BaseTrial):
            raise TypeError(
                "trial must be the optuna.Trial the objective was given (an "
                f"optuna.trial.BaseTrial), but got {type(trial).__name__}."
            )
        self.trial = trial
        self.probe_inputs = probe_inputs
        self.steps = None if steps is None else check_steps("steps", steps)
        self.spectrum_kwargs: dict[str, Any] = check_spectrum_kwargs(
            {"seed": 0, **(spectrum_kwargs or {})}
        )
        self.spectra: dict[int, LyapunovSpectrum] = {}
        self._reported: set[int] = set()

    def wants_spectrum(self, step: int) -> bool:
        """Whether :meth:`step` computes the spectrum at ``step``."""
        return self.steps is None or step in self.steps

    def step(
        self,
        model: Any,
        value: float,
        step: int,
        *,
        probe_inputs: ProbeInputs | None = None,
        prune: bool = True,
    ) -> LyapunovSpectrum | None:
        """Report ``value`` at ``step``, store the spectrum if ``step`` is chosen, maybe prune.

        The spectrum is computed before anything is stored, so an error in it leaves the step
        unreported and the call can be repeated. A step the trial already holds is not
        reported again (see the class docstring).

        Args:
            model: An ``nn.RNN``/``nn.GRU``/``nn.LSTM``, a module holding exactly one of them
                (e.g. an embedding, the recurrent module and a read-out), a built-in cell, or
                a custom cell ``step(state, x_t) -> state``.
            value: The metric at this step (e.g. the validation accuracy after the epoch).
            step: The step, a non-negative integer, as in :meth:`optuna.Trial.report`.
            probe_inputs: Overrides the monitor's probe inputs for this call.
            prune: Whether to ask the pruner. Pass False at the last step of training: the
                trial has spent its budget and its final value is about to be known, so pruning
                it would only throw that value away.

        Returns:
            The spectrum computed at this call, or None (``step`` not chosen, or repeated).

        Raises:
            optuna.TrialPruned: When ``prune`` is set and the study's pruner prunes the trial.
            InvalidParameterError: ``step`` is not a non-negative integer.
        """
        step = check_int("step", step, 0)
        with caller_rng_kept():
            return self._step(model, value, step, probe_inputs, prune)

    def _step(
        self,
        model: Any,
        value: float,
        step: int,
        probe_inputs: ProbeInputs | None,
        prune: bool,
    ) -> LyapunovSpectrum | None:
        if not self._described:
            self._describe(model)
        spectrum = None
        if step in self._reported or step in reported_steps(self.trial):
            warnings.warn(
                f"LyapunovMonitor.step was called again for {step=} of trial "
                f"{getattr(self.trial, 'number', '?')}; Optuna keeps the value first reported "
                f"at a step, so this call's value {value!r} and spectrum are not stored.",
                UserWarning,
                stacklevel=3,
            )
        else:
            if self.wants_spectrum(step):
                spectrum = self._spectrum(model, step, probe_inputs)
            self.trial.report(value, step)
            self._reported.add(step)
            if spectrum is not None:
                report_spectrum(self.trial, spectrum, step)
                self.spectra[step] = spectrum
        if prune and self.trial.should_prune():
            raise optuna.TrialPruned(f"Trial was pruned at step {step}.")
        return spectrum

    def _describe(self, model: Any) -> None:
        """Store the network's description once (see the class docstring)."""
        self._described = True
        if not isinstance(self.trial, optuna.Trial):
            return  # a FixedTrial stores nothing
        try:
            rnn = recurrent_part(model)
        except ValueError:
            return  # several recurrent modules: which one is ambiguous
        if not isinstance(rnn, (torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM)):
            return
        lr = self.lr
        if lr is None and self.optimizer is not None and self.optimizer.param_groups:
            value = self.optimizer.param_groups[0].get("lr")
            lr = float(value) if isinstance(value, (int, float)) and value > 0 else None
        report_network(self.trial, NetworkDescription.from_module(rnn, lr).to_json())

    def _spectrum(
        self, model: Any, step: int, probe_inputs: ProbeInputs | None
    ) -> LyapunovSpectrum:
        probe = probe_inputs if probe_inputs is not None else self.probe_inputs
        if probe is None:
            raise ValueError(
                f"No probe inputs for the spectrum at {step=}: pass probe_inputs to "
                "LyapunovMonitor or to step()."
            )
        inputs = probe if isinstance(probe, torch.Tensor) else probe(model)
        return lyapunov_spectrum(recurrent_part(model), inputs, **self.spectrum_kwargs)
