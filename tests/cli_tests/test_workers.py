"""Workers on one study: distinct proposals, no trial left RUNNING, a clean stop."""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from optuna_lyap._storage import OWNER_KEY
from optuna_lyap.cli._workers import (
    Interrupted,
    PerTrialSeededSampler,
    StopRequests,
    TrialKeeper,
    abandoned_reason,
    sampler_seed,
    tpe_sampler,
)
from tests.cli_tests._support import (
    cli_command,
    cli_env,
    open_storage,
    run_cli,
    storage_url,
    study_name_on,
    wait_for,
)

HOST = socket.gethostname()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def journal_study(tmp_path: Path, sampler: optuna.samplers.BaseSampler | None = None):
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    return optuna.create_study(
        storage=storage, study_name="s", sampler=sampler, load_if_exists=True
    )


def suggest(trial: optuna.Trial) -> None:
    trial.suggest_float("x", 0.0, 1.0)
    trial.suggest_int("n", 1, 1000)


# --- Seeds ------------------------------------------------------------------------------------


def test_sampler_seeds_differ_by_trial_and_repeat_by_seed():
    seeds = {sampler_seed(0, n) for n in range(200)}
    assert len(seeds) == 200
    assert sampler_seed(3, 7) == sampler_seed(3, 7) != sampler_seed(4, 7)


def test_the_per_trial_sampler_pickles():
    sampler = pickle.loads(pickle.dumps(PerTrialSeededSampler(tpe_sampler, 5)))
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert len({t.params["x"] for t in study.trials}) == 3


@pytest.mark.parametrize("base", ["tpe", "random"])
def test_workers_with_one_seed_propose_distinct_parameters(tmp_path: Path, base: str):
    def make(seed: int) -> optuna.samplers.BaseSampler:
        if base == "tpe":
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=4)
        return optuna.samplers.RandomSampler(seed=seed)

    # Two processes' samplers made alike from the study's one seed, taking turns.
    workers = [journal_study(tmp_path, PerTrialSeededSampler(make, 0)) for _ in range(2)]
    for i in range(12):
        trial = workers[i % 2].ask()
        suggest(trial)
        workers[i % 2].tell(trial, trial.params["x"])
    params = [tuple(t.params.values()) for t in workers[0].trials]
    assert len(set(params)) == len(params) == 12

    # The same study grown in the same order proposes the same parameters again.
    (tmp_path / "again").mkdir()
    again = journal_study(tmp_path / "again", PerTrialSeededSampler(make, 0))
    for _ in range(12):
        trial = again.ask()
        suggest(trial)
        again.tell(trial, trial.params["x"])
    assert [tuple(t.params.values()) for t in again.trials] == params


# --- Who owns a running trial -------------------------------------------------------------


def running_trial(study: optuna.Study, record: dict | None) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    suggest(trial)
    if record is not None:
        study._storage.set_trial_system_attr(trial._trial_id, OWNER_KEY, record)
    return study._storage.get_trial(trial._trial_id)


def test_abandoned_reason_tells_dead_and_silent_owners_from_live_ones(tmp_path: Path):
    study = journal_study(tmp_path)
    now = time.time()
    me = {"host": HOST, "pid": os.getpid(), "start": None}
    cases = [
        (me, None),
        ({**me, "pid": dead_pid()}, "is gone"),
        ({"host": "elsewhere", "pid": 1, "beat": now - 10, "interval": 30}, None),
        ({"host": "elsewhere", "pid": 1, "beat": now - 100, "interval": 30}, "silent for 100 s"),
        ({**me, "beat": now - 1000, "interval": 30}, "silent"),  # alive but stuck
    ]
    for record, expected in cases:
        trial = running_trial(study, None)
        reason = abandoned_reason({**record, "trial": trial.number}, trial, host=HOST, now=now)
        if expected is None:
            assert reason is None, record
        else:
            assert reason is not None and expected in reason, (record, reason)
        # A record copied from another trial (Optuna's retries copy system attrs) says nothing.
        copied = {**record, "trial": trial.number + 100}
        assert abandoned_reason(copied, trial, host=HOST, now=now) is None


def test_recover_fails_a_dead_workers_trial_and_queues_it_once(tmp_path: Path):
    study = journal_study(tmp_path)
    live = running_trial(study, None)
    dead = running_trial(study, {"host": HOST, "pid": dead_pid(), "trial": 1})
    assert dead.number == 1
    keeper = TrialKeeper(study, heartbeat=True)
    ((number, again, reason),) = keeper.recover()
    assert (number, "is gone" in reason) == (1, True)
    trials = study.get_trials()
    assert trials[0].state == TrialState.RUNNING  # no owner record: not ours to judge
    assert trials[1].state == TrialState.FAIL
    assert trials[again].state == TrialState.WAITING
    assert trials[again].params == dead.params
    assert keeper.recover() == []  # a second worker finds nothing left to do
    del live

    # The retry, picked up and abandoned again, is failed but not queued a second time.
    retried = study.ask()
    assert retried.number == again
    study._storage.set_trial_system_attr(
        retried._trial_id, OWNER_KEY, {"host": HOST, "pid": dead_pid(), "trial": again}
    )
    ((number, second, _),) = keeper.recover()
    assert (number, second) == (again, None)
    assert study.get_trials()[again].state == TrialState.FAIL


def test_claim_beats_on_a_journal_and_release_stops(tmp_path: Path):
    study = journal_study(tmp_path)
    trial = study.ask()
    keeper = TrialKeeper(study, heartbeat=True, interval=0.05)
    keeper.claim(trial)
    first = study._storage.get_trial(trial._trial_id).system_attrs[OWNER_KEY]
    assert (first["host"], first["pid"], first["trial"]) == (HOST, os.getpid(), trial.number)
    wait_for(
        lambda: (
            study._storage.get_trial(trial._trial_id).system_attrs[OWNER_KEY]["beat"]
            > first["beat"]
        ),
        timeout=10,
        what="a heartbeat",
    )
    keeper.release()
    study.tell(trial, 1.0)


# --- Real processes -------------------------------------------------------------------------


def params_of(study: optuna.Study) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in study.trials if t.params]


@pytest.mark.slow
def test_two_workers_and_a_resumed_run_train_no_configuration_twice(tmp_path: Path):
    journal = storage_url("journal", tmp_path)
    common = ("--storage", journal, "--study-name", "s", "--no-progress")
    run_cli("run", *common, "--task", "adding", "--n-trials", "3", "--n-epochs", "1",
            "--pruner", "none", cwd=tmp_path)  # fmt: skip
    workers = [
        subprocess.Popen(
            cli_command("worker", *common, "--n-trials", "3"),
            cwd=tmp_path,
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err
        assert "Warning" not in err, err
    run_cli("run", *common, "--task", "adding", "--n-trials", "3", cwd=tmp_path)
    study = optuna.load_study(study_name="s", storage=open_storage(journal))
    params = params_of(study)
    assert len(params) == 12
    assert len(set(params)) == 12, "a configuration was trained twice"


def wait_mid_trial(url: str, name: str) -> optuna.trial.FrozenTrial:
    """The trial a worker is training, once it has trained an epoch."""
    storage = open_storage(url)
    found: list[optuna.trial.FrozenTrial] = []

    def training() -> bool:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            return False
        running = [
            t for t in study.get_trials(states=(TrialState.RUNNING,))
            if OWNER_KEY in t.system_attrs and t.user_attrs.get("epochs_trained", 0) >= 1
        ]  # fmt: skip
        found[:] = running
        return bool(running)

    wait_for(training, timeout=300, what="a trial in training")
    return found[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "signum"),
    [
        ("journal", signal.SIGTERM),
        ("sqlite", signal.SIGTERM),
        ("postgres", signal.SIGTERM),
        ("mysql", signal.SIGTERM),
        ("journal", signal.SIGKILL),
        ("sqlite", signal.SIGKILL),
        ("postgres", signal.SIGKILL),
        ("mysql", signal.SIGKILL),
    ],
)
def test_a_killed_worker_leaves_no_trial_running(tmp_path: Path, kind: str, signum: int):
    url = storage_url(kind, tmp_path)
    with study_name_on(url) as name:
        common = ("--storage", url, "--study-name", name, "--no-progress")
        # 20 epochs (about 1.5 s after the first): the signal must land inside the trial the
        # test saw training; with 3, a loaded machine finished it first (about 0.15 s left).
        run_cli("run", *common, "--task", "adding", "--n-trials", "1", "--n-epochs", "20",
                "--pruner", "none", cwd=tmp_path)  # fmt: skip
        worker = subprocess.Popen(
            cli_command("worker", *common), cwd=tmp_path, env=cli_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        victim = wait_mid_trial(url, name)
        worker.send_signal(signum)
        out, err = worker.communicate(timeout=120)
        if signum == signal.SIGTERM:
            assert worker.returncode == 128 + signum, err
            assert "epochs spent" in out  # the summary still comes
            assert "Traceback" not in err, err
            assert f"stopped by SIGTERM; trial {victim.number} failed and is queued again" in err
        else:
            assert worker.returncode == -signum

        # The study goes on: the next worker fails (if needed) and reruns the trial.
        proc = run_cli("worker", *common, "--n-trials", "1", cwd=tmp_path)
        if signum == signal.SIGKILL:
            assert f"trial {victim.number} failed: its worker (pid {worker.pid}" in proc.stderr
        assert "Warning" not in proc.stderr, proc.stderr
        study = optuna.load_study(study_name=name, storage=open_storage(url))
        states = [t.state for t in study.trials]
        assert TrialState.RUNNING not in states
        assert study.trials[victim.number].state == TrialState.FAIL
        (retried,) = [
            t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number
        ]
        assert retried.state == TrialState.COMPLETE
        assert retried.params == victim.params


# --- Stopping on a signal, in this process --------------------------------------------------


class SignalWhileSampling(optuna.samplers.RandomSampler):
    """Sends SIGTERM to this process while trial ``number`` is being sampled (between trials)."""

    def __init__(self, number: int) -> None:
        super().__init__(seed=0)
        self._number = number

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.number == self._number:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
@pytest.mark.parametrize("when", ["in a trial", "between trials"])
def test_a_signal_fails_the_trial_queues_it_again_and_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, when: str
):
    from optuna_lyap.cli._run import optimize

    storage = open_storage(storage_url(kind, tmp_path))
    sampler = SignalWhileSampling(1) if when == "between trials" else None
    study = optuna.create_study(storage=storage, study_name="s", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if when == "in a trial" and trial.number == 1:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this
        return x

    before = signal.getsignal(signal.SIGTERM)
    stop = optimize(study, objective, n_trials=5, progress=False)
    assert signal.getsignal(signal.SIGTERM) is before  # handlers are put back
    assert stop.signum == signal.SIGTERM
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    assert study.trials[2].params == study.trials[1].params
    err = capsys.readouterr().err
    assert err.strip() == "stopped by SIGTERM; trial 1 failed and is queued again as trial 2"


def test_a_signal_inside_a_journal_write_waits_for_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # SIGTERM right after Optuna's journal lock unlinks its renamed file: raised there, the
    # interrupt made the lock unlink it again and the worker died of FileNotFoundError.
    study = optuna.create_study(
        storage=JournalStorage(JournalFileBackend(str(tmp_path / "j.log")))
    )
    trial = study.ask()
    real_unlink = os.unlink
    sent: list[str] = []

    def unlink_then_signal(path: str, *args: object, **kwargs: object) -> None:
        real_unlink(path, *args, **kwargs)
        if not sent and str(path).endswith(".rename"):
            sent.append(str(path))
            os.kill(os.getpid(), signal.SIGTERM)

    stop = StopRequests()
    stop.install()
    try:
        stop.in_trial = True
        monkeypatch.setattr(os, "unlink", unlink_then_signal)
        with pytest.raises(Interrupted):
            trial.set_user_attr("x", 1)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:  # the deferred interrupt lands here
                pass
        monkeypatch.undo()
    finally:
        stop.in_trial = False
        stop.restore()
    assert sent and stop.signum == signal.SIGTERM
    # The write completed and released its lock: the next one goes through.
    trial.set_user_attr("y", 2)
    assert study.trials[0].user_attrs == {"x": 1, "y": 2}
