"""A study made by ``optuna-lyap run``, its notes and figures, rendered by optuna-dashboard in a
real browser (headless Chromium): the DOM after JavaScript ran must hold the note's text and
the figures, not only the API's JSON.

The browser is found on the PATH (``chromium``, ``chromium-browser``, ``google-chrome``) or in
``OPTUNA_LYAP_TEST_BROWSER``. Without one the browser test is skipped, except in CI
(``CI=true``), where a missing browser fails it: ``.ci/run`` installs Debian's ``chromium``.
Screenshots go to ``OPTUNA_LYAP_SCREENSHOT_DIR`` when set (``docs/screenshots`` was made so),
else to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna_dashboard import get_note

from optuna_lyap.visualization import GRAPH_IDS
from optuna_lyap.visualization._callback import _trial_handle

pytestmark = pytest.mark.slow

STUDY = "browser-copy"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """The browser to drive, or None."""
    given = os.environ.get("OPTUNA_LYAP_TEST_BROWSER")
    if given:
        return shutil.which(given) or (given if Path(given).exists() else None)
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    found = find_browser()
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must have a browser for this test; none of {BROWSERS} is on PATH")
        pytest.skip(f"no browser found ({', '.join(BROWSERS)}); install chromium to run it")
    return found


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A short study of the copy task made by the command line, with spectrum images."""
    folder = tmp_path_factory.mktemp("cli-study")
    storage = f"sqlite:///{folder / 'study.db'}"
    artifacts = folder / "artifacts"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    command = [
        sys.executable, "-m", "optuna_lyap.cli", "run", "--storage", storage,
        "--study-name", STUDY, "--task", "copy", "--n-trials", "10", "--n-epochs", "3",
        "--n-startup-trials", "3", "--seed", "0", "--no-progress",
        "--artifact-dir", str(artifacts), "--json", str(folder / "summary.json"),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((folder / "summary.json").read_text())
    return {"storage": storage, "artifacts": artifacts, "summary": summary, "stdout": proc.stdout}


def _study(made: dict[str, object]) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=str(made["storage"]))


def test_every_pruned_trial_is_explained_and_the_study_has_figures(made: dict[str, object]):
    study = _study(made)
    trials = study.trials
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, f"the study pruned nothing; its summary:\n{made['stdout']}"
    for t in pruned:
        note = get_note(_trial_handle(study, t))
        assert note.startswith(f"### Trial {t.number}: pruned at step {t.last_step} by ")
        decision = note.split("**Decision.** ", 1)[1].split("\n", 1)[0]
        assert f"at step {t.last_step}" in decision
        assert any(c.isdigit() for c in decision.split(f"step {t.last_step}", 1)[1])
        assert "/artifacts/" in note  # the trial's spectrum image
    with_diagnosis = [t for t in trials if "lyap_regime" in t.user_attrs]
    assert 2 * len(with_diagnosis) >= len(trials)
    for t in with_diagnosis:
        assert {"lyap_memory_horizon", "lyap_ky_dimension"} <= set(t.user_attrs)
    attrs = study._storage.get_study_system_attrs(study._study_id)
    published = {gid for gid in GRAPH_IDS if any(gid in key for key in attrs)}
    assert len(published) >= 2, published

    summary = made["summary"]
    assert isinstance(summary, dict)
    assert sum(summary["pruned_by"].values()) == len(pruned)
    assert "pruned, by rule" in str(made["stdout"]) and "dashboard" in str(made["stdout"])
    assert summary["dashboard"]["trials"] == len(trials)
    assert 0 < summary["dashboard"]["seconds"] < summary["dashboard"]["wall_seconds"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def dashboard(made: dict[str, object]) -> Iterator[str]:
    """``optuna-lyap dashboard`` serving the study and its artifacts; yields its base URL."""
    port = _free_port()
    command = [
        sys.executable, "-m", "optuna_lyap.cli", "dashboard", "--storage", str(made["storage"]),
        "--port", str(port), "--artifact-dir", str(made["artifacts"]),
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/studies", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _render(browser: str, url: str, screenshot: Path, height: int = 1800) -> str:
    """The DOM of ``url`` after its JavaScript ran, and a screenshot of the page."""
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--hide-scrollbars", "--virtual-time-budget=20000", f"--window-size=1400,{height}",
    ]  # fmt: skip
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = subprocess.run(
        [browser, *flags, f"--screenshot={screenshot}", url],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    return dom.stdout


def test_dashboard_renders_the_note_and_the_figures(
    made: dict[str, object], dashboard: str, browser: str, tmp_path: Path
):
    out = Path(os.environ.get("OPTUNA_LYAP_SCREENSHOT_DIR", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    study = _study(made)
    study_id = study._study_id
    pruned = next(t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED)
    note = get_note(_trial_handle(study, pruned))

    dom = _render(
        browser,
        f"{dashboard}/dashboard/studies/{study_id}/trials?numbers={pruned.number}",
        out / "dashboard-pruned-trial.png",
    )
    heading = note.split("\n", 1)[0].removeprefix("### ")
    assert heading in dom  # the note's heading, rendered from Markdown
    decision = note.split("**Decision.** ", 1)[1].split("\n", 1)[0]
    assert decision[:80] in dom
    assert "<strong>Decision.</strong>" in dom and "<strong>Dynamics at step" in dom
    assert f'src="/artifacts/{study_id}/' in dom  # the spectrum image in the note

    dom = _render(
        browser,
        f"{dashboard}/dashboard/studies/{study_id}",
        out / "dashboard-study.png",
        height=2700,
    )
    titles = (
        "Epochs spent",
        "Lyapunov spectra at step",
        ("Predicted vs final", "Prior's predicted quantile vs final"),
        "AeLLE latent map",
    )
    drawn = [
        t for t in titles
        if any(f'data-unformatted="{one}' in dom for one in ((t,) if isinstance(t, str) else t))
    ]  # fmt: skip
    # plotly drew them (their titles are SVG text in the DOM): the four the README names,
    # the latent map once 5 trials completed.
    completed = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
    assert len(drawn) == (4 if completed >= 5 else 3), (drawn, completed)
    assert dom.count('class="main-svg"') >= 2
