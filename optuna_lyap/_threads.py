"""How many torch CPU threads the package's own computations use.

The spectrum's QR chain and AeLLE's small networks run thousands of small tensor operations.
Spread over several threads, each operation costs more in synchronisation than it saves in
arithmetic, and on a machine whose cores are busy (other trials, other workers) every
operation waits for the slowest thread. So the package's compute-heavy entry points
(:func:`~optuna_lyap.lyapunov_spectrum`, :class:`~optuna_lyap.AeLLE`'s ``fit``, ``predict``,
``transform``, ``reconstruct``, and the built-in tasks' objective) run on **one** torch
intra-op thread by default and restore the caller's setting when they return; the caller's own
code (its training loop) is left as it is.

The setting, first match wins:

1. inside ``with optuna_lyap.use_threads(n):``, ``n``;
2. the environment variable ``OPTUNA_LYAP_NUM_THREADS``: a positive integer, or ``torch`` to
   leave torch's setting (``torch.set_num_threads``) alone;
3. one thread.

An explicit ``n_threads`` argument (AeLLE's) takes precedence over all three.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Iterator

import torch

from optuna_lyap._checks import InvalidParameterError, check_optional_int

ENV_VAR = "OPTUNA_LYAP_NUM_THREADS"
DEFAULT_THREADS = 1
# The value of the environment variable that leaves torch's thread setting alone.
TORCH_SETTING = "torch"

_UNSET = object()
_override: contextvars.ContextVar[object] = contextvars.ContextVar(
    "optuna_lyap_threads", default=_UNSET
)

# Blocks running now, process-wide, with the thread count each asked for. The caller's setting
# is saved when the first one enters and restored when the last one leaves, so blocks that
# overlap in several Python threads (study.optimize(n_jobs=2)) do not leave each other's count
# behind.
_lock = threading.Lock()
_active: list[int] = []
_saved: list[int] = []


def _from_environment() -> int | None:
    text = os.environ.get(ENV_VAR, "").strip()
    if not text:
        return DEFAULT_THREADS
    if text.lower() == TORCH_SETTING:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidParameterError(
            f"{ENV_VAR} must be a positive integer or {TORCH_SETTING!r}, but got "
            f"{ENV_VAR}={text!r}."
        )
    return value


def thread_setting() -> int | None:
    """The torch thread count the package's computations use now.

    Returns:
        A positive integer, or None where torch's own setting is used (see the module's
        docstring for the order in which the setting is looked up).

    Raises:
        InvalidParameterError: ``OPTUNA_LYAP_NUM_THREADS`` holds something else than a
            positive integer or ``torch``.
    """
    override = _override.get()
    if override is not _UNSET:
        assert override is None or isinstance(override, int)
        return override
    return _from_environment()


@contextlib.contextmanager
def use_threads(n_threads: int | None) -> Iterator[None]:
    """Set the torch thread count of the package's computations inside a ``with`` block.

    By default the package's compute-heavy calls (the spectrum, AeLLE's fits and predictions)
    run on one torch thread, which is fastest for the small networks they handle, above all
    when other processes share the cores. A large network on an otherwise idle machine may
    compute its spectrum faster on more threads.

    Args:
        n_threads: Threads for the package's calls in the block (a positive integer), or None
            to leave torch's setting (``torch.set_num_threads``) alone.

    Raises:
        InvalidParameterError: ``n_threads`` is neither None nor a positive integer.

    Example:
        >>> import torch
        >>> import optuna_lyap
        >>> rnn = torch.nn.LSTM(2, 16, batch_first=True)
        >>> with optuna_lyap.use_threads(2):
        ...     spectrum = optuna_lyap.lyapunov_spectrum(rnn, torch.randn(4, 30, 2), seed=0)
        >>> spectrum.dim  # an LSTM's state holds its hidden and its cell state
        32
    """
    check_optional_int("n_threads", n_threads, 1)
    token = _override.set(n_threads)
    try:
        yield
    finally:
        _override.reset(token)


@contextlib.contextmanager
def limited_threads(n_threads: int | None | object = _UNSET) -> Iterator[None]:
    """Run the block on the package's torch thread count, then restore the caller's setting.

    Also a decorator: ``@limited_threads()`` applies the setting for the duration of each call.

    Args:
        n_threads: An explicit count that overrides :func:`thread_setting`; None leaves torch's
            setting alone. Omitted: :func:`thread_setting`.
    """
    n = thread_setting() if n_threads is _UNSET else n_threads
    if n is None:
        yield
        return
    assert isinstance(n, int)
    with _lock:
        if not _active:
            _saved[:] = [torch.get_num_threads()]
        _active.append(n)
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    try:
        yield
    finally:
        with _lock:
            # Remove this block's entry (the latest with this count), then apply the count of
            # the newest block still running, or the caller's when none is.
            del _active[len(_active) - 1 - _active[::-1].index(n)]
            target = _active[-1] if _active else _saved[0]
            if torch.get_num_threads() != target:
                torch.set_num_threads(target)
