"""Storages the pruner tests run on, and studies that are always deleted afterwards."""

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
REDIS_ENV = "OPTUNA_LYAP_TEST_REDIS_URL"
KINDS = ("inmemory", "sqlite", "journal", "postgres", "redis")


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def skip_without_postgres() -> None:
    if postgres_url() is None:
        pytest.skip(f"{POSTGRES_ENV} is not set")


def _redis_location(tmp_path: Path) -> str:
    """``URL#PREFIX``: a key prefix of this test's own, so its journal can be deleted whole."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set")
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
    """A URL or path several processes can open: ``sqlite``, ``journal``, ``postgres`` or
    ``redis`` (a journal on Redis)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.sqlite3'}"
    if kind == "journal":
        return str(tmp_path / "optuna.journal")
    if kind == "postgres":
        skip_without_postgres()
        url = postgres_url()
        assert url is not None
        return url
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
