"""The catalogue: every name a run config can take, with the tags that validation reads.

One module per kind of part, each declaring its registry's entries by where they live
(``"package.module:attr"``, :meth:`fedssl.common.registry.Registry.declare`): the names,
tags and config checks are here, and an entry's module is imported only when the part is
built. Nothing here imports torch, lightly, torchvision, torchaudio, scikit-learn, Ray,
pandas or Flower (an import-linter contract in ``pyproject.toml`` keeps it so), so a run
config is checked in a fraction of a second and a bad one is refused before anything heavy
loads.

- :mod:`~fedssl.catalogue.models`: :data:`MODELS` (networks) and :data:`SSL_REGISTRY`
  (self-supervised methods).
- :mod:`~fedssl.catalogue.datasets`: :data:`DATASET_REGISTRY` (each entry the dataset's cheap
  layout check) and :data:`PARTITIONER_REGISTRY`.
- :mod:`~fedssl.catalogue.strategies`: :data:`STRATEGIES`, :data:`SERVER_OPTIMIZERS`,
  :class:`StrategyParams` and the strategies' config checks.
- :mod:`~fedssl.catalogue.tasks`: :data:`TASKS`, the task config checks and :func:`get_task`.

A new part is its file in its package plus its line here.
"""

from fedssl.catalogue.datasets import DATASET_REGISTRY, PARTITIONER_REGISTRY, check_partitioner
from fedssl.catalogue.models import MODELS, SSL_REGISTRY
from fedssl.catalogue.strategies import SERVER_OPTIMIZERS, STRATEGIES, StrategyParams
from fedssl.catalogue.tasks import TASKS, check_task, get_task

__all__ = [
    "DATASET_REGISTRY",
    "MODELS",
    "PARTITIONER_REGISTRY",
    "SERVER_OPTIMIZERS",
    "SSL_REGISTRY",
    "STRATEGIES",
    "TASKS",
    "StrategyParams",
    "check_partitioner",
    "check_task",
    "get_task",
]
