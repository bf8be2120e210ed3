"""Backbone registry and shapes for every built-in backbone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

import fedssl.models as models
from fedssl.models import BACKBONE_REGISTRY, BACKBONES, Registry, build_backbone

ROOT = Path(__file__).resolve().parent.parent
EXPECTED_DIMS = {
    "small-cnn": 256,
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "vit-tiny": 192,
    "van-lska-tiny": 256,
    "van-lska-small": 512,
    "van-lska-base": 512,
}


def test_backbone_names_are_the_documented_ones() -> None:
    assert BACKBONES == ("small-cnn", "resnet18", "resnet34", "resnet50", "vit-tiny",
                         "van-lska-tiny", "van-lska-small", "van-lska-base")
    assert set(BACKBONE_REGISTRY.names(kind="backbone", modalities="image")) == set(BACKBONES)


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_output_shape(name: str) -> None:
    torch.manual_seed(0)
    backbone = build_backbone(name, image_size=32)
    assert backbone.feature_dim == EXPECTED_DIMS[name]
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, backbone.feature_dim)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_backbone_construction_is_seeded() -> None:
    torch.manual_seed(3)
    a = build_backbone("small-cnn").state_dict()
    torch.manual_seed(3)
    b = build_backbone("small-cnn").state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resnet_stem_depends_on_image_size() -> None:
    name = "resnet18"
    small = build_backbone(name, image_size=32)
    assert small.conv1.kernel_size == (3, 3) and small.conv1.stride == (1, 1)
    assert isinstance(small.maxpool, nn.Identity)
    assert isinstance(small.fc, nn.Identity)

    large = build_backbone(name, image_size=96)
    assert large.conv1.kernel_size == (7, 7) and large.conv1.stride == (2, 2)
    assert isinstance(large.maxpool, nn.MaxPool2d)
    large.eval()
    with torch.no_grad():
        assert large(torch.randn(1, 3, 96, 96)).shape == (1, large.feature_dim)


def test_vit_patch_size_scales_with_image_size() -> None:
    vit = build_backbone("vit-tiny", image_size=64)
    assert vit.patch_size == 8
    assert vit.hidden_dim == 192 and len(vit.encoder.layers) == 12
    vit.eval()
    with torch.no_grad():
        assert vit(torch.randn(1, 3, 64, 64)).shape == (1, 192)
    with pytest.raises(ValueError, match="image_size"):
        build_backbone("vit-tiny", image_size=33)  # patch 4 does not divide 33


def test_unknown_backbone_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'resnet101'") as info:
        build_backbone("resnet101")
    for name in BACKBONES:
        assert repr(name) in str(info.value)


def test_invalid_image_size_is_refused() -> None:
    with pytest.raises(ValueError, match="image_size"):
        build_backbone("small-cnn", image_size=0)


def test_duplicate_backbone_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        BACKBONE_REGISTRY.register("small-cnn")
    assert BACKBONE_REGISTRY.get("small-cnn") is models.small_cnn.small_cnn


def test_registry_keeps_order_and_refuses_duplicates() -> None:
    registry: Registry[int] = Registry("thing")
    registry.register("b")(1)
    registry.register("a")(2)
    assert registry.names() == ("b", "a")
    assert registry.get("a") == 2 and "b" in registry and len(registry) == 2
    decorator = registry.register("c")
    registry.register("c")(3)
    with pytest.raises(ValueError, match="already registered"):
        decorator(4)  # a decorator obtained earlier must not overwrite either
    assert registry.get("c") == 3
    with pytest.raises(ValueError, match="unknown thing 'z'; valid names: 'b', 'a', 'c'"):
        registry.get("z")


def test_models_package_does_not_import_flwr() -> None:
    # Static check: other test modules in this session may import flwr themselves, so
    # sys.modules says nothing; a fresh interpreter would cost seconds.
    package = ROOT / "fedssl" / "models"
    sources = sorted(package.glob("*.py"))
    assert sources
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "flwr" or n.startswith("flwr.") for n in names), path
