"""Storages the tests run on, and studies that are always deleted afterwards.

The servers are named by environment variables; a test of a server whose variable is unset is
skipped (``.ci/run`` sets all three):

* ``OPTUNA_LYAP_TEST_POSTGRES_URL``, e.g. ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``;
* ``OPTUNA_LYAP_TEST_MYSQL_URL``, e.g. ``mysql+pymysql://root@127.0.0.1:3306/test`` (MySQL or
  MariaDB);
* ``OPTUNA_LYAP_TEST_REDIS_URL``, e.g. ``redis://127.0.0.1:6379`` (a journal on Redis).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

POSTGRES_ENV = "OPTUNA_LYAP_TEST_POSTGRES_URL"
MYSQL_ENV = "OPTUNA_LYAP_TEST_MYSQL_URL"
REDIS_ENV = "OPTUNA_LYAP_TEST_REDIS_URL"
SERVER_ENVS = {"postgres": POSTGRES_ENV, "mysql": MYSQL_ENV, "redis": REDIS_ENV}
KINDS = ("inmemory", "sqlite", "journal", "postgres", "mysql", "redis")
#: The storages several processes can share through a server.
SERVERS = tuple(SERVER_ENVS)


def server_url(kind: str) -> str:
    """The URL of the ``kind`` server (``postgres``, ``mysql`` or ``redis``) the tests run on;
    the test is skipped when its environment variable is unset."""
    env = SERVER_ENVS[kind]
    url = os.environ.get(env)
    if not url:
        pytest.skip(f"{env} is not set")
    return url


def _redis_location(tmp_path: Path) -> str:
    """``URL#PREFIX``: a key prefix of this test's own, so its journal can be deleted whole."""
    url = server_url("redis")
    digest = hashlib.sha1(str(tmp_path).encode()).hexdigest()[:16]
    return f"{url}#optuna_lyap_test_{digest}"


def _delete_redis_journal(location: str) -> None:
    import redis

    url, prefix = location.rsplit("#", 1)
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def storage_url(kind: str, tmp_path: Path) -> str:
    """A URL or path several processes can open: ``sqlite``, ``journal``, ``postgres``,
    ``mysql`` or ``redis`` (a journal on Redis)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.sqlite3'}"
    if kind == "journal":
        return str(tmp_path / "optuna.journal")
    if kind in ("postgres", "mysql"):
        return server_url(kind)
    if kind == "redis":
        return _redis_location(tmp_path)
    raise ValueError(f"no URL for {kind=}")


def open_storage(kind: str, location: str | None) -> BaseStorage:
    """Open a storage of ``kind`` at ``location`` (ignored for ``inmemory``)."""
    if kind == "inmemory":
        return InMemoryStorage()
    assert location is not None
    if kind == "journal":
        return JournalStorage(JournalFileBackend(location))
    if kind == "redis":
        url, prefix = location.rsplit("#", 1)
        return JournalStorage(JournalRedisBackend(url, prefix=prefix))
    return RDBStorage(location)


def unique_study_name() -> str:
    return f"optuna_lyap_test_{uuid.uuid4().hex}"


@contextmanager
def study_factory(kind: str, tmp_path: Path) -> Iterator[Callable[..., optuna.Study]]:
    """Yield ``make(**create_study_kwargs)``; every study it made is deleted on exit."""
    location = None if kind == "inmemory" else storage_url(kind, tmp_path)
    storage = open_storage(kind, location)
    names: list[str] = []

    def make(**kwargs: Any) -> optuna.Study:
        name = unique_study_name()
        names.append(name)
        return optuna.create_study(storage=storage, study_name=name, **kwargs)

    try:
        yield make
    finally:
        for name in names:
            try:
                optuna.delete_study(study_name=name, storage=storage)
            except KeyError:
                pass
        if isinstance(storage, RDBStorage):
            storage.engine.dispose()
        if kind == "redis":
            assert location is not None
            _delete_redis_journal(location)
