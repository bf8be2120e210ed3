"""Audio backbones: log-mel ``(B, 1, T, F)`` in, features ``(B, D)`` out.

>>> backbone = build_audio_backbone("audio-rep-inceptionnext-tiny")

The audio backbones are the :data:`fedssl.models.MODELS` entries tagged ``kind="backbone"``,
``modalities=("audio",)`` (declared in :mod:`fedssl.catalogue.models`): AudioInceptionNeXt,
AudioRepInceptionNeXt and VAN-LSKA, which takes images and audio alike. A new audio family is
its module plus its catalogue lines.
"""

from __future__ import annotations

from torch import nn

from fedssl.models.base import MODELS
from fedssl.models.builders import build_backbone
from fedssl.models.lska import VAN_CONFIGS

__all__ = ["AUDIO_BACKBONES", "build_audio_backbone"]

AUDIO_BACKBONES: tuple[str, ...] = (
    *(n for n in MODELS.names(kind="backbone", modalities="audio") if n.startswith("audio-")),
    *(f"van-lska-{size}" for size in VAN_CONFIGS),
)


def build_audio_backbone(name: str) -> nn.Module:
    """A randomly initialised audio backbone; ``name`` is one of :data:`AUDIO_BACKBONES`.

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the valid ones).
    """
    return build_backbone(name, modality="audio")
