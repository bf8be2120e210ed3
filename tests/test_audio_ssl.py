"""Audio SSL: the embedded spoken digits, views, clip-order prediction, retrieval, the task."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from fedssl.clients import RoundInstructions, get_task
from fedssl.clients.evaluation import retrieval_recall
from fedssl.compose import validate
from fedssl.config import ConfigError, RunConfig
from fedssl.datasets.partitioning import group_split, partition_indices
from fedssl.datasets.spoken_digits import (
    DIGITS,
    coloured_noise,
    load_spoken_digits,
    mix_at_snr,
)
from fedssl.models import build_ssl_model
from fedssl.models.audio_backbones import build_audio_backbone
from fedssl.models.audio_frontend import AUDIO_FRONTENDS
from fedssl.models.audio_views import AudioViewOptions, AudioViews, random_time_shift
from fedssl.models.clip_order import ClipOrder

AUDIO = dict(task="audio-ssl", dataset="spoken-digits", model="audio-inceptionnext-tiny")


# ---------------------------------------------------------------- embedded data
@pytest.fixture(scope="module")
def digits():
    return load_spoken_digits("train"), load_spoken_digits("test")


def test_spoken_digits_splits_are_fixed_balanced_and_speaker_disjoint(digits):
    train, test = digits
    assert train.waveforms.shape == (1350, 16000) and test.waveforms.shape == (450, 16000)
    assert train.sample_rate == 16000 and train.class_names == DIGITS
    assert np.bincount(train.labels).tolist() == [135] * 10
    assert np.bincount(test.labels).tolist() == [45] * 10
    assert len(np.unique(train.groups)) == 45 and len(np.unique(test.groups)) == 15
    # Speakers differ between splits: no test clip equals any train clip's voice settings.
    import pandas as pd

    from fedssl.datasets.spoken_digits import find_spoken_digits_dir

    meta = pd.read_csv(find_spoken_digits_dir() / "metadata.csv")
    voices = meta.groupby("split")["variant"].apply(set)
    assert not voices["train"] & voices["test"]
    again = load_spoken_digits("test")
    assert np.array_equal(again.waveforms, test.waveforms)
    assert np.isfinite(train.waveforms).all() and np.abs(train.waveforms).max() < 4


def test_spoken_digits_resample_and_bad_arguments():
    data = load_spoken_digits("test", sample_rate=8000, duration=0.5)
    assert data.waveforms.shape == (450, 4000) and data.sample_rate == 8000
    with pytest.raises(ValueError, match="split"):
        load_spoken_digits("validation")
    with pytest.raises(FileNotFoundError, match="make_spoken_digits"):
        load_spoken_digits("train", data_dir="/nonexistent")


def test_mix_at_snr_hits_the_requested_ratio_over_the_active_part():
    rng = np.random.default_rng(0)
    signal = np.zeros(1000, dtype=np.float32)
    signal[100:300] = rng.standard_normal(200)
    noise = rng.standard_normal(1000).astype(np.float32)
    mixed = mix_at_snr(signal, noise, 10.0, active=slice(100, 300))
    added = mixed - signal
    snr = 10 * np.log10(np.mean(signal[100:300] ** 2) / np.mean(added**2))
    assert snr == pytest.approx(10.0, abs=1e-3)


@pytest.mark.parametrize(("kind", "slope"), [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_coloured_noise_has_its_spectral_slope(kind, slope):
    noise = coloured_noise(kind, 2**16, np.random.default_rng(1))
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=1e-5)
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise))
    band = (freqs > 1e-3) & (freqs < 0.4)
    fitted = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
    assert fitted == pytest.approx(slope, abs=0.1)


def test_group_split_keeps_speakers_whole():
    groups = np.repeat(np.arange(7), 3)
    parts = group_split(groups, 3, seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(21))
    owners = [set(groups[p]) for p in parts]
    assert all(a.isdisjoint(b) for i, a in enumerate(owners) for b in owners[i + 1:])
    assert sorted(len(o) for o in owners) == [2, 2, 3]
    with pytest.raises(ValueError, match="number of groups"):
        group_split(groups, 8)
    with pytest.raises(ValueError, match="group id per sample"):
        partition_indices(np.zeros(21, dtype=np.int64), 3, method="group")


# ---------------------------------------------------------------- retrieval
def test_retrieval_recall_against_hand_computed_neighbours():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7]])
    bank_labels = np.array([0, 1, 2, 1])
    queries = torch.tensor([[0.9, 0.1], [0.1, 0.9], [-1.0, -0.1]])
    query_labels = np.array([1, 1, 0])
    # Query 0: order 0 (label 0), 3 (1), ... -> miss at 1, hit at 2.
    # Query 1: order 1 (label 1) -> hit at 1. Query 2: order 2 (2), 1 or 0 ... label 0 is last.
    recall = retrieval_recall(queries, query_labels, bank, bank_labels, ks=(1, 2, 4, 10))
    assert recall == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3), 4: 1.0, 10: 1.0}


# ---------------------------------------------------------------- views and clip order
def test_time_shift_rolls_each_clip_by_its_own_offset():
    torch.manual_seed(0)
    clips = torch.arange(40, dtype=torch.float32).repeat(3, 1)
    shifted = random_time_shift(clips, 0.25)
    for row in shifted:
        offset = int((row[0] - 0) % 40)  # where sample 0 came from
        assert torch.equal(row, torch.roll(clips[0], -offset))
        assert min(offset, 40 - offset) <= 10
    assert torch.equal(random_time_shift(clips, 0.0), clips)


def test_audio_views_shapes_and_mixing():
    settings = AUDIO_FRONTENDS["vggsound"]
    torch.manual_seed(0)
    waves = torch.randn(4, 16000) * 0.1
    views = AudioViews(settings, num_views=2)(waves)
    assert len(views) == 2 and all(v.shape == (4, 1, 101, 128) for v in views)
    assert not torch.equal(views[0], views[1])
    only_mix = AudioViews(settings, AudioViewOptions(max_shift=0, gain_db=0, mix_prob=1.0,
                                                     mix_snr_db=(10.0, 10.0)))
    mixed = only_mix.waveform_view(waves)
    added = mixed - waves
    assert torch.allclose(added, waves.roll(1, dims=0) * (added / waves.roll(1, dims=0)).mean(
        dim=1, keepdim=True), atol=1e-5)
    snr = 10 * torch.log10(waves.pow(2).sum(1) / added.pow(2).sum(1))
    assert torch.allclose(snr, torch.full((4,), 10.0), atol=1e-3)


class _SegmentId(nn.Module):
    """Backbone whose feature is the constant value of its input segment."""

    feature_dim = 1

    def forward(self, x):
        return x.mean(dim=(1, 2, 3)).unsqueeze(1)


def test_clip_order_shuffles_segments_by_the_drawn_permutation():
    model = ClipOrder(_SegmentId(), num_segments=3, hidden_dim=4)
    assert len(model.orders) == 6
    clip = torch.cat([torch.full((1, 1, 5, 2), float(v)) for v in (0, 1, 2)], dim=2)
    clip = torch.cat([clip, torch.zeros(1, 1, 2, 2)], dim=2)  # 17 frames: 2 dropped
    assert model.segments(clip).shape == (1, 3, 1, 5, 2)
    seen = {}
    model.backbone.register_forward_hook(lambda m, i, o: seen.setdefault("f", o.flatten()))
    for order_id in range(6):
        seen.clear()
        model.order_logits(clip, torch.tensor([order_id]))
        assert seen["f"].tolist() == [float(v) for v in model.orders[order_id]]


def _loss_drops(model: nn.Module, views: AudioViews, waves: torch.Tensor, steps: int) -> tuple:
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    batch_views = views(waves)  # fixed views: the loss on them must go down
    losses = []
    for _ in range(steps):
        loss = model.training_loss(batch_views)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses[0], min(losses[-3:])


@pytest.mark.parametrize("method", ["simclr", "barlowtwins", "clip-order"])
def test_each_audio_ssl_loss_decreases_on_a_few_steps(digits, method):
    torch.manual_seed(0)
    backbone = build_audio_backbone("audio-inceptionnext-tiny")
    settings = AUDIO_FRONTENDS["vggsound"]
    if method == "clip-order":
        model = ClipOrder(backbone, hidden_dim=64, dropout=0.0)
        views = AudioViews(settings, AudioViewOptions(max_shift=0.0), num_views=1)
    else:
        model = build_ssl_model(method, backbone, projection_dim=32, hidden_dim=64)
        views = AudioViews(settings, num_views=2)
    waves = torch.from_numpy(np.array(digits[0].waveforms[:16]))
    if method == "clip-order":
        # Orders are drawn per call; fix them so the objective is one fixed problem.
        ids = torch.arange(16) % 6
        x = views(waves)[0]
        model.training_loss = lambda v: model.criterion(model.order_logits(v[0], ids), ids)
        first, last = _loss_drops(model, lambda w: [x], waves, 12)
    else:
        first, last = _loss_drops(model, views, waves, 12)
    assert math.isfinite(first) and last < 0.9 * first, (first, last)


# ---------------------------------------------------------------- config and task
def test_config_refuses_mixed_modalities():
    validate(RunConfig(**AUDIO, ssl_method="clip-order", partitioner="group"))
    with pytest.raises(ConfigError, match="needs one of spoken-digits"):
        validate(RunConfig(task="audio-ssl", model="audio-inceptionnext-tiny"))
    with pytest.raises(ConfigError, match="audio backbone"):
        validate(RunConfig(model="audio-rep-inceptionnext-tiny"))
    with pytest.raises(ConfigError, match="clip-order"):
        validate(RunConfig(ssl_method="clip-order"))
    with pytest.raises(ConfigError, match="group"):
        validate(RunConfig(partitioner="group"))
    with pytest.raises(ConfigError, match="data-dir"):
        validate(RunConfig(task="audio-ssl", dataset="esc50", model="van-lska-tiny"))


def test_task_trains_a_partition_and_an_empty_one_replies_with_the_same_keys():
    cfg = RunConfig(**AUDIO, ssl_method="simclr", max_local_steps=2, batch_size=16,
                    partitioner="group")
    task = get_task("audio-ssl")
    torch.manual_seed(0)
    model = task.build_model(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = task.train(model, cfg, partition_id=3, num_partitions=45,
                         instructions=RoundInstructions(server_round=1))
    assert metrics["num-examples"] == 30 and metrics["local-steps"] == 2
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    cfg_dir = cfg.replace(partitioner="dirichlet", dirichlet_alpha=0.01)
    sizes = [len(p) for p in partition_indices(
        load_spoken_digits("train").labels, 40, method="dirichlet", alpha=0.01, seed=0)]
    empty = next(i for i, n in enumerate(sizes) if n < 2)
    reply = task.train(model, cfg_dir, partition_id=empty, num_partitions=40,
                       instructions=RoundInstructions(server_round=1))
    assert set(reply) == set(metrics)
    hist = task.class_histograms(cfg, 45)
    assert hist.shape == (45, 10) and hist.to_numpy().sum() == 1350


def test_audio_loader_dispatch_and_data_discovery(tmp_path, monkeypatch):
    import shutil

    from fedssl.datasets import DatasetNotFoundError
    from fedssl.datasets.audio_loader import (
        AUDIO_DATASETS,
        check_audio_dataset,
        clear_audio_cache,
        load_audio_dataset,
    )
    from fedssl.datasets.spoken_digits import find_spoken_digits_dir

    test = load_audio_dataset("spoken-digits", "test")
    assert test.sample_rate == AUDIO_DATASETS["spoken-digits"].sample_rate
    assert load_audio_dataset("spoken-digits", "test") is test  # memoised
    with pytest.raises(ValueError, match="read-only"):
        test.waveforms[0, 0] = 1.0
    with pytest.raises(ValueError, match="audio dataset must be one of"):
        check_audio_dataset("cifar10")
    with pytest.raises(DatasetNotFoundError, match="needs data-dir"):
        check_audio_dataset("esc50")
    with pytest.raises(DatasetNotFoundError, match=r"esc50\.csv"):
        check_audio_dataset("esc50", data_dir=str(tmp_path))
    # A copy elsewhere is found through the environment variable (what a deployment that
    # ships the data separately sets); a directory without the files is refused by name.
    copy = tmp_path / "digits"
    shutil.copytree(find_spoken_digits_dir(), copy)
    monkeypatch.setenv("FEDSSL_SPOKEN_DIGITS_DIR", str(copy))
    assert find_spoken_digits_dir() == copy
    with pytest.raises(DatasetNotFoundError, match=r"train\.opus"):
        find_spoken_digits_dir(tmp_path)
    clear_audio_cache()


def test_experiment_report_keeps_the_report_metrics_such_as_retrieval(tmp_path):
    import json

    import pandas as pd

    from fedssl.experiments.runner import results_table, summary_metrics

    runs = []
    for i, (method, r1) in enumerate([("simclr", 0.3), ("simclr", 0.5), ("clip-order", 0.2)]):
        run_dir = tmp_path / f"{i:02d}"
        run_dir.mkdir()
        (run_dir / "summary.json").write_text(json.dumps({
            "retrieval-r1": r1, "random-init-retrieval-r1": 0.1, "retrieval-r10": 0.9,
            "knn-accuracy": 0.4, "rounds": 20}))
        kept = summary_metrics(run_dir, ("retrieval-r1",))
        assert kept == {"retrieval-r1": r1, "random-init-retrieval-r1": 0.1, "knn-accuracy": 0.4}
        runs.append({"run": i, "ssl-method": method} | kept)
    table = results_table(pd.DataFrame(runs), ["ssl-method"], ("retrieval-r1",))
    simclr = table.set_index("ssl-method").loc["simclr"]
    assert simclr["retrieval-r1 mean"] == pytest.approx(0.4)
    assert simclr["random-init-retrieval-r1 mean"] == pytest.approx(0.1)
    assert simclr["seeds"] == 2 and "retrieval-r10 mean" not in table.columns
