"""Video pretexts (VCOP, speed prediction) and the VCOP clip-retrieval protocol."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from fedssl.common.retrieval import (
    VIDEO_RETRIEVAL_KS,
    pool_clip_maps,
    pool_video_features,
    retrieval_clip_starts,
    video_retrieval_recall,
)
from fedssl.models.base import SSLOptions
from fedssl.models.speed import (
    SPEED_STRIDES,
    SpeedPrediction,
    sample_speed_clip,
    speed_indices,
)
from fedssl.models.vcop import VCOP, sample_vcop_tuple, vcop_orders, vcop_tuple_indices


class TinyConv3d(nn.Module):
    """Two 3D convs and global average pooling: ``(B, 3, T, H, W)`` -> ``(B, 16)``."""

    feature_dim = 16

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(3, 8, 3, padding=1), nn.ReLU(),
            nn.Conv3d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool3d(1), nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _time_valued_video(num_frames: int, *, as_tensor: bool):
    """A video whose frame t is filled with the value t: ``(T, 3, 2, 2)``."""
    values = np.arange(num_frames, dtype=np.float32)[:, None, None, None]
    video = np.broadcast_to(values, (num_frames, 3, 2, 2)).copy()
    return torch.from_numpy(video) if as_tensor else video


def _ramp_videos(num_videos: int, num_frames: int) -> torch.Tensor:
    """``(V, T, 3, 8, 8)`` videos fading in a random pattern over time, plus a little noise.

    Brightness grows with time, so clip order and playback stride show in the pixels.
    """
    gen = torch.Generator().manual_seed(0)
    patterns = torch.rand(num_videos, 1, 3, 8, 8, generator=gen)
    ramp = torch.linspace(0, 1, num_frames)[None, :, None, None, None]
    return ramp * patterns + 0.05 * torch.rand(num_videos, num_frames, 3, 8, 8, generator=gen)


def _fits(model: nn.Module, batch: list[torch.Tensor], *, steps: int = 40) -> tuple[float, float]:
    """Eval-mode loss on ``batch`` before and after ``steps`` Adam steps on it."""
    def eval_loss() -> float:
        model.eval()
        with torch.no_grad():
            value = float(model.training_loss(batch))
        model.train()
        return value

    before = eval_loss()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimiser.zero_grad()
        model.training_loss(batch).backward()
        optimiser.step()
    return before, eval_loss()


# ---------------------------------------------------------------- VCOP sampler
@pytest.mark.parametrize("as_tensor", [False, True])
def test_vcop_label_is_the_permutation_applied(as_tensor):
    video = _time_valued_video(40, as_tensor=as_tensor)
    orders = vcop_orders(3)
    seen = set()
    for seed in range(60):
        clips, label = sample_vcop_tuple(video, clip_len=8, interval=4, seed=seed)
        assert tuple(clips.shape) == (3, 8, 3, 2, 2)
        values = np.asarray(clips)[:, :, 0, 0, 0]  # (clip, frame): the source frame numbers
        # Each clip is 8 consecutive frames; in time order the clips are 8 + 4 frames apart.
        assert (np.diff(values, axis=1) == 1).all()
        starts = values[:, 0]
        assert (np.diff(np.sort(starts)) == 12).all()
        # Position j shows the clip of time rank orders[label][j].
        ranks = tuple(int(r) for r in np.argsort(np.argsort(starts)))
        assert ranks == orders[label]
        seen.add(label)
    assert seen == set(range(6))
    assert orders[0] == (0, 1, 2)


def test_vcop_tuple_start_is_uniform_over_the_valid_range():
    starts = {int(vcop_tuple_indices(40, clip_len=8, interval=4, seed=s)[0, 0])
              for s in range(200)}
    assert starts == set(range(40 - (3 * 8 + 2 * 4) + 1))  # 0..8


def test_vcop_short_videos_shrink_the_interval_then_fall_back_to_even_offsets():
    # 30 frames: 6 spare frames allow an interval of 3, not 4.
    indices = vcop_tuple_indices(30, clip_len=8, interval=4, seed=0)
    assert (np.diff(indices[:, 0]) == 11).all() and indices.max() <= 29
    # 20 frames < 3 clips: ticks of 13/3 frames, offsets int(13/6 + 13/3 i) = 2, 6, 10.
    indices = vcop_tuple_indices(20, clip_len=8, interval=4, seed=0)
    assert indices.tolist() == [list(range(o, o + 8)) for o in (2, 6, 10)]
    # 5 frames < 1 clip: every clip starts at 0 and repeats the last frame.
    indices = vcop_tuple_indices(5, clip_len=8, interval=4, seed=0)
    assert indices.tolist() == [[0, 1, 2, 3, 4, 4, 4, 4]] * 3


def test_vcop_sampler_is_deterministic_by_seed():
    video = _time_valued_video(64, as_tensor=False)
    a, label_a = sample_vcop_tuple(video, seed=7)
    b, label_b = sample_vcop_tuple(video, seed=7)
    assert label_a == label_b and np.array_equal(a, b)
    assert len({vcop_tuple_indices(80, seed=s).tobytes() for s in range(20)}) > 5  # 17 starts
    # A generator is used, not reseeded: two draws from one generator differ in general.
    rng = np.random.default_rng(3)
    draws = [sample_vcop_tuple(video, seed=rng)[1] for _ in range(12)]
    assert len(set(draws)) > 1
    assert draws == [sample_vcop_tuple(video, seed=g)[1]
                     for g in [np.random.default_rng(3)] * 12]


def test_vcop_sampler_rejects_bad_settings():
    with pytest.raises(ValueError, match="num_clips >= 2"):
        vcop_tuple_indices(40, num_clips=1)
    with pytest.raises(ValueError, match="interval >= 0"):
        vcop_tuple_indices(40, interval=-1)


# ---------------------------------------------------------------- VCOP model
def test_vcop_head_shapes_init_and_backbone_prefix():
    torch.manual_seed(0)
    model = VCOP(TinyConv3d(), hidden_dim=32)
    clips = torch.randn(2, 3, 3, 4, 8, 8)
    assert model.logits(clips).shape == (2, 6)
    assert model(clips[:, 0]).shape == (2, 16)
    assert model.classifier[1].weight.std() < 0.01
    assert [tuple(o) for o in model.orders.tolist()] == vcop_orders(3)
    backbone_keys = {k for k in model.state_dict() if k.startswith("backbone.")}
    assert backbone_keys == {f"backbone.{k}" for k in model.backbone.state_dict()}
    assert VCOP.from_options(TinyConv3d(), SSLOptions(hidden_dim=8)).pair[0].out_features == 8
    with pytest.raises(ValueError, match=r"\(B, 3, C, T, H, W\)"):
        model.logits(torch.randn(2, 3, 4, 8, 8))


def test_vcop_logits_follow_the_clip_order_given():
    # The head reads the clips in the order given: swapping two clips changes the logits,
    # and is the same as ClipOrder's head under that permutation of the ordered tuple.
    torch.manual_seed(0)
    model = VCOP(TinyConv3d(), hidden_dim=32).eval()
    clips = torch.randn(1, 3, 3, 4, 8, 8)
    swapped = clips[:, [1, 0, 2]]
    assert not torch.allclose(model.logits(clips), model.logits(swapped))
    joined = clips.movedim(1, 2).flatten(2, 3)
    order = vcop_orders(3).index((1, 0, 2))
    torch.testing.assert_close(model.logits(swapped),
                               model.order_logits(joined, torch.tensor([order])))


def test_vcop_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    videos = _ramp_videos(6, 20)  # (video, T, C, H, W)
    tuples = [sample_vcop_tuple(v, clip_len=4, interval=2, seed=rng) for v in videos]
    clips = torch.stack([c for c, _ in tuples]).transpose(2, 3)  # (B, n, C, T, H, W)
    labels = torch.tensor([label for _, label in tuples])
    model = VCOP(TinyConv3d(), hidden_dim=32)
    before, after = _fits(model, [clips, labels])
    assert before == pytest.approx(math.log(6), abs=0.05)
    assert after < 0.5 * before


# ---------------------------------------------------------------- speed sampler
@pytest.mark.parametrize("as_tensor", [False, True])
def test_speed_label_is_the_stride_applied(as_tensor):
    video = _time_valued_video(64, as_tensor=as_tensor)  # 4 · 7 + 1 = 29 <= 64: no clamping
    seen = set()
    for seed in range(100):
        clip, label = sample_speed_clip(video, clip_len=8, seed=seed)
        assert tuple(clip.shape) == (8, 3, 2, 2)
        steps = np.diff(np.asarray(clip)[:, 0, 0, 0])
        assert (steps == steps[0]).all()  # one constant stride, reversed when negative
        assert SPEED_STRIDES[label] == steps[0]
        seen.add(label)
    assert seen == set(range(7))
    assert SPEED_STRIDES == (-4, -2, -1, 0, 1, 2, 4)


def test_speed_clamps_past_the_end_and_reverses_after_clamping():
    clips = {}
    for seed in range(20):
        indices, label = speed_indices(10, clip_len=8, strides=(4, -4), seed=seed)
        clips[label] = indices.tolist()
    assert clips == {0: [0, 4, 8, 9, 9, 9, 9, 9], 1: [9, 9, 9, 9, 9, 8, 4, 0]}
    starts: dict[int, set[int]] = {0: set(), 1: set()}
    for seed in range(200):
        indices, label = speed_indices(10, clip_len=8, strides=(0, 1), seed=seed)
        starts[label].add(int(indices[0]))
        assert len(set(indices.tolist())) == (1 if label == 0 else 8)
    assert starts == {0: set(range(10)), 1: {0, 1, 2}}  # static: any frame; stride 1: span 8


def test_speed_sampler_is_deterministic_by_seed():
    video = _time_valued_video(64, as_tensor=True)
    a, label_a = sample_speed_clip(video, seed=11)
    b, label_b = sample_speed_clip(video, seed=11)
    assert label_a == label_b and torch.equal(a, b)
    assert len({speed_indices(64, seed=s)[0].tobytes() for s in range(20)}) > 10
    with pytest.raises(ValueError, match="distinct"):
        speed_indices(64, strides=(1, 1))


# ---------------------------------------------------------------- speed model
def test_speed_head_and_backbone_prefix():
    model = SpeedPrediction(TinyConv3d())
    assert model.head[1].out_features == 7 and model.head[1].weight.std() < 0.01
    assert model.logits(torch.randn(2, 3, 4, 8, 8)).shape == (2, 7)
    assert {k for k in model.state_dict() if not k.startswith("backbone.")} == {
        "head.1.weight", "head.1.bias"}
    assert SpeedPrediction.from_options(TinyConv3d(), SSLOptions()).strides == SPEED_STRIDES


def test_speed_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    videos = _ramp_videos(7, 32)
    pairs = [sample_speed_clip(v, clip_len=4, seed=rng) for v in videos]
    clips = torch.stack([c for c, _ in pairs]).transpose(1, 2)  # (B, C, T, H, W)
    labels = torch.tensor([label for _, label in pairs])
    # Dropout off: a 16-d feature under dropout 0.5 needs many more steps to fit.
    before, after = _fits(SpeedPrediction(TinyConv3d(), dropout=0.0), [clips, labels])
    assert before == pytest.approx(math.log(7), abs=0.05)
    assert after < 0.5 * before


# ---------------------------------------------------------------- retrieval
def _videos(angles_deg, norms, *, clips=10, swing=5.0):
    """10 clip features per video whose mean is ``norm · (cos θ, sin θ)``.

    The clips swing by ± ``swing`` across the mean direction, so a single clip, or any
    pooling other than the mean, points elsewhere.
    """
    out = []
    for angle, norm in zip(angles_deg, norms, strict=True):
        theta = math.radians(angle)
        mean = norm * torch.tensor([math.cos(theta), math.sin(theta)], dtype=torch.float64)
        across = swing * torch.tensor([-math.sin(theta), math.cos(theta)], dtype=torch.float64)
        signs = torch.tensor([1.0, -1.0] * (clips // 2), dtype=torch.float64)[:, None]
        out.append(mean + signs * across)
    return torch.cat(out)  # (V · clips, 2), video-major


def test_video_retrieval_against_hand_computed_neighbours():
    # Gallery (train) videos: angle of the mean clip feature, its norm and the class.
    bank = _videos([0, 90, 180, 45, 270, 135], [1, 10, 1, 1, 1, 2])
    bank_labels = np.array([0, 1, 2, 1, 3, 4])
    # Queries (test): 10° (class 1): gallery by angle 0(0) 45(1) ... -> miss@1, hit@5.
    # 100° (class 4): 90(1) 135(4) -> miss@1, hit@5. 200° (class 2): 180(2) -> hit@1.
    # 300° (class 4): 270(3) 0(0) 45(1) 180(2) 90(1) 135(4) -> first at rank 6, miss@5.
    queries = _videos([10, 100, 200, 300], [1, 1, 3, 0.5])
    query_labels = np.array([1, 4, 2, 4])
    recall = video_retrieval_recall(queries, query_labels, bank, bank_labels)
    assert recall == {1: 0.25, 5: 0.75, 10: 1.0, 20: 1.0, 50: 1.0}
    assert tuple(recall) == VIDEO_RETRIEVAL_KS
    # The same clips as (V, 10, D) give the same answer.
    assert video_retrieval_recall(queries.view(4, 10, 2), query_labels, bank.view(6, 10, 2),
                                  bank_labels) == recall
    # Cosine, not the dot product: by dot product the long 90° gallery video (class 1) is
    # nearest to the 10° query, a hit at 1.
    pooled_q = pool_video_features(queries)
    assert int((pooled_q[0] @ pool_video_features(bank).T).argmax()) == 1


def test_video_pooling_and_shape_errors():
    clips = torch.arange(12, dtype=torch.float32).view(6, 2)  # 2 videos of 3 clips
    torch.testing.assert_close(pool_video_features(clips, clips_per_video=3),
                               torch.tensor([[2.0, 3.0], [8.0, 9.0]]))
    torch.testing.assert_close(pool_video_features(clips, clips_per_video=3, pooling="max"),
                               torch.tensor([[4.0, 5.0], [10.0, 11.0]]))
    with pytest.raises(ValueError, match="whole number of videos"):
        pool_video_features(clips, clips_per_video=4)
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool_video_features(clips, clips_per_video=3, pooling="median")
    with pytest.raises(ValueError, match="one class per video"):
        video_retrieval_recall(clips, np.zeros(6), clips, np.zeros(2), clips_per_video=3)


def test_clip_map_pooling():
    maps = torch.arange(2 * 4 * 2 * 7 * 7, dtype=torch.float32).view(2, 4, 2, 7, 7)
    flat = pool_clip_maps(maps)
    assert flat.shape == (2, 4 * 2 * 3 * 3)  # R3D-18's 512·2·3·3 = 9216 at 4 channels
    # Max of each 2×2 block is its bottom-right element; the 7th row and column are dropped.
    assert flat[0, 0] == maps[0, 0, 0, 1, 1] and flat[0, 2] == maps[0, 0, 0, 1, 5]
    torch.testing.assert_close(pool_clip_maps(maps, "gap"), maps.mean(dim=(2, 3, 4)))
    with pytest.raises(ValueError, match="gap"):
        pool_clip_maps(maps[..., :1, :1])
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool_clip_maps(maps, "avg")


def test_retrieval_clip_starts_follow_vcop_centres():
    # Centres linspace(8, 56, 10) -> starts 0, 5.33, ..., 48, rounded down.
    assert retrieval_clip_starts(64).tolist() == [0, 5, 10, 16, 21, 26, 32, 37, 42, 48]
    assert retrieval_clip_starts(10).tolist() == [0] * 10
