"""One registry per kind (models, datasets, strategies, tasks, partitioners), with tags.

In the style of torchvision's ``list_models`` and timm's registry: names are unique (a second
registration of a name is refused, so a run config never depends on import order), an unknown
name raises ``ValueError`` listing the valid ones, and every entry carries tags that a caller
filters on (``MODELS.names(kind="backbone", modality="audio")``).

>>> SHAPES = Registry("shape")
>>> @SHAPES.register("square", sides=4)
... def square(): ...
>>> SHAPES.names(sides=4)
('square',)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Unique names -> objects (builders, classes, specs), each with a dict of tags.

    A read-only ``Mapping``: ``REGISTRY[name]``, ``name in REGISTRY``, ``list(REGISTRY)``
    (registration order). Entries are added with :meth:`register` only.

    Parameters
    ----------
    kind
        What is registered, e.g. ``"backbone"``; used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._tags: dict[str, dict[str, Any]] = {}

    def register(self, name: str, obj: T | None = None, **tags: Any) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name`` with ``tags``; without ``obj``, a decorator.

        Raises
        ------
        ValueError
            If ``name`` is empty or already registered.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")

        def decorator(entry: T) -> T:
            # Checked again: the decorator may run after another registration of the name.
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = entry
            self._tags[name] = dict(tags)
            return entry

        return decorator if obj is None else decorator(obj)

    def get(self, name: str) -> T:  # type: ignore[override]
        """The object registered under ``name``.

        Raises
        ------
        ValueError
            If ``name`` is unknown; the message lists the valid names.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            valid = ", ".join(repr(n) for n in self._entries)
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {valid}") from None

    def tags(self, name: str) -> dict[str, Any]:
        """The tags ``name`` was registered with (a copy); unknown names as in :meth:`get`."""
        self.get(name)
        return dict(self._tags[name])

    def names(self, **tags: Any) -> tuple[str, ...]:
        """Names in registration order whose tags match every ``key=value`` given.

        A tag whose value is a tuple or set matches when it contains the value asked for
        (``modalities=("image", "audio")`` matches ``modalities="audio"``).
        """
        return tuple(n for n in self._entries if _matches(self._tags[n], tags))

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

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
