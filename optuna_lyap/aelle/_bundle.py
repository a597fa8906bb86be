"""Several cross-task priors saved as one file, and the file the package ships.

A ``PriorBundle`` keys fitted ``CrossTaskPrior`` models by (step, input groups) and picks one for
the inputs a trial has (``select``); ``load_shipped_prior`` reads ``weights/prior.pt``.
"""

from __future__ import annotations

import functools
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optuna_lyap.aelle._cross_task import CrossTaskPrior
from optuna_lyap.aelle._features import (
    CURVE_NAMES,
    HYPERPARAMETER_NAMES,
    INPUT_GROUPS,
    check_input_groups,
)

#: Where the package's trained prior lives (``prior.pt``, a ``PriorBundle``).
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"

#: The input sets a bundle holds, in ``PriorBundle.select``'s order of preference: more groups
#: first; among sets of equal size, those with the curve (the strongest single input after the
#: first epoch on most recorded tasks), then those with hyperparameters.
INPUT_SETS: tuple[tuple[str, ...], ...] = (
    ("hyperparameters", "spectrum", "curve"),
    ("hyperparameters", "curve"),
    ("spectrum", "curve"),
    ("hyperparameters", "spectrum"),
    ("hyperparameters",),
)

_BUNDLE_FORMAT = "optuna_lyap.PriorBundle"
_BUNDLE_VERSION = 1

#: The file the package ships (``load_shipped_prior``).
SHIPPED_PATH = SHIPPED_DIR / "prior.pt"


def _canonical(groups: Sequence[str]) -> tuple[str, ...]:
    check_input_groups(groups)
    return tuple(g for g in INPUT_GROUPS if g in groups)


class PriorBundle:
    """Several fitted ``CrossTaskPrior(model="aelle")`` models keyed by (step, input groups).

    Saved as ONE file that ``torch.load(weights_only=True)`` reads (no pickled objects): a JSON
    config (format name and version, the feature names, spectrum fraction, ``info`` and per
    model its inputs, columns and calibration of P(top 10%)) beside each model's ``AeLLE``
    file as bytes.

    Args:
        models: ``{(step, groups): prior}``; ``step`` a non-negative integer (the model reads
            the curve and spectrum at that step: 0 = at initialisation), ``groups`` a subset
            of ``INPUT_GROUPS`` (stored in ``INPUT_GROUPS`` order), each prior a fitted
            ``model="aelle"`` prior whose ``inputs`` are those groups.
        info: Provenance, JSON-able (tables, command).
        spectrum_fraction: Share of each spectrum the models read (``top_fraction``).

    Raises:
        ValueError: A key or model that does not fit the rules above.

    Example:
        >>> import pathlib, tempfile
        >>> from optuna_lyap.aelle import PriorBundle, load_shipped_prior
        >>> bundle = load_shipped_prior()
        >>> prior = bundle.select(2, {"hyperparameters", "curve"})  # step 2, and no spectrum
        >>> bundle.key_of(prior)
        (2, ('hyperparameters', 'curve'))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     bundle.save(pathlib.Path(tmp) / "prior.pt")
        ...     PriorBundle.load(pathlib.Path(tmp) / "prior.pt").digest() == bundle.digest()
        True
    """

    def __init__(
        self,
        models: Mapping[tuple[int, Sequence[str]], CrossTaskPrior],
        info: Mapping[str, Any] | None = None,
        *,
        spectrum_fraction: float = 0.25,
    ) -> None:
        self.models: dict[tuple[int, tuple[str, ...]], CrossTaskPrior] = {}
        for (step, groups), prior in models.items():
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
                raise ValueError(f"a model step must be a non-negative integer but got {step=}.")
            key = (int(step), _canonical(groups))
            if not isinstance(prior, CrossTaskPrior) or _canonical(prior.inputs) != key[1]:
                raise ValueError(f"the model for {key} must be a CrossTaskPrior on {key[1]}.")
            self.models[key] = prior
        if not 0 < spectrum_fraction <= 1:
            raise ValueError(f"spectrum_fraction must be in (0, 1] but got {spectrum_fraction=}.")
        self.spectrum_fraction = float(spectrum_fraction)
        self.info: dict[str, Any] = dict(info or {})
        self._digest: str | None = None

    def select(self, step: int, available: set[str] | frozenset[str]) -> CrossTaskPrior | None:
        """The model to use at ``step`` with the input groups ``available``.

        Among the model steps ``<= step``, the largest that has a model whose groups are all
        in ``available``; at that step, the first such set in ``INPUT_SETS`` order (more groups
        first, then sets with the curve, then with hyperparameters; sets outside
        ``INPUT_SETS`` after those, larger first).

        Returns:
            The model, or None when none fits (``step`` below every model step, or no set
            within ``available``).
        """
        available = set(available)
        steps = sorted({s for s, _ in self.models if s <= step}, reverse=True)
        for model_step in steps:
            sets = [g for s, g in self.models if s == model_step and set(g) <= available]
            if sets:
                sets.sort(key=_preference)
                return self.models[(model_step, sets[0])]
        return None

    def key_of(self, prior: CrossTaskPrior) -> tuple[int, tuple[str, ...]]:
        """The ``(step, groups)`` key a model of this bundle is stored under."""
        for key, model in self.models.items():
            if model is prior:
                return key
        raise ValueError(f"{prior!r} is not a model of this bundle.")

    def _blob(self) -> dict[str, Any]:
        entries = []
        tensors = {}
        for i, ((step, groups), prior) in enumerate(sorted(self.models.items())):
            entries.append({"step": step, "name": f"m{i}", **prior._config()})
            tensors[f"m{i}"] = prior._aelle_bytes()
            entries[-1]["inputs"] = list(groups)
        config = {
            "format": _BUNDLE_FORMAT,
            "version": _BUNDLE_VERSION,
            "hyperparameter_names": list(HYPERPARAMETER_NAMES),
            "curve_names": list(CURVE_NAMES),
            "spectrum_fraction": self.spectrum_fraction,
            "info": self.info,
            "models": entries,
        }
        return {"config": json.dumps(config), "models": tensors}

    def to_bytes(self) -> bytes:
        """The file ``save`` writes, as bytes."""
        import torch

        buffer = io.BytesIO()
        torch.save(self._blob(), buffer)
        return buffer.getvalue()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the bundle to ``path`` (see the class docstring for what is inside)."""
        data = self.to_bytes()
        Path(path).write_bytes(data)
        self._digest = _short_sha256(data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PriorBundle:
        """Read a bundle written by ``save``.

        Raises:
            FileNotFoundError: No file at ``path``.
            ValueError: The file is not a bundle of this format version (truncated, foreign,
                other feature columns, a model that does not fit its config); the message
                names the file.
        """
        data = Path(path).read_bytes()
        try:
            bundle = cls._from_bytes(data)
        except ValueError as err:
            raise ValueError(f"{os.fspath(path)!r} is not a readable prior bundle: {err}") from err
        bundle._digest = _short_sha256(data)
        return bundle

    @classmethod
    def _from_bytes(cls, data: bytes) -> PriorBundle:
        import torch

        try:
            blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:  # torch reports damaged files in many ways
            # The first sentence only: torch's own advice (load with weights_only=False) is not
            # what a user holding a file that is not a prior should do.
            first = str(err).strip().split(". ")[0].splitlines()[0][:120] if str(err) else ""
            raise ValueError(f"not a torch file ({type(err).__name__}: {first})") from err
        if not isinstance(blob, dict) or set(blob) != {"config", "models"}:
            found = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
            raise ValueError(f"it holds {found}, not PriorBundle.save's config and models")
        try:
            config = json.loads(blob["config"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"its config is not JSON ({err})") from err
        if not isinstance(config, dict):
            raise ValueError("its config is not a JSON object")
        if config.get("format") != _BUNDLE_FORMAT or config.get("version") != _BUNDLE_VERSION:
            raise ValueError(
                f"it holds format {config.get('format')!r} version {config.get('version')!r}; "
                f"this version reads {_BUNDLE_FORMAT!r} {_BUNDLE_VERSION}"
            )
        names = (
            tuple(config.get("hyperparameter_names", ())),
            tuple(config.get("curve_names", ())),
        )
        if names != (HYPERPARAMETER_NAMES, CURVE_NAMES):
            raise ValueError(f"it was trained on other feature columns: {names}")
        models: dict[tuple[int, Sequence[str]], CrossTaskPrior] = {}
        try:
            for entry in config["models"]:
                prior = CrossTaskPrior._from_config(entry, blob["models"][entry["name"]])
                models[(int(entry["step"]), tuple(entry["inputs"]))] = prior
            return cls(models, config.get("info"), spectrum_fraction=config["spectrum_fraction"])
        except (KeyError, TypeError, RuntimeError) as err:
            raise ValueError(
                f"its models do not fit its config ({type(err).__name__}: {err})"
            ) from err

    def digest(self) -> str:
        """The first 16 hex digits of the SHA-256 of the saved file's bytes."""
        if self._digest is None:
            self._digest = _short_sha256(self.to_bytes())
        return self._digest

    def __repr__(self) -> str:
        keys = ", ".join(f"{s}:{'+'.join(g)}" for s, g in sorted(self.models))
        return f"PriorBundle([{keys}])"


def _preference(groups: tuple[str, ...]) -> tuple[int, int]:
    if groups in INPUT_SETS:
        return (0, INPUT_SETS.index(groups))
    return (1, -len(groups))


def _short_sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def load_shipped_prior() -> PriorBundle:
    """The prior bundle shipped with the package (``optuna_lyap/aelle/weights/prior.pt``).

    Read once per process and cached (the same object on every call). Its ``info`` names the
    tables it was trained on and the command that trained it (``benchmarks/build_prior.py``).

    Raises:
        ValueError: The shipped file is missing or unreadable (a broken installation).

    Example:
        >>> from optuna_lyap.aelle import load_shipped_prior
        >>> load_shipped_prior() is load_shipped_prior()
        True
        >>> sorted({step for step, _ in load_shipped_prior().models})
        [0, 1, 2]
    """
    if not SHIPPED_PATH.exists():
        raise ValueError(f"the shipped prior {str(SHIPPED_PATH)!r} is missing from the package.")
    return PriorBundle.load(SHIPPED_PATH)
