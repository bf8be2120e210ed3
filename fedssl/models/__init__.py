"""Networks, self-supervised methods and their transforms, selected by registered name.

>>> backbone = build_backbone("small-cnn", image_size=32)
>>> model = build_ssl_model("simclr", backbone)
>>> transform = build_ssl_transform("simclr", image_size=32)  # PIL image -> [view0, view1]
>>> audio = audio_rep_inceptionnext("tiny", num_classes=0, in_chans=1)  # (B, 1, T, F) log-mel
>>> fused = reparameterize_model(audio)  # multi-branch kernels merged for inference

Two registries with tags (:mod:`fedssl.common.registry`): :data:`MODELS` (every network a
run's ``model`` names: image and audio backbones, RepOpt classifiers) and :data:`SSL_REGISTRY`
(every ``ssl-method``: lightly's feature-matching methods and clip-order prediction). Their
entries are declared in :mod:`fedssl.catalogue.models`, which names each builder's module
without importing it. :data:`BACKBONES` and :data:`SSL_METHODS` are the built-in image
backbones and lightly methods in their documented order. This package must not import
``flwr``.
"""

from __future__ import annotations

# The family modules, loaded with the package as before (their entries are the catalogue's).
from fedssl.models import (
    audio_backbones,
    barlowtwins,
    byol,
    clip_order,
    lska,
    repopt,
    resnet,
    simclr,
    simsiam,
    small_cnn,
    vit,
)
from fedssl.models.audio_inception import audio_inceptionnext, audio_rep_inceptionnext
from fedssl.models.barlowtwins import BarlowTwins
from fedssl.models.base import BACKBONE_REGISTRY, MODELS, SSL_REGISTRY, SSLModel, SSLOptions
from fedssl.models.builders import (
    backbone_names,
    build_backbone,
    build_ssl_model,
    build_ssl_transform,
)
from fedssl.models.byol import BYOL
from fedssl.models.fusion import reparameterize_model
from fedssl.models.registry import Registry
from fedssl.models.reparam import reparameterize
from fedssl.models.simclr import SimCLR
from fedssl.models.simsiam import SimSiam
from fedssl.models.transforms import NORMALIZE, ViewOptions, build_eval_transform

__all__ = [
    "BACKBONES",
    "BACKBONE_REGISTRY",
    "BYOL",
    "MODELS",
    "NORMALIZE",
    "SSL_METHODS",
    "SSL_REGISTRY",
    "BarlowTwins",
    "Registry",
    "SSLModel",
    "SSLOptions",
    "SimCLR",
    "SimSiam",
    "ViewOptions",
    "audio_inceptionnext",
    "audio_rep_inceptionnext",
    "backbone_names",
    "build_backbone",
    "build_eval_transform",
    "build_ssl_model",
    "build_ssl_transform",
    "reparameterize",
    "reparameterize_model",
]

BACKBONES: tuple[str, ...] = (
    "small-cnn", "resnet18", "resnet34", "resnet50", "vit-tiny",
    "van-lska-tiny", "van-lska-small", "van-lska-base",
)
SSL_METHODS: tuple[str, ...] = ("simclr", "byol", "simsiam", "barlowtwins")

_FAMILIES = (small_cnn, resnet, vit, lska, simclr, byol, simsiam, barlowtwins, clip_order,
             audio_backbones, repopt)
# The catalogue must declare exactly the advertised built-in names.
if set(backbone_names("image")) != set(BACKBONES) or set(
    SSL_REGISTRY.names(objective="feature-matching")
) != set(SSL_METHODS):
    raise RuntimeError(
        f"registries out of sync: image backbones {backbone_names('image')}, "
        f"methods {SSL_REGISTRY.names()}"
    )
