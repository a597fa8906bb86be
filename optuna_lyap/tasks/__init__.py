"""Built-in sequence tasks: data made offline, a recurrent model family, training and a metric.

Each task owns a deterministic train/validation split (from its ``seed``), a search space over
the cell type, hidden size, initialisation scale and learning rate, and everything an objective
needs: ``build_model``, ``make_optimizer``, ``train_epoch``, ``evaluate`` and the
``probe_inputs`` that drive the network for its Lyapunov spectrum.

Example:
    >>> from optuna_lyap.tasks import get_task
    >>> task = get_task("sdigits", seed=0)
    >>> model = task.build_model(task.default_params(), seed=0)
    >>> task.probe_inputs(model, n=4).shape
    torch.Size([4, 64, 8])
"""

from __future__ import annotations

from optuna_lyap.tasks._adding import Adding, AddingLong
from optuna_lyap.tasks._base import MAX_NMSE, PARAM_NAMES, SequenceData, SequenceTask
from optuna_lyap.tasks._charlm import CharLM
from optuna_lyap.tasks._copy import Copy, CopyLong
from optuna_lyap.tasks._mackey_glass import MackeyGlass
from optuna_lyap.tasks._model import CELLS, SequenceModel, init_uniform_
from optuna_lyap.tasks._objective import make_objective, trial_seed
from optuna_lyap.tasks._registry import TASKS, get_task, list_tasks, register_task
from optuna_lyap.tasks._sdigits import PermutedSDigits, SDigits
from optuna_lyap.tasks._sines import Sines
from optuna_lyap.tasks._xor import TemporalXOR

__all__ = [
    "CELLS",
    "MAX_NMSE",
    "PARAM_NAMES",
    "TASKS",
    "Adding",
    "AddingLong",
    "CharLM",
    "Copy",
    "CopyLong",
    "MackeyGlass",
    "PermutedSDigits",
    "SDigits",
    "SequenceData",
    "SequenceModel",
    "SequenceTask",
    "Sines",
    "TemporalXOR",
    "get_task",
    "init_uniform_",
    "list_tasks",
    "make_objective",
    "register_task",
    "trial_seed",
]
