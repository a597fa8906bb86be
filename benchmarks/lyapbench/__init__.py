"""lyapbench: replay HPO methods on recorded tables of RNN trainings, and record such tables.

Modules:

- :mod:`~benchmarks.lyapbench.tables`: where the tables lie, what a replay optimises, how a
  trial picks a recorded configuration;
- :mod:`~benchmarks.lyapbench.record`: record a table (train every configuration to the end);
- :mod:`~benchmarks.lyapbench.baselines`: simple pruners ours is compared against;
- :mod:`~benchmarks.lyapbench.methods`: every method, by name (``METHODS``);
- :mod:`~benchmarks.lyapbench.replay`: the one replay loop and the table-backed sampler;
- :mod:`~benchmarks.lyapbench.cost`: what a replayed trial costs in epochs and seconds;
- :mod:`~benchmarks.lyapbench.report`: the summaries, tables and plots;
- :mod:`~benchmarks.lyapbench.runs`: results keyed by suite and commit, with their metadata.

Run everything from the repository's root, as modules (``python -m benchmarks.suites.grids``).
"""
