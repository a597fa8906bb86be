"""``python -m optuna_lyap.cli``: the ``optuna-lyap`` command."""

from __future__ import annotations

import sys

from optuna_lyap.cli import main

sys.exit(main())
