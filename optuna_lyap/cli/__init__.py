"""The ``optuna-lyap`` command: run, join, inspect and watch studies of built-in tasks.

Subcommands (one class each, listed in :data:`optuna_lyap.cli._main.COMMANDS`):

- ``run`` (:mod:`._run`): create (or resume) a study of a built-in task and optimise it, then
  print a summary (:mod:`._summary`);
- ``worker`` (:mod:`._run`): join an existing study on a shared storage and run trials beside
  other workers (:mod:`._workers`);
- ``fit`` (:mod:`._fit`): build a prior bundle from earlier studies (or, ``--format aelle``,
  train an AeLLE on one study's spectra) and save it for a later study's pruner and sampler;
- ``embed``, ``explain``, ``dashboard`` (:mod:`._inspect`): the latent embedding of a study's
  trials as one HTML page, why trials were pruned or kept, and optuna-dashboard on the storage.

Storage URLs are opened in :mod:`._storage_url`; the study's stored settings, its pruner and
sampler registries and its objective are in :mod:`._study`.
"""

from __future__ import annotations

from optuna_lyap.cli._main import main

__all__ = ["main"]
