"""The datasets (``dataset``) and partitioners (``partitioner``) a run can name.

:data:`DATASET_REGISTRY`: each entry is the dataset's cheap layout check
``(*, data_dir, hf_dataset) -> None`` (file names, sizes and at most headers; nothing decoded,
no torch), raising :class:`~fedssl.datasets.base.DatasetNotFoundError` with the paths examined
and the layout expected, :class:`~fedssl.datasets.base.CorruptDataError` (a ``ValueError``)
naming the files that cannot be used when the dataset cannot load without them, or
``ValueError`` for bad arguments. Bad files the loader will skip (audio) are named in one
warning instead. Tags:

``modality``
    ``"image"``, ``"audio"`` or ``"video"``: which tasks can train on it.
``local_files``
    ``True`` when it is read from ``data-dir`` (or fetched), ``False`` for embedded data.
``groups``
    ``True`` when its samples may carry a group id (speaker, recording) for the ``group``
    partitioner.
``frames``
    Video datasets of fixed-length videos: frames per video (``clip-frames`` must fit).

:data:`PARTITIONER_REGISTRY`: each entry a ``split(labels, num_partitions, *, seed, groups,
**params)`` (:mod:`fedssl.datasets.partitioners`), tagged with ``params`` (``{argument name:
run-config key}``, the keyword arguments beyond ``seed`` and ``groups``) and
``needs_groups``.
"""

from __future__ import annotations

from typing import Any

from fedssl.common.registry import Registry

__all__ = ["DATASET_REGISTRY", "PARTITIONER_REGISTRY", "check_partitioner"]

DATASET_REGISTRY: Registry[Any] = Registry("dataset")
PARTITIONER_REGISTRY: Registry[Any] = Registry("partitioner")

# Audio: spoken-digits is embedded (rendered into the package), the others are read from
# data-dir. Every audio source may carry speaker/recording groups.
for _name in ("spoken-digits", "speech-commands", "esc50", "urbansound8k", "vggsound",
              "epic-sounds"):
    DATASET_REGISTRY.declare(_name, "fedssl.datasets.audio_loader:check_audio_dataset",
                             bind=(_name,), modality="audio",
                             local_files=_name != "spoken-digits", groups=True)
for _name in ("embedded-digits", "cifar10", "cifar100", "tiny-imagenet", "imagefolder", "hf"):
    DATASET_REGISTRY.declare(_name, "fedssl.datasets.checks:check_image_dataset",
                             bind=(_name,), modality="image",
                             local_files=_name != "embedded-digits", groups=False)
# Video: motion-digits is embedded (rendered into the cache on first use).
DATASET_REGISTRY.declare("motion-digits", "fedssl.datasets.video_loader:check_video_dataset",
                         bind=("motion-digits",), modality="video", local_files=False,
                         groups=False, frames=64)

PARTITIONER_REGISTRY.declare("iid", "fedssl.datasets.partitioners.iid:split",
                             params={}, needs_groups=False)
PARTITIONER_REGISTRY.declare("dirichlet", "fedssl.datasets.partitioners.dirichlet:split",
                             params={"alpha": "dirichlet-alpha"}, needs_groups=False)
PARTITIONER_REGISTRY.declare("shard", "fedssl.datasets.partitioners.shard:split",
                             params={"classes_per_partition": "classes-per-client"},
                             needs_groups=False)
PARTITIONER_REGISTRY.declare("paper-dirichlet",
                             "fedssl.datasets.partitioners.paper_dirichlet:split",
                             params={"alpha": "dirichlet-alpha"}, needs_groups=False)
PARTITIONER_REGISTRY.declare("group", "fedssl.datasets.partitioners.group:split",
                             params={}, needs_groups=True)


def check_partitioner(name: str, *, has_groups: bool) -> None:
    """Check that partitioner ``name`` exists and fits data with or without group ids.

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the valid ones), or one that needs groups
        (speakers, recordings) on data without them.
    """
    if PARTITIONER_REGISTRY.tags(name).get("needs_groups") and not has_groups:
        others = PARTITIONER_REGISTRY.names(needs_groups=False)
        usable = f"{', '.join(others[:-1])} or {others[-1]}" if len(others) > 1 else others[0]
        raise ValueError(f"partitioner={name!r} splits by speaker/recording, which only the "
                         f"audio datasets have; use {usable}")
