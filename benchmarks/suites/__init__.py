"""One short file per study question, each run as ``python -m benchmarks.suites.<name>``."""
