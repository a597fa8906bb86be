"""The ``optuna-lyap`` command, run for real in subprocesses."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.slow


def run_cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "optuna_lyap.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def wsgi_get(app, path: str) -> tuple[str, bytes]:
    """Call a WSGI app for ``GET path`` and return the status line and body."""
    status: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    body = b"".join(app(environ, lambda s, headers, exc=None: status.append(s)))
    return status[0], body


def test_help_for_every_command(tmp_path: Path):
    out = run_cli("--help", cwd=tmp_path).stdout
    for command in ("run", "worker", "fit", "embed", "explain", "dashboard"):
        assert command in out
        assert "usage" in run_cli(command, "--help", cwd=tmp_path).stdout
    # A worker joins an existing study: its --storage is required and has no default to name.
    worker = " ".join(run_cli("worker", "--help", cwd=tmp_path).stdout.split())
    assert "--storage STORAGE" in worker and "(default: sqlite" not in worker
    assert "(default: sqlite" in " ".join(run_cli("run", "--help", cwd=tmp_path).stdout.split())


def test_run_leaves_a_study_the_dashboard_serves(tmp_path: Path):
    proc = run_cli(
        "run", "--task", "adding", "--n-trials", "3", "--n-epochs", "2", "--no-progress",
        "--json", "summary.json", cwd=tmp_path,
    )  # fmt: skip
    assert "best value" in proc.stdout
    assert "epochs spent" in proc.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    # Successive halving (the default pruner) stops trial 1 at its first rung, step 1: its
    # value there is worse than trial 0's, and only the top quarter goes on.
    assert summary["counts"] == {"complete": 2, "pruned": 1}
    assert summary["pruned_by"] == {"rung": 1}
    assert summary["epochs_spent"] == 5
    assert summary["epochs_without_pruning"] == 6

    url = f"sqlite:///{tmp_path / 'optuna_lyap.db'}"
    study = optuna.load_study(study_name="adding-lyapunov-tpe", storage=url)
    assert len(study.trials) == 3
    assert all(t.user_attrs.get("lyap_max") is not None for t in study.trials)

    import optuna_dashboard

    app = optuna_dashboard.wsgi(url)
    status, body = wsgi_get(app, "/api/studies")
    assert status.startswith("200")
    studies = json.loads(body)["study_summaries"]
    assert [s["study_name"] for s in studies] == ["adding-lyapunov-tpe"]
    status, body = wsgi_get(app, f"/api/studies/{studies[0]['study_id']}")
    assert status.startswith("200")
    trials = json.loads(body)["trials"]
    assert len(trials) == 3
    attr_keys = {a["key"] for a in trials[0]["user_attrs"]}
    assert {"lyap_max", "lyap_mean", "epochs_trained"} <= attr_keys

    # Running again resumes the same study with its stored settings.
    run_cli("run", "--task", "adding", "--n-trials", "1", "--no-progress", cwd=tmp_path)
    assert len(optuna.load_study(study_name="adding-lyapunov-tpe", storage=url).trials) == 4


def test_worker_fit_and_embed_on_a_journal_file(tmp_path: Path):
    journal = str(tmp_path / "study.log")
    run_cli(
        "run", "--storage", journal, "--study-name", "s", "--task", "sines", "--n-trials", "4",
        "--n-epochs", "1", "--pruner", "none", "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    proc = run_cli(
        "worker", "--storage", journal, "--study-name", "s", "--n-trials", "2", "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert "complete 6" in proc.stdout
    run_cli(
        "fit", "--storage", journal, "--study-name", "s", "--step", "1", "--output", "model",
        "--format", "aelle", cwd=tmp_path,
    )  # fmt: skip
    from optuna_lyap import AeLLE

    assert AeLLE.load(tmp_path / "model").n_labelled_ == 6
    run_cli(
        "embed", "--storage", journal, "--study-name", "s", "--method", "pca", "--output",
        "out/emb", "--png", cwd=tmp_path,
    )  # fmt: skip
    assert (tmp_path / "out" / "emb.html").stat().st_size > 1000
    # The PNG only where asked for (--png), beside the page; nothing else is left there.
    assert (tmp_path / "out" / "emb.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["emb.html", "emb.png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("worker", "--storage", "sqlite:///x.db", "--study-name", "nope"), "no study named"),
        (("worker", "--storage", "sqlite:///typo.db", "--study-name", "s"), "no storage file"),
        (
            ("run", "--storage", "postgresql+psycopg2://nobody@127.0.0.1:1/x"),
            "cannot open storage",
        ),
        # SQLAlchemy reads a bare postgresql:// as psycopg 3, which the extras do not install.
        (("run", "--storage", "postgresql://nobody@127.0.0.1:1/x"), "postgresql+psycopg2://"),
        (("run", "--task", "imagenet"), "invalid choice"),
        (("run", "--n-trials", "0"), "positive integer"),
    ],
)
def test_errors_are_one_line_not_tracebacks(tmp_path: Path, args: tuple[str, ...], message: str):
    optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")  # a storage without the study
    proc = run_cli(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
