"""Video backbones (R3D-18 in both geometries, the tiny R3D) and Catch-the-Patch.

Small inputs only: R3D-18 is checked at 8x32x32, where CtP's layer-4 stride (2, 1, 1) already
doubles the map's side (2x2 -> 4x4); the 16x112x112 shape is checked arithmetically.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torchvision.models.video import r3d_18 as tv_r3d_18

from fedssl.models.ctp import (
    CTP_CONFIGS,
    CtPModel,
    catch_the_patch,
    ctp_config,
    ctp_loss,
    interpolate_key_frames,
    sample_key_frames,
    trajectory_targets,
)
from fedssl.models.video_backbones import r3d_18, r3d_tiny

CONFIG_32 = CTP_CONFIGS[32]


# ---------------------------------------------------------------- backbones
def test_r3d_18_ctp_geometry_keeps_layer4_resolution_and_uses_bn_eps_1e3():
    torch.manual_seed(0)
    standard, ctp = r3d_18(), r3d_18(ctp_geometry=True)
    x = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        assert standard.eval().forward_features(x).shape == (1, 512, 1, 2, 2)
        assert ctp.eval().forward_features(x).shape == (1, 512, 1, 4, 4)
        assert ctp(x).shape == (1, 512)
    assert ctp.feature_dim == standard.feature_dim == 512
    assert (standard.spatial_stride, ctp.spatial_stride) == (16, 8)
    # CtP's pretraining shape (§1.2) and torchvision's, without running 16x112x112 on a CPU.
    assert ctp.feature_shape(16, 112, 112) == (2, 14, 14)
    assert standard.feature_shape(16, 112, 112) == (2, 7, 7)
    assert ctp.feature_shape(8, 32, 32) == (1, 4, 4)
    bn = [m for m in ctp.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert bn and all(m.eps == 1e-3 for m in bn)
    assert all(m.eps == 1e-5 for m in standard.modules() if isinstance(m, torch.nn.BatchNorm3d))
    assert r3d_18(bn_eps=1e-3).layer1[0].conv1[1].eps == 1e-3


def test_r3d_18_weights_load_across_geometries_and_from_torchvision():
    torch.manual_seed(0)
    standard, ctp = r3d_18(), r3d_18(ctp_geometry=True)
    ctp_state = ctp.state_dict()
    assert {k: v.shape for k, v in ctp_state.items()} == {
        k: v.shape for k, v in standard.state_dict().items()}
    standard.load_state_dict(ctp_state)  # strict: same keys, same shapes
    assert all(torch.equal(v, standard.state_dict()[k]) for k, v in ctp_state.items())
    reference = {k: v for k, v in tv_r3d_18(weights=None).state_dict().items()
                 if not k.startswith("fc.")}
    ctp.load_state_dict(reference)  # torchvision's names (its classifier aside)


def test_r3d_tiny_shapes_and_size():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 32, 32)
    for ctp_geometry, shape in ((False, (2, 2, 2)), (True, (2, 8, 8))):
        net = r3d_tiny(ctp_geometry=ctp_geometry)
        with torch.no_grad():
            assert net.forward_features(x).shape == (2, 128, *shape)
            assert net(x).shape == (2, 128)
        assert net.feature_shape(16, 32, 32) == shape
        assert net.feature_shape(8, 32, 32) == (1, *shape[1:])
        assert 0.85e6 < sum(p.numel() for p in net.parameters()) < 0.95e6  # §0.3: 0.89 M
    assert r3d_tiny(ctp_geometry=True).spatial_stride == 4
    assert r3d_tiny().state_dict().keys() == r3d_tiny(ctp_geometry=True).state_dict().keys()
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        r3d_tiny()(torch.randn(2, 16, 3, 32, 32))


# ---------------------------------------------------------------- the pretext generator
def test_key_frames_first_last_and_inner_counts_follow_the_probabilities():
    rng = np.random.default_rng(0)
    counts = np.zeros(3)
    for _ in range(3000):
        keys = sample_key_frames(rng, 16, (0.5, 0.3, 0.2))
        assert keys[0] == 0 and keys[-1] == 15 and np.all(np.diff(keys) > 0)
        inner = len(keys) - 2
        counts[inner] += 1
        spacing = 16 / (inner + 1)
        for i, key in enumerate(keys[1:-1], start=1):
            assert abs(key - int(spacing * i)) <= int(spacing / 3)
    np.testing.assert_allclose(counts / counts.sum(), (0.5, 0.3, 0.2), atol=0.03)


def test_interpolation_modes_hit_the_key_values():
    values, keys = np.array([0.0, 4.0]), np.array([0, 4])
    np.testing.assert_allclose(interpolate_key_frames(values, keys, [0]), [0, 1, 2, 3, 4])
    np.testing.assert_allclose(interpolate_key_frames(values, keys, [1]),
                               [0, 0.25, 1, 2.25, 4])
    np.testing.assert_allclose(interpolate_key_frames(values, keys, [2]),
                               [0, 1.75, 3, 3.75, 4])


@pytest.mark.parametrize(("size", "seeds"), [(32, range(30)), (112, range(4))])
def test_boxes_inside_the_frame_and_patch_visible_on_frame_0_and_its_source(size, seeds):
    config = ctp_config(size)
    clip = torch.rand(3, 16, size, size)
    for seed in seeds:
        sample = catch_the_patch(clip, seed, config)
        boxes = sample.boxes
        assert boxes.shape == (3, 16, 4) and sample.visible.shape == (3, 16)
        assert boxes.min() >= 0 and boxes[..., 2:].max() <= size
        assert torch.all(boxes[..., 2:] > boxes[..., :2])  # never empty, on every frame
        assert sample.visible[:, 0].all()
        assert sample.visible[torch.arange(3), sample.source_frames].all()
        assert torch.all(trajectory_targets(boxes, config.target_stds)[:, 0] == 0)
        # Outside the boxes pasted on a frame, the frame is untouched.
        outside = torch.ones(16, size, size, dtype=torch.bool)
        for n, t in sample.visible.nonzero().tolist():
            x1, y1, x2, y2 = boxes[n, t].tolist()
            outside[t, y1:y2, x1:x2] = False
        assert torch.equal(sample.clip[:, outside], clip[:, outside])
        assert not torch.equal(sample.clip, clip)


def test_patches_are_cut_from_the_clip_and_blended_convexly():
    # Frame t is the constant t; one patch from source frame s can only blend t with s.
    clip = torch.arange(16.0).view(1, 16, 1, 1).expand(3, 16, 32, 32).contiguous()
    config = replace(CONFIG_32, num_patches=1)
    hidden_frames = 0
    for seed in range(20):
        sample = catch_the_patch(clip, seed, config)
        source = sample.source_frames[0].item()
        for t in range(16):
            x1, y1, x2, y2 = sample.boxes[0, t].tolist()
            region = sample.clip[:, t, y1:y2, x1:x2]
            lo, hi = min(t, source), max(t, source)
            assert region.min() >= lo - 1e-5 and region.max() <= hi + 1e-5
            if not sample.visible[0, t]:
                hidden_frames += 1
                assert torch.equal(sample.clip[:, t], clip[:, t])
    assert hidden_frames > 0  # p 0.2 per frame: some frames hide the patch


def test_same_seed_same_sample_and_the_input_is_not_modified():
    clip = torch.rand(3, 16, 32, 32)
    before = clip.clone()
    a, b = catch_the_patch(clip, 7, CONFIG_32), catch_the_patch(clip, 7, CONFIG_32)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert torch.equal(clip, before)
    c = catch_the_patch(clip, 8, CONFIG_32)
    assert not torch.equal(a.boxes, c.boxes)


def test_targets_and_loss_follow_ctp():
    boxes = torch.tensor([[[0, 0, 4, 2], [1, 2, 9, 4]]])  # (N=1, T=2, 4)
    targets = trajectory_targets(boxes)
    expected = torch.tensor([3.0 / 0.8, 2.0 / 0.8, float(np.log(2)) / 0.04, 0.0])
    torch.testing.assert_close(targets[0, 1], expected)
    assert torch.all(targets[0, 0] == 0)
    # Smooth-L1 (beta 1) summed over coordinates, divided by trajectories x frames (2).
    preds = torch.zeros_like(targets)
    preds[0, 0, 0] = 0.5
    preds[0, 1] = targets[0, 1]
    preds[0, 1, 3] = 3.0
    torch.testing.assert_close(ctp_loss(preds, targets), torch.tensor((0.125 + 2.5) / 2))


# ---------------------------------------------------------------- the model
def test_ctp_model_learns_a_fixed_batch_and_trains_only_backbone_and_head():
    torch.manual_seed(0)
    model = CtPModel(r3d_tiny(ctp_geometry=True), num_frames=16, image_size=32)
    assert model.head.roi_size == 3 and model.head.spatial_scale == 0.25
    assert all(k.startswith(("backbone.", "head.")) for k in model.state_dict())
    assert all(n.startswith(("backbone.", "head.")) for n, _ in model.named_parameters())
    clips, boxes = model.pretext(torch.randn(4, 3, 16, 32, 32), seed=0)
    assert model.predict(clips, boxes).shape == (4, 3, 16, 4)
    # The FCs start at std 0.001 (CtP's init), which plain SGD leaves for many steps; Adam
    # shows within 15 that the loss can be fitted.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = model.loss(clips, boxes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses[0]) and min(losses[-3:]) < 0.8 * losses[0], losses


def test_training_loss_draws_from_torch_rng_and_checks_the_clip_shape():
    torch.manual_seed(0)
    model = CtPModel(r3d_tiny(ctp_geometry=True)).eval()
    x = torch.randn(2, 3, 16, 32, 32)
    with torch.no_grad():
        torch.manual_seed(1)
        first = model.training_loss([x])
        torch.manual_seed(1)
        again = model.training_loss([x])
    assert torch.equal(first, again) and first.item() > 0
    assert model(x).shape == (2, 128)
    with pytest.raises(ValueError, match="num_frames and image_size"):
        model.training_loss([torch.randn(2, 3, 8, 32, 32)])
    with pytest.raises(ValueError, match="presets exist for"):
        CtPModel(r3d_tiny(ctp_geometry=True), image_size=48)


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_two_view_methods_train_on_clip_views_of_a_video_backbone(method):
    """Contrastive video SSL: lightly's losses on two clips of one video, the same wrappers as
    for images and audio; a view of another rank is still refused."""
    from fedssl.models import build_ssl_model

    torch.manual_seed(0)
    model = build_ssl_model(method, r3d_tiny())
    views = [torch.randn(4, 3, 8, 32, 32), torch.randn(4, 3, 8, 32, 32)]
    loss = model.training_loss(views)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match=r"\[B, C, T, H, W\]"):
        model.training_loss([torch.randn(4, 3, 32), torch.randn(4, 3, 32)])


@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_two_view_losses_fall_over_a_few_steps_on_fixed_clips(method):
    from fedssl.models import build_ssl_model

    torch.manual_seed(0)
    model = build_ssl_model(method, r3d_tiny())
    clips = torch.randn(8, 3, 8, 32, 32)
    views = [clips, clips + 0.1 * torch.randn_like(clips)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(8):
        model.on_step_start(step / 8)
        loss = model.training_loss(views)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
