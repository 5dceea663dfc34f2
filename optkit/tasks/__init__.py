"""Tasks: what a kind of model does with its data, from columns to metrics.

A task owns everything the layers above would otherwise assume about text classification: how
targets are read from the label column, which head a model gets for training and inference,
what export calls the model, how its outputs become predictions, which metrics score them and
how agreement with the baseline is measured. ``model.task`` in the recipe names one. Built-in
tasks load on first use; a task defined elsewhere registers with ``register_task``.
"""

from __future__ import annotations

import difflib

from optkit.errors import RecipeError
from optkit.tasks.base import Targets, Task

__all__ = ["Targets", "Task", "get_task", "list_tasks", "register_task"]

_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Register a ``Task`` subclass under its ``name`` (usable as a class decorator)."""
    if cls.name in _TASKS and _TASKS[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} is registered twice")
    _TASKS[cls.name] = cls
    return cls


def list_tasks() -> dict[str, type[Task]]:
    _load_tasks()
    return dict(_TASKS)


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name is a recipe error with the closest known one."""
    tasks = list_tasks()
    if name not in tasks:
        close = difflib.get_close_matches(name, tasks, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise RecipeError(f"model.task: unknown task {name!r}; {hint}known tasks: {', '.join(sorted(tasks))}")
    return tasks[name]()


def _load_tasks() -> None:
    # Importing a task module registers it; each imports torch and transformers only inside functions.
    from optkit.tasks import (  # noqa: F401
        feature_extraction,
        image_classification,
        question_answering,
        text_classification,
        token_classification,
    )
