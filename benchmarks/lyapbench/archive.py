"""The manifest of ``benchmarks/results/archive/``: each archived file, the commit that stored it.

The archive holds the result files written before results were keyed by suite and commit. Those
files record no commit themselves, so the manifest names, for each one, the last commit that
changed it before it was archived (``git log --format=%H -1 <start> -- <old path>``). That is the
commit that *stored* the file, not necessarily the code that produced it: a run is often
committed after later code changes. The command is given where the file itself records one
(a top-level ``command`` key of a JSON or gzipped JSON file).

Usage (from the repository root; ``--start`` is the commit before the archive was made)::

    python -m benchmarks.lyapbench.archive --start 2556f66
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.lyapbench.tables import RESULTS

ARCHIVE = RESULTS / "archive"
# Where the archived files lay before the archive: ``benchmarks/results/<same relative path>``.
_OLD_PREFIX = "benchmarks/results/"


def recorded_command(path: Path) -> str | None:
    """The ``command`` a JSON or gzipped JSON result file records at its top level, if any."""
    try:
        if path.name.endswith(".json.gz"):
            with gzip.open(path, "rt") as f:
                payload = json.load(f)
        elif path.suffix == ".json":
            payload = json.loads(path.read_text())
        else:
            return None
    except (OSError, ValueError):
        return None
    command = payload.get("command") if isinstance(payload, dict) else None
    return command if isinstance(command, str) else None


def storing_commit(old_path: str, start: str, repo: Path) -> str:
    """The last commit up to ``start`` that changed ``old_path``."""
    out = subprocess.run(
        ["git", "log", "--format=%H", "-1", start, "--", old_path],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def build(start: str, repo: Path) -> dict[str, Any]:
    """The manifest of every file under ``ARCHIVE`` (the manifest files themselves left out)."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in ARCHIVE.rglob("*") if p.is_file()):
        rel = path.relative_to(ARCHIVE).as_posix()
        if rel in ("MANIFEST.json", "MANIFEST.md"):
            continue
        old = _OLD_PREFIX + rel
        files[rel] = {
            "former_path": old,
            "stored_by_commit": storing_commit(old, start, repo),
            "command": recorded_command(path),
        }
    return {
        "about": (
            "Result files written before results were keyed by suite and commit, moved here "
            "unchanged. stored_by_commit is the last commit that changed the file before it was "
            f"archived (git log --format=%H -1 {start} -- <former_path>): the commit that stored "
            "it, which is not always the code that produced it. command is the one the file "
            "records, where it records one, with the script paths of its day (python "
            "benchmarks/<name>.py; today python -m benchmarks.suites.<name>, see "
            "benchmarks/README.md). "
            "Nothing writes here: the archive is read-only."
        ),
        "archived_at": start,
        "files": files,
    }


def write(manifest: dict[str, Any]) -> None:
    (ARCHIVE / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    lines = [
        "# Archived results",
        "",
        manifest["about"],
        "",
        "| file | stored by commit | command |",
        "|---|---|---|",
    ]
    for rel, info in manifest["files"].items():
        command = (info["command"] or "-").replace("|", "\\|")
        lines.append(f"| `{rel}` | `{info['stored_by_commit'][:10]}` | `{command}` |")
    (ARCHIVE / "MANIFEST.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--start", required=True, help="the commit before the archive")
    parser.add_argument("--repo", default=".", help="the repository (default: here)")
    args = parser.parse_args(argv)
    write(build(args.start, Path(args.repo)))


if __name__ == "__main__":
    main()
