"""The prediction layer's public helpers are reachable from ``optuna_lyap.pruners``, where the
CLI imports them. The tests of the layer itself are in ``tests/prediction_tests``."""

from __future__ import annotations

from optuna_lyap import _prediction
from optuna_lyap.pruners import curve_features, fit_aelle


def test_pruners_re_exports_the_layers_helpers() -> None:
    assert curve_features is _prediction.curve_features and fit_aelle is _prediction.fit_aelle
