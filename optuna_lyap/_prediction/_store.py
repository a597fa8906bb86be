"""Fit a predictor once per study and training set, and share it between worker processes.

Every worker of a study that meets the same training set would fit the same model (fits are
seeded). :class:`PredictorCache` fits it in one of them and stores it in the study; the others
load it. Loading gives bit-identical predictions: float32 weights and float64 statistics are
stored as their bytes, and the fitting worker itself predicts with the model it read back, so
every worker decides alike.

Layout (schema version 2, beside :mod:`optuna_lyap._storage`'s; version 1 entries, which lack
the evidence below, are never read):

* ``optuna_lyap:v2:predictor:{digest}`` (study system attr): a header ``{"sha256": ...,
  "chars": n, "parts": k}``; the predictor's JSON text is in ``optuna_lyap:v2:predictor:
  {digest}:{i}`` for ``i < k``, slices of at most :data:`MAX_PART_CHARS` characters, each
  under MySQL's 64 KiB cap on a value, written before their header. With an artifact store
  the header is ``{"sha256", "chars", "artifact_id"}`` and the text is one artifact (journal
  storages replay every attr write in every worker: the weights then stay out of the log).
  ``digest`` is the SHA-256 of the study's name, the consumer's configuration and the
  training set (trial numbers, steps).
* The predictor's JSON: the candidates' scores and out-of-sample predictions, the labelled
  rows' trial numbers, targets and raw values, the consumer's ``evidence``, the encoder's
  distributions, and the chosen AeLLE as its ``save`` config plus tensors. Arrays and tensors
  are stored as dtype, shape and base64 of their bytes, so they read back bit for bit. No
  pickle.
* While a worker fits, a study named ``optuna_lyap:v2:claim:{digest}`` exists in the same
  storage: creating a study of a taken name fails atomically in every Optuna storage, so one
  worker claims a training set and the others wait (at most ``wait_s``) for its result. The
  claim study is deleted when the result is stored or the fit fails. A worker that dies while
  fitting leaves it behind until a waiting worker, after ``wait_s``, fits instead and deletes
  it. What remains of the race: a fit that outlasts ``wait_s`` is repeated by the workers
  waiting for it (each fit logs ``fitted predictor {digest}`` at DEBUG level on this module's
  logger, so repeats can be counted). Claim studies show in study listings (e.g.
  optuna-dashboard's) while a fit runs; an in-memory storage (one process) takes no claims.
  The user's study is never touched beyond its system attrs.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import math
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any

import numpy as np
import optuna
import torch
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import InMemoryStorage, JournalStorage
from optuna.study import StudyDirection

from optuna_lyap._prediction._core import Candidate, FitSettings, FittedPredictor
from optuna_lyap._prediction._inputs import ParamEncoder
from optuna_lyap._prediction._lru import LRUCache
from optuna_lyap._storage import (
    PREDICTOR_CLAIM_PREFIX,
    PREDICTOR_PREFIX,
    PREDICTOR_SCHEMA_VERSION,
)
from optuna_lyap.aelle import AeLLE

_LOG = logging.getLogger(__name__)

SCHEMA_VERSION = PREDICTOR_SCHEMA_VERSION
_PREFIX = PREDICTOR_PREFIX
_CLAIM_PREFIX = PREDICTOR_CLAIM_PREFIX
_FORMAT = "optuna_lyap.predictor"
# 60,000 ASCII characters; json.dumps of a slice escapes a few (quotes), hence the margin to
# MySQL's 65,535-byte TEXT.
MAX_PART_CHARS = 50_000
_MAX_STORED_CHARS = 60_000


class _HideClaims(logging.Filter):
    """Drops the storages' "A new study created ..." line for a claim study."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _CLAIM_PREFIX not in record.getMessage()


for _name in ("optuna.storages._rdb.storage", "optuna.storages.journal._storage"):
    logging.getLogger(_name).addFilter(_HideClaims())


def check_artifact_store(artifact_store: Any) -> None:
    """Check that ``artifact_store`` is None or an ``optuna.artifacts`` store.

    Raises:
        ValueError: It lacks a callable ``open_reader`` or ``write``; the message names it.
    """
    if artifact_store is not None and not all(
        callable(getattr(artifact_store, name, None)) for name in ("open_reader", "write")
    ):
        raise ValueError(
            "`artifact_store` must be an optuna.artifacts store (with open_reader and "
            f"write), e.g. FileSystemArtifactStore, or None, but got {artifact_store=}."
        )


def predictor_key(digest: str) -> str:
    """The study system-attr key of the header of the predictor stored under ``digest``."""
    return _PREFIX + digest


def claim_study_name(digest: str) -> str:
    """The name of the study that marks a fit of ``digest`` in progress."""
    return _CLAIM_PREFIX + digest


# --------------------------------------------------------------------------------- to JSON


def _number(x: float) -> float | str:
    x = float(x)
    return x if math.isfinite(x) else repr(x)  # "nan", "inf", "-inf"


def _float(x: float | str) -> float:
    return float(x)


def _tensor_to_json(tensor: torch.Tensor) -> dict[str, Any]:
    return _array_to_json(tensor.detach().cpu().contiguous().numpy())


def _tensor_from_json(data: Mapping[str, Any]) -> torch.Tensor:
    return torch.from_numpy(_array_from_json(data))


def _array_to_json(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def _array_from_json(data: Mapping[str, Any]) -> np.ndarray:
    raw = base64.b64decode(data["data"])
    return np.frombuffer(raw, dtype=np.dtype(data["dtype"])).reshape(data["shape"]).copy()


def aelle_to_json(model: AeLLE) -> dict[str, Any]:
    """A fitted AeLLE as JSON: the config of :meth:`AeLLE.save` and its tensors' bytes."""
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    blob = torch.load(buffer, map_location="cpu", weights_only=True)
    return {
        "config": json.loads(blob["config"]),
        "tensors": {name: _tensor_to_json(t) for name, t in blob["tensors"].items()},
    }


def aelle_from_json(data: Mapping[str, Any]) -> AeLLE:
    """The inverse of :func:`aelle_to_json`; predictions equal the original's bit for bit."""
    tensors = {name: _tensor_from_json(t) for name, t in data["tensors"].items()}
    buffer = io.BytesIO()
    torch.save({"config": json.dumps(data["config"]), "tensors": tensors}, buffer)
    buffer.seek(0)
    return AeLLE.load(buffer)


def fingerprint(model: AeLLE) -> str:
    """SHA-256 of a fitted AeLLE's configuration and weights (not of its fit time)."""
    data = aelle_to_json(model)
    data["config"].pop("fit_time_", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def predictor_to_json(fitted: FittedPredictor | None) -> str:
    """A predictor (or None: no candidate could be fitted) as JSON text.

    A chosen pretrained model is not written: the reader supplies its own (the digest of the
    configuration includes the pretrained model's :func:`fingerprint`).
    """
    if fitted is None:
        return json.dumps({"format": _FORMAT, "version": SCHEMA_VERSION, "predictor": None})
    encoder = fitted.encoder
    data = {
        "chosen": fitted.candidates.index(fitted.chosen),
        "candidates": [
            {
                "inputs": list(c.inputs),
                "rank_corr": _number(c.rank_corr),
                "residual_rms": _number(c.residual_rms),
                "pretrained": c.pretrained,
                "oof": _array_to_json(c.oof),
            }
            for c in fitted.candidates
        ],
        "raw_rank_corr": _number(fitted.raw_rank_corr),
        "n_rows": fitted.n_rows,
        "n_train": fitted.n_train,
        "numbers": [int(n) for n in fitted.numbers],
        "targets": _array_to_json(fitted.targets),
        "raw": _array_to_json(fitted.raw),
        "evidence": {name: _number(v) for name, v in fitted.evidence.items()},
        "groups": None if fitted.groups is None else [str(g) for g in fitted.groups],
        "encoder": None
        if encoder is None
        else {name: distribution_to_json(d) for name, d in encoder.distributions.items()},
        "model": None if fitted.chosen.pretrained else aelle_to_json(fitted.model),
    }
    return json.dumps({"format": _FORMAT, "version": SCHEMA_VERSION, "predictor": data})


def predictor_from_json(text: str, pretrained: AeLLE | None) -> FittedPredictor | None:
    """The inverse of :func:`predictor_to_json`.

    Raises:
        ValueError: When ``text`` is not a stored predictor of this version, or needs a
            pretrained model and ``pretrained`` is None.
    """
    blob = json.loads(text)
    if blob.get("format") != _FORMAT or blob.get("version") != SCHEMA_VERSION:
        raise ValueError(
            f"Not a stored predictor of version {SCHEMA_VERSION}, but got format "
            f"{blob.get('format')!r} version {blob.get('version')!r}."
        )
    data = blob["predictor"]
    if data is None:
        return None
    candidates = [
        Candidate(
            tuple(c["inputs"]),
            _float(c["rank_corr"]),
            _float(c["residual_rms"]),
            bool(c["pretrained"]),
            _array_from_json(c["oof"]),
        )
        for c in data["candidates"]
    ]
    chosen = candidates[data["chosen"]]
    if data["model"] is not None:
        model = aelle_from_json(data["model"])
    elif pretrained is not None:
        model = pretrained
    else:
        raise ValueError("The stored predictor chose a pretrained model, but none was given.")
    encoder = None
    if data["encoder"] is not None:
        encoder = ParamEncoder(
            {name: json_to_distribution(d) for name, d in data["encoder"].items()}
        )
    return FittedPredictor(
        model,
        chosen,
        candidates,
        _float(data["raw_rank_corr"]),
        int(data["n_rows"]),
        int(data["n_train"]),
        encoder,
        [int(n) for n in data["numbers"]],
        _array_from_json(data["targets"]),
        _array_from_json(data["raw"]),
        {name: _float(v) for name, v in data["evidence"].items()},
        data.get("groups"),
    )


# ------------------------------------------------------------------------------- the store


def _split(text: str) -> list[str]:
    parts: list[str] = []
    i = 0
    while i < len(text):
        size = MAX_PART_CHARS
        while len(json.dumps(text[i : i + size])) > _MAX_STORED_CHARS:
            size //= 2
        parts.append(text[i : i + size])
        i += size
    return parts


class _Missing:
    pass


_MISSING = _Missing()


class PredictorCache(Mapping[Hashable, "FittedPredictor | None"]):
    """Fitted predictors by training set: in this process (an LRU), and in the study's storage.

    Thread-safe. Pickling keeps the settings and drops the entries.

    Args:
        settings: How the predictors are fitted; part of every digest.
        consumer: Who fits them (e.g. ``"LyapunovPruner"``); part of every digest.
        pretrained: The pretrained model the predictors may have chosen (its fingerprint is
            part of every digest).
        artifact_store: An :mod:`optuna.artifacts` store (e.g. ``FileSystemArtifactStore``)
            for the predictors' JSON; None stores it in the study's system attrs.
        wait_s: Longest wait, in seconds, for another worker's fit of the same training set
            before fitting it here.
        size: Predictors kept in this process.
        config: Other settings of the consumer that the stored predictors depend on (e.g.
            how ``evidence`` is computed); JSON-able, part of every digest.

    Raises:
        ValueError: When ``artifact_store`` lacks the ``open_reader`` and ``write`` of
            Optuna's artifact stores.
    """

    poll_s = 0.2

    def __init__(
        self,
        settings: FitSettings,
        consumer: str,
        pretrained: AeLLE | None = None,
        artifact_store: Any = None,
        *,
        wait_s: float = 300.0,
        size: int = 16,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        check_artifact_store(artifact_store)
        self._size = size
        config = {"consumer": consumer, **settings.as_dict(), **dict(config or {})}
        self._config = json.loads(json.dumps(config, sort_keys=True))
        self._pretrained = pretrained
        self._artifact_store = artifact_store
        self.wait_s = wait_s
        self._init_local()

    def _init_local(self) -> None:
        self._lock = threading.RLock()
        self._entries: LRUCache[Hashable, FittedPredictor | None] = LRUCache(self._size)
        self._pretrained_fingerprint: str | None = None
        self._warned_journal = False

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_entries", "_pretrained_fingerprint", "_warned_journal"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_local()

    def __getitem__(self, key: Hashable) -> FittedPredictor | None:
        return self._entries[key]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def get_or_fit(
        self,
        study: optuna.Study,
        key: tuple[Any, ...],
        fit: Callable[[], FittedPredictor | None],
        *,
        share: bool = True,
    ) -> FittedPredictor | None:
        """The predictor of ``key``: from this process, else from the storage, else ``fit()``.

        Args:
            study: The study whose storage holds the shared predictors.
            key: The training set: JSON-able (ints, strings, nested tuples), the same in every
                worker for the same data.
            fit: Fits the predictor of ``key``.
            share: False keeps the result in this process only (e.g. a pretrained model alone,
                which costs nothing to "fit").

        Returns:
            ``fit()``'s result or an equal one read back from the storage.
        """
        with self._lock:
            found, fitted = self._entries.lookup(key)
            if found:
                return fitted
            fitted = self._shared(study, key, fit) if share else fit()
            return self._entries.put(key, fitted)

    # -- storage -------------------------------------------------------------------------

    def digest(self, study: optuna.Study, key: tuple[Any, ...]) -> str:
        """The SHA-256 (hex) that names ``key``'s predictor in ``study``'s storage."""
        if self._pretrained is not None and self._pretrained_fingerprint is None:
            self._pretrained_fingerprint = fingerprint(self._pretrained)
        data = {
            "version": SCHEMA_VERSION,
            "study": study.study_name,
            "config": self._config,
            "pretrained": self._pretrained_fingerprint,
            "key": key,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def _shared(
        self,
        study: optuna.Study,
        key: tuple[Any, ...],
        fit: Callable[[], FittedPredictor | None],
    ) -> FittedPredictor | None:
        digest = self.digest(study, key)
        found = self._load(study, digest)
        if not isinstance(found, _Missing):
            _LOG.debug("loaded predictor %s", digest)
            return found
        claimed = self._claim(study, digest)
        if not claimed:
            deadline = time.monotonic() + self.wait_s
            while time.monotonic() < deadline:
                time.sleep(self.poll_s)
                found = self._load(study, digest)
                if not isinstance(found, _Missing):
                    _LOG.debug("loaded predictor %s after waiting", digest)
                    return found
                if not self._claim_held(study, digest):
                    break  # the owner gave up without a result
            _LOG.debug("fitting predictor %s claimed by another worker", digest)
        start = time.perf_counter()
        try:
            text = predictor_to_json(fit())
            seconds = time.perf_counter() - start
            found = self._load(study, digest)  # a worker that waited in vain may have won
            if isinstance(found, _Missing):
                self._write(study, digest, text)
                found = predictor_from_json(text, self._pretrained)
        finally:
            self._release(study, digest)  # also when the fit failed: nobody waits in vain
        _LOG.debug("fitted predictor %s in %.3f s (%d chars)", digest, seconds, len(text))
        return found

    def _load(self, study: optuna.Study, digest: str) -> FittedPredictor | None | _Missing:
        attrs = study._storage.get_study_system_attrs(study._study_id)
        header = attrs.get(predictor_key(digest))
        if not isinstance(header, Mapping):
            return _MISSING
        if "artifact_id" in header:
            if self._artifact_store is None:
                raise ValueError(
                    f"The predictor {digest} of study {study.study_name!r} is in an artifact "
                    "store, but this worker has none: give every worker the same "
                    "artifact_store."
                )
            with self._artifact_store.open_reader(header["artifact_id"]) as reader:
                text = reader.read().decode("utf-8")
        else:
            parts = [attrs.get(f"{predictor_key(digest)}:{i}") for i in range(header["parts"])]
            if any(not isinstance(p, str) for p in parts):
                return _MISSING
            text = "".join(p for p in parts if isinstance(p, str))
        if hashlib.sha256(text.encode()).hexdigest() != header["sha256"]:
            return _MISSING  # a concurrent writer's slices: read again later
        return predictor_from_json(text, self._pretrained)

    def _write(self, study: optuna.Study, digest: str, text: str) -> None:
        storage, study_id = study._storage, study._study_id
        header: dict[str, Any] = {
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "chars": len(text),
        }
        if self._artifact_store is not None:
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, f"lyap_predictor_{digest[:16]}.json")
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                header["artifact_id"] = optuna.artifacts.upload_artifact(
                    artifact_store=self._artifact_store, file_path=path, study_or_trial=study
                )
        else:
            if isinstance(storage, JournalStorage) and not self._warned_journal:
                self._warned_journal = True
                warnings.warn(
                    f"A fitted predictor ({len(text)} characters) goes to the study's system "
                    "attrs of a journal storage, whose every worker replays every write; give "
                    "the pruner or sampler an artifact_store (e.g. optuna.artifacts."
                    "FileSystemArtifactStore) to keep it out of the journal.",
                    UserWarning,
                    stacklevel=2,
                )
            parts = _split(text)
            for i, part in enumerate(parts):
                storage.set_study_system_attr(study_id, f"{predictor_key(digest)}:{i}", part)
            header["parts"] = len(parts)
        storage.set_study_system_attr(study_id, predictor_key(digest), header)

    # -- claims --------------------------------------------------------------------------

    @staticmethod
    def _single_process(study: optuna.Study) -> bool:
        storage = study._storage
        return isinstance(getattr(storage, "_backend", storage), InMemoryStorage)

    def _claim(self, study: optuna.Study, digest: str) -> bool:
        if self._single_process(study):
            return True
        try:
            study._storage.create_new_study(
                [StudyDirection.MINIMIZE], study_name=claim_study_name(digest)
            )
        except DuplicatedStudyError:
            return False
        return True

    def _claim_held(self, study: optuna.Study, digest: str) -> bool:
        try:
            study._storage.get_study_id_from_name(claim_study_name(digest))
        except KeyError:
            return False
        return True

    def _release(self, study: optuna.Study, digest: str) -> None:
        if self._single_process(study):
            return
        storage = study._storage
        try:
            storage.delete_study(storage.get_study_id_from_name(claim_study_name(digest)))
        except KeyError:
            pass  # released by a worker that fitted after waiting in vain
