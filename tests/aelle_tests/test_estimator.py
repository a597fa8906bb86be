from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import optuna_lyap
from optuna_lyap.aelle import AeLLE
from tests.aelle_tests._synthetic import spectrum_family

FAST: dict[str, Any] = {"max_steps": 60, "n_models": 3}


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_fit() -> tuple[AeLLE, list[np.ndarray], np.ndarray]:
    spectra, targets, _ = spectrum_family(30, seed=0)
    return AeLLE(seed=0, **FAST).fit(spectra, targets), spectra, targets


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b)[0])


@pytest.mark.slow
def test_learns_a_non_monotone_target_from_160_spectra_of_mixed_lengths(one_thread: None) -> None:
    spectra, targets, params = spectrum_family(160, seed=0)
    test_spectra, test_targets, _ = spectrum_family(400, seed=1)
    assert len({len(s) for s in spectra}) == 6

    model = AeLLE(seed=0)
    # The target is not monotone in any single exponent: no grid point ranks it well.
    single = [abs(_rho(col, test_targets)) for col in model.resample(test_spectra).T]
    assert max(single) < 0.5

    model.fit(spectra, targets)
    prediction = model.predict(test_spectra)
    assert _rho(prediction, test_targets) >= 0.85
    mse = np.mean((prediction - test_targets) ** 2)
    assert mse < 0.25 * np.var(test_targets)  # far better than predicting the mean


def test_fit_is_fast_on_one_thread(one_thread: None) -> None:
    spectra, targets, _ = spectrum_family(40, seed=3)
    AeLLE(seed=0, max_steps=5).fit(spectra, targets)  # first use of torch.optim imports a lot
    start = time.process_time()
    AeLLE(seed=0).fit(spectra, targets)
    assert time.process_time() - start < 2.0


def test_beats_the_mean_with_few_labels() -> None:
    spectra, targets, _ = spectrum_family(60, seed=4)
    test_spectra, test_targets, _ = spectrum_family(200, seed=5)
    prediction = AeLLE(seed=0, max_steps=200).fit(spectra, targets).predict(test_spectra)
    assert _rho(prediction, test_targets) > 0.6
    assert np.mean((prediction - test_targets) ** 2) < 0.7 * np.var(test_targets)


def test_features_only_model_learns_a_nonlinear_relation() -> None:
    rng = np.random.default_rng(6)
    x = rng.uniform(-2.0, 2.0, size=(140, 2))
    y = np.exp(-(x[:, 0] ** 2)) + 0.3 * x[:, 1]  # a bump in x0: no linear model sees it
    model = AeLLE(seed=0).fit(None, y[:100], features=x[:100])
    assert not model.uses_spectra_ and model.n_features_in_ == 2
    assert _rho(model.predict(None, features=x[100:]), y[100:]) > 0.9
    assert abs(_rho(x[100:, 0], y[100:])) < 0.2
    with pytest.raises(ValueError, match="spectra=None"):
        model.transform(np.zeros((2, 4)))


def test_spectra_and_features_together_beat_either_alone() -> None:
    spectra, part, params = spectrum_family(200, seed=7)
    extra = np.random.default_rng(8).uniform(-1.0, 1.0, 200)
    y = part + extra  # half the signal in the spectrum, half in a feature
    train, test = slice(0, 140), slice(140, 200)
    kwargs: dict[str, Any] = {"seed": 0, "max_steps": 200}
    rhos = {}
    for name, spec, feat in [
        ("spectra", spectra, None),
        ("features", None, extra[:, None]),
        ("both", spectra, extra[:, None]),
    ]:
        s_tr = None if spec is None else spec[train]
        s_te = None if spec is None else spec[test]
        f_tr = None if feat is None else feat[train]
        f_te = None if feat is None else feat[test]
        model = AeLLE(**kwargs).fit(s_tr, y[train], features=f_tr)
        rhos[name] = _rho(model.predict(s_te, features=f_te), y[test])
    assert rhos["both"] > max(rhos["spectra"], rhos["features"]) + 0.05


def test_nan_targets_train_the_reconstruction_only() -> None:
    spectra, targets, _ = spectrum_family(40, seed=9)
    partial = targets.copy()
    partial[10:] = math.nan
    model = AeLLE(seed=0, **FAST).fit(spectra, partial)
    assert model.n_labelled_ == 10
    prediction, std = model.predict(spectra, return_std=True)
    assert np.isfinite(prediction).all() and np.isfinite(std).all()
    # The unlabelled spectra still shape the model: it differs from one fitted on the 10 alone.
    alone = AeLLE(seed=0, **FAST).fit(spectra[:10], targets[:10])
    assert not np.allclose(alone.predict(spectra), prediction)
    # Two labels are enough to fit.
    partial[2:] = math.nan
    assert np.isfinite(AeLLE(seed=0, **FAST).fit(spectra, partial).predict(spectra)).all()


def test_non_finite_spectra_never_crash_or_leak_nan() -> None:
    spectra, targets, _ = spectrum_family(30, seed=10)
    spectra[0] = np.full(16, math.nan)  # every sequence diverged
    spectra[1] = spectra[1].copy()
    spectra[1][-3:] = -math.inf  # dead directions
    spectra[2] = spectra[2].copy()
    spectra[2][:2] = math.inf
    model = AeLLE(seed=0, **FAST).fit(spectra, targets)
    new = [
        np.full(8, math.nan),
        np.full(5, -math.inf),
        np.array([math.inf, 1e30, -1e30]),
        np.array([0.0]),
        np.linspace(5.0, -40.0, 300),
    ]
    mean, std = model.predict(new, return_std=True)
    assert np.isfinite(mean).all() and np.isfinite(std).all()
    assert np.isfinite(model.transform(new)).all()
    assert np.isfinite(model.reconstruct(new)).all()


def test_non_finite_features_are_imputed() -> None:
    spectra, targets, _ = spectrum_family(30, seed=11)
    features = np.random.default_rng(0).normal(size=(30, 2))
    features[0, 0] = math.nan
    features[1, 1] = math.inf
    model = AeLLE(seed=0, **FAST).fit(spectra, targets, features=features)
    assert np.isfinite(model.predict(spectra, features=np.full((30, 2), math.nan))).all()


def test_return_std_shapes_and_ensemble_spread(
    small_fit: tuple[AeLLE, list[np.ndarray], np.ndarray],
) -> None:
    model, spectra, targets = small_fit
    mean = model.predict(spectra[:7])
    mean2, std = model.predict(spectra[:7], return_std=True)
    assert isinstance(mean, np.ndarray) and mean.shape == (7,)
    assert mean2.shape == std.shape == (7,)
    np.testing.assert_array_equal(mean, mean2)
    assert (std > 0).all()
    single = AeLLE(seed=0, max_steps=30, n_models=1).fit(spectra, targets)
    _, std1 = single.predict(spectra, return_std=True)
    np.testing.assert_array_equal(std1, 0.0)


def test_transform_reconstruct_and_embed_shapes(
    small_fit: tuple[AeLLE, list[np.ndarray], np.ndarray],
) -> None:
    model, spectra, _ = small_fit
    assert model.transform(spectra).shape == (30, model.latent_dim)
    assert not np.allclose(model.transform(spectra, member=0), model.transform(spectra, member=1))
    assert model.reconstruct(spectra).shape == (30, model.grid_size)
    assert model.grid_.shape == (model.grid_size,)
    assert model.embed(spectra, method="pca").shape == (30, 2)
    with pytest.warns(UserWarning, match="PCA"):
        few = model.embed(spectra[:5], method="umap")
    np.testing.assert_allclose(few, model.embed(spectra[:5], method="pca"))
    with pytest.raises(ValueError, match="member"):
        model.transform(spectra, member=3)
    with pytest.raises(ValueError, match="method"):
        model.embed(spectra, method="tsne")


@pytest.mark.slow
def test_umap_embedding_is_reproducible(
    small_fit: tuple[AeLLE, list[np.ndarray], np.ndarray],
) -> None:
    model, spectra, _ = small_fit
    first = model.embed(spectra, method="umap")
    assert first.shape == (30, 2) and np.isfinite(first).all()
    np.testing.assert_allclose(model.embed(spectra, method="umap"), first)


def test_reconstruction_follows_the_spectra() -> None:
    spectra, targets, _ = spectrum_family(80, seed=12)
    targets[20:] = math.nan
    model = AeLLE(seed=0, max_steps=300).fit(spectra, targets)
    grid = model.resample(spectra)
    error = np.abs(model.reconstruct(spectra) - grid).mean()
    spread = np.abs(grid - grid.mean(axis=0)).mean()
    assert error < 0.3 * spread


def test_same_seed_same_model_and_global_rng_untouched(
    small_fit: tuple[AeLLE, list[np.ndarray], np.ndarray],
) -> None:
    model, spectra, targets = small_fit
    torch_state = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    numpy_state = np.random.get_state(legacy=False)["state"]["key"].copy()
    again = AeLLE(seed=0, **FAST).fit(spectra, targets)
    np.testing.assert_array_equal(again.predict(spectra), model.predict(spectra))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert torch.get_num_threads() == threads
    np.testing.assert_array_equal(np.random.get_state(legacy=False)["state"]["key"], numpy_state)
    other = AeLLE(seed=1, **FAST).fit(spectra, targets)
    assert not np.allclose(other.predict(spectra), model.predict(spectra))
    drawn = AeLLE(**FAST).fit(spectra, targets)
    assert isinstance(drawn.seed_, int)


@pytest.mark.parametrize("with_features", [False, True])
def test_save_load_gives_identical_predictions(tmp_path: Path, with_features: bool) -> None:
    spectra, targets, _ = spectrum_family(60, seed=13)
    features = np.random.default_rng(1).normal(size=(60, 3)) if with_features else None
    targets[45:] = math.nan
    model = AeLLE(seed=0, max_steps=60, min_labels_for_validation=20).fit(
        spectra, targets, features=features
    )
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = AeLLE.load(path)
    for a, b in zip(
        model.predict(spectra, features=features, return_std=True),
        loaded.predict(spectra, features=features, return_std=True),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.transform(spectra), loaded.transform(spectra))
    np.testing.assert_array_equal(model.reconstruct(spectra), loaded.reconstruct(spectra))
    np.testing.assert_array_equal(model.oof_prediction_, loaded.oof_prediction_)
    assert loaded.get_params() == model.get_params()
    assert loaded.seed_ == model.seed_ and loaded.best_steps_ == model.best_steps_
    # The file holds tensors and a JSON string only.
    blob = torch.load(path, weights_only=True)
    assert json.loads(blob["config"])["params"]["latent_dim"] == model.latent_dim

    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(
        AeLLE.load(buffer).predict(spectra, features=features),
        model.predict(spectra, features=features),
    )


def test_load_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="AeLLE.save"):
        AeLLE.load(path)


def test_held_out_predictions_with_enough_labels() -> None:
    spectra, targets, _ = spectrum_family(60, seed=14)
    model = AeLLE(seed=0, max_steps=100).fit(spectra, targets)
    assert model.oof_prediction_.shape == (60,)
    assert np.isfinite(model.oof_prediction_).all()  # 5 members x 20% cover every sample
    assert len(model.best_steps_) == model.n_models
    assert all(1 <= s <= 100 for s in model.best_steps_)
    few = AeLLE(seed=0, **FAST).fit(spectra[:20], targets[:20])
    assert np.isnan(few.oof_prediction_).all() and few.best_steps_ == [60, 60, 60]


def test_array_and_list_inputs_agree() -> None:
    rng = np.random.default_rng(15)
    rows = np.sort(rng.normal(-0.5, 0.5, size=(25, 12)), axis=1)[:, ::-1]
    targets = rows[:, 0] ** 2
    a = AeLLE(seed=0, **FAST).fit(rows, targets)
    b = AeLLE(seed=0, **FAST).fit(list(rows), targets)
    np.testing.assert_array_equal(a.predict(rows), b.predict(list(rows)))


def test_top_level_export() -> None:
    assert optuna_lyap.AeLLE is AeLLE


def test_class_docstring_example_runs() -> None:
    rng = np.random.default_rng(0)
    spectra = [np.sort(rng.normal(-1.0, 0.5, d))[::-1] for d in rng.integers(8, 64, 40)]
    targets = np.array([s[0] for s in spectra])
    ae = AeLLE(seed=0).fit(spectra, targets)
    mean, std = ae.predict(spectra[:5], return_std=True)
    assert mean.shape == std.shape == (5,)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"latent_dim": 0}, "latent_dim=0"),
        ({"latent_dim": 2.5}, "latent_dim=2.5"),
        ({"n_models": 0}, "n_models=0"),
        ({"seed": "x"}, "seed='x'"),
        ({"grid_size": 1}, "grid_size=1"),
        ({"hidden_dim": 0}, "hidden_dim=0"),
        ({"head_hidden_dim": -1}, "head_hidden_dim=-1"),
        ({"dropout": 1.0}, "dropout=1.0"),
        ({"alpha_schedule": ()}, "alpha_schedule=()"),
        ({"alpha_schedule": (0.0, 0.0)}, "alpha_schedule="),
        ({"alpha_schedule": (1.0, -1.0)}, "alpha_schedule="),
        ({"lr": 0.0}, "lr=0.0"),
        ({"weight_decay": -1.0}, "weight_decay=-1.0"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"validation_fraction": 1.0}, "validation_fraction=1.0"),
        ({"min_labels_for_validation": 1}, "min_labels_for_validation=1"),
        ({"clip": (1.0, -1.0)}, "clip="),
        ({"clip": (-math.inf, 1.0)}, "clip="),
        ({"n_threads": 0}, "n_threads=0"),
    ],
)
def test_bad_parameters_raise_in_fit(params: dict[str, object], match: str) -> None:
    model = AeLLE(**params)  # type: ignore[arg-type]  # stored as given
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        model.fit(np.zeros((4, 3)), np.arange(4.0))


def test_bad_data_raise() -> None:
    spectra = np.zeros((4, 3))
    with pytest.raises(ValueError, match="same length"):
        AeLLE(**FAST).fit(spectra, np.arange(5.0))
    with pytest.raises(ValueError, match="infinite"):
        AeLLE(**FAST).fit(spectra, np.array([0.0, 1.0, math.inf, 2.0]))
    with pytest.raises(ValueError, match="n_labelled=1"):
        AeLLE(**FAST).fit(spectra, np.array([0.0, math.nan, math.nan, math.nan]))
    with pytest.raises(ValueError, match="neither"):
        AeLLE(**FAST).fit(None, np.arange(4.0))
    with pytest.raises(ValueError, match="one row per sample"):
        AeLLE(**FAST).fit(spectra, np.arange(4.0), features=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="1-D"):
        AeLLE(**FAST).fit(spectra, np.zeros((4, 1)))
    with pytest.raises(RuntimeError, match="not fitted"):
        AeLLE().predict(spectra)


def test_predict_checks_inputs_against_fit(
    small_fit: tuple[AeLLE, list[np.ndarray], np.ndarray],
) -> None:
    model, spectra, targets = small_fit
    with pytest.raises(ValueError, match="pass spectra"):
        model.predict(None)
    with pytest.raises(ValueError, match="without features"):
        model.predict(spectra, features=np.zeros((30, 1)))
    with_features = AeLLE(seed=0, **FAST).fit(spectra, targets, features=np.ones((30, 2)))
    with pytest.raises(ValueError, match="2 columns"):
        with_features.predict(spectra, features=np.zeros((30, 3)))
    with pytest.raises(ValueError, match="pass features"):
        with_features.predict(spectra)
    with pytest.raises(ValueError, match="one row per sample"):
        with_features.predict(spectra, features=np.zeros((29, 2)))


def test_outliers_do_not_set_the_scale_for_everything_else() -> None:
    spectra, targets, _ = spectrum_family(80, seed=16)
    test_spectra, test_targets, _ = spectrum_family(200, seed=17)
    kwargs: dict[str, Any] = {"seed": 0, "max_steps": 200}
    clean = AeLLE(**kwargs).fit(spectra, targets).predict(test_spectra)
    # Three diverged networks whose final value is far off the scale of the others.
    noisy_spectra = spectra + [np.full(32, math.nan)] * 3
    noisy_targets = np.concatenate([targets, [50.0, 60.0, 70.0]])
    noisy = AeLLE(**kwargs).fit(noisy_spectra, noisy_targets).predict(test_spectra)
    assert _rho(noisy, test_targets) > _rho(clean, test_targets) - 0.1
    assert _rho(noisy, test_targets) > 0.7
