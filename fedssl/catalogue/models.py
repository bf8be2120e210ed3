"""The networks (``model``) and self-supervised methods (``ssl-method``) a run can name.

:data:`MODELS`: every network, tagged with its ``kind`` (``"backbone"``: features out;
``"classifier"``: logits out), the ``modalities`` it takes and its ``family`` where one
applies (``"repopt"``); ``reparameterizable`` marks the audio Rep blocks. A backbone builder
is keyword-only: ``(*, image_size)`` for images, ``(*, in_chans)`` for log-mel spectrograms,
nothing for video clips (any size; see :func:`fedssl.models.build_backbone`); video
backbones also carry their ``geometry`` (``"standard"`` or ``"ctp"``).
:data:`SSL_REGISTRY`: each method an :class:`~fedssl.models.SSLModel`-like class with
``from_options``, tagged with its ``objective`` (``"feature-matching"`` or ``"predictive"``),
the ``views`` per sample it trains on and the ``modalities`` it fits.

The order of the lines is the order of error messages and listings.
"""

from __future__ import annotations

from typing import Any

from fedssl.common.registry import Registry

__all__ = ["MODELS", "REPOPT_MODES", "SSL_REGISTRY"]

MODELS: Registry[Any] = Registry("model")
SSL_REGISTRY: Registry[Any] = Registry("SSL method")

#: The forms a RepOpt network is built in (``repopt-mode``); see :mod:`fedssl.models.repopt`.
REPOPT_MODES: tuple[str, ...] = ("rep", "csla", "hs", "target")

# One name per VAN-LSKA size for both modalities: RGB images (image-ssl) or one-channel
# log-mel spectrograms (audio-ssl).
for _size in ("tiny", "small", "base"):
    MODELS.declare(f"van-lska-{_size}", "fedssl.models.lska:van_lska_backbone", bind=(_size,),
                   kind="backbone", modalities=("image", "audio"))
for _variant in ("base", "small", "tiny"):
    MODELS.declare(f"audio-inceptionnext-{_variant}",
                   "fedssl.models.audio_inception:audio_inceptionnext", bind=(_variant,),
                   kind="backbone", modalities=("audio",))
    MODELS.declare(f"audio-rep-inceptionnext-{_variant}",
                   "fedssl.models.audio_inception:audio_rep_inceptionnext", bind=(_variant,),
                   kind="backbone", modalities=("audio",), reparameterizable=True)
# Classifiers (task=image-classification), in every mode of REPOPT_MODES.
for _name in ("repopt-vgg-b1", "repopt-vgg-tiny", "repopt-ghost-0.5x", "repopt-ghost-tiny"):
    MODELS.declare(_name, "fedssl.models.repopt:build_repopt_model", bind=(_name,),
                   kind="classifier", family="repopt", modalities=("image",))
MODELS.declare("resnet18", "fedssl.models.resnet:resnet18_backbone",
               kind="backbone", modalities=("image",))
MODELS.declare("resnet34", "fedssl.models.resnet:resnet34_backbone",
               kind="backbone", modalities=("image",))
MODELS.declare("resnet50", "fedssl.models.resnet:resnet50_backbone",
               kind="backbone", modalities=("image",))
MODELS.declare("small-cnn", "fedssl.models.small_cnn:small_cnn",
               kind="backbone", modalities=("image",))
MODELS.declare("vit-tiny", "fedssl.models.vit:vit_tiny", kind="backbone", modalities=("image",))
# Video backbones (task=video-ssl), each in the standard R3D geometry and in CtP's pretraining
# geometry (finer last stages, BN eps 1e-3; ssl-method=ctp needs it). The weights of the two
# load into each other unchanged.
for _name, _builder in (("r3d-tiny", "r3d_tiny_backbone"), ("r3d-18", "r3d_18_backbone")):
    MODELS.declare(_name, f"fedssl.models.video_backbones:{_builder}", bind=(False,),
                   kind="backbone", modalities=("video",), geometry="standard")
    MODELS.declare(f"{_name}-ctp", f"fedssl.models.video_backbones:{_builder}", bind=(True,),
                   kind="backbone", modalities=("video",), geometry="ctp")

SSL_REGISTRY.declare("byol", "fedssl.models.byol:BYOL",
                     objective="feature-matching", views=2,
                     modalities=("image", "audio", "video"))
SSL_REGISTRY.declare("barlowtwins", "fedssl.models.barlowtwins:BarlowTwins",
                     objective="feature-matching", views=2, modalities=("image", "audio"))
SSL_REGISTRY.declare("clip-order", "fedssl.models.clip_order:ClipOrder",
                     objective="predictive", views=1, modalities=("audio",))
SSL_REGISTRY.declare("simclr", "fedssl.models.simclr:SimCLR",
                     objective="feature-matching", views=2,
                     modalities=("image", "audio", "video"))
SSL_REGISTRY.declare("simsiam", "fedssl.models.simsiam:SimSiam",
                     objective="feature-matching", views=2, modalities=("image", "audio"))
# Video pretext tasks (task=video-ssl), as FedVSSL trains them.
SSL_REGISTRY.declare("ctp", "fedssl.models.ctp:CtPModel",
                     objective="predictive", views=1, modalities=("video",))
SSL_REGISTRY.declare("vcop", "fedssl.models.vcop:VCOP",
                     objective="predictive", views=1, modalities=("video",))
SSL_REGISTRY.declare("speed", "fedssl.models.speed:SpeedPrediction",
                     objective="predictive", views=1, modalities=("video",))
