"""A pruner worker of a shared study that logs every predictor it fits or loads:
``python -m tests.prediction_tests._worker KIND LOCATION NAME N_TRIALS SEED``."""

from __future__ import annotations

import logging
import sys

from tests.pruners_tests import _worker

if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, format="%(message)s")
    logging.getLogger("optuna_lyap._prediction").setLevel(logging.DEBUG)
    kind, location, name, n, seed = sys.argv[1:]
    _worker.main(kind, location, name, int(n), int(seed))
