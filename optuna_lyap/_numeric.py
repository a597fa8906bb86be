"""Numerical constants shared by layers that must not import each other (no package imports)."""

from __future__ import annotations

#: ``MAD_TO_STD * MAD`` estimates the standard deviation of a normal sample: the
#: normal-consistent median absolute deviation (Rousseeuw & Croux 1993, JASA 88:1273).
MAD_TO_STD = 1.4826
