"""optuna-lyap: prune and steer Optuna studies of recurrent networks by their Lyapunov spectrum.

The spectrum engine (:func:`lyapunov_spectrum`) and the spectrum autoencoder (:class:`AeLLE`)
import no Optuna; the pruner, the sampler, the monitor and the storage helpers are the Optuna glue.
"""

from __future__ import annotations

from optuna_lyap._checks import InvalidParameterError
from optuna_lyap._monitor import LyapunovMonitor
from optuna_lyap._threads import use_threads
from optuna_lyap.aelle import AeLLE
from optuna_lyap.lyapunov import LyapunovSpectrum, lyapunov_spectrum
from optuna_lyap.lyapunov._diagnosis import Diagnosis, diagnose
from optuna_lyap.pruners import (
    LyapunovPruner,
    load_predictions,
    load_spectra,
    report_configuration,
    report_spectrum,
)
from optuna_lyap.samplers import LyapunovSampler
from optuna_lyap.visualization import DashboardCallback, explain

__version__ = "0.1.0"

__all__ = [
    "AeLLE",
    "DashboardCallback",
    "Diagnosis",
    "InvalidParameterError",
    "LyapunovMonitor",
    "LyapunovPruner",
    "LyapunovSampler",
    "LyapunovSpectrum",
    "diagnose",
    "explain",
    "load_predictions",
    "load_spectra",
    "lyapunov_spectrum",
    "report_configuration",
    "report_spectrum",
    "use_threads",
]
