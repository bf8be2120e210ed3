"""One model registry with tags, and one re-parameterisation entry point for every family."""

from __future__ import annotations

import pytest
import torch

from fedssl.models import MODELS, SSL_REGISTRY, build_backbone, reparameterize_model
from fedssl.models.audio_inception import audio_rep_inceptionnext
from fedssl.models.repopt import build_repopt_model, reparameterize_repopt


def test_tags_say_what_each_registered_network_is():
    assert MODELS.tags("small-cnn") == {"kind": "backbone", "modalities": ("image",)}
    assert MODELS.tags("van-lska-tiny")["modalities"] == ("image", "audio")
    assert MODELS.names(family="repopt") == ("repopt-vgg-b1", "repopt-vgg-tiny",
                                             "repopt-ghost-0.5x", "repopt-ghost-tiny")
    assert set(MODELS.names(kind="backbone", modalities="audio")) >= {
        "audio-inceptionnext-tiny", "audio-rep-inceptionnext-tiny", "van-lska-tiny"}
    assert SSL_REGISTRY.tags("clip-order") == {"objective": "predictive", "views": 1,
                                                "modalities": ("audio",)}


def test_one_name_builds_for_each_modality_it_declares():
    torch.manual_seed(0)
    image = build_backbone("van-lska-tiny", image_size=32).eval()
    audio = build_backbone("van-lska-tiny", modality="audio").eval()
    with torch.no_grad():
        assert image(torch.randn(2, 3, 32, 32)).shape == (2, 256)
        assert audio(torch.randn(2, 1, 64, 64)).shape == (2, 256)
    with pytest.raises(ValueError, match="unknown audio backbone 'small-cnn'"):
        build_backbone("small-cnn", modality="audio")
    with pytest.raises(ValueError, match=r"unknown video backbone 'small-cnn'.*'r3d-tiny'"):
        build_backbone("small-cnn", modality="video")
    with pytest.raises(ValueError, match="modality='depth'"):
        build_backbone("small-cnn", modality="depth")


def test_reparameterize_model_fuses_audio_rep_blocks_and_repopt_networks():
    torch.manual_seed(0)
    audio = audio_rep_inceptionnext("tiny", num_classes=0, in_chans=1).eval()
    x = torch.randn(2, 1, 64, 64)
    fused = reparameterize_model(audio)
    assert fused is not audio and any(hasattr(m, "branches") for m in audio.modules())
    with torch.no_grad():
        torch.testing.assert_close(fused(x), audio(x), atol=1e-4, rtol=1e-4)

    csla = build_repopt_model("repopt-vgg-tiny", mode="csla", num_classes=10).eval()
    images = torch.randn(2, 3, 32, 32)
    plain = reparameterize_model(csla)
    assert plain.mode == "target" and csla.mode == "csla"
    with torch.no_grad():
        torch.testing.assert_close(plain(images), reparameterize_repopt(csla)(images))
        torch.testing.assert_close(plain(images), csla(images), atol=1e-4, rtol=1e-4)


def test_a_network_without_reparameterisable_blocks_is_refused():
    with pytest.raises(ValueError, match="nothing to fuse"):
        reparameterize_model(build_backbone("small-cnn"))
