"""Audio backbones selected by name: log-mel ``(B, 1, T, F)`` in, features ``(B, D)`` out.

>>> backbone = build_audio_backbone("audio-rep-inceptionnext-tiny")

Each entry is a builder ``() -> nn.Module`` whose module has an int ``feature_dim``. A new
audio family (an audio-visual or a video encoder of the roadmap) is one more registration.
"""

from __future__ import annotations

import functools

from torch import nn

from fedssl.models.audio_inception import (
    AUDIO_INCEPTION_VARIANTS,
    audio_inceptionnext,
    audio_rep_inceptionnext,
)
from fedssl.models.lska import VAN_CONFIGS, VANLSKA
from fedssl.models.registry import Registry

__all__ = ["AUDIO_BACKBONES", "AUDIO_BACKBONE_REGISTRY", "build_audio_backbone"]

AUDIO_BACKBONE_REGISTRY: Registry = Registry("audio backbone")

for _variant in AUDIO_INCEPTION_VARIANTS:
    AUDIO_BACKBONE_REGISTRY.register(f"audio-inceptionnext-{_variant}")(
        functools.partial(audio_inceptionnext, _variant, num_classes=0, in_chans=1))
    AUDIO_BACKBONE_REGISTRY.register(f"audio-rep-inceptionnext-{_variant}")(
        functools.partial(audio_rep_inceptionnext, _variant, num_classes=0, in_chans=1))
for _size in VAN_CONFIGS:
    AUDIO_BACKBONE_REGISTRY.register(f"van-lska-{_size}")(
        functools.partial(VANLSKA, VAN_CONFIGS[_size], in_chans=1, num_classes=0))

AUDIO_BACKBONES: tuple[str, ...] = AUDIO_BACKBONE_REGISTRY.names()


def build_audio_backbone(name: str) -> nn.Module:
    """A randomly initialised audio backbone; ``name`` is one of :data:`AUDIO_BACKBONES`.

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the valid ones).
    """
    return AUDIO_BACKBONE_REGISTRY.get(name)()
