"""Fitted predictors stored in the study: JSON, bit-identical, claimed by one worker."""

from __future__ import annotations

import json
import math
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore
from optuna.distributions import CategoricalDistribution, FloatDistribution

from optuna_lyap._prediction import (
    SPECTRUM,
    FitSettings,
    FittedPredictor,
    ParamEncoder,
    PredictorCache,
    Rows,
    fit_predictor,
)
from optuna_lyap._prediction._store import (
    MAX_PART_CHARS,
    claim_study_name,
    predictor_from_json,
    predictor_key,
    predictor_to_json,
)
from optuna_lyap.aelle import AeLLE
from tests.prediction_tests.test_core import FAST_AELLE, make_rows

KEY = (1, 1, (0, 1, 2, 3, 4, 5), ())


def fit(rows: Rows | None = None, **aelle: Any) -> FittedPredictor | None:
    rows = make_rows(np.linspace(0.0, 1.0, 6)) if rows is None else rows
    params = {**FAST_AELLE, **aelle}
    candidates = (("spectrum",), ("curve",), ("spectrum", "curve"))
    return fit_predictor(
        rows,
        settings=FitSettings(candidates, params, seed=0, cv_folds=2),
        encoder=ParamEncoder(
            {"lr": FloatDistribution(1e-4, 1.0, log=True), "cell": CategoricalDistribution([1, 2])}
        ),
    )


def never() -> FittedPredictor | None:
    raise AssertionError("fitted where a stored predictor should have been loaded")


def assert_same(a: FittedPredictor | None, b: FittedPredictor | None) -> None:
    assert a is not None and b is not None
    query = make_rows(np.linspace(0.1, 0.9, 5), seed=7)
    for x, y in zip(a.predict(query), b.predict(query), strict=True):
        np.testing.assert_array_equal(x, y)  # bit for bit
    assert a.chosen == b.chosen
    assert [c.inputs for c in a.candidates] == [c.inputs for c in b.candidates]
    assert (a.n_rows, a.n_train) == (b.n_rows, b.n_train)
    assert a.raw_rank_corr == b.raw_rank_corr or (
        math.isnan(a.raw_rank_corr) and math.isnan(b.raw_rank_corr)
    )
    assert a.encoder.distributions == b.encoder.distributions
    # The evidence a consumer derives from the fit (the pruner's gate) reads back bit for bit.
    for x, y in zip(a.candidates, b.candidates, strict=True):
        assert_same_bits(x.oof, y.oof)
    assert a.numbers == b.numbers
    assert a.groups == b.groups
    assert_same_bits(a.targets, b.targets)
    assert_same_bits(a.raw, b.raw)
    assert a.evidence.keys() == b.evidence.keys()
    for name, value in a.evidence.items():
        assert_same_bits(np.float64(value), np.float64(b.evidence[name]))


def assert_same_bits(x: np.ndarray, y: np.ndarray) -> None:
    x, y = np.asarray(x), np.asarray(y)
    assert (x.dtype, x.shape, x.tobytes()) == (y.dtype, y.shape, y.tobytes())


SETTINGS = FitSettings((("spectrum",),), FAST_AELLE)


def make_cache(**kwargs: Any) -> PredictorCache:
    return PredictorCache(SETTINGS, "test", **kwargs)


def our_attrs(study: optuna.Study) -> dict[str, Any]:
    attrs = study._storage.get_study_system_attrs(study._study_id)
    return {k: v for k, v in attrs.items() if k.startswith("optuna_lyap:")}


def test_json_round_trip_predicts_bit_for_bit() -> None:
    fitted = fit()
    text = predictor_to_json(fitted)
    assert "pickle" not in text
    json.loads(text)  # plain JSON
    assert_same(fitted, predictor_from_json(text, None))
    assert predictor_from_json(predictor_to_json(None), None) is None
    with pytest.raises(ValueError, match="version"):
        predictor_from_json(json.dumps({"format": "x"}), None)


def test_the_gate_evidence_round_trips_bit_for_bit() -> None:
    fitted = fit()
    assert fitted is not None
    assert fitted.numbers == list(range(6)) and fitted.targets.shape == fitted.raw.shape == (6,)
    assert all(c.oof.shape == (6,) and np.isfinite(c.oof).all() for c in fitted.candidates)
    fitted.raw[2] = np.nan  # a trial without a value at the step
    fitted.evidence = {"gate_share": 0.3 + 1e-17 * 3, "residual_spread": math.nan, "x": 1 / 3}
    back = predictor_from_json(predictor_to_json(fitted), None)
    assert back is not None and math.isnan(back.evidence["residual_spread"])
    assert_same(fitted, back)
    # Evidence computed another way is another stored predictor.
    cache = PredictorCache(SETTINGS, "test", config={"gate": 500})
    study = optuna.create_study()
    assert cache.digest(study, KEY) != make_cache().digest(study, KEY)
    assert cache.digest(study, KEY) == PredictorCache(
        SETTINGS, "test", config={"gate": 500}
    ).digest(study, KEY)


def test_a_chosen_pretrained_model_is_not_stored() -> None:
    source = make_rows(np.linspace(0.0, 1.0, 8), seed=3)
    pretrained = AeLLE(seed=0, **FAST_AELLE).fit(source.spectra, source.targets)
    fitted = fit_predictor(
        make_rows(np.linspace(0.0, 1.0, 6)),
        settings=FitSettings((("curve",),), FAST_AELLE, seed=0, cv_folds=2),
        pretrained=(pretrained, (SPECTRUM,)),
    )
    assert fitted is not None and fitted.chosen.pretrained
    text = predictor_to_json(fitted)
    assert json.loads(text)["predictor"]["model"] is None
    assert predictor_from_json(text, pretrained).model is pretrained
    with pytest.raises(ValueError, match="pretrained"):
        predictor_from_json(text, None)


def test_a_second_worker_loads_instead_of_fitting() -> None:
    study = optuna.create_study()
    first = make_cache().get_or_fit(study, KEY, fit)
    assert make_cache().get_or_fit(study, KEY, never) is not None
    assert_same(first, make_cache().get_or_fit(study, KEY, never))
    # Another training set, another configuration or another study: not the same predictor.
    assert make_cache().digest(study, KEY) != make_cache().digest(study, (1, 1, (0,), ()))
    other = PredictorCache(FitSettings((("spectrum",),), FAST_AELLE, seed=1), "test")
    assert other.digest(study, KEY) != make_cache().digest(study, KEY)
    assert make_cache().digest(optuna.create_study(), KEY) != make_cache().digest(study, KEY)


def test_unshared_fits_stay_in_the_process() -> None:
    study = optuna.create_study()
    cache = make_cache()
    calls = []
    cache.get_or_fit(study, KEY, lambda: calls.append(1) or fit(), share=False)
    cache.get_or_fit(study, KEY, never, share=False)
    assert calls == [1] and our_attrs(study) == {}


def test_large_models_are_stored_in_slices_under_mysqls_cap() -> None:
    study = optuna.create_study()
    first = make_cache().get_or_fit(study, KEY, lambda: fit(hidden_dim=256, n_models=3))
    attrs = our_attrs(study)
    header = attrs[predictor_key(make_cache().digest(study, KEY))]
    assert header["parts"] >= 2
    for key, value in attrs.items():
        stored = json.dumps(value)
        assert len(stored.encode()) < 64 * 1024, key
        assert (
            key == predictor_key(make_cache().digest(study, KEY)) or len(value) <= MAX_PART_CHARS
        )
    assert_same(first, make_cache().get_or_fit(study, KEY, never))


def test_an_artifact_store_keeps_the_weights_out_of_the_attrs(tmp_path: Path) -> None:
    store = FileSystemArtifactStore(str(tmp_path))
    study = optuna.create_study()
    first = make_cache(artifact_store=store).get_or_fit(study, KEY, fit)
    attrs = our_attrs(study)
    assert len(attrs) == 1
    (header,) = attrs.values()
    assert "artifact_id" in header and len(json.dumps(header)) < 300
    assert (tmp_path / header["artifact_id"]).exists()
    assert_same(first, make_cache(artifact_store=store).get_or_fit(study, KEY, never))


def test_a_worker_waits_for_the_fit_another_worker_claimed(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    owner, waiter = make_cache(), make_cache()
    digest = owner.digest(study, KEY)
    storage = study._storage
    storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], claim_study_name(digest))
    fitted = fit()

    def finish() -> None:  # the owner's fit ends after a while
        time.sleep(0.5)
        owner._write(study, digest, predictor_to_json(fitted))
        owner._release(study, digest)

    thread = threading.Thread(target=finish)
    thread.start()
    loaded = waiter.get_or_fit(study, KEY, never)
    thread.join()
    assert_same(fitted, loaded)
    assert claim_study_name(digest) not in optuna.get_all_study_names(storage)


def test_a_stale_claim_delays_the_fit_at_most_the_wait(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    cache = make_cache(wait_s=0.6)
    digest = cache.digest(study, KEY)
    study._storage.create_new_study(
        [optuna.study.StudyDirection.MINIMIZE], claim_study_name(digest)
    )
    start = time.monotonic()
    assert cache.get_or_fit(study, KEY, fit) is not None
    assert time.monotonic() - start >= 0.6
    names = optuna.get_all_study_names(study._storage)
    assert names == [study.study_name]  # the stale claim is gone
    assert_same(cache[KEY], make_cache().get_or_fit(study, KEY, never))


def test_a_claim_dropped_without_a_result_is_not_waited_for(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    cache = make_cache(wait_s=60.0)
    digest = cache.digest(study, KEY)
    storage = study._storage
    storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], claim_study_name(digest))

    def give_up() -> None:
        time.sleep(0.3)
        storage.delete_study(storage.get_study_id_from_name(claim_study_name(digest)))

    thread = threading.Thread(target=give_up)
    thread.start()
    start = time.monotonic()
    assert cache.get_or_fit(study, KEY, fit) is not None
    thread.join()
    assert time.monotonic() - start < 30.0


def test_a_failed_fit_releases_its_claim(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    cache = make_cache()

    def broken() -> FittedPredictor | None:
        raise RuntimeError("broken fit")

    with pytest.raises(RuntimeError, match="broken fit"):
        cache.get_or_fit(study, KEY, broken)
    assert optuna.get_all_study_names(study._storage) == [study.study_name]
    assert our_attrs(study) == {}


def test_a_worker_without_the_artifact_store_is_told(tmp_path: Path) -> None:
    study = optuna.create_study()
    make_cache(artifact_store=FileSystemArtifactStore(str(tmp_path))).get_or_fit(study, KEY, fit)
    with pytest.raises(ValueError, match="artifact_store"):
        make_cache().get_or_fit(study, KEY, never)


def test_a_journal_without_an_artifact_store_gets_one_warning(tmp_path: Path) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    study = optuna.create_study(storage=storage)
    cache = make_cache()
    fitted = fit()
    with pytest.warns(UserWarning, match="artifact_store"):
        cache.get_or_fit(study, KEY, lambda: fitted)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.get_or_fit(study, (2,), lambda: fitted)
    assert_same(fitted, make_cache().get_or_fit(study, KEY, never))


def test_an_artifact_store_is_checked() -> None:
    with pytest.raises(ValueError, match="artifact_store='/tmp'"):
        make_cache(artifact_store="/tmp")
