"""The registry of built-in tasks, by name."""

from __future__ import annotations

from typing import Any, TypeVar

from optuna_lyap.tasks._base import SequenceTask

TASKS: dict[str, type[SequenceTask]] = {}

_T = TypeVar("_T", bound=type[SequenceTask])


def register_task(task_class: _T) -> _T:
    """Class decorator: make ``task_class`` available to ``get_task`` under its ``name``.

    Example:
        >>> from optuna_lyap.tasks import TASKS, Adding, get_task, register_task
        >>> @register_task
        ... class ShortAdding(Adding):
        ...     name = "short_adding"
        ...     description = "the adding problem over 10 steps"
        >>> get_task("short_adding", length=10).val_data.inputs.shape[1]
        10
        >>> del TASKS["short_adding"]  # leave the registry as it was
    """
    name = task_class.name
    if not name or name in TASKS:
        raise ValueError(f"task names must be non-empty and unique but got {name=}.")
    TASKS[name] = task_class
    return task_class


def get_task(name: str, seed: int = 0, **kwargs: Any) -> SequenceTask:
    """A built-in task by name.

    Args:
        name: One of ``list_tasks()``.
        seed: Seeds the task's data and its train/validation split.
        **kwargs: Options of that task (see its class) and of ``SequenceTask``.

    Returns:
        The task (its data are generated on first use).

    Example:
        >>> from optuna_lyap.tasks import get_task
        >>> task = get_task("sdigits", seed=0)
        >>> task.metric, task.direction
        ('val_accuracy', 'maximize')
    """
    if name not in TASKS:
        raise ValueError(f"task name must be one of {sorted(TASKS)} but got {name=}.")
    return TASKS[name](seed=seed, **kwargs)


def list_tasks() -> dict[str, str]:
    """Names of the built-in tasks (sorted) with their one-line descriptions.

    Example:
        >>> from optuna_lyap.tasks import list_tasks
        >>> "sdigits" in list_tasks()
        True
    """
    return {name: TASKS[name].description for name in sorted(TASKS)}
