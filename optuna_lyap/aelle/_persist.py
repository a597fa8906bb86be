"""How a fitted :class:`~optuna_lyap.aelle.AeLLE` is written to one file and read back.

The file is ``torch.save({"config": json, "tensors": {...}})``: the constructor parameters and
fitted scalars as JSON, the network's weights and the scaling vectors as tensors, no pickled
objects, so :func:`load_model` reads it with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch

from optuna_lyap.aelle._preprocessing import grid_points

if TYPE_CHECKING:
    from optuna_lyap.aelle._estimator import AeLLE

FORMAT = "optuna_lyap.AeLLE"
FORMAT_VERSION = 1
#: The entries of the JSON config that every saved model holds.
CONFIG_KEYS = (
    "params",
    "seed_",
    "uses_spectra_",
    "n_features_in_",
    "n_labelled_",
    "target_centre_",
    "target_scale_",
    "best_steps_",
    "fit_time_",
)


def _describe(path: Any) -> str:
    """How a load error names its source: the path, or a file object's name."""
    if isinstance(path, (str, os.PathLike)):
        return repr(os.fspath(path))
    name = getattr(path, "name", None)
    return repr(name) if isinstance(name, str) else f"the {type(path).__name__} given"


def _first(err: BaseException) -> str:
    """The first line of an exception's message, at most 200 characters."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _load_error(source: str, what: str) -> ValueError:
    return ValueError(f"AeLLE.load cannot read {source}: {what}.")


def _vector(tensors: dict[str, Any], key: str, size: int | None) -> np.ndarray:
    """A saved 1-D tensor as a float64 array, checked against the size the config implies."""
    value = tensors[key]
    if not isinstance(value, torch.Tensor) or value.dim() != 1:
        raise ValueError(f"tensor {key} must be 1-D, but got {type(value).__name__}")
    if size is not None and value.numel() != size:
        raise ValueError(f"tensor {key} has {value.numel()} entries where {size} were expected")
    return value.double().numpy()


def save_model(
    model: AeLLE, path: str | os.PathLike[str] | IO[bytes], *, with_fit_time: bool
) -> None:
    """Write the fitted ``model`` to ``path`` (see :meth:`AeLLE.save`)."""
    params = model.get_params()
    params["alpha_schedule"] = [float(a) for a in model.alpha_schedule]
    params["clip"] = [float(c) for c in model.clip]
    config = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "params": params,
        "seed_": model.seed_,
        "uses_spectra_": model.uses_spectra_,
        "n_features_in_": model.n_features_in_,
        "n_labelled_": model.n_labelled_,
        "target_centre_": model.target_centre_,
        "target_scale_": model.target_scale_,
        "best_steps_": model.best_steps_,
        "fit_time_": model.fit_time_ if with_fit_time else math.nan,
    }
    tensors = {f"network.{k}": v for k, v in model.network_.state_dict().items()}
    if model.uses_spectra_:
        tensors["spec_centre"] = torch.as_tensor(model._spec_centre)
        tensors["spec_scale"] = torch.as_tensor(model._spec_scale)
    tensors["feat_centre"] = torch.as_tensor(model._feat_centre)
    tensors["feat_scale"] = torch.as_tensor(model._feat_scale)
    tensors["oof_prediction"] = torch.as_tensor(model.oof_prediction_)
    torch.save({"config": json.dumps(config), "tensors": tensors}, path)


def load_model(cls: type[AeLLE], path: str | os.PathLike[str] | IO[bytes]) -> AeLLE:
    """Read a model that :func:`save_model` wrote (see :meth:`AeLLE.load` for the errors)."""
    source = _describe(path)
    # Opening can fail (no such file, a directory, no permission) with an OSError that
    # names the path; once open, every failure means a damaged or foreign file, which torch
    # reports in many ways (RuntimeError, UnpicklingError, EOFError, even OSError).
    with contextlib.ExitStack() as stack:
        if isinstance(path, (str, os.PathLike)):
            file: IO[bytes] = stack.enter_context(open(path, "rb"))
        else:
            file = path
        try:
            blob = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:
            what = f"it is not a readable torch file (truncated or foreign): {_first(err)}"
            raise _load_error(source, what) from err
    if not isinstance(blob, dict) or "config" not in blob or "tensors" not in blob:
        found = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
        raise _load_error(source, f"it holds {found}, not AeLLE.save's config and tensors")
    try:
        config = json.loads(blob["config"])
    except (TypeError, ValueError) as err:
        raise _load_error(source, f"its config is not JSON: {_first(err)}") from err
    if not isinstance(config, dict):
        raise _load_error(source, f"its config is a {type(config).__name__}, not an object")
    if config.get("format") != FORMAT or config.get("version") != FORMAT_VERSION:
        raise _load_error(
            source,
            f"it holds format {config.get('format')!r} version {config.get('version')!r}; "
            f"this version reads {FORMAT!r} {FORMAT_VERSION}",
        )
    missing = sorted(set(CONFIG_KEYS) - set(config))
    tensors = blob["tensors"]
    if not isinstance(tensors, dict):
        raise _load_error(source, "its tensors are not a dict of tensors")
    needed = {"feat_centre", "feat_scale", "oof_prediction"}
    if config.get("uses_spectra_"):
        needed |= {"spec_centre", "spec_scale"}
    missing += sorted(f"tensor {k}" for k in needed - set(tensors))
    if missing:
        raise _load_error(source, f"it lacks {missing}")
    try:
        model = from_saved(cls, config, tensors)
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        raise _load_error(source, f"its contents do not fit together: {_first(err)}") from err
    return model


def from_saved(cls: type[AeLLE], config: dict[str, Any], tensors: dict[str, Any]) -> AeLLE:
    """The fitted model a checked config and its tensors describe."""
    params = dict(config["params"])
    params["alpha_schedule"] = tuple(params["alpha_schedule"])
    params["clip"] = tuple(params["clip"])
    model = cls(**params).check_params()
    model.seed_ = int(config["seed_"])
    model.uses_spectra_ = bool(config["uses_spectra_"])
    model.n_features_in_ = int(config["n_features_in_"])
    model.n_labelled_ = int(config["n_labelled_"])
    model.target_centre_ = float(config["target_centre_"])
    model.target_scale_ = float(config["target_scale_"])
    model.best_steps_ = [int(s) for s in config["best_steps_"]]
    model.fit_time_ = float(config["fit_time_"])
    model.grid_ = grid_points(model.grid_size)
    if model.uses_spectra_:
        model._spec_centre = _vector(tensors, "spec_centre", None)
        model._spec_scale = _vector(tensors, "spec_scale", None)
    model._feat_centre = _vector(tensors, "feat_centre", model.n_features_in_)
    model._feat_scale = _vector(tensors, "feat_scale", model.n_features_in_)
    model.oof_prediction_ = _vector(tensors, "oof_prediction", None)
    network = model._build_network(torch.Generator().manual_seed(0))
    prefix = "network."
    network.load_state_dict(
        {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    )
    network.eval()
    model.network_ = network
    return model
