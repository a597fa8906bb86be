"""The commands' arguments and errors, run in this process against real storages."""

from __future__ import annotations

import re
import runpy
import socket
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from optuna_lyap import AeLLE, load_predictions, report_spectrum
from optuna_lyap._storage import CONFIG_KEY, record_prediction
from optuna_lyap.cli import main
from optuna_lyap.cli._base import CLIError
from optuna_lyap.cli._storage_url import open_storage
from optuna_lyap.cli._study import build_study, study_config
from optuna_lyap.cli._summary import format_summary, summarize
from optuna_lyap.cli._workers import GRACE_BEATS, HEARTBEAT_INTERVAL
from optuna_lyap.pruners import draws_independently
from tests.cli_tests._support import run_cli, storage_url, study_name_on

REPO = Path(__file__).resolve().parents[2]
# Every benchmark module with a command line, by its module name (run as ``python -m <name>``).
BENCHMARKS = sorted(
    ".".join(p.relative_to(REPO).with_suffix("").parts)
    for p in (REPO / "benchmarks").rglob("*.py")
    if 'if __name__ == "__main__":' in p.read_text()
)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def spectra_study(tmp_path: Path, n: int = 6, steps: tuple[int, ...] = (0, 1)) -> str:
    """A journal study made as ``run`` makes one, whose trials stored spectra at ``steps``."""
    url = storage_url("journal", tmp_path)
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    study.set_user_attr(
        CONFIG_KEY,
        {"task": "adding", "n_epochs": 2, "seed": 0, "pruner": "lyapunov", "sampler": "tpe",
         "n_startup_trials": 8, "spectrum_steps": list(steps)},
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for _ in range(n):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in steps:
            report_spectrum(trial, np.sort(rng.normal(-x, 0.3, size=8))[::-1], step)
            trial.report(x + 0.1 * step, step)
        study.tell(trial, x)
    return url


# --- Storage arguments ------------------------------------------------------------------------


def test_a_bare_sqlite_path_gets_a_hint(tmp_path: Path):
    with pytest.raises(CLIError, match=r"for an SQLite file write sqlite:///study\.db"):
        open_storage("study.db")
    with pytest.raises(CLIError, match="neither a storage URL nor a journal file"):
        open_storage("study")


@pytest.mark.parametrize(
    "command",
    [("worker", "--study-name", "s"), ("fit", "--study-name", "s", "--output", "m.pt"),
     ("embed", "--study-name", "s"), ("dashboard",)],
)  # fmt: skip
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_read_only_commands_create_no_storage_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: tuple[str, ...], kind: str
):
    url = storage_url(kind, tmp_path / "mistyped")
    status, _, err = cli(capsys, command[0], "--storage", url, *command[1:])
    assert status == 2
    assert "no storage file" in err
    assert not (tmp_path / "mistyped").exists() or not any((tmp_path / "mistyped").iterdir())


@pytest.mark.parametrize(("module", "kind", "extra"), [("psycopg2", "postgres", "[postgres]"),
                                                      ("pymysql", "mysql", "[mysql]"),
                                                      ("redis", "redis", "[redis]")])  # fmt: skip
def test_a_missing_driver_names_the_install_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, kind: str, extra: str
):
    url = storage_url(kind, tmp_path)
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    with pytest.raises(CLIError, match=rf"needs the '{module}' package: pip install "
                       rf"'optuna-lyap\{extra}'"):  # fmt: skip
        open_storage(url)


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "mysql", "redis", "journal"])
def test_storages_open_without_warnings(
    tmp_path: Path, recwarn: pytest.WarningsRecorder, kind: str
):
    import warnings

    warnings.simplefilter("always")
    storage = open_storage(storage_url(kind, tmp_path))
    if isinstance(storage, optuna.storages.RDBStorage):
        assert storage.get_heartbeat_interval() == HEARTBEAT_INTERVAL  # dead workers' trials
        assert storage.grace_period == GRACE_BEATS * HEARTBEAT_INTERVAL  # come back
    assert [str(w.message) for w in recwarn] == []


# --- fit, prior, dashboard -------------------------------------------------------------------


def test_fit_writes_one_file_and_refuses_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    url = spectra_study(tmp_path)
    (tmp_path / "models").mkdir()
    status, _, err = cli(capsys, "fit", "--storage", url, "--study-name", "s",
                         "--output", str(tmp_path / "models"))  # fmt: skip
    assert status == 2
    assert "is a directory; give a file path" in err
    out = tmp_path / "models" / "deeper" / "ae.pt"
    status, _, err = cli(capsys, "fit", "--storage", url, "--study-name", "s", "--step", "0",
                         "--format", "aelle", "--output", str(out))  # fmt: skip
    assert status == 0, err
    assert AeLLE.load(out).n_labelled_ == 6


@pytest.mark.parametrize("command", ["fit", "embed"])
def test_a_step_without_spectra_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
):
    url = spectra_study(tmp_path)
    out = str(tmp_path / "m.pt")
    extra = ("--format", "aelle") if command == "fit" else ()
    status, _, err = cli(capsys, command, "--storage", url, "--study-name", "s", "--step", "7",
                         "--output", out, *extra)  # fmt: skip
    assert status == 2
    assert "no trial of 's' stored a spectrum at step 7; steps with spectra: 0, 1" in err
    assert list(tmp_path.glob("m.*")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--prior", "missing.pt"), "is not a file"),
        (("--prior", "m.pt", "--pruner", "median"), "the study's pruner is 'median'"),
        (("--prior", "m.pt"), "cannot read --prior 'm.pt'"),
    ],
)
def test_prior_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                      message: str):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.pt").write_bytes(b"")
    status, _, err = cli(capsys, "run", "--storage", str(tmp_path / "j.log"), *args)
    assert status == 2
    assert message in err


def test_dashboard_on_a_busy_port_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    url = spectra_study(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status, _, err = cli(capsys, "dashboard", "--storage", url, "--port", str(port))
    assert status == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err and "pick another --port" in err
    assert "optuna-dashboard on" not in err


# --- The summary -----------------------------------------------------------------------------


def test_summary_says_why_it_has_no_spearman(tmp_path: Path):
    url = spectra_study(tmp_path, n=2)
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    text = format_summary(summarize(study))
    reason = "no in-study model predictions recorded: the model starts after 8 completed trials"
    assert reason in text
    assert "2 have completed" in text

    for _ in range(2):  # two completed trials with a prediction: too few to rank
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.report(0.5, 1)
        record_prediction(study, study._storage.get_trial(trial._trial_id), 1,
                          {"predicted": 0.4 + 0.1 * trial.number})  # fmt: skip
        study.tell(trial, 0.5 + trial.number)
    assert all(load_predictions(t) for t in study.trials[2:])
    text = format_summary(summarize(study))
    assert "nan" not in text
    # The reason ends the row: nothing about a correlation that was not measured follows it.
    row = next(r for r in text.splitlines() if r.startswith("prediction quality"))
    assert row.endswith("Spearman not measured: needs 3 completed trials with a prediction, has 2")


def test_summary_names_a_pruner_without_predictions(tmp_path: Path):
    url = storage_url("journal", tmp_path)
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    study.set_user_attr(CONFIG_KEY, {"pruner": "median", "n_epochs": 1})
    assert "the 'median' pruner makes no predictions" in format_summary(summarize(study))


# --- Benchmarks ------------------------------------------------------------------------------


@pytest.mark.parametrize("module", BENCHMARKS)
# runpy's note that another test imported the module already.
@pytest.mark.filterwarnings("ignore:.*found in sys.modules after import:RuntimeWarning")
def test_benchmark_help_starts_nothing(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setattr(sys, "argv", [module, "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


# --- run on an existing study ----------------------------------------------------------------


@pytest.mark.slow
def test_resuming_with_other_settings_warns_that_the_stored_ones_win(tmp_path: Path):
    journal = storage_url("journal", tmp_path)
    common = ("--storage", journal, "--study-name", "s", "--task", "adding", "--no-progress")
    run_cli("run", *common, "--n-trials", "1", "--n-epochs", "1", "--pruner", "none",
            cwd=tmp_path)  # fmt: skip
    proc = run_cli("run", *common, "--n-trials", "1", "--n-epochs", "2", "--pruner", "median",
                   cwd=tmp_path)  # fmt: skip
    assert "was made with --n-epochs 1; its stored settings win over --n-epochs 2" in proc.stderr
    assert "was made with --pruner none; its stored settings win over --pruner median" in (
        proc.stderr
    )
    assert "running 1 more trial (the study has 1)" in proc.stderr
    study = optuna.load_study(study_name="s", storage=open_storage(journal))
    assert [t.user_attrs["epochs_trained"] for t in study.trials] == [1, 1]


@pytest.mark.slow
def test_run_and_worker_take_a_prior_from_fit(tmp_path: Path):
    url = spectra_study(tmp_path, n=6, steps=(0, 1))
    run_cli("fit", "--storage", url, "--study-name", "s", "--step", "1", "--output", "ae.pt",
            "--format", "aelle", cwd=tmp_path)  # fmt: skip
    with study_name_on(url) as name:
        common = ("--storage", url, "--study-name", name, "--no-progress", "--prior", "ae.pt")
        run_cli("run", *common, "--task", "adding", "--n-trials", "1", "--n-epochs", "2",
                cwd=tmp_path)  # fmt: skip
        run_cli("worker", *common, "--n-trials", "1", cwd=tmp_path)
        study = optuna.load_study(study_name=name, storage=open_storage(url))
        # With 8 start-up trials the study's own model cannot act yet: the prior predicts, at
        # step 0 within the warm-up (deciding nothing) and at the step after it.
        assert [sorted(load_predictions(t)) for t in study.trials] == [[0, 1], [0, 1]]
        assert all(load_predictions(t)[0]["rule"] == "predict" for t in study.trials)


# --- --prior-weight ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1.5", "-0.1", "nan", "half"])
def test_prior_weight_outside_the_unit_interval_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
):
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--storage", str(tmp_path / "j.log"), "--prior-weight", text])
    assert exit_info.value.code == 2
    assert f"must be a number in [0, 1], got {text}" in capsys.readouterr().err
    assert not (tmp_path / "j.log").exists()


def test_prior_weight_for_another_pruner_is_one_line_and_leaves_no_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    for url in (str(tmp_path / "j.log"), f"sqlite:///{tmp_path / 's.db'}"):
        status, _, err = cli(capsys, "run", "--storage", url, "--pruner", "median",
                             "--prior-weight", "0.3")  # fmt: skip
        assert status == 2
        assert "--prior-weight 0.3 blends the prior into the lyapunov pruner's rungs" in err
        assert "but the pruner is 'median'" in err
    # Refused before the storage was opened: no file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_prior_weight_is_stored_and_every_process_of_the_study_uses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
):
    url = str(tmp_path / "j.log")
    common = ("--storage", url, "--study-name", "s", "--no-progress")
    status, _, err = cli(capsys, "run", *common, "--task", "adding", "--n-trials", "2",
                         "--n-epochs", "3", "--prior-weight", "0.3")  # fmt: skip
    assert status == 0
    assert "pruner lyapunov (prior weight 0.3)" in err
    blended = [
        r
        for t in optuna.load_study(study_name="s", storage=open_storage(url)).trials
        for r in load_predictions(t).values()
        if r.get("rule") == "blend_rung"
    ]
    assert blended  # so the pruner did blend with TPE, and its warning was silenced
    storage = open_storage(url)
    config = optuna.load_study(study_name="s", storage=storage).user_attrs[CONFIG_KEY]
    assert config["prior_weight"] == 0.3
    # What a worker or a resumed run builds from the stored settings.
    study, _ = build_study(storage, "s", config, stream_seed=1)
    assert study.pruner._prior_weight == 0.3
    status, _, err = cli(capsys, "worker", "--storage", url, "--study-name", "s",
                         "--n-trials", "1", "--no-progress")  # fmt: skip
    assert status == 0
    assert "pruner lyapunov (prior weight 0.3)" in err and "running 1 more trial " in err
    # Said once, as the CLI's own one-line warning, naming the sampler and the options.
    assert err.count("warning: --prior-weight 0.3 blends the prior") == 1
    assert "sampler tpe reads earlier results" in err and "--sampler random" in err
    assert not [w for w in recwarn if "reads earlier results" in str(w.message)]

    # A resumed run asking for another weight is told that the stored one wins.
    status, _, err = cli(capsys, "run", *common, "--task", "adding", "--n-trials", "1",
                         "--prior-weight", "0.5")  # fmt: skip
    assert status == 0
    assert "was made with --prior-weight 0.3; its stored settings win over --prior-weight 0.5" in (
        err
    )


def test_a_study_stored_without_a_weight_never_blends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    url = spectra_study(tmp_path)  # its stored settings predate --prior-weight
    storage = open_storage(url)
    stored = optuna.load_study(study_name="s", storage=storage)
    assert "prior_weight" not in stored.user_attrs[CONFIG_KEY]
    # Read as a worker reads it: the weight the study ran with, 0, filled in.
    config = study_config(stored)
    assert config["prior_weight"] == 0.0
    study, _ = build_study(storage, "s", config, stream_seed=0)
    assert study.pruner._prior_weight == 0.0
    status, _, err = cli(capsys, "run", "--storage", url, "--study-name", "s", "--task",
                         "adding", "--n-trials", "1", "--no-progress", "--prior-weight",
                         "0.3")  # fmt: skip
    assert status == 0
    assert "was made with --prior-weight 0.0; its stored settings win over --prior-weight 0.3" in (
        err
    )


@pytest.mark.parametrize(("sampler", "independent"), [("random", True), ("tpe", False)])
def test_the_clis_random_sampler_draws_independently(sampler: str, independent: bool):
    # The CLI wraps its samplers to seed each trial; draws_independently must see through the
    # wrapper, or LyapunovPruner(prior_decides=None) would never judge the prior's gate there.
    config = {"task": "adding", "n_epochs": 1, "seed": 0, "pruner": "lyapunov",
              "sampler": sampler, "n_startup_trials": 8, "prior_weight": 0.0,
              "spectrum_steps": [0, 1]}  # fmt: skip
    study, _ = build_study(optuna.storages.InMemoryStorage(), "s", config, stream_seed=0)
    assert draws_independently(study.sampler) is independent
    assert study.pruner.prior_decides(study) is False  # the default never lets the prior rank


def test_explain_prints_the_notes_of_trials(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    url = str(tmp_path / "j.log")
    common = ("--storage", url, "--study-name", "s")
    status, _, _ = cli(capsys, "run", *common, "--task", "adding", "--n-trials", "3",
                       "--n-epochs", "2", "--no-progress")  # fmt: skip
    assert status == 0
    status, out, _ = cli(capsys, "explain", *common, "0", "2")
    assert status == 0
    assert "### Trial 0" in out and "### Trial 2" in out and "### Trial 1" not in out
    assert out.index("### Trial 0") < out.index("### Trial 2")
    # What holds for the whole study, if anything, comes first and once.
    before = out[: out.index("### Trial 0")]
    assert not before or before.startswith("### About this study")
    assert out.count("### About this study") <= 1
    # With one study in the storage, --study-name may be left out: the same text.
    status, alone, _ = cli(capsys, "explain", "--storage", url, "0", "2")
    assert status == 0 and alone == out
    # Numbers the study lacks: one line naming them and what there is.
    status, out, err = cli(capsys, "explain", *common, "7")
    assert status == 2 and out == ""
    assert "no trial 7 (its trial numbers: 0 to 2)" in err

    # A study 'run' did not make: its pruner is unknown, and the note does not guess one.
    storage = open_storage(url)
    other = optuna.create_study(storage=storage, study_name="other")
    trial = other.ask()
    trial.report(0.3, 1)
    other.tell(trial, state=optuna.trial.TrialState.PRUNED)
    status, out, _ = cli(capsys, "explain", "--storage", url, "--study-name", "other")
    assert status == 0
    assert "### Trial 0" in out and "by the study's pruner" in out and "Median" not in out


def test_explain_and_embed_without_a_study_name_need_one_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    storage = open_storage(url)
    # No study: said so, naming the storage.
    for command in ("explain", "embed"):
        status, out, err = cli(capsys, command, "--storage", url)
        assert status == 2 and out == ""
        assert f"storage {url!r} holds no study" in err
    optuna.create_study(storage=storage, study_name="first")
    optuna.create_study(storage=storage, study_name="second")
    # Several: the error lists them and names the option that picks one.
    for command in ("explain", "embed"):
        status, out, err = cli(capsys, command, "--storage", url)
        assert status == 2 and out == ""
        assert "holds 2 studies (first, second); choose one with --study-name" in err


def test_embed_reads_the_only_study_and_writes_one_self_contained_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    url = spectra_study(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = set(tmp_path.iterdir())
    status, out, _ = cli(capsys, "embed", "--storage", url, "--method", "pca")
    assert status == 0
    # One file, the default name, plotly.js inside it: nothing else left in the folder.
    assert set(tmp_path.iterdir()) - before == {tmp_path / "embedding.html"}
    page = (tmp_path / "embedding.html").read_text()
    # plotly.js is inside the page (megabytes), and no script is loaded from elsewhere.
    assert len(page) > 1_000_000 and not re.search(r"<script[^>]*\ssrc=", page)
    assert "wrote embedding.html" in out and "(pca)" in out
    # The PNG only when asked, beside the named page.
    status, out, _ = cli(capsys, "embed", "--storage", url, "--method", "pca", "--output",
                         str(tmp_path / "out" / "map.html"), "--png")  # fmt: skip
    assert status == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["map.html", "map.png"]


def test_embed_picks_pca_for_a_small_study_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from optuna_lyap.visualization._embedding import AUTO_UMAP_POINTS

    url = spectra_study(tmp_path)  # 6 trials, far below the size where UMAP is worth it
    assert AUTO_UMAP_POINTS > 6
    status, out, err = cli(capsys, "embed", "--storage", url, "--output", str(tmp_path / "e"))
    assert status == 0 and "(pca)" in out and "UMAP" not in err
    assert (tmp_path / "e.html").is_file() and not (tmp_path / "plotly.min.js").exists()


def test_a_complete_trial_with_an_infinite_value_is_the_worst_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # From a public report (optuna-dashboard#108): a diverged run, COMPLETE with +inf.
    url = spectra_study(tmp_path)
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    trial = study.ask()
    report_spectrum(trial, np.array([0.3, -0.2, -1.0]), 1)
    trial.report(0.5, 1)
    study.tell(trial, float("inf"))
    status, out, err = cli(capsys, "embed", "--storage", url, "--method", "pca", "--output",
                           str(tmp_path / "emb"))  # fmt: skip
    assert status == 0, err
    assert "embedded 7 trials (pca)" in out
    summary = summarize(study)
    assert summary["counts"] == {"complete": 7}
    assert "inf" not in format_summary(summary).split("best value")[1].splitlines()[0]
