"""What each worker process owes the others on a shared study.

- **Its own sampler seeds.** Workers started with one study seed must not propose the same
  parameters. :class:`PerTrialSeededSampler` gives the trial numbered ``n`` a fresh base sampler
  seeded by ``(seed, n)``: trial numbers are unique within a study, so every process (a worker, a
  resumed ``run``) draws from its own stream, and the same study grown in the same order draws
  the same numbers again.
- **No trial left RUNNING by a dead worker.** :class:`TrialKeeper` records in each trial it runs
  which process owns it (host, pid, process start time) and, on journal storages, which have no
  heartbeat in Optuna, beats every ``interval`` seconds. Before each new trial it fails the
  RUNNING trials whose owner is gone (same host, process gone) or silent (no beat for
  ``GRACE_BEATS`` intervals) and queues each one again once, as Optuna's
  ``RetryHeartbeatStaleTrialCallback`` does for RDB storages.
- **A clean stop.** :class:`StopRequests` turns SIGINT and SIGTERM into :class:`Interrupted`
  inside a trial (Optuna fails the trial, the CLI queues it again) and into "stop after this
  trial" between trials.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from optuna_lyap._storage import OWNER_KEY

HEARTBEAT_INTERVAL = 30
"""Seconds between heartbeats (the RDB storages use the same interval for Optuna's own)."""

GRACE_BEATS = 3
"""A trial whose owner has not beaten for this many intervals is taken as abandoned."""

_SAMPLER_STREAM = 1  # keeps sampler seeds apart from the model seeds of ``tasks.trial_seed``


def sampler_seed(seed: int, number: int) -> int:
    """The seed of the sampler that proposes trial ``number`` of a study run with ``seed``."""
    state = np.random.SeedSequence([seed, number, _SAMPLER_STREAM]).generate_state(1)
    return int(state[0])


class PerTrialSeededSampler(BaseSampler):
    """A base sampler made afresh for each trial, seeded by the study seed and trial number.

    Samplers such as TPE keep no state between trials beyond their random generator (they read
    the history from the storage), so a fresh one per trial proposes as the long-lived one would,
    except that its random numbers depend on the trial number and not on what this process
    sampled before. That is what keeps workers (and a resumed run) from repeating each other.

    Args:
        make: ``make(seed) -> BaseSampler``, e.g. :func:`tpe_sampler` (a module-level function
            keeps the sampler picklable).
        seed: The stream's seed; trial ``n`` gets ``make(sampler_seed(seed, n))``.
    """

    def __init__(self, make: Callable[[int], BaseSampler], seed: int) -> None:
        self._make = make
        self._seed = seed
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_local"]  # per-thread samplers are made again for each trial
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _current(self) -> BaseSampler:
        sampler = getattr(self._local, "sampler", None)
        if sampler is None:  # called outside a trial (e.g. by a wrapper's own bookkeeping)
            sampler = self._local.sampler = self._make(self._seed)
        return sampler

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._local.sampler = self._make(sampler_seed(self._seed, trial.number))
        self._local.sampler.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._current().infer_relative_search_space(study, trial)

    def sample_relative(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        search_space: dict[str, BaseDistribution],
    ) -> dict[str, Any]:
        return self._current().sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._current().sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Any,
    ) -> None:
        self._current().after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        # Seeds come from trial numbers; there is no process-wide generator to reseed.
        pass

    def draws_independently(self) -> bool:
        """Whether the samplers made by ``make`` read no earlier results (see
        :func:`optuna_lyap.pruners.draws_independently`): a wrapper draws as what it wraps."""
        from optuna_lyap.pruners import draws_independently

        return draws_independently(self._current())

    def sampler_name(self) -> str:
        """The class name of the samplers ``make`` makes, for messages."""
        from optuna_lyap.pruners._lyapunov import sampler_name

        return sampler_name(self._current())


def tpe_sampler(seed: int) -> BaseSampler:
    """Optuna's default sampler, seeded."""
    return optuna.samplers.TPESampler(seed=seed)


def random_sampler(seed: int) -> BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


# --- Who owns a running trial ------------------------------------------------------------------


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after its closing parenthesis are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only its exit status is left
        return -1
    return int(fields[19])


def _process_alive(pid: int, start: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else
    now_start = _process_start(pid)
    if now_start == -1:
        return False
    # A pid reused by a newer process is not the owner.
    return start is None or now_start is None or now_start == start


def abandoned_reason(record: Any, trial: FrozenTrial, *, host: str, now: float) -> str | None:
    """Why ``trial`` (RUNNING, owner ``record``) is abandoned, or None while its owner lives.

    A record copied onto another trial (Optuna's retries copy system attrs) is not the trial's
    own and proves nothing.
    """
    if not isinstance(record, dict) or record.get("trial") != trial.number:
        return None
    pid = record.get("pid")
    if record.get("host") == host and isinstance(pid, int):
        if not _process_alive(pid, record.get("start")):
            return f"its worker (pid {pid} on {host}) is gone"
    beat, interval = record.get("beat"), record.get("interval")
    if isinstance(beat, (int, float)) and isinstance(interval, (int, float)):
        silent = now - beat
        if silent > GRACE_BEATS * interval:
            return (
                f"its worker ({record.get('host')}, pid {pid}) has been silent for {silent:.0f} s"
            )
    return None


def fail_and_retry(study: optuna.Study, trial: FrozenTrial) -> int | None:
    """Fail the RUNNING ``trial`` and queue its parameters again once; the retry's number.

    Returns None when another process finished the trial first, or when the trial is already a
    retry (each configuration is retried once, as ``RetryHeartbeatStaleTrialCallback(max_retry=1)``
    does on RDB storages).
    """
    storage = study._storage
    try:
        if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
            return None
    except UpdateFinishedTrialError:
        return None
    return retry(study, storage.get_trial(trial._trial_id))


def retry(study: optuna.Study, failed: FrozenTrial) -> int | None:
    """Queue ``failed``'s parameters as a WAITING trial, unless it is a retry already."""
    with warnings.catch_warnings():
        # Optuna's recommended retry (in place of the deprecated RetryFailedTrialCallback) is
        # marked experimental; we use it on purpose.
        warnings.simplefilter("ignore", ExperimentalWarning)
        if optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(failed):
            return None
        before = {t.number for t in study.get_trials(deepcopy=False)}
        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)(study, failed)
    added = [
        t.number
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if t.number not in before and t.system_attrs.get("failed_trial") == failed.number
    ]
    return added[0] if added else None


class TrialKeeper:
    """Claims the trials this process runs and recovers those whose owner died.

    Args:
        study: The study this process works on.
        heartbeat: Beat every ``interval`` seconds while a trial runs. Needed on journal
            storages; RDB storages run Optuna's own heartbeat instead.
        interval: Seconds between beats.
    """

    def __init__(
        self, study: optuna.Study, *, heartbeat: bool, interval: float = HEARTBEAT_INTERVAL
    ) -> None:
        self._study = study
        self._heartbeat = heartbeat
        self._interval = interval
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._start = _process_start(self.pid)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self, number: int) -> dict[str, Any]:
        record: dict[str, Any] = {
            "host": self.host,
            "pid": self.pid,
            "start": self._start,
            "trial": number,
        }
        if self._heartbeat:
            record |= {"beat": time.time(), "interval": self._interval}
        return record

    def claim(self, trial: optuna.Trial) -> None:
        """Mark ``trial`` as this process's and start beating for it."""
        storage, trial_id, number = self._study._storage, trial._trial_id, trial.number
        storage.set_trial_system_attr(trial_id, OWNER_KEY, self._record(number))
        if not self._heartbeat:
            return
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(self._interval):
                try:
                    storage.set_trial_system_attr(trial_id, OWNER_KEY, self._record(number))
                except UpdateFinishedTrialError:
                    return  # finished meanwhile

        self._thread = threading.Thread(target=beat, name="optuna-lyap-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop beating (the trial finished or failed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def recover(self) -> list[tuple[int, int | None, str]]:
        """Fail (and queue again) every RUNNING trial whose owner is gone or silent.

        Returns:
            ``(trial number, retry's number or None, reason)`` for each trial recovered.
        """
        now = time.time()
        recovered = []
        for t in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            reason = abandoned_reason(t.system_attrs.get(OWNER_KEY), t, host=self.host, now=now)
            if reason is None:
                continue
            number = fail_and_retry(self._study, t)
            recovered.append((t.number, number, reason))
        return recovered


# --- Stopping on a signal ----------------------------------------------------------------------


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while a trial ran. Optuna fails the trial and re-raises."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# Code that must not be interrupted half-way: Optuna's storages (a journal file's lock, a
# database transaction). A KeyboardInterrupt raised inside JournalFileOpenLock.release, after
# its unlink, makes it unlink again and fail with FileNotFoundError; raised inside acquire, it
# can leave the lock file that every other worker waits on.
_STORAGE_CODE = os.sep + os.path.join("optuna", "storages") + os.sep
# How soon a signal that arrived inside storage code is acted on again (seconds).
RETRY_INTERVAL = 0.01


def inside_storage(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a frame that called it runs Optuna's storage code."""
    while frame is not None:
        if _STORAGE_CODE in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


class StopRequests:
    """SIGINT and SIGTERM as a stop request: at once inside a trial, after it between trials.

    "At once" waits for any storage call the trial is making to return (a few milliseconds):
    the request is looked at again every ``RETRY_INTERVAL`` seconds with ``SIGALRM`` until the
    process has left Optuna's storage code. A second signal interrupts at once wherever the
    process is.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.in_trial = False
        self.interrupted_trial: int | None = None  # trial id of the trial a signal interrupted
        self._previous: dict[int, Any] = {}
        self._deferred = False  # a signal arrived inside storage code and waits for its end

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            # A shell starts background jobs with SIGINT ignored, so that Ctrl-C reaches only
            # the foreground job; keep it that way.
            if signal.getsignal(signum) is not signal.SIG_IGN:
                self._previous[signum] = signal.signal(signum, self._handle)
        if hasattr(signal, "setitimer"):
            self._previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._retry)

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced (and cancel a pending retry)."""
        if hasattr(signal, "setitimer"):
            signal.setitimer(signal.ITIMER_REAL, 0.0)
        self._deferred = False
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        again = self.signum is not None
        self.signum = signum
        if not (self.in_trial or again):
            return
        if not again and inside_storage(frame) and signal.SIGALRM in self._previous:
            self._deferred = True
            signal.setitimer(signal.ITIMER_REAL, RETRY_INTERVAL)
            return
        self._interrupt(signum)

    def _retry(self, signum: int, frame: FrameType | None) -> None:
        """SIGALRM after a deferred request: interrupt now, unless still inside storage code
        (then look again) or the trial has ended meanwhile (then stop after it, as between
        trials)."""
        if not self._deferred or self.signum is None:
            return
        if self.in_trial and inside_storage(frame):
            signal.setitimer(signal.ITIMER_REAL, RETRY_INTERVAL)
            return
        self._deferred = False
        if self.in_trial:
            self._interrupt(self.signum)

    def _interrupt(self, signum: int) -> None:
        self._deferred = False
        # Optuna logs a failed trial's traceback at WARNING; this failure is deliberate.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        raise Interrupted(signum)

    @property
    def name(self) -> str:
        return "" if self.signum is None else signal.Signals(self.signum).name
