"""The task registry: task name -> :class:`~ncc.training.task.Task`.

Tasks are found by name through the ``ncc.tasks`` entry-point group (``pyproject.toml`` declares ncc's
own; another installed package can declare more), or added at run time with :func:`register_task`.
The registry imports no task module itself: an entry point is loaded the first time its name is asked
for, so nothing below the tasks imports them.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from ncc.errors import NccError

if TYPE_CHECKING:  # pragma: no cover
    from ncc.training.task import Task

__all__ = ["TASKS", "register_task", "get_task", "task_names"]

ENTRY_POINT_GROUP = "ncc.tasks"

#: Task name -> task, for the tasks loaded or registered so far.
TASKS: dict[str, "Task"] = {}


def register_task(task: "Task") -> "Task":
    """Add a task under its name (replacing one of the same name); returns it."""
    if not task.name:
        raise ValueError("a task needs a name")
    TASKS[task.name] = task
    return task


def _entry_points() -> dict:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def task_names() -> list[str]:
    """Every task that can be asked for, sorted."""
    return sorted({*TASKS, *_entry_points()})


def get_task(name: str) -> "Task":
    """The task of a name.

    Raises:
        NccError: no such task (the message lists those there are).
    """
    if name not in TASKS:
        point = _entry_points().get(name)
        if point is None:
            raise NccError(f"unknown task {name!r}; choose one of {', '.join(task_names())}")
        task_class = point.load()
        if task_class.name != name:
            raise NccError(f"entry point {name!r} ({point.value}) gives a task named {task_class.name!r}")
        register_task(task_class())
    return TASKS[name]
