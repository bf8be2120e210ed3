"""Nearest-neighbour retrieval recall@k, and the video clip-retrieval protocol on top of it.

The protocol that introduced the R@{1, 5, 10, 20, 50} columns of self-supervised video work is
VCOP's (Xu et al., "Self-supervised Spatiotemporal Learning via Video Clip Order Prediction",
CVPR 2019; reference code ``xudejing/video-clip-order-prediction:retrieve_clips.py``):

1. every train and test video gives ``10`` clips of ``16`` consecutive frames whose centres are
   evenly spaced (:func:`retrieval_clip_starts`);
2. each clip's feature is the backbone's last-block map, max-pooled by ``(1, 2, 2)`` and
   flattened (:func:`pool_clip_maps`; ``"gap"``, global average pooling, is the option);
3. a video's feature is the mean of its clips' features (:func:`pool_video_features`);
4. every test video queries the train videos by cosine similarity, and R@k is the fraction of
   queries with at least one same-class video among their ``k`` nearest
   (:func:`video_retrieval_recall`, built on :func:`retrieval_recall`).

Departures from VCOP's script: VCOP fed unnormalised ``[0, 1]`` pixels; here the caller feeds
what its model was trained on. Which pooling FedVSSL itself used is not known
(``next-systems.md`` §1.4, §1.10).

Why here: :func:`retrieval_recall` is the generic R@k that audio retrieval uses through
:mod:`fedssl.clients.evaluation`; a pure function of features, it belongs below both the
models and the client tasks, so that the video pieces can build on it without importing a
client task. It needs torch alone (like :mod:`fedssl.common.scales`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

__all__ = [
    "CLIP_MAP_POOLINGS",
    "VIDEO_POOLINGS",
    "VIDEO_RETRIEVAL_KS",
    "pool_clip_maps",
    "pool_video_features",
    "retrieval_clip_starts",
    "retrieval_recall",
    "video_retrieval_recall",
]

# The R@k columns of VCOP's retrieval table.
VIDEO_RETRIEVAL_KS: tuple[int, ...] = (1, 5, 10, 20, 50)
# How one clip's last-block map [C, T, H, W] becomes a vector: VCOP's max-pool (1, 2, 2) then
# flatten (default; 512·2·3·3 = 9216-d for R3D-18 at 16×112²), or global average pooling (C-d,
# the spec's "gap512" on R3D-18).
CLIP_MAP_POOLINGS: tuple[str, ...] = ("maxpool122-flatten", "gap")
# How a video's clip features become one vector (VCOP: the mean).
VIDEO_POOLINGS: tuple[str, ...] = ("mean", "max")


@torch.no_grad()
def retrieval_recall(
    query_features: torch.Tensor,
    query_labels: np.ndarray,
    bank_features: torch.Tensor,
    bank_labels: np.ndarray,
    *,
    ks: tuple[int, ...] = (1, 5, 10),
    chunk: int = 1024,
) -> dict[int, float]:
    """Recall@k of nearest-neighbour retrieval on cosine similarity.

    A query counts as retrieved at ``k`` when at least one of its ``k`` nearest bank items
    shares its label: the protocol of clip retrieval in self-supervised video and audio work
    (test clips query the training set). Ties in similarity are broken by ``topk``.

    Parameters
    ----------
    query_features
        ``(Q, D)`` features of the queries (any scale; each row is L2-normalised here).
    query_labels
        ``(Q,)`` integer classes of the queries.
    bank_features
        ``(N, D)`` features of the gallery.
    bank_labels
        ``(N,)`` integer classes of the gallery.
    ks
        The depths to report; each is capped at the bank size.
    chunk
        Queries per similarity matrix (bounds memory at ``chunk × N``).

    Returns
    -------
    dict[int, float]
        ``{k: recall}`` for every ``k`` in ``ks`` (``k`` is capped at the bank size).
    """
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers; got {ks}")
    bank = F.normalize(bank_features.float(), dim=1)
    bank_labels_t = torch.as_tensor(np.array(bank_labels), dtype=torch.long)
    query_labels_t = torch.as_tensor(np.array(query_labels), dtype=torch.long)
    depth = min(max(ks), bank.shape[0])
    hits = []
    for start in range(0, len(query_features), chunk):
        queries = F.normalize(query_features[start : start + chunk].float(), dim=1)
        nearest = (queries @ bank.T).topk(depth, dim=1).indices
        hits.append(bank_labels_t[nearest] == query_labels_t[start : start + chunk, None])
    matched = torch.cat(hits) if hits else torch.zeros(0, depth, dtype=torch.bool)
    return {k: float(matched[:, : min(k, depth)].any(dim=1).float().mean()) for k in ks}


def retrieval_clip_starts(num_frames: int, *, num_clips: int = 10,
                          clip_len: int = 16) -> np.ndarray:
    """First frames of the ``num_clips`` retrieval clips of one video, in time order.

    The clip centres are evenly spaced from ``clip_len / 2`` to ``num_frames - clip_len / 2``
    (VCOP's ``linspace(8, len - 8, 10)``); each start is its centre minus ``clip_len / 2``,
    rounded down and clipped to ``[0, max(num_frames - clip_len, 0)]``. A video shorter than
    one clip gives starts of 0; the reader then repeats its last frame.

    Parameters
    ----------
    num_frames
        Frames in the video (>= 1).
    num_clips
        Clips per video (VCOP: 10).
    clip_len
        Consecutive frames per clip (VCOP: 16).

    Returns
    -------
    np.ndarray
        ``(num_clips,)`` int64 start frames.
    """
    if num_frames < 1 or num_clips < 1 or clip_len < 1:
        raise ValueError(
            f"num_frames, num_clips and clip_len must be >= 1; got {num_frames}, "
            f"{num_clips}, {clip_len}"
        )
    centres = np.linspace(clip_len / 2, num_frames - clip_len / 2, num_clips)
    starts = np.floor(centres - clip_len / 2).astype(np.int64)
    return np.clip(starts, 0, max(num_frames - clip_len, 0))


def pool_clip_maps(maps: torch.Tensor, pooling: str = "maxpool122-flatten") -> torch.Tensor:
    """One vector per clip from the backbone's last-block maps.

    Parameters
    ----------
    maps
        ``(N, C, T, H, W)`` last-block outputs of ``N`` clips.
    pooling
        ``"maxpool122-flatten"`` (VCOP: max-pool with kernel and stride ``(1, 2, 2)``, then
        flatten to ``C·T·⌊H/2⌋·⌊W/2⌋``) or ``"gap"`` (mean over ``T, H, W``: ``C``).

    Returns
    -------
    torch.Tensor
        ``(N, D)`` clip features.
    """
    if maps.dim() != 5:
        raise ValueError(f"maps must be (N, C, T, H, W); got shape {tuple(maps.shape)}")
    if pooling == "maxpool122-flatten":
        if maps.shape[-1] < 2 or maps.shape[-2] < 2:
            raise ValueError(
                f"maxpool122-flatten needs maps of at least 2×2, got {tuple(maps.shape)}; "
                f"use pooling='gap' or a larger input"
            )
        return F.max_pool3d(maps, kernel_size=(1, 2, 2)).flatten(1)
    if pooling == "gap":
        return maps.mean(dim=(2, 3, 4))
    raise ValueError(f"pooling must be one of {CLIP_MAP_POOLINGS}; got {pooling!r}")


def pool_video_features(clip_features: torch.Tensor, *, clips_per_video: int = 10,
                        pooling: str = "mean") -> torch.Tensor:
    """One vector per video from its clips' features.

    Parameters
    ----------
    clip_features
        ``(V · clips_per_video, D)`` clip features, video-major (a video's clips are
        consecutive rows), or ``(V, clips_per_video, D)``.
    clips_per_video
        Clips of each video (VCOP: 10).
    pooling
        ``"mean"`` (VCOP) or ``"max"`` (element-wise over the clips).

    Returns
    -------
    torch.Tensor
        ``(V, D)`` video features (not normalised).
    """
    if clips_per_video < 1:
        raise ValueError(f"clips_per_video must be >= 1; got {clips_per_video}")
    if clip_features.dim() == 2:
        if clip_features.shape[0] % clips_per_video:
            raise ValueError(
                f"{clip_features.shape[0]} clip features are not a whole number of videos of "
                f"clips_per_video={clips_per_video} clips each"
            )
        clip_features = clip_features.unflatten(0, (-1, clips_per_video))
    if clip_features.dim() != 3 or clip_features.shape[1] != clips_per_video:
        raise ValueError(
            f"clip_features must be (V*{clips_per_video}, D) or (V, {clips_per_video}, D); "
            f"got shape {tuple(clip_features.shape)}"
        )
    if pooling == "mean":
        return clip_features.float().mean(dim=1)
    if pooling == "max":
        return clip_features.float().amax(dim=1)
    raise ValueError(f"pooling must be one of {VIDEO_POOLINGS}; got {pooling!r}")


def video_retrieval_recall(
    query_clip_features: torch.Tensor,
    query_labels: np.ndarray,
    bank_clip_features: torch.Tensor,
    bank_labels: np.ndarray,
    *,
    clips_per_video: int = 10,
    pooling: str = "mean",
    ks: tuple[int, ...] = VIDEO_RETRIEVAL_KS,
) -> dict[int, float]:
    """R@k of video retrieval by VCOP's protocol: test videos query the train videos.

    Each video's clip features are pooled into one vector (:func:`pool_video_features`), then
    :func:`retrieval_recall` L2-normalises, ranks the gallery by cosine similarity and counts a
    query as retrieved at ``k`` when any of its ``k`` nearest gallery videos has its class.

    Parameters
    ----------
    query_clip_features
        Clip features of the query (test) videos, video-major: ``(Vq · clips_per_video, D)``
        or ``(Vq, clips_per_video, D)``.
    query_labels
        ``(Vq,)`` classes of the query videos (one per video, not per clip).
    bank_clip_features
        Clip features of the gallery (train) videos, in the same layout.
    bank_labels
        ``(Vb,)`` classes of the gallery videos.
    clips_per_video
        Clips of each video (VCOP: 10).
    pooling
        How clips become a video: ``"mean"`` (VCOP) or ``"max"``.
    ks
        The depths to report (VCOP: 1, 5, 10, 20, 50); each is capped at the gallery size.

    Returns
    -------
    dict[int, float]
        ``{k: recall}`` for every ``k`` in ``ks``.
    """
    queries = pool_video_features(query_clip_features, clips_per_video=clips_per_video,
                                  pooling=pooling)
    bank = pool_video_features(bank_clip_features, clips_per_video=clips_per_video,
                               pooling=pooling)
    for name, feats, labels in (("query", queries, query_labels), ("bank", bank, bank_labels)):
        if len(np.asarray(labels)) != feats.shape[0]:
            raise ValueError(
                f"{name}_labels must give one class per video: {feats.shape[0]} videos of "
                f"{clips_per_video} clips, got {len(np.asarray(labels))} labels"
            )
    return retrieval_recall(queries, query_labels, bank, bank_labels, ks=ks)
