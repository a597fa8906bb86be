"""The caller's random generators, left as they were.

Measuring a network must not change the training around it: constructing a module draws its
default weights from torch's global generator (pytorch/pytorch#11340), and a draw there shifts
every later shuffle, dropout mask and initialisation of the user's loop. Each entry point of the
package that may draw random numbers (a spectrum, the monitor's step, an AeLLE fit or
prediction, a task's model) runs under :func:`caller_rng_kept`; inside, the package draws only
from generators of its own, seeded explicitly.

Nothing here imports Optuna or another module of the package.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch


@contextmanager
def caller_rng_kept() -> Iterator[None]:
    """Run the block, then put the caller's global random states back as they were.

    Restores torch's CPU generator, the generator of every CUDA device once CUDA is
    initialised (a process that has not touched CUDA has no CUDA state to keep, and the
    package draws nothing there), numpy's legacy global state (``np.random.seed``) and Python's
    ``random`` module, also when the block raises.

    Usable as a decorator (``@caller_rng_kept()``) as well as a ``with`` block.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def fresh_seed() -> int:
    """A seed in ``[0, 2**62)`` from the operating system's entropy, not from any global state."""
    return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> np.uint64(2))
