"""Audio backbones: log-mel ``(B, 1, T, F)`` in, features ``(B, D)`` out.

>>> backbone = build_audio_backbone("audio-rep-inceptionnext-tiny")

AudioInceptionNeXt and AudioRepInceptionNeXt register here in :data:`fedssl.models.MODELS`
(``kind="backbone"``, ``modalities=("audio",)``); VAN-LSKA registers in its own family module
for images and audio alike. A new audio family is one more registration.
"""

from __future__ import annotations

import functools

from torch import nn

from fedssl.models.audio_inception import (
    AUDIO_INCEPTION_VARIANTS,
    audio_inceptionnext,
    audio_rep_inceptionnext,
)
from fedssl.models.base import MODELS
from fedssl.models.builders import build_backbone
from fedssl.models.lska import VAN_CONFIGS

__all__ = ["AUDIO_BACKBONES", "build_audio_backbone"]

for _variant in AUDIO_INCEPTION_VARIANTS:
    MODELS.register(f"audio-inceptionnext-{_variant}",
                    functools.partial(audio_inceptionnext, _variant, num_classes=0),
                    kind="backbone", modalities=("audio",))
    MODELS.register(f"audio-rep-inceptionnext-{_variant}",
                    functools.partial(audio_rep_inceptionnext, _variant, num_classes=0),
                    kind="backbone", modalities=("audio",), reparameterizable=True)

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
