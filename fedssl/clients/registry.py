"""The task registry: what a run's ``task`` can name, tagged with each task's modality.

>>> @register_task
... class MyTask(ClientTask):
...     name, modality = "my-task", "image"
...     ...

A new task is one file with one such class; neither the config nor the Flower apps change.
"""

from __future__ import annotations

from typing import TypeVar

from fedssl.clients.base import ClientTask
from fedssl.common.registry import Registry

__all__ = ["TASKS", "get_task", "register_task"]

TASKS: Registry[type[ClientTask]] = Registry("task")

TaskT = TypeVar("TaskT", bound=type[ClientTask])


def register_task(cls: TaskT) -> TaskT:
    """Class decorator: register ``cls`` under ``cls.name``, tagged with ``cls.modality``."""
    TASKS.register(cls.name, cls, modality=cls.modality)
    return cls


def get_task(name: str) -> ClientTask:
    """The task registered under ``name`` (one shared instance per process, so caches persist).

    Raises
    ------
    ValueError
        If ``name`` is unknown; the message lists the valid tasks.
    """
    if name not in _INSTANCES:
        _INSTANCES[name] = TASKS.get(name)()
    return _INSTANCES[name]


_INSTANCES: dict[str, ClientTask] = {}
