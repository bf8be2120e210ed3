"""SSL methods: losses that optimise, BYOL's EMA target, state_dict dtypes and transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fedssl.models import (
    BYOL,
    NORMALIZE,
    SSL_METHODS,
    SSL_REGISTRY,
    SSLModel,
    build_backbone,
    build_eval_transform,
    build_ssl_model,
    build_ssl_transform,
)

N_IMAGES = 24
STEPS = 30


def _images(n: int = N_IMAGES, size: int = 32, seed: int = 0) -> list[Image.Image]:
    """Tiny synthetic RGB images: smooth random colour blobs plus noise, so crops differ."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, 4, 4, 3)).astype(np.uint8)
    images = []
    for block in coarse:
        base = np.asarray(Image.fromarray(block).resize((size, size), Image.BILINEAR))
        noise = rng.integers(-20, 21, size=base.shape)
        images.append(Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)))
    return images


def _batch_views(method: str, images: list[Image.Image]) -> list[torch.Tensor]:
    transform = build_ssl_transform(method, image_size=32)
    pairs = [transform(img) for img in images]
    return [torch.stack([p[i] for p in pairs]) for i in range(2)]


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)  # lightly's solarisation (BYOL view 2) draws from numpy


def test_method_names_are_the_documented_ones() -> None:
    assert SSL_METHODS == ("simclr", "byol", "simsiam", "barlowtwins")
    assert set(SSL_REGISTRY.names(objective="feature-matching")) == set(SSL_METHODS)
    assert SSL_REGISTRY.names(objective="predictive", modalities="audio") == ("clip-order",)
    assert SSL_REGISTRY.names(objective="predictive", modalities="video") == (
        "ctp", "vcop", "speed")
    assert set(SSL_REGISTRY.names(modalities="video")) == {"simclr", "byol", "ctp", "vcop",
                                                           "speed"}


@pytest.mark.parametrize("method", SSL_METHODS)
def test_loss_decreases_when_optimised(method: str) -> None:
    _seed(0)
    views = _batch_views(method, _images())
    model = build_ssl_model(method, build_backbone("small-cnn"), projection_dim=64, hidden_dim=128)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(STEPS):
        model.on_step_start(step / (STEPS - 1))
        loss = model.training_loss(views)
        assert loss.dim() == 0 and torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = model.training_loss(views).item()
    initial = losses[0]
    # A clear margin: 10% of the initial loss's size, and at least 0.05 (the cosine losses
    # live in [-1, 1]).
    margin = max(0.05, 0.1 * abs(initial))
    assert final < initial - margin, (method, losses)


def test_byol_target_moves_towards_online_branch() -> None:
    _seed(0)
    model = build_ssl_model(
        "byol", build_backbone("small-cnn"), projection_dim=32, hidden_dim=64, byol_momentum=0.9
    )
    assert isinstance(model, BYOL)
    target_params = list(model.backbone_momentum.parameters())
    assert target_params and not any(p.requires_grad for p in target_params)

    # Give the online branch different weights from the target, then take a step.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    views = [torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)]
    model.training_loss(views).backward()
    assert all(p.grad is None for p in target_params)
    optimizer.step()

    def distance() -> torch.Tensor:
        pairs = [
            *zip(model.backbone.parameters(), model.backbone_momentum.parameters(), strict=True),
            *zip(
                model.projection_head.parameters(),
                model.projection_head_momentum.parameters(),
                strict=True,
            ),
        ]
        return torch.sqrt(sum(((a - b) ** 2).sum() for a, b in pairs))

    before = distance()
    assert before > 0
    model.on_step_start(0.0)  # momentum 0.9: target moves 10% of the way
    after = distance()
    assert torch.isclose(after, 0.9 * before, rtol=1e-4)

    online_before = [p.detach().clone() for p in model.backbone.parameters()]
    model.on_step_start(1.0)  # momentum 1.0 at the end of the schedule: target frozen
    assert torch.isclose(distance(), after, rtol=1e-6)
    # The EMA never touches the online branch.
    assert all(
        torch.equal(a, b) for a, b in zip(online_before, model.backbone.parameters(), strict=True)
    )


def test_byol_momentum_follows_cosine_schedule() -> None:
    model = build_ssl_model("byol", build_backbone("small-cnn"), byol_momentum=0.99)
    assert isinstance(model, BYOL)
    assert model.momentum_at(0.0) == pytest.approx(0.99)
    assert model.momentum_at(0.5) == pytest.approx(0.995, abs=1e-5)
    assert model.momentum_at(1.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="progress"):
        model.on_step_start(1.5)


@pytest.mark.parametrize("method", SSL_METHODS)
def test_state_dict_is_averageable(method: str) -> None:
    model = build_ssl_model(method, build_backbone("small-cnn"))
    state = model.state_dict()
    assert all(t.dtype in (torch.float32, torch.int64) for t in state.values())
    assert any(k.startswith("backbone.") for k in state)
    if method == "byol":
        assert any(k.startswith("backbone_momentum.") for k in state)
        assert any(k.startswith("projection_head_momentum.") for k in state)
    # The server's average of two models loads back into a model of the same method.
    other = build_ssl_model(method, build_backbone("small-cnn")).state_dict()
    averaged = {k: (v + other[k]) / 2 if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(averaged)


@pytest.mark.parametrize("backbone_name", ["resnet18", "vit-tiny"])
def test_methods_work_with_other_backbones(backbone_name: str) -> None:
    _seed(0)
    model = build_ssl_model("byol", build_backbone(backbone_name))
    views = [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)]
    model.on_step_start(0.0)
    loss = model.training_loss(views)
    loss.backward()
    assert torch.isfinite(loss)
    assert model(views[0]).shape == (4, model.backbone.feature_dim)


def test_ssl_model_is_abstract_and_keeps_the_backbone() -> None:
    with pytest.raises(TypeError):
        SSLModel(build_backbone("small-cnn"))  # type: ignore[abstract]
    backbone = build_backbone("small-cnn")
    assert build_ssl_model("simsiam", backbone).backbone is backbone


def test_unknown_method_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown SSL method 'moco'") as info:
        build_ssl_model("moco", build_backbone("small-cnn"))
    for name in SSL_METHODS:
        assert repr(name) in str(info.value)
    with pytest.raises(ValueError, match="unknown SSL method"):
        build_ssl_transform("moco")


def test_duplicate_method_registration_is_refused() -> None:
    with pytest.raises(ValueError, match="already registered"):
        SSL_REGISTRY.register("simclr")


def test_invalid_options_and_views_are_refused() -> None:
    backbone = build_backbone("small-cnn")
    with pytest.raises(ValueError, match="temperature"):
        build_ssl_model("simclr", backbone, temperature=0.0)
    with pytest.raises(ValueError, match="byol_momentum"):
        build_ssl_model("byol", backbone, byol_momentum=1.5)
    model = build_ssl_model("simclr", backbone)
    x = torch.randn(4, 3, 32, 32)
    with pytest.raises(ValueError, match="2 views"):
        model.training_loss([x, x, x])
    with pytest.raises(ValueError, match="feature_dim"):
        build_ssl_model("simclr", torch.nn.Linear(3, 3))


@pytest.mark.parametrize("method", SSL_METHODS)
def test_transform_gives_two_normalised_views(method: str) -> None:
    _seed(0)
    image = _images(1, size=40)[0]  # not 32: the crop must resize to image_size
    views = build_ssl_transform(method, image_size=32)(image)
    assert isinstance(views, list) and len(views) == 2
    for view in views:
        assert view.shape == (3, 32, 32) and view.dtype == torch.float32
    # Normalised, not in [0, 1]: ImageNet statistics map 0 to about -2.1.
    assert min(v.min().item() for v in views) < 0
    assert not torch.equal(views[0], views[1])


@pytest.mark.parametrize("method", SSL_METHODS)
def test_same_seed_gives_identical_views(method: str) -> None:
    images = _images(4)
    _seed(7)
    first = _batch_views(method, images)
    _seed(7)
    second = _batch_views(method, images)
    _seed(8)
    third = _batch_views(method, images)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], third[0])


@pytest.mark.parametrize("method", ["simclr", "simsiam"])
def test_views_depend_only_on_torch_seed_for_small_images(method: str) -> None:
    # At 32 px these methods use no numpy-driven augmentation (blur is off).
    images = _images(4)
    torch.manual_seed(5)
    np.random.seed(1)
    first = _batch_views(method, images)
    torch.manual_seed(5)
    np.random.seed(2)
    second = _batch_views(method, images)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_eval_transform_is_totensor_and_normalise() -> None:
    image = _images(1)[0]
    out = build_eval_transform(image_size=32)(image)
    expected = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(NORMALIZE["mean"]).view(3, 1, 1)
    std = torch.tensor(NORMALIZE["std"]).view(3, 1, 1)
    torch.testing.assert_close(out, (expected - mean) / std)
    bigger = build_eval_transform(image_size=32)(_images(1, size=48)[0])
    assert bigger.shape == (3, 32, 32)
