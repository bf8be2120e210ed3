"""One entry point for inference-time re-parameterisation, whatever the family (timm's
``reparameterize_model`` convention): multi-branch training-time blocks are folded into the
plain kernels of the deployable network."""

from __future__ import annotations

from typing import TypeVar

from torch import nn

from fedssl.models.reparam import reparameterizable_modules, reparameterize
from fedssl.models.repopt import reparameterize_repopt
from fedssl.models.repopt_blocks import RepOptBlock

__all__ = ["reparameterize_model"]

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def reparameterize_model(model: ModuleT) -> ModuleT:
    """A fused copy of ``model``; ``model`` itself is left as it is.

    - RepOpt networks and blocks (:class:`~fedssl.models.repopt_blocks.RepOptBlock`, modes
      ``rep``/``csla``/``hs``) become the plain ``target`` network of the same module paths
      (:func:`~fedssl.models.repopt.reparameterize_repopt`; train/eval flags kept; a target
      model gives a copy).
    - Modules with a ``reparameterize()`` method (AudioRepInceptionNeXt's multi-scale
      depthwise mixers and any block following that contract) are fused in an eval-mode copy
      (:func:`~fedssl.models.reparam.reparameterize`).

    Raises
    ------
    ValueError
        If ``model`` holds neither kind: fusing it would silently do nothing, which usually
        means the wrong model was passed.
    """
    if any(isinstance(m, RepOptBlock) for m in model.modules()):
        return reparameterize_repopt(model)
    if reparameterizable_modules(model):
        return reparameterize(model)
    raise ValueError(f"{type(model).__name__} has no re-parameterisable block (no RepOpt block "
                     "and no module with a reparameterize() method); nothing to fuse")
