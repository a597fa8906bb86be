"""AeLLE: predict a trial's final value from Lyapunov spectra (no Optuna imports below here)."""

from __future__ import annotations

from optuna_lyap.aelle._estimator import AeLLE

__all__ = ["AeLLE"]
