"""A small name -> object registry, used for both backbones and SSL methods.

Names are kept in registration order, so the public ``BACKBONES`` / ``SSL_METHODS`` tuples
follow the order in which :mod:`fedssl.models` imports the family modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Map unique names to objects (builder functions or classes).

    Parameters
    ----------
    kind
        What is registered, e.g. ``"backbone"``; used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Return a decorator that registers its argument under ``name``.

        Raises
        ------
        ValueError
            If ``name`` is already registered: silently replacing an entry would make the
            meaning of a run config depend on import order.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")

        def decorator(obj: T) -> T:
            # Checked again here because the decorator may be applied after another
            # registration of the same name.
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the object registered under ``name``.

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

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry(kind={self.kind!r}, names={self.names()!r})"
