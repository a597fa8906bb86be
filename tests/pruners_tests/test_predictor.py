"""``optuna_lyap.pruners._predictor`` moved to ``optuna_lyap._prediction``; its names still
import from the old path (the CLI and the benchmarks use it). The tests of the layer itself
are in ``tests/prediction_tests``."""

from __future__ import annotations

from optuna_lyap import _prediction
from optuna_lyap.pruners import _predictor, curve_features, fit_aelle


def test_the_old_module_re_exports_the_prediction_layer() -> None:
    for name in _predictor.__all__:
        assert getattr(_predictor, name) is getattr(_prediction, name)
    assert curve_features is _prediction.curve_features and fit_aelle is _prediction.fit_aelle
