"""``--storage``: open a storage URL or journal file, name a missing driver's install extra, and
find the study a command reads."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning

from optuna_lyap.cli._base import CLIError
from optuna_lyap.cli._workers import GRACE_BEATS, HEARTBEAT_INTERVAL

JOURNAL_SUFFIXES = (".log", ".jsonl")
# Storage drivers that are install extras, by the module a missing one raises about.
DRIVER_EXTRAS = {
    "psycopg2": "pip install 'optuna-lyap[postgres]' (or psycopg2-binary)",
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg (version 3).
    "psycopg": "write the URL as postgresql+psycopg2://... after pip install "
    "'optuna-lyap[postgres]', or pip install psycopg",
    "redis": "pip install 'optuna-lyap[redis]' (or redis)",
    "pymysql": "pip install 'optuna-lyap[mysql]' (or PyMySQL)",
    "MySQLdb": "pip install mysqlclient, or use a mysql+pymysql:// URL",
}


def is_journal_file(url: str) -> bool:
    return "://" not in url and url.endswith(JOURNAL_SUFFIXES)


def storage_file(url: str) -> str | None:
    """The file a storage URL keeps its data in (SQLite, journal file), else None."""
    if is_journal_file(url):
        return url
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        database = make_url(url).database
        return None if not database or database == ":memory:" else database
    return None


def open_storage(url: str, *, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """Open ``url``: an RDB URL, ``redis://...``, or a journal file path ending in ``.log``.

    Args:
        url: The ``--storage`` argument.
        must_exist: Refuse to create a storage file (commands that only read a study).

    Raises:
        CLIError: For a path that is no storage URL, a missing file when ``must_exist``, a
            missing database driver (naming the install extra), or a storage that cannot be
            opened.
    """
    if "://" not in url and not is_journal_file(url):
        hint = f"sqlite:///{url}" if url.endswith((".db", ".sqlite", ".sqlite3")) else None
        raise CLIError(
            f"--storage {url!r} is neither a storage URL nor a journal file path ending in "
            + " or ".join(JOURNAL_SUFFIXES)
            + (f"; for an SQLite file write {hint}" if hint else "")
        )
    path = storage_file(url)
    if must_exist and path is not None and not Path(path).is_file():
        raise CLIError(f"no storage file {path!r} (from --storage {url!r}); is the path right?")
    try:
        with warnings.catch_warnings():
            # Optuna marks the Redis journal and RDB heartbeats experimental; heartbeats are
            # what fails and retries a killed worker's trial, so both are used on purpose.
            warnings.simplefilter("ignore", ExperimentalWarning)
            if is_journal_file(url):
                from optuna.storages.journal import JournalFileBackend

                return optuna.storages.JournalStorage(JournalFileBackend(url))
            if url.startswith("redis://"):
                from optuna.storages.journal import JournalRedisBackend

                return optuna.storages.JournalStorage(JournalRedisBackend(url))
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_INTERVAL,
                grace_period=GRACE_BEATS * HEARTBEAT_INTERVAL,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=1
                ),
            )
    except Exception as err:
        missing = _missing_module(err)
        if missing is not None:
            raise CLIError(
                f"storage {url!r} needs the {missing!r} package: {DRIVER_EXTRAS[missing]}"
            ) from err
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CLIError(f"cannot open storage {url!r}: {reason}") from err


def _missing_module(err: BaseException) -> str | None:
    """The storage driver whose absence caused ``err`` (Optuna re-raises it as its cause)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError):
            name = (seen.name or "").split(".")[0]
            return name if name in DRIVER_EXTRAS else None
        seen = seen.__cause__ or seen.__context__
    return None


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """The names of the studies in ``storage``, in the order the storage lists them."""
    return [s.study_name for s in optuna.get_all_study_summaries(storage)]


def load_study(storage: optuna.storages.BaseStorage, url: str, name: str) -> optuna.Study:
    """The study called ``name``.

    Raises:
        CLIError: For no such study, listing the studies there.
    """
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError as err:
        names = study_names(storage)
        known = ", ".join(names) if names else "none"
        raise CLIError(f"no study named {name!r} in {url!r} (studies there: {known})") from err


def choose_study(storage: optuna.storages.BaseStorage, url: str, name: str | None) -> optuna.Study:
    """The study called ``name``; None: the storage's only study.

    Raises:
        CLIError: For no study called ``name``, or, with ``name=None``, a storage that holds
            no study or several (the message lists them, so the user can pick one).
    """
    if name is not None:
        return load_study(storage, url, name)
    names = study_names(storage)
    if len(names) == 1:
        return load_study(storage, url, names[0])
    if not names:
        raise CLIError(f"storage {url!r} holds no study")
    raise CLIError(
        f"storage {url!r} holds {len(names)} studies ({', '.join(names)}); choose one with "
        "--study-name"
    )


def artifact_store(directory: str | None) -> Any | None:
    """A file-system artifact store in ``directory`` (created); None for None."""
    if directory is None:
        return None
    from optuna.artifacts import FileSystemArtifactStore

    Path(directory).mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(directory)
