"""optuna-lyap: prune and steer Optuna studies of recurrent networks by their Lyapunov spectrum.

The spectrum engine (:func:`lyapunov_spectrum`) and the spectrum autoencoder (:class:`AeLLE`)
import no Optuna; the pruner, the sampler, the monitor and the storage helpers are the Optuna glue.
"""

from __future__ import annotations

from optuna_lyap._checks import InvalidParameterError
from optuna_lyap._monitor import LyapunovMonitor
from optuna_lyap._prediction import InStudyModel, fit_aelle
from optuna_lyap._storage import DamagedRecordWarning
from optuna_lyap._threads import use_threads
from optuna_lyap.aelle import AeLLE, PriorBundle
from optuna_lyap.lyapunov import Diagnosis, LyapunovSpectrum, diagnose, lyapunov_spectrum
from optuna_lyap.pruners import (
    LyapunovPruner,
    PriorBlendWarning,
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
    "DamagedRecordWarning",
    "DashboardCallback",
    "Diagnosis",
    "InStudyModel",
    "InvalidParameterError",
    "LyapunovMonitor",
    "LyapunovPruner",
    "LyapunovSampler",
    "LyapunovSpectrum",
    "PriorBlendWarning",
    "PriorBundle",
    "diagnose",
    "explain",
    "fit_aelle",
    "load_predictions",
    "load_spectra",
    "lyapunov_spectrum",
    "report_configuration",
    "report_spectrum",
    "use_threads",
]
