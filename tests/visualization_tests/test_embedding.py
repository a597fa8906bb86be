from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

import optuna_lyap
from optuna_lyap.visualization import (
    embedding_data,
    plot_embedding,
    publish_embedding,
    write_png,
)


def _study(n_complete: int = 6, n_pruned: int = 2, storage: str | None = None) -> optuna.Study:
    study = optuna.create_study(direction="maximize", storage=storage, study_name="emb")
    rng = np.random.default_rng(0)
    for i in range(n_complete + n_pruned):
        trial = study.ask()
        dim = int(rng.integers(8, 24))
        spectrum = np.sort(rng.normal(-0.5 + 0.05 * i, 0.3, dim))[::-1]
        optuna_lyap.report_spectrum(trial, spectrum, 1)
        if i < n_complete:
            study.tell(trial, 0.5 + 0.05 * i)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return study


def test_embedding_of_completed_and_pruned_trials(tmp_path: Path):
    study = _study()
    data = embedding_data(study, step=1, method="umap", seed=0)
    assert data.method == "pca"  # too few points for UMAP: the documented fallback
    assert data.xy.shape == (8, 2) and np.isfinite(data.xy).all()
    assert np.isnan(data.values[6:]).all() and np.isfinite(data.values[:6]).all()
    assert data.states.count("PRUNED") == 2

    figure = plot_embedding(data, step=1)
    assert sum(len(trace.x) for trace in figure.data) == 8
    write_png(data, tmp_path / "e.png")
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"


def test_publish_puts_the_figure_in_the_study():
    study = _study()
    publish_embedding(study, step=1, method="pca")
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert any("lyap-embedding-step1" in key for key in attrs)


def test_too_few_completed_trials_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 are needed"):
        embedding_data(_study(n_complete=1, n_pruned=3), step=1)
    with pytest.raises(ValueError, match="method must be"):
        embedding_data(_study(), method="tsne")


def test_figure_marks_pruned_trials_names_the_metric_and_keeps_the_legend_clear():
    study = _study()
    study.set_metric_names(["accuracy"])
    data = embedding_data(study, step=1, method="pca", seed=0)
    assert data.metric == "accuracy"
    figure = plot_embedding(data, step=1)
    by_name = {trace.name: trace for trace in figure.data}
    assert set(by_name) == {"pruned", "completed"}
    assert len(by_name["pruned"].x) == 2 and by_name["pruned"].marker.symbol == "x"
    assert by_name["completed"].marker.colorbar.title.text == "final accuracy"
    assert "trial %{customdata" in by_name["pruned"].hovertemplate
    assert sorted(by_name["completed"].customdata) == list(range(6))
    # Above the plot, horizontal: clear of the colour bar on the right.
    legend = figure.layout.legend
    assert legend.orientation == "h" and legend.y >= 1.0
    assert "step 1" in figure.layout.title.text and "accuracy" in figure.layout.title.text


def test_progress_is_reported_before_the_slow_stages():
    lines: list[str] = []
    embedding_data(
        _study(), step=1, method="pca", aelle_params={"n_models": 1}, progress=lines.append
    )
    assert lines and "fitting an AeLLE on 8 spectra" in lines[0]
    assert not any("UMAP" in line for line in lines)  # PCA: no UMAP message


def test_embed_command_writes_one_page_and_says_what_it_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from optuna_lyap.cli import main

    storage = f"sqlite:///{tmp_path / 'e.db'}"
    _study(storage=storage)
    out = tmp_path / "out" / "emb"
    args = ["embed", "--storage", storage, "--study-name", "emb", "--method", "pca"]
    assert main([*args, "--output", str(out)]) == 0
    assert "fitting an AeLLE on 8 spectra" in capsys.readouterr().err
    # One file that opens offline: plotly.js (4.8 MB) inside the page, nothing beside it.
    assert sorted(p.name for p in out.parent.iterdir()) == ["emb.html"]
    assert out.with_suffix(".html").stat().st_size > 1_000_000


def _with_a_diverged_trial() -> optuna.Study:
    """``_study()`` (maximize) plus one COMPLETE trial whose final value is -inf."""
    study = _study()
    trial = study.ask()
    optuna_lyap.report_spectrum(trial, np.array([0.4, -0.1, -0.9]), 1)
    study.tell(trial, -float("inf"))
    return study


def test_an_infinite_final_value_is_embedded_as_the_worst():
    study = _with_a_diverged_trial()
    data = embedding_data(study, step=1, method="pca", aelle_params={"n_models": 1})
    assert data.xy.shape == (9, 2) and np.isfinite(data.xy).all()
    # Coloured as the worst finite final value, as every model's target counts it.
    assert data.values[-1] == pytest.approx(np.nanmin(data.values[:6]))
    publish_embedding(study, step=1, method="pca", aelle_params={"n_models": 1})
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert any("lyap-embedding-step1" in key for key in attrs)


def test_auto_picks_the_method_by_size(monkeypatch: pytest.MonkeyPatch):
    from optuna_lyap.visualization import _embedding

    data = embedding_data(_study(), step=1, method="auto", aelle_params={"n_models": 1})
    assert data.method == "pca"  # 8 points, below AUTO_UMAP_POINTS
    seen: list[str] = []

    def fake_embed(self: object, spectra: object, method: str = "umap") -> np.ndarray:
        seen.append(method)
        return np.zeros((len(spectra), 2))  # type: ignore[arg-type]

    monkeypatch.setattr(_embedding, "AUTO_UMAP_POINTS", 8)
    monkeypatch.setattr(_embedding.AeLLE, "embed", fake_embed)
    assert embedding_data(_study(), step=1, method="auto", aelle_params={"n_models": 1})
    assert seen == ["umap"]
