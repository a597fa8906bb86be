"""Run files keyed by suite and commit, each with the metadata to rerun and trust it.

New results go to ``benchmarks/results/<suite>/<commit>/`` (``<commit>`` the first 12 hex
digits of ``git rev-parse HEAD``, with ``-dirty`` when the work tree had uncommitted changes),
so results of different code never mix and ``--resume`` only resumes the same code. Each file
carries :func:`metadata`: the commit and dirty flag, the package, torch, optuna, numpy and
Python versions, the machine, the command, the seeds and, where a prior is used, its
``PriorBundle.digest``.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.lyapbench.tables import RESULTS, ROOT

__all__ = [
    "command_line",
    "commit",
    "load_json",
    "metadata",
    "prior_digest",
    "results_dir",
    "save_json",
]


@functools.lru_cache(maxsize=1)
def commit() -> tuple[str, bool]:
    """``git rev-parse HEAD`` of the repository, and whether its work tree is dirty.

    ``("unknown", True)`` outside a git checkout.
    """
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown", True
    return head, bool(status)


def results_dir(suite: str, key: str | None = None) -> Path:
    """``benchmarks/results/<suite>/<key>``; ``key`` defaults to this checkout's commit (12
    digits, ``-dirty`` when the work tree is)."""
    if key is None:
        head, dirty = commit()
        key = head[:12] + ("-dirty" if dirty else "")
    return RESULTS / suite / key


def command_line(module: str, argv: Iterable[str] | None = None) -> str:
    """The command that reruns this run from the repository's root."""
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", "-m", module, *(shlex.quote(a) for a in args)])


@functools.lru_cache(maxsize=16)
def _digest(path: str, mtime_ns: int) -> str:
    from benchmarks.lyapbench.methods import PriorBundle

    return str(PriorBundle.load(path).digest())


def prior_digest(path: str | Path) -> str:
    """``PriorBundle.digest`` of the bundle at ``path``, loaded once per version of the file."""
    p = Path(path)
    return _digest(str(p), p.stat().st_mtime_ns)


def metadata(
    command: str,
    seeds: Iterable[int] | None = None,
    prior: str | Path | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """What a results file records about how it was made.

    Args:
        command: The command line (:func:`command_line`).
        seeds: The seeds run, where the suite has seeds.
        prior: A ``PriorBundle`` file the runs used; its digest is recorded (``"shipped"``
            records the shipped bundle's).
        **extra: Anything else the suite wants recorded.

    Returns:
        A JSON-ready dictionary.
    """
    import numpy
    import optuna
    import torch

    import optuna_lyap

    head, dirty = commit()
    meta: dict[str, Any] = {
        "commit": head,
        "dirty": dirty,
        "versions": {
            "optuna_lyap": getattr(optuna_lyap, "__version__", "unknown"),
            "torch": torch.__version__,
            "optuna": optuna.__version__,
            "numpy": numpy.__version__,
            "python": platform.python_version(),
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "command": command,
    }
    if seeds is not None:
        meta["seeds"] = sorted(int(s) for s in seeds)
    if prior is not None:
        if str(prior) == "shipped":
            from benchmarks.lyapbench.methods import SHIPPED_PATH

            prior = SHIPPED_PATH
        meta["prior"] = os.path.relpath(prior, ROOT)
        meta["prior_digest"] = prior_digest(prior)
    meta.update(extra)
    return meta


def save_json(path: Path, payload: Any) -> None:
    """Write ``payload`` as JSON (gzipped for ``.gz``), atomically.

    Raises:
        ValueError: For a path inside ``benchmarks/results/archive/``, which is read-only.
    """
    if Path(path).resolve().is_relative_to((RESULTS / "archive").resolve()):
        raise ValueError(f"{path} is in the read-only archive; write new results elsewhere")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.name.endswith(".gz"):
        with gzip.open(tmp, "wt") as f:
            json.dump(payload, f)
    else:
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)


def load_json(path: Path) -> Any:
    """Read a JSON file (gzipped for ``.gz``); None if it does not exist."""
    if not path.exists():
        return None
    if path.name.endswith(".gz"):
        with gzip.open(path, "rt") as f:
            return json.load(f)
    return json.loads(path.read_text())


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """The lines of a Markdown table: ``header``, its rule, then one line per row (``str`` of
    each cell, already formatted by the caller)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def write_markdown(path: Path, lines: Sequence[str]) -> None:
    """Write ``lines`` to ``path`` with the ``.md`` suffix, and print them."""
    text = "\n".join(lines)
    path.with_suffix(".md").write_text(text + "\n")
    print(text)
