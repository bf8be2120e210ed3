"""``fedvssl-clients``: FedVSSL's federation, read from its released per-client sample lists.

Implementation based on FedVSSL (Rehman et al., "Federated Self-Supervised Learning for Video
Understanding", arXiv:2207.01975), which federates Kinetics-400 over 100 clients and publishes
each client's samples as ``client_dist<i>.json`` (i = 1..100), a JSON list of
``{"name": "tying_tie/TXm5CWjF2SA_000459_000469", "label": 167}``. Client ``i`` (partition
``i - 1``) gets exactly the samples named in ``client_dist<i>.json``: the loaded data's sample
names (:attr:`VideoArrays.names <fedssl.datasets.video_base.VideoArrays.names>`, Kinetics'
``"<label dir>/<youtube_id>_<start>_<end>"``) are matched against them.

Where it departs: a name absent from the loaded data (a clip this Kinetics copy lacks, or one
skipped as corrupt) is left out; all such names are counted and a few named in one warning,
and a client may end up with fewer samples than FedVSSL's (or none). The ``label`` field,
FedVSSL's own class numbering (its ``classInd.txt``), is not used: labels come from the loaded
data. ``seed`` is not used either: the assignment is the files'.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedssl.catalogue.datasets import client_dist_files
from fedssl.datasets.partitioners.base import as_labels
from fedssl.datasets.video.source import FRAME_ZIP_SUFFIX, VIDEO_EXTENSIONS

__all__ = ["read_client_dist", "split"]

# A file suffix a listed name may carry (a video or its frame zip); names are matched without it.
_SUFFIXES = (*VIDEO_EXTENSIONS, FRAME_ZIP_SUFFIX)


def _name(entry: object, path: Path, position: int) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{path}: entry {position} is not an object with a string \"name\" "
                         f"(FedVSSL's format: [{{\"name\": \"<label>/<clip>\", \"label\": <id>}}, "
                         f"...]); got {entry!r:.80}")
    name = name.strip().replace("\\", "/")
    return name[: -len(suffix)] if (suffix := Path(name).suffix.lower()) in _SUFFIXES else name


def read_client_dist(path: str | Path) -> list[str]:
    """The sample names listed in one ``client_dist<i>.json`` (suffix-free, in file order).

    Raises
    ------
    ValueError
        Not JSON, not a list, or an entry without a string ``"name"``.
    """
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read FedVSSL's client list ({err})") from err
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a JSON list of {{\"name\", \"label\"}} objects; got "
                         f"{type(entries).__name__}")
    return [_name(entry, path, i) for i, entry in enumerate(entries)]


def split(
    labels: np.ndarray,
    num_partitions: int,
    *,
    seed: int,
    groups: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    client_dist_dir: str,
) -> list[np.ndarray]:
    """Partition ``i`` is the samples named in ``<client_dist_dir>/client_dist<i + 1>.json``.

    ``names`` gives each sample's name (one per label). ``num_partitions`` must equal the
    number of client files. A sample named by two files goes to both clients (FedVSSL's lists
    are disjoint); a name listed twice in one file counts once. ``seed`` and ``groups`` are
    ignored.

    Raises
    ------
    ValueError
        No names, a missing or malformed client file, or ``num_partitions`` other than the
        number of client files (the message gives both and the fix).
    """
    labels = as_labels(labels)
    if names is None or len(names) != len(labels):
        got = "none" if names is None else f"{len(names)} for {len(labels)} samples"
        raise ValueError("the fedvssl-clients partitioner needs a name per sample (the real "
                         f"video datasets carry them); got {got}")
    files = client_dist_files(client_dist_dir)
    if num_partitions != len(files):
        raise ValueError(
            f"client-dist-dir={client_dist_dir!r} holds {len(files)} client files "
            f"(client_dist1.json .. client_dist{len(files)}.json), so the fedvssl-clients "
            f"partitioner needs {len(files)} clients; got {num_partitions} (run with "
            f"--num-supernodes {len(files)})")
    position: dict[str, int] = {}
    for i, name in enumerate(names):
        position.setdefault(name, i)
    absent: dict[str, None] = {}
    parts = []
    listed = 0
    for path in files:
        wanted = dict.fromkeys(read_client_dist(path))
        listed += len(wanted)
        found = [position[n] for n in wanted if n in position]
        absent.update((n, None) for n in wanted if n not in position)
        parts.append(np.sort(np.asarray(found, dtype=np.int64)))
    if absent:
        empty = sum(1 for p in parts if not len(p))
        warnings.warn(
            f"fedvssl-clients: {len(absent)} of the {listed} samples named in the "
            f"{len(files)} client files of {client_dist_dir} are not in the loaded data (clips "
            f"this copy lacks or could not decode) and are left out"
            f"{f'; {empty} clients get no sample' if empty else ''}: e.g. "
            f"{list(absent)[:5]}",
            stacklevel=2,
        )
    return parts
