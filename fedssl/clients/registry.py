"""The task registry: what a run's ``task`` can name, with the tags its config checks read.

The built-in tasks are declared in :mod:`fedssl.catalogue.tasks` (one line each: the class's
``"module:Class"`` and its tags); that line is the task's registry entry. A task defined
elsewhere (a plugin, a test) registers its class eagerly instead:

>>> @register_task
... class MyTask(ClientTask):
...     name, modality = "my-task", "image"
...     ...

A new task is one file with one such class plus its entry; neither the config nor the Flower
apps change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from fedssl.catalogue.tasks import TASKS, get_task

if TYPE_CHECKING:
    from fedssl.clients.base import ClientTask

__all__ = ["TASKS", "get_task", "register_task", "task_tags"]

TaskT = TypeVar("TaskT", bound="type[ClientTask]")


def task_tags(cls: type[ClientTask]) -> dict:
    """The tags a task class says about itself (what its catalogue line must also say)."""
    return {"modality": cls.modality, "model_kinds": tuple(cls.model_kinds),
            "trains_ssl_method": bool(cls.trains_ssl_method)}


def register_task(cls: TaskT) -> TaskT:
    """Class decorator: register ``cls`` under ``cls.name`` with the tags of its class
    attributes (:func:`task_tags`). A task with rules of its own beyond them registers with
    ``TASKS.register(name, cls, check=..., **task_tags(cls))``."""
    TASKS.register(cls.name, cls, **task_tags(cls))
    return cls
