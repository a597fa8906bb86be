"""``optuna-lyap fit`` builds a prior bundle; ``run``/``worker --prior`` take it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from optuna_lyap.aelle import PriorBundle, load_shipped_prior
from optuna_lyap.cli import main
from optuna_lyap.cli._storage_url import open_storage
from tests.cli_tests._prior_studies import make_study

from .test_commands import cli


@pytest.fixture
def two_studies(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'earlier.db'}"
    make_study(url, "a", 14, seed=0, direction="maximize")
    make_study(url, "b", 14, seed=1, direction="minimize")
    return url


@pytest.mark.slow
def test_fit_on_two_studies_writes_a_bundle_that_prior_accepts(
    tmp_path: Path, two_studies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "priors" / "mine.pt"
    status, stdout, err = cli(capsys, "fit", "--storage", two_studies, "--study", "a",
                              "--study", "b", "--step", "0", "--output", str(out))  # fmt: skip
    assert status == 0, err
    assert "saved a prior bundle of 5 models (5 fitted on 'a', 'b')" in stdout
    bundle = PriorBundle.load(out)
    assert sorted(bundle.models) == sorted(
        (0, g) for g in [
            ("hyperparameters", "spectrum", "curve"), ("hyperparameters", "curve"),
            ("spectrum", "curve"), ("hyperparameters", "spectrum"), ("hyperparameters",),
        ]
    )  # fmt: skip
    assert bundle.info["studies"] == ["a", "b"]
    assert bundle.info["command"] == "optuna-lyap fit --study a --study b --step 0 --seed 0"
    assert bundle.info["rows"]["0:hyperparameters"] == 28
    assert bundle.info["warm_start"] is None

    # run --prior gives the bundle to the sampler: trial 0 is screened by it.
    journal = str(tmp_path / "new.log")
    status, _, err = cli(capsys, "run", "--storage", journal, "--study-name", "new",
                         "--task", "adding", "--n-trials", "1", "--n-epochs", "1",
                         "--pruner", "none", "--sampler", "lyapunov", "--no-progress",
                         "--no-dashboard", "--prior", str(out))  # fmt: skip
    assert status == 0, err
    study = optuna.load_study(study_name="new", storage=open_storage(journal))
    assert study.trials[0].user_attrs["lyap_screen_by"] == "prior"
    shipped_quantile = study.trials[0].user_attrs["lyap_screen_quantile"]
    assert 0 < shipped_quantile < 1


@pytest.mark.slow
def test_on_shipped_keeps_the_shipped_models_the_studies_cannot_train(
    tmp_path: Path, two_studies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "warm.pt"
    status, stdout, err = cli(capsys, "fit", "--storage", two_studies, "--study", "a",
                              "--study", "b", "--step", "0", "--on-shipped",
                              "--output", str(out))  # fmt: skip
    assert status == 0, err
    bundle, shipped = PriorBundle.load(out), load_shipped_prior()
    assert set(bundle.models) == set(shipped.models)
    assert "kept from the shipped prior" in stdout
    warm = bundle.info["warm_start"]
    assert warm["pseudo_count"] == 50.0 and warm["cv_folds"] == 3
    step0 = [key for key in shipped.models if key[0] == 0]
    assert sorted(warm["checks"]) == sorted(f"0:{'+'.join(g)}" for _, g in step0)
    rows = _rows([{"cell": "gru", "hidden_size": 32, "init_scale": 1.0, "lr": 0.01}])
    for key in shipped.models:
        label = f"{key[0]}:{'+'.join(key[1])}"
        ours, theirs = bundle.models[key].predict(rows), shipped.models[key].predict(rows)
        if label in bundle.info["rows"]:
            # Replaced only where it ranked the studies' rows better than the shipped model.
            check = warm["checks"][label]
            assert check["fitted_cv"] > (check["shipped"] if check["shipped"] is not None else -2)
            assert ours != pytest.approx(theirs)
        else:
            assert ours == pytest.approx(theirs)


def _rows(params: list[dict]) -> object:
    import numpy as np

    from optuna_lyap._prediction._prior import network_from_params
    from optuna_lyap.aelle._features import PriorInputs, hyperparameter_features

    nets = [network_from_params(p) for p in params]
    n = len(params)
    # Every group known: a top-quarter spectrum of a 32-state, a mid-ranked curve.
    spectra = [np.linspace(0.1, -0.5, 8)] * n
    curve = np.tile([0.5, 0.0, 0.0, np.nan], (n, 1))
    return PriorInputs(hyperparameter_features(nets), spectra, np.full(n, 32), curve)


def test_fit_errors_are_one_line(
    tmp_path: Path, two_studies: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = cli(capsys, "fit", "--storage", two_studies, "--study", "a",
                         "--output", str(tmp_path))  # fmt: skip
    assert status == 2 and "is a directory; give a file path" in err
    assert err.count("\n") == 1
    status, _, err = cli(capsys, "fit", "--storage", two_studies, "--study", "a", "--study",
                         "b", "--format", "aelle", "--output", "x.pt")  # fmt: skip
    assert status == 2 and "--format aelle fits on one study, but 2 were given" in err
    # Too few completed trials for any model.
    url = f"sqlite:///{tmp_path / 'small.db'}"
    make_study(url, "tiny", 5, seed=2, direction="maximize")
    status, _, err = cli(capsys, "fit", "--storage", url, "--study", "tiny", "--step", "0",
                         "--output", str(tmp_path / "t.pt"))  # fmt: skip
    assert status == 2 and "no step and input set has 12 completed trials" in err
    assert not (tmp_path / "t.pt").exists()


def test_a_wrong_prior_file_is_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a prior")
    status = main(["run", "--storage", str(tmp_path / "j.log"), "--sampler", "lyapunov",
                   "--pruner", "none", "--prior", "notes.txt"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2
    assert "cannot read --prior 'notes.txt'" in err and err.count("\n") == 1
