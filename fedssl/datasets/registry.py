"""The dataset registry: every name a run's ``dataset`` can take, with its tags.

Declared in :mod:`fedssl.catalogue.datasets` (see there for the entries' contract and tags):
each entry is the dataset's cheap layout check, :func:`fedssl.datasets.checks.check_image_dataset`
or :func:`fedssl.datasets.audio_loader.check_audio_dataset` bound to its name.
"""

from __future__ import annotations

from collections.abc import Callable

from fedssl.catalogue.datasets import DATASET_REGISTRY

__all__ = ["DATASET_REGISTRY", "DatasetCheck"]

DatasetCheck = Callable[..., None]
