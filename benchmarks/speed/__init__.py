"""Timing benchmarks, each run as ``python -m benchmarks.speed.<name>``."""
