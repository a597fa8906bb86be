from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from optuna_lyap.aelle import CrossTaskPrior, NetworkDescription, PriorBundle, load_shipped_prior
from optuna_lyap.aelle._bundle import INPUT_SETS
from optuna_lyap.aelle._features import (
    HYPERPARAMETER_NAMES,
    PriorInputs,
    curve_rank_features,
    final_quantile,
    hyperparameter_features,
)

_FAST = {"max_steps": 15, "n_models": 2}


def _rows(rng: np.random.Generator, n: int) -> tuple[PriorInputs, np.ndarray]:
    lr = 10 ** rng.uniform(-4, -1.5, n)
    lam1 = rng.uniform(-1, 0.5, n)
    nets = [NetworkDescription("gru", 16, 1, 1.0, float(v)) for v in lr]
    spectra = [np.sort(np.r_[l1, rng.uniform(-2, l1, 3)])[::-1] for l1 in lam1]
    quality = np.log10(lr) - 2 * np.abs(lam1) + 0.1 * rng.standard_normal(n)
    values = np.column_stack([0.0 * quality, quality])
    curve = curve_rank_features(values, "maximize", 1)
    rows = PriorInputs(hyperparameter_features(nets), spectra, np.full(n, 16), curve)
    return rows, final_quantile(quality, "maximize")


@pytest.fixture(scope="module")
def data() -> tuple[PriorInputs, np.ndarray]:
    return _rows(np.random.default_rng(0), 80)


def _bundle(
    data: tuple[PriorInputs, np.ndarray], keys: list[tuple[int, tuple[str, ...]]]
) -> PriorBundle:
    rows, target = data
    models = {}
    for step, groups in keys:
        prior = CrossTaskPrior(inputs=groups, model="aelle", seed=step, aelle_params=_FAST)
        models[(step, groups)] = prior.fit(rows, target)
    return PriorBundle(models, {"tables": {"synthetic": len(rows)}})


def test_features_only_aelle_fits_saves_and_loads(
    data: tuple[PriorInputs, np.ndarray], tmp_path: Path
) -> None:
    rows, target = data
    prior = CrossTaskPrior(inputs=("hyperparameters", "curve"), model="aelle", aelle_params=_FAST)
    prior.fit(rows, target)
    assert not prior.regressor_.uses_spectra_
    assert prior.regressor_.n_features_in_ == len(HYPERPARAMETER_NAMES) + 4
    prior.save(tmp_path / "p.pt")
    loaded = CrossTaskPrior.load(tmp_path / "p.pt")
    np.testing.assert_array_equal(loaded.predict(rows), prior.predict(rows))


def test_unknown_fields_read_as_the_corpus_median(data: tuple[PriorInputs, np.ndarray]) -> None:
    rows, target = data
    prior = CrossTaskPrior(inputs=("hyperparameters",), model="aelle", aelle_params=_FAST)
    prior.fit(rows, target)
    lr_column = HYPERPARAMETER_NAMES.index("log10_lr")
    median = float(np.median(rows.hyperparameters[:, lr_column]))
    assert prior.regressor_._feat_centre[lr_column] == pytest.approx(median)
    unknown = NetworkDescription("gru", 16, 1, 1.0, None)
    at_median = NetworkDescription("gru", 16, 1, 1.0, 10**median)
    features = hyperparameter_features([unknown, at_median])
    assert np.isnan(features[0, lr_column])
    probe = PriorInputs(features, [np.zeros(1)] * 2, np.full(2, 16), np.full((2, 4), np.nan))
    first, second = prior.predict(probe)
    assert first == pytest.approx(second, abs=1e-6)
    # A column no training row knew (the recurrent norm) cannot move a prediction.
    normed = NetworkDescription("gru", 16, 1, 1.0, 1e-3, recurrent_norm=7.0)
    plain = NetworkDescription("gru", 16, 1, 1.0, 1e-3)
    probe = PriorInputs(
        hyperparameter_features([normed, plain]),
        [np.zeros(1)] * 2,
        np.full(2, 16),
        np.full((2, 4), np.nan),
    )
    first, second = prior.predict(probe)
    assert first == second
    # Nor can a column that never varied in training (one layer everywhere).
    deep = NetworkDescription("gru", 16, 3, 1.0, 1e-3)
    probe = PriorInputs(
        hyperparameter_features([deep, plain]),
        [np.zeros(1)] * 2,
        np.full(2, 16),
        np.full((2, 4), np.nan),
    )
    first, second = prior.predict(probe)
    assert first == second
    layers = HYPERPARAMETER_NAMES.index("log_num_layers")
    assert not prior.columns_[layers] and prior.columns_[lr_column]


def test_network_description_fields_may_be_unknown() -> None:
    net = NetworkDescription("lstm", 32)
    assert net.num_layers is None and net.known()
    assert NetworkDescription.from_json(net.to_json()) == net
    features = hyperparameter_features([NetworkDescription(None, None, lr=1e-2)])
    assert np.isnan(features[0, :6]).all() and features[0, 6] == pytest.approx(-2)
    assert not NetworkDescription(None, None).known()
    with pytest.raises(ValueError, match="hidden_size"):
        NetworkDescription("gru", 0)
    with pytest.raises(ValueError, match="init_scale"):
        NetworkDescription("gru", 8, init_scale=math.nan)
    with pytest.raises(ValueError, match="must be a JSON object"):
        NetworkDescription.from_json([1, 2])  # type: ignore[arg-type]


def test_two_fits_of_the_same_data_write_the_same_bundle(
    data: tuple[PriorInputs, np.ndarray],
) -> None:
    # The digest names the prior in stored fits; a retraining must not rename it.
    keys = [(0, ("hyperparameters",))]
    first, second = _bundle(data, keys), _bundle(data, keys)
    assert first.to_bytes() == second.to_bytes()
    assert first.digest() == second.digest()
    loaded = PriorBundle._from_bytes(first.to_bytes())
    assert math.isnan(loaded.models[keys[0]].regressor_.fit_time_)


def test_bundle_round_trip_is_bit_identical(
    data: tuple[PriorInputs, np.ndarray], tmp_path: Path
) -> None:
    keys = [(0, ("hyperparameters",)), (1, ("hyperparameters", "spectrum", "curve"))]
    bundle = _bundle(data, keys)
    path = tmp_path / "bundle.pt"
    bundle.save(path)
    loaded = PriorBundle.load(path)
    again = tmp_path / "again.pt"
    loaded.save(again)
    assert path.read_bytes() == again.read_bytes()
    assert loaded.digest() == bundle.digest() and len(bundle.digest()) == 16
    assert loaded.info == bundle.info
    rows, _ = data
    for key in keys:
        np.testing.assert_array_equal(
            loaded.models[key].predict(rows), bundle.models[key].predict(rows)
        )
    blob = torch.load(path, weights_only=True)  # no pickled objects
    assert set(blob) == {"config", "models"}


def test_bad_bundle_file_raises_value_error_naming_it(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="garbage.pt") as raised:
        PriorBundle.load(garbage)
    # torch's advice to load with weights_only=False is not for a file that is no prior.
    assert "weights_only" not in str(raised.value)
    assert "\n" not in str(raised.value)
    other = tmp_path / "other.pt"
    torch.save({"config": "{}", "models": {}}, other)
    with pytest.raises(ValueError, match=r"other\.pt.*format None"):
        PriorBundle.load(other)
    with pytest.raises(FileNotFoundError):
        PriorBundle.load(tmp_path / "missing.pt")


HP, SP, CU = "hyperparameters", "spectrum", "curve"


@pytest.mark.parametrize(
    ("step", "available", "expected"),
    [
        (0, {HP}, (0, (HP,))),
        (0, {HP, SP}, (0, (HP, SP))),
        (0, {SP}, None),  # no spectrum-only model
        (1, {HP, SP, CU}, (1, (HP, SP, CU))),
        (1, {HP, CU}, (1, (HP, CU))),
        (1, {SP, CU}, (1, (SP, CU))),
        (5, {HP, SP, CU}, (2, (HP, SP, CU))),  # largest model step <= 5
        (2, {HP}, (2, (HP,))),
        (1, {CU}, None),
        (-1, {HP}, None),
    ],
)
def test_select_takes_the_latest_step_and_the_richest_set(
    step: int, available: set[str], expected: tuple[int, tuple[str, ...]] | None
) -> None:
    stub = {}
    for s in (0, 1, 2):
        for groups in INPUT_SETS:
            prior = CrossTaskPrior(inputs=groups, model="aelle")
            stub[(s, groups)] = prior
    bundle = PriorBundle(stub)
    chosen = bundle.select(step, available)
    assert (None if chosen is None else bundle.key_of(chosen)) == expected


def test_select_falls_back_to_an_earlier_step_and_orders_ties() -> None:
    stub = {
        (0, (HP, SP)): CrossTaskPrior(inputs=(HP, SP), model="aelle"),
        (0, (HP, CU)): CrossTaskPrior(inputs=(HP, CU), model="aelle"),
        (0, (SP, CU)): CrossTaskPrior(inputs=(SP, CU), model="aelle"),
        (2, (HP, SP, CU)): CrossTaskPrior(inputs=(HP, SP, CU), model="aelle"),
    }
    bundle = PriorBundle(stub)
    # At step 2 without the curve nothing fits: step 0's hyperparameters+spectrum does.
    assert bundle.key_of(bundle.select(2, {HP, SP})) == (0, (HP, SP))  # type: ignore[arg-type]
    # Among sets of two groups, the curve first, then hyperparameters.
    assert bundle.key_of(bundle.select(1, {HP, SP, CU})) == (0, (HP, CU))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CrossTaskPrior on"):
        PriorBundle({(0, (HP,)): CrossTaskPrior(inputs=(SP,), model="aelle")})
    with pytest.raises(ValueError, match="step=-1"):
        PriorBundle({(-1, (HP,)): CrossTaskPrior(inputs=(HP,), model="aelle")})


def test_calibration_is_monotone_saved_and_loaded(
    data: tuple[PriorInputs, np.ndarray], tmp_path: Path
) -> None:
    rows, target = data
    bundle = _bundle(data, [(0, ("hyperparameters", "spectrum"))])
    prior = bundle.models[(0, ("hyperparameters", "spectrum"))]
    assert np.isnan(prior.calibrated_top_probability(np.array([0.5]))).all()
    predicted = prior.predict(rows)
    prior.set_calibration(predicted, target >= 0.9)
    grid = np.linspace(-0.2, 1.2, 50)
    proba = prior.calibrated_top_probability(grid)
    assert ((proba >= 0) & (proba <= 1)).all() and (np.diff(proba) >= 0).all()
    path = tmp_path / "b.pt"
    bundle.save(path)
    loaded = PriorBundle.load(path).models[(0, ("hyperparameters", "spectrum"))]
    np.testing.assert_array_equal(loaded.calibrated_top_probability(grid), proba)
    np.testing.assert_array_equal(
        loaded.predict_top_probability(rows), prior.calibrated_top_probability(predicted)
    )
    with pytest.raises(ValueError, match="equal-length"):
        prior.set_calibration(predicted[:3], (target >= 0.9)[:4])


def test_shipped_bundle_is_cached_and_complete() -> None:
    bundle = load_shipped_prior()
    assert load_shipped_prior() is bundle
    # Hyperparameters alone read the same rows at every step: one model, at step 0.
    expected = {
        (s, g) for s in (0, 1, 2) for g in INPUT_SETS if s == 0 or g != ("hyperparameters",)
    }
    assert set(bundle.models) == expected
    fallback = bundle.select(2, {"hyperparameters"})
    assert fallback is not None and bundle.key_of(fallback) == (0, ("hyperparameters",))
    assert "copy" in bundle.info["tables"] and bundle.info["command"]
    rows, _ = _rows(np.random.default_rng(3), 20)
    for prior in bundle.models.values():
        predicted = prior.predict(rows)
        assert predicted.shape == (20,) and np.isfinite(predicted).all()


def test_shipped_bundle_predicts_as_recorded() -> None:
    # Pins the shipped file and its reading: moving code must not change its digest or what it
    # predicts. Rebuilding the weights changes these numbers, and this test is then updated.
    bundle = load_shipped_prior()
    assert bundle.digest() == "82b4822e463b3b91"
    nets = [
        NetworkDescription("rnn", 16, 1, 1.0, 1e-3),
        NetworkDescription("gru", 32, 1, 0.5, 1e-2),
        NetworkDescription("lstm", 64, 1, 2.0, 3e-4),
        NetworkDescription(None, None),
    ]
    dims = np.array([16, 32, 128, 32])
    spectra = [np.linspace(0.1, -2.0, d)[: math.ceil(d / 4)] for d in dims]
    values = np.array([[0.1, 0.3], [0.2, 0.5], [0.1, 0.2], [0.3, 0.4]])
    curve = curve_rank_features(values, "maximize", 1)
    rows = PriorInputs(hyperparameter_features(nets), spectra, dims, curve)
    recorded = {
        (0, ("hyperparameters",)): [0.28916923354659135, 0.7383775224790705, 0.3921002031181602,
                                    0.5060589807194932],
        (1, ("hyperparameters", "spectrum", "curve")): [0.37848806525079426, 0.8541993857375898,
                                                        0.38973321645524944, 0.6284133422107507],
        (2, ("spectrum", "curve")): [0.4187646550186671, 0.6852476377329839, 0.3759386676461025,
                                     0.6334361166446136],
    }  # fmt: skip
    for key, expected in recorded.items():
        np.testing.assert_allclose(bundle.models[key].predict(rows), expected, rtol=1e-9, atol=0)
