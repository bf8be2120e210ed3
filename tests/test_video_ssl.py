"""task=video-ssl: the config checks, the views each method trains on, and the retrieval
features (in process; the federated run is in test_e2e.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedssl.clients.video_ssl import clip_tensor
from fedssl.common.retrieval import retrieval_clip_starts
from fedssl.compose import task_of, validate
from fedssl.config import ConfigError, RunConfig
from fedssl.datasets.video_loader import VideoArrays
from fedssl.models.speed import SPEED_STRIDES
from fedssl.models.vcop import vcop_orders

VIDEO = {"task": "video-ssl", "dataset": "motion-digits", "model": "r3d-tiny"}


def _cfg(**values) -> RunConfig:
    return RunConfig(**(VIDEO | values))


def _timed_videos(n: int = 4, frames: int = 64, side: int = 32) -> torch.Tensor:
    """uint8 videos whose frame ``t`` has every pixel equal to ``t``."""
    t = torch.arange(frames, dtype=torch.uint8).view(1, frames, 1, 1, 1)
    return t.expand(n, frames, side, side, 3).clone()


def _frame_index(clips: torch.Tensor) -> torch.Tensor:
    """The frame numbers a batch of [..., 3, T, H, W] clips in [-1, 1] was cut from."""
    return ((clips[..., 0, :, 0, 0] + 1.0) * 127.5).round().long()


@pytest.mark.parametrize(("values", "fragment"), [
    ({"ssl_method": "ctp"}, "use a model in CtP's geometry (r3d-tiny-ctp, r3d-18-ctp)"),
    ({"ssl_method": "ctp", "model": "r3d-tiny-ctp", "image_size": 48}, "image-size 32 or 112"),
    ({"ssl_method": "clip-order"}, "ssl-method='clip-order'"),
    ({"model": "small-cnn"}, "model='small-cnn'"),
    ({"dataset": "embedded-digits"}, "dataset='embedded-digits' is image"),
])
def test_configs_that_do_not_fit_video_ssl_are_refused_naming_what_fits(values, fragment):
    with pytest.raises(ConfigError, match="task='video-ssl' does not fit") as err:
        validate(_cfg(**values))
    assert fragment in str(err.value)


@pytest.mark.parametrize(("method", "model"), [
    ("ctp", "r3d-tiny-ctp"), ("vcop", "r3d-tiny"), ("speed", "r3d-18"), ("simclr", "r3d-tiny"),
    ("byol", "r3d-18-ctp"),
])
def test_every_video_method_validates(method, model):
    validate(_cfg(ssl_method=method, model=model))


def test_vcop_views_are_the_shuffled_clips_with_their_order():
    cfg = _cfg(ssl_method="vcop", clip_frames=8)
    torch.manual_seed(0)
    tuples, orders = task_of(cfg).batch_views(cfg, torch.device("cpu"))((_timed_videos(),))
    assert tuples.shape == (4, 3, 3, 8, 32, 32) and orders.shape == (4,)
    for clips, label in zip(_frame_index(tuples), orders.tolist(), strict=True):
        starts = clips[:, 0]
        assert (clips == starts[:, None] + torch.arange(8)).all()  # contiguous clips
        in_time_order = torch.argsort(torch.argsort(starts)).tolist()
        # Position j holds clip order[j] of the tuple in time order.
        assert tuple(in_time_order) == vcop_orders(3)[label]


def test_speed_views_play_at_the_labelled_stride():
    cfg = _cfg(ssl_method="speed", clip_frames=8)
    torch.manual_seed(1)
    clips, rates = task_of(cfg).batch_views(cfg, torch.device("cpu"))((_timed_videos(8),))
    assert clips.shape == (8, 3, 8, 32, 32)
    for frames, label in zip(_frame_index(clips), rates.tolist(), strict=True):
        # Frame i is the start plus i strides, clamped to the video (0 static, < 0 reversed).
        expected = (frames[0] + SPEED_STRIDES[label] * torch.arange(8)).clamp(0, 63)
        assert (frames == expected).all(), (SPEED_STRIDES[label], frames.tolist())
    assert len(set(rates.tolist())) > 1


def test_ctp_and_two_view_clips_are_contiguous_windows():
    videos = _timed_videos()
    for method, model, count in (("ctp", "r3d-tiny-ctp", 1), ("simclr", "r3d-tiny", 2)):
        cfg = _cfg(ssl_method=method, model=model, clip_frames=16, crop_min_scale=1.0)
        torch.manual_seed(2)
        views = task_of(cfg).batch_views(cfg, torch.device("cpu"))((videos,))
        assert len(views) == count
        for clips in views:
            assert clips.shape == (4, 3, 16, 32, 32)
            frames = _frame_index(clips)
            assert (frames == frames[:, :1] + torch.arange(16)).all()


@pytest.mark.parametrize("pooling", ["maxpool122-flatten", "gap"])
def test_retrieval_features_pool_ten_clips_per_video_and_report_recall_at_k(pooling):
    cfg = _cfg(ssl_method="simclr", clip_frames=16, retrieval_pooling=pooling)
    task = task_of(cfg)
    rng = np.random.default_rng(0)
    data = VideoArrays(rng.integers(0, 255, (6, 24, 32, 32, 3), dtype=np.uint8),
                       np.array([0, 1, 2, 0, 1, 2]), 3, "toy/train")
    encoder = task.build_model(cfg).backbone
    features = task.features(encoder, cfg, data)
    maps = encoder.feature_shape(16, 32, 32)  # (T', H', W') = (2, 2, 2)
    if pooling == "gap":
        assert features.shape == (6, encoder.feature_dim)
        # The mean over the ten clips of the backbone's own pooled output, per video.
        starts = retrieval_clip_starts(24, num_clips=10, clip_len=16)
        first = torch.from_numpy(data.clips[0][starts[:, None] + np.arange(16)])
        with torch.no_grad():
            expected = encoder.eval()(clip_tensor(first, torch.device("cpu"), 32)).mean(0)
        torch.testing.assert_close(features[0], expected, rtol=1e-4, atol=1e-5)
    else:  # VCOP: max-pool (1, 2, 2), flatten
        assert features.shape == (6, encoder.feature_dim * maps[0] * (maps[1] // 2)
                                  * (maps[2] // 2))
    scores = task.monitor(features, data, features, data, cfg)
    assert set(scores) == {"retrieval-r1", "retrieval-r5", "retrieval-r10", "retrieval-r20",
                           "retrieval-r50", "knn-accuracy"}
    assert scores["retrieval-r1"] == 1.0  # each video finds itself


def test_config_pooling_choices_are_the_retrieval_ones():
    from fedssl.common.retrieval import CLIP_MAP_POOLINGS
    from fedssl.config import CLIP_POOLINGS

    assert CLIP_POOLINGS == CLIP_MAP_POOLINGS
