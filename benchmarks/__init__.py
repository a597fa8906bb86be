"""The benchmarks of optuna-lyap: the ``lyapbench`` package, its suites and timing scripts.

Run from the repository's root as modules, e.g. ``python -m benchmarks.suites.heldout --help``
(see ``benchmarks/README.md``).
"""
