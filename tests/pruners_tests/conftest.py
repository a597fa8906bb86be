from __future__ import annotations

import optuna
import torch

# The models fitted here are tiny: one thread is fastest, and the test machine is shared.
torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
