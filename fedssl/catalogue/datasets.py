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
``names``
    ``True`` when its samples carry names (a video's path in the dataset without suffix), which
    the ``fedvssl-clients`` partitioner assigns by.
``frames``
    Video datasets: frames per video (``clip-frames`` must fit): a number for fixed-length
    videos, or the run-config key that sets it (``"video-frames"``: real videos, decoded to
    that many frames).

:data:`PARTITIONER_REGISTRY`: each entry a ``split(labels, num_partitions, *, seed, groups,
**params)`` (:mod:`fedssl.datasets.partitioners`), tagged with ``params`` (``{argument name:
run-config key}``, the keyword arguments beyond ``seed``, ``groups`` and ``names``),
``needs_groups``, ``needs_names`` (it also takes ``names=``, one name per sample) and
optionally ``check_files``: ``(cfg) -> list[str]``, what is wrong with the files it reads
(torch-free; run before a run starts, where paths are local).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedssl.common.registry import Registry

if TYPE_CHECKING:
    from fedssl.config import RunConfig

__all__ = ["DATASET_REGISTRY", "PARTITIONER_REGISTRY", "check_partitioner",
           "client_dist_files"]

DATASET_REGISTRY: Registry[Any] = Registry("dataset")
PARTITIONER_REGISTRY: Registry[Any] = Registry("partitioner")

# Audio: spoken-digits is embedded (rendered into the package), the others are read from
# data-dir. Every audio source may carry speaker/recording groups.
for _name in ("spoken-digits", "speech-commands", "esc50", "urbansound8k", "vggsound",
              "epic-sounds"):
    DATASET_REGISTRY.declare(_name, "fedssl.datasets.audio_loader:check_audio_dataset",
                             bind=(_name,), modality="audio",
                             local_files=_name != "spoken-digits", groups=True, names=False)
for _name in ("embedded-digits", "cifar10", "cifar100", "tiny-imagenet", "imagefolder", "hf"):
    DATASET_REGISTRY.declare(_name, "fedssl.datasets.checks:check_image_dataset",
                             bind=(_name,), modality="image",
                             local_files=_name != "embedded-digits", groups=False,
                             names=False)
# Video: motion-digits is embedded (rendered into the cache on first use); the real layouts
# are read from data-dir, each video decoded once to video-frames frames (cached).
DATASET_REGISTRY.declare("motion-digits", "fedssl.datasets.video_loader:check_video_dataset",
                         bind=("motion-digits",), modality="video", local_files=False,
                         groups=False, names=False, frames=64)
for _name in ("ucf101", "hmdb51", "kinetics400"):
    DATASET_REGISTRY.declare(_name, "fedssl.datasets.video_loader:check_video_dataset",
                             bind=(_name,), modality="video", local_files=True, groups=False,
                             names=True, frames="video-frames")

#: FedVSSL's per-client sample lists: ``client_dist<i>.json``, i = 1..N.
CLIENT_DIST_FILE = re.compile(r"client_dist([0-9]+)\.json")


def client_dist_files(directory: str) -> list[Path]:
    """FedVSSL's client files in ``directory``, ``client_dist1.json`` .. ``client_distN.json``
    in client order (file names only; nothing is read).

    Raises
    ------
    ValueError
        ``directory`` is empty or not a folder, holds no ``client_dist<i>.json``, or their
        numbers are not 1..N (the message names the first one missing).
    """
    what = ("partitioner 'fedvssl-clients' reads FedVSSL's client_dist1.json .. "
            "client_distN.json (one per client) from client-dist-dir")
    if not directory:
        raise ValueError(f"{what}, which is empty; set client-dist-dir=<folder>")
    folder = Path(directory).expanduser()
    if not folder.is_dir():
        raise ValueError(f"client-dist-dir={directory!r} is not a directory (looked at "
                         f"{folder.resolve()}); {what}")
    numbered = {int(m.group(1)): p for p in folder.iterdir()
                if (m := CLIENT_DIST_FILE.fullmatch(p.name)) and p.is_file()}
    if not numbered:
        raise ValueError(f"client-dist-dir={directory!r} holds no client_dist<i>.json; {what}")
    gap = next((i for i in range(1, len(numbered) + 1) if i not in numbered), None)
    if gap is not None:
        raise ValueError(f"client-dist-dir={directory!r} holds {len(numbered)} client files "
                         f"but not client_dist{gap}.json: they must be numbered 1..N")
    return [numbered[i] for i in range(1, len(numbered) + 1)]


def check_client_dist_files(cfg: RunConfig) -> list[str]:
    """The pre-run check of ``fedvssl-clients``: ``client-dist-dir`` holds its client files."""
    try:
        client_dist_files(cfg.client_dist_dir)
    except ValueError as err:
        return [str(err)]
    return []


PARTITIONER_REGISTRY.declare("iid", "fedssl.datasets.partitioners.iid:split",
                             params={}, needs_groups=False, needs_names=False)
PARTITIONER_REGISTRY.declare("dirichlet", "fedssl.datasets.partitioners.dirichlet:split",
                             params={"alpha": "dirichlet-alpha"}, needs_groups=False,
                             needs_names=False)
PARTITIONER_REGISTRY.declare("shard", "fedssl.datasets.partitioners.shard:split",
                             params={"classes_per_partition": "classes-per-client"},
                             needs_groups=False, needs_names=False)
PARTITIONER_REGISTRY.declare("paper-dirichlet",
                             "fedssl.datasets.partitioners.paper_dirichlet:split",
                             params={"alpha": "dirichlet-alpha"}, needs_groups=False,
                             needs_names=False)
PARTITIONER_REGISTRY.declare("group", "fedssl.datasets.partitioners.group:split",
                             params={}, needs_groups=True, needs_names=False)
PARTITIONER_REGISTRY.declare("fedvssl-clients",
                             "fedssl.datasets.partitioners.fedvssl_clients:split",
                             params={"client_dist_dir": "client-dist-dir"}, needs_groups=False,
                             needs_names=True, check_files=check_client_dist_files)


def check_partitioner(name: str, *, has_groups: bool, has_names: bool = False) -> None:
    """Check that partitioner ``name`` exists and fits data with or without group ids and
    sample names.

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the valid ones), or one that needs groups
        (speakers, recordings) or sample names on data without them.
    """
    tags = PARTITIONER_REGISTRY.tags(name)
    if tags.get("needs_names") and not has_names:
        named = DATASET_REGISTRY.names(names=True)
        raise ValueError(f"partitioner={name!r} assigns samples by name, which only the "
                         f"datasets {', '.join(named)} carry; use another partitioner")
    if tags.get("needs_groups") and not has_groups:
        others = PARTITIONER_REGISTRY.names(needs_groups=False, needs_names=False)
        usable = f"{', '.join(others[:-1])} or {others[-1]}" if len(others) > 1 else others[0]
        raise ValueError(f"partitioner={name!r} splits by speaker/recording, which only the "
                         f"audio datasets have; use {usable}")
