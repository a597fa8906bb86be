"""Running ``optuna-lyap`` for real, and the storages it runs on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna

from tests._support.storages import server_url


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "optuna_lyap.cli", *args]


def cli_env() -> dict[str, str]:
    # Warnings stay on: tests check that stderr holds none.
    return dict(os.environ, OMP_NUM_THREADS="1")


def run_cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        cli_command(*args), cwd=cwd, capture_output=True, text=True, timeout=600, env=cli_env()
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def storage_url(kind: str, tmp_path: Path) -> str:
    """The ``--storage`` argument for ``kind``: journal, sqlite, postgres, mysql or redis (a
    server's test is skipped when its environment variable is unset)."""
    if kind == "journal":
        return str(tmp_path / "study.log")
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return server_url(kind)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    from optuna_lyap.cli._storage_url import open_storage as cli_open_storage

    return cli_open_storage(url)


@contextmanager
def study_name_on(url: str) -> Iterator[str]:
    """A fresh study name; the study is deleted afterwards (shared servers stay clean)."""
    name = f"optuna_lyap_cli_test_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        storage = open_storage(url)
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass


def wait_for(condition: Callable[[], bool], timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
