from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from optuna_lyap.aelle import CrossTaskPrior, NetworkDescription
from optuna_lyap.aelle._features import (
    HYPERPARAMETER_NAMES,
    PriorInputs,
    curve_rank_features,
    final_quantile,
    hyperparameter_features,
    spectrum_features,
    study_ranks,
    study_zscores,
    top_fraction,
)
from optuna_lyap.tasks import get_task


def test_final_quantile_orients_and_breaks_ties() -> None:
    acc = np.array([0.5, 1.0, 1.0, 0.2])
    q = final_quantile(acc, "maximize")
    np.testing.assert_allclose(q, [0.375, 0.75, 0.75, 0.125])
    # The validation loss orders the two perfect accuracies; lower loss ranks higher.
    q = final_quantile(acc, "maximize", tie_break=np.array([0.9, 0.3, 0.1, 2.0]))
    np.testing.assert_allclose(q, [0.375, 0.625, 0.875, 0.125])
    nmse = np.array([0.1, 0.5, np.nan])
    np.testing.assert_allclose(final_quantile(nmse, "minimize"), [5 / 6, 0.5, 1 / 6])
    with pytest.raises(ValueError, match="direction='up'"):
        final_quantile(acc, "up")  # type: ignore[arg-type]


def test_study_ranks_and_zscores_per_step_higher_is_better() -> None:
    values = np.array([[1.0, 0.1], [2.0, np.nan], [3.0, 0.3], [4.0, 0.2]])
    ranks = study_ranks(values, "minimize")
    np.testing.assert_allclose(ranks[:, 0], [0.875, 0.625, 0.375, 0.125])
    np.testing.assert_allclose(ranks[[0, 2, 3], 1], [5 / 6, 1 / 6, 0.5])
    assert np.isnan(ranks[1, 1])
    z = study_zscores(values, "maximize")
    assert z[3, 0] > z[2, 0] > 0 > z[1, 0] > z[0, 0]
    assert np.isnan(z[1, 1]) and (np.abs(z[~np.isnan(z)]) <= 5).all()
    np.testing.assert_array_equal(study_zscores(np.ones(4), "maximize"), np.zeros(4))


def test_curve_rank_features_read_only_up_to_the_step() -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(size=(20, 5))
    loss = rng.uniform(size=(20, 5))
    at0 = curve_rank_features(values, "maximize", 0, loss)
    assert at0.shape == (20, 4) and (at0[:, 2] == 0).all()
    later = values.copy()
    later[:, 3:] = 0.0  # the future must not matter
    np.testing.assert_array_equal(
        curve_rank_features(values, "maximize", 2, loss),
        curve_rank_features(later, "maximize", 2, loss),
    )
    np.testing.assert_allclose(at0[:, 3], study_ranks(loss[:, 0], "minimize"))
    with pytest.raises(ValueError, match="step=5"):
        curve_rank_features(values, "maximize", 5)


def test_network_description_reads_the_module_like_the_params() -> None:
    task = get_task("copy", delay=2, n_train=4, n_val=4)
    for cell in ("rnn", "gru", "lstm"):
        params = {"cell": cell, "hidden_size": 64, "init_scale": 2.0, "lr": 1e-3}
        model = task.build_model(params, seed=0)
        read = NetworkDescription.from_module(model.rnn, lr=1e-3)
        given = NetworkDescription.from_params(params)
        assert (read.cell, read.hidden_size, read.num_layers) == (cell, 64, 1)
        assert read.init_scale == pytest.approx(given.init_scale, rel=0.05)
        weight = model.rnn.weight_hh_l0.detach().double()
        assert read.recurrent_norm == pytest.approx(float(torch.linalg.svdvals(weight)[0]))
        assert given.recurrent_norm is None
    features = hyperparameter_features([read, given])
    assert features.shape == (2, len(HYPERPARAMETER_NAMES))
    np.testing.assert_allclose(features[1, :7], [0, 0, 1, math.log(64), 0, math.log(2), -3])
    assert np.isnan(features[1, 7]) and np.isfinite(features[0]).all()
    with pytest.raises(ValueError, match="cell='tcn'"):
        NetworkDescription("tcn", 8, 1, 1.0, 1e-3)
    with pytest.raises(ValueError, match="lr"):
        NetworkDescription("rnn", 8, 1, 1.0, 0.0)
    with pytest.raises(TypeError, match="nn.RNN"):
        NetworkDescription.from_module(torch.nn.Linear(2, 2), lr=1e-3)


def test_spectrum_features_use_the_top_fraction_on_the_grid() -> None:
    assert len(top_fraction(np.arange(64.0)[::-1], 256, 0.25)) == 64
    assert len(top_fraction([1.0, 0.0], 2, 0.25)) == 1
    with pytest.raises(ValueError, match="needs 64 exponents"):
        top_fraction(np.zeros(16), 256, 0.25)
    with pytest.raises(ValueError, match="fraction=0"):
        top_fraction(np.zeros(16), 16, 0)
    # A linear spectrum from 1 to -1 over D: its top quarter runs from 1 to 0.5, whatever D.
    small, large = (np.linspace(1, -1, d) for d in (16, 128))
    features = spectrum_features([small, large, None], [16, 128, 32], grid_size=4)
    assert features.shape == (3, 6)
    np.testing.assert_allclose(features[0, :4], features[1, :4], atol=0.05)
    assert features[0, 0] > features[0, 3] and 0.45 < features[1, 3] < 0.65
    np.testing.assert_allclose(features[:2, 4], [1.0, 1.0])
    np.testing.assert_allclose(features[:, 5], np.log([16, 128, 32]))
    assert np.isnan(features[2, :5]).all()
    # A spectrum of NaN only is unknown; NaN beside finite exponents (a diverged direction)
    # reads as the clipped expanding end.
    diverged = spectrum_features([np.full(8, np.nan)], [8])
    assert np.isnan(diverged[0, :-1]).all()
    half = spectrum_features([np.array([np.nan, 0.0, -1.0, -2.0])], [4], fraction=1.0)
    assert half[0, 8] == 10.0


def _synthetic_study(
    rng: np.random.Generator, n: int, shift: float
) -> tuple[PriorInputs, np.ndarray]:
    # The final quantile follows the learning rate (as in every task here) and the largest
    # exponent; the raw scale of the curve differs per study and must not matter.
    lr = 10 ** rng.uniform(-4, -1.5, n)
    lam1 = rng.uniform(-1, 0.5, n)
    nets = [NetworkDescription("gru", 16, 1, 1.0, float(v)) for v in lr]
    spectra = [np.sort(np.r_[l1, rng.uniform(-2, l1, 3)])[::-1] for l1 in lam1]
    quality = np.log10(lr) - 2 * np.abs(lam1) + 0.1 * rng.standard_normal(n)
    target = final_quantile(quality, "maximize")
    values = np.column_stack([shift + 0.0 * quality, shift + quality])
    curve = curve_rank_features(values, "maximize", 0)
    inputs = PriorInputs(hyperparameter_features(nets), spectra, np.full(n, 16), curve)
    return inputs, target


@pytest.mark.parametrize("model", ["hgb", "aelle"])
def test_prior_transfers_a_shared_rule_to_an_unseen_study(model: str) -> None:
    rng = np.random.default_rng(0)
    studies = [_synthetic_study(rng, 150, shift) for shift in (0.0, 5.0, -3.0)]
    train = PriorInputs.concatenate([s[0] for s in studies[:2]])
    target = np.concatenate([s[1] for s in studies[:2]])
    extra = {"aelle_params": {"max_steps": 150, "n_models": 2}} if model == "aelle" else {}
    prior = CrossTaskPrior(model=model, seed=0, **extra).fit(train, target)  # type: ignore[arg-type]
    held_inputs, held_target = studies[2]
    rho = spearmanr(prior.predict(held_inputs), held_target).statistic
    assert rho > 0.7
    proba = prior.predict_top_probability(held_inputs)
    assert proba.shape == (150,) and ((proba >= 0) & (proba <= 1)).all()
    top = held_target >= 0.9
    assert proba[top].mean() > 2 * proba[~top].mean()
    # Hyperparameters alone see the learning rate but not the exponent: worse, not useless.
    hp_only = CrossTaskPrior(inputs=("hyperparameters",), seed=0).fit(train, target)
    rho_hp = spearmanr(hp_only.predict(held_inputs), held_target).statistic
    assert 0.2 < rho_hp < rho


def test_prior_rejects_bad_settings() -> None:
    rng = np.random.default_rng(1)
    inputs, target = _synthetic_study(rng, 30, 0.0)
    with pytest.raises(ValueError, match="inputs must"):
        CrossTaskPrior(inputs=("curve", "weights")).fit(inputs, target)
    with pytest.raises(ValueError, match="model='tree'"):
        CrossTaskPrior(model="tree").fit(inputs, target)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_fraction=1.5"):
        CrossTaskPrior(top_fraction=1.5).fit(inputs, target)
    with pytest.raises(ValueError, match="target must be 30 finite"):
        CrossTaskPrior().fit(inputs, target[:-1])
    assert len(inputs.subset(np.arange(30) < 10)) == 10


def test_saved_prior_loads_without_pickle_and_predicts_the_same(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    inputs, target = _synthetic_study(rng, 60, 0.0)
    params = {"max_steps": 20, "n_models": 2}
    prior = CrossTaskPrior(model="aelle", seed=0, aelle_params=params).fit(inputs, target)
    path = tmp_path / "prior.pt"
    prior.save(path)
    blob = torch.load(path, weights_only=True)  # no arbitrary objects inside
    assert set(blob) == {"config", "aelle"}
    loaded = CrossTaskPrior.load(path)
    np.testing.assert_array_equal(loaded.predict(inputs), prior.predict(inputs))
    with pytest.raises(ValueError, match="no classifier and no calibration"):
        loaded.predict_top_probability(inputs)
    with pytest.raises(ValueError, match="only a fitted model='aelle'"):
        CrossTaskPrior().fit(inputs, target).save(tmp_path / "hgb.pt")
    torch.save({"config": "{}", "aelle": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="format None"):
        CrossTaskPrior.load(tmp_path / "other.pt")
