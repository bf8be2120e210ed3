"""The tagged name -> object registry (re-exported from :mod:`fedssl.common.registry`, where
every kind of part registers: models, datasets, partitioners, strategies, tasks)."""

from fedssl.common.registry import Registry

__all__ = ["Registry"]
