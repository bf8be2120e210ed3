"""One registry per kind (models, datasets, strategies, tasks, partitioners), with tags.

In the style of torchvision's ``list_models`` and timm's registry: names are unique (a second
registration of a name is refused, so a run config never depends on import order), an unknown
name raises ``ValueError`` listing the valid ones, and every entry carries tags that a caller
filters on (``MODELS.names(kind="backbone", modality="audio")``).

An entry is either registered (the object itself, :meth:`Registry.register`) or declared
(``"package.module:attr"``, :meth:`Registry.declare`): a declared entry's name and tags are
known without importing anything, and its module is imported the first time the object is
asked for. The catalogues (:mod:`fedssl.catalogue`) declare every built-in part this way, so
checking a run config never imports torch.

>>> SHAPES = Registry("shape")
>>> @SHAPES.register("square", sides=4)
... def square(): ...
>>> _ = SHAPES.declare("dedent", "textwrap:dedent", sides=0)
>>> SHAPES.names(sides=4)
('square',)
>>> SHAPES["dedent"]("  x")
'x'
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "import_target"]

T = TypeVar("T")


class _Declared:
    """A declared entry not imported yet: ``"module:attr"`` plus leading arguments to bind."""

    __slots__ = ("bind", "target")

    def __init__(self, target: str, bind: tuple) -> None:
        self.target, self.bind = target, bind


def import_target(target: str) -> Any:
    """The object ``"package.module:attr"`` names (``attr`` may be dotted), imported.

    Raises
    ------
    ValueError
        A malformed target, a module that cannot be imported or an attribute it lacks; the
        message names the target.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"target {target!r} must be 'package.module:attr'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"target {target!r}: cannot import {module_name!r} ({err})") from err
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"target {target!r}: module {module_name!r} has no "
                             f"attribute {attr!r}") from None
    return obj


class Registry(Mapping[str, T], Generic[T]):
    """Unique names -> objects (builders, classes, specs), each with a dict of tags.

    A read-only ``Mapping``: ``REGISTRY[name]``, ``name in REGISTRY``, ``list(REGISTRY)``
    (registration order). Entries are added with :meth:`register` (the object) or
    :meth:`declare` (where to import it from). ``names``, ``tags``, ``in``, iteration and
    ``len`` never import; ``get``, ``[]``, ``values`` and ``items`` import what they return.

    Parameters
    ----------
    kind
        What is registered, e.g. ``"backbone"``; used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | _Declared] = {}
        self._tags: dict[str, dict[str, Any]] = {}
        self._targets: dict[str, str] = {}

    def _check_new(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")

    def register(self, name: str, obj: T | None = None, **tags: Any) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name`` with ``tags``; without ``obj``, a decorator.

        Raises
        ------
        ValueError
            If ``name`` is empty or already registered (or declared).
        """
        self._check_new(name)

        def decorator(entry: T) -> T:
            # Checked again: the decorator may run after another registration of the name.
            self._check_new(name)
            self._entries[name] = entry
            self._tags[name] = dict(tags)
            return entry

        return decorator if obj is None else decorator(obj)

    def declare(self, name: str, target: str, *, bind: tuple = (), **tags: Any) -> str:
        """Declare ``name`` as the object at ``target`` (``"package.module:attr"``) with
        ``tags``, imported on first :meth:`get`; returns ``name``.

        ``bind``: leading positional arguments fixed on the imported callable (one builder
        or check serving several names, e.g. ``bind=("cifar10",)``); the entry is then a
        ``functools.partial``.

        Raises
        ------
        ValueError
            If ``name`` is empty or already registered (or declared), or ``target`` is not of
            the form ``"package.module:attr"`` (nothing is imported to check it).
        """
        self._check_new(name)
        module_name, sep, attr = target.partition(":") if isinstance(target, str) else ("", "", "")
        if not sep or not module_name or not attr:
            raise ValueError(f"{self.kind} {name!r}: target {target!r} must be "
                             "'package.module:attr'")
        self._entries[name] = _Declared(target, tuple(bind))
        self._tags[name] = dict(tags)
        self._targets[name] = target
        return name

    def target(self, name: str) -> str | None:
        """Where a declared ``name`` is imported from (``None`` for a registered object)."""
        self._known(name)
        return self._targets.get(name)

    def is_loaded(self, name: str) -> bool:
        """Whether ``name``'s object is at hand (registered, or declared and imported)."""
        self._known(name)
        return not isinstance(self._entries[name], _Declared)

    def _known(self, name: str) -> None:
        if not isinstance(name, str) or name not in self._entries:
            valid = ", ".join(repr(n) for n in self._entries)
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {valid}")

    def get(self, name: str) -> T:  # type: ignore[override]
        """The object under ``name``, imported now if it was declared.

        Raises
        ------
        ValueError
            If ``name`` is unknown (the message lists the valid names), or a declared target
            cannot be imported (the message names the entry and its target).
        """
        self._known(name)
        entry = self._entries[name]
        if isinstance(entry, _Declared):
            try:
                obj = import_target(entry.target)
            except ValueError as err:
                raise ValueError(f"{self.kind} {name!r} is declared as {entry.target!r}, "
                                 f"which does not load: {err}") from err
            if entry.bind:
                obj = functools.partial(obj, *entry.bind)
            self._entries[name] = obj
            return obj
        return entry

    def tags(self, name: str) -> dict[str, Any]:
        """The tags ``name`` was registered with (a copy); unknown names as in :meth:`get`."""
        self._known(name)
        return dict(self._tags[name])

    def names(self, **tags: Any) -> tuple[str, ...]:
        """Names in registration order whose tags match every ``key=value`` given.

        A tag whose value is a tuple or set matches when it contains the value asked for
        (``modalities=("image", "audio")`` matches ``modalities="audio"``).
        """
        return tuple(n for n in self._entries if _matches(self._tags[n], tags))

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise KeyError(name)
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry(kind={self.kind!r}, names={self.names()!r})"


def _matches(tags: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    for key, value in wanted.items():
        have = tags.get(key)
        if isinstance(have, (tuple, set, frozenset)) and not isinstance(value, (tuple, set)):
            if value not in have:
                return False
        elif have != value:
            return False
    return True
