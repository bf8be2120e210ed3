"""Fine-tuning a run's global backbone (``fedssl finetune``): the labelled subset, the recipe's
pieces, CtP's 10-clip logit averaging on a model whose answer is known, and the command end to
end on small run directories of the image, audio and video tasks, with its refusals."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from fedssl.callbacks import rng_state
from fedssl.cli import main
from fedssl.clients import get_task
from fedssl.clients.base import seed_global
from fedssl.clients.finetune import (
    FineTuneError,
    FineTuneNet,
    FineTuneSettings,
    clip_averaged_logits,
    finetune,
    labelled_subset,
    lr_milestones,
    topk_accuracy,
)
from fedssl.config import RunConfig
from fedssl.datasets.video_loader import VideoArrays
from fedssl.experiments.finetune import CSV_COLUMNS, load_weights
from fedssl.models import build_backbone
from fedssl.tracking import save_checkpoint, save_round_model, save_tensors

IMAGE = {"task": "image-ssl", "model": "small-cnn"}
AUDIO = {"task": "audio-ssl", "dataset": "spoken-digits", "model": "audio-inceptionnext-tiny"}
VIDEO = {"task": "video-ssl", "dataset": "motion-digits", "model": "r3d-tiny",
         "clip_frames": 8}
# Small enough for 2 shared cores: ~30-60 labelled samples, 1 epoch, a capped test split.
QUICK = ["--epochs", "1", "--max-test-samples", "40", "-q"]


# ---------------------------------------------------------------------------- labelled subset
def _labels() -> np.ndarray:
    # Classes of 100, 50, 7 and 1 samples, interleaved.
    return np.random.default_rng(3).permutation(np.repeat([0, 1, 2, 3], [100, 50, 7, 1]))


@pytest.mark.parametrize(("fraction", "per_class"), [
    (1.0, [100, 50, 7, 1]), (0.1, [10, 5, 1, 1]), (0.01, [1, 1, 1, 1]), (0.5, [50, 25, 4, 1]),
])
def test_the_labelled_subset_keeps_a_fraction_of_each_class_and_one_at_least(fraction,
                                                                            per_class):
    labels = _labels()
    index = labelled_subset(labels, fraction, seed=0)
    assert (np.diff(index) > 0).all()  # sorted, no repeats
    assert np.bincount(labels[index], minlength=4).tolist() == per_class


def test_the_labelled_subset_is_seeded_and_nested():
    labels = _labels()
    assert (labelled_subset(labels, 0.1, seed=1) == labelled_subset(labels, 0.1, seed=1)).all()
    assert set(labelled_subset(labels, 0.1, seed=1)) != set(labelled_subset(labels, 0.1, seed=2))
    # With one seed the 1 % labels are among the 10 %, which are among the 50 %.
    small, mid, big = (set(labelled_subset(labels, f, seed=4)) for f in (0.01, 0.1, 0.5))
    assert small <= mid <= big


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_a_label_fraction_outside_0_1_is_refused(fraction):
    with pytest.raises(FineTuneError, match=r"not in \(0, 1\]; give e.g. 1, 0.1, 0.01"):
        labelled_subset(_labels(), fraction, seed=0)
    with pytest.raises(FineTuneError, match="label fraction"):
        FineTuneSettings(label_fraction=fraction)


def test_settings_name_every_bad_value():
    with pytest.raises(FineTuneError) as err:
        FineTuneSettings(mode="half", epochs=0, batch_size=1, lr=0.0)
    for fragment in ("mode 'half' is not one of full, linear", "epochs 0", "batch size 1",
                     "lr 0.0 must be > 0"):
        assert fragment in str(err.value)
    assert FineTuneSettings().decay == 5e-4 and FineTuneSettings(mode="linear").decay == 0.0


# ---------------------------------------------------------------------------- recipe pieces
def test_the_learning_rate_is_cut_at_40_and_80_percent_of_the_epochs():
    assert lr_milestones(150) == [60, 120]  # CtP's epochs 60 and 120
    assert lr_milestones(10) == [4, 8]
    assert lr_milestones(1) == [1, 1]  # a one-epoch fine-tune runs at the full rate


def test_topk_accuracy_by_hand():
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0], [1.0, 3.0, 2.0]])
    got = topk_accuracy(logits, np.array([0, 0, 2]), ks=(1, 2, 5))
    # Row 0: top-1 hit; row 1: class 0 is last; row 2: class 2 second. k=5 is capped at 3.
    assert got == pytest.approx({1: 1 / 3, 2: 2 / 3, 5: 1.0})


def test_a_frozen_backbone_keeps_its_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    net = FineTuneNet(build_backbone("small-cnn", image_size=32), 3, freeze_backbone=True)
    before = {k: v.clone() for k, v in net.backbone.state_dict().items()}
    head = net.fc.weight.detach().clone()
    net.train()
    assert net.training and not net.backbone.training
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    nn.functional.cross_entropy(net(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0])
                                ).backward()
    optimizer.step()
    after = net.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats included
    assert not torch.equal(head, net.fc.weight)


# ---------------------------------------------------------------------------- 10-clip test
class _ClipMean(nn.Module):
    """Logits of a clip ``[3, L, H, W]``: class 0 = its mean pixel (in [-1, 1]), class 1 = 0.
    Records the clips it saw and whether it was in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the net a device
        self.seen: list[torch.Tensor] = []
        self.modes: list[bool] = []

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        self.seen.append(clips)
        self.modes.append(self.training)
        score = clips.mean(dim=(1, 2, 3, 4))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def _timed_videos(n: int = 2, frames: int = 64, side: int = 4) -> np.ndarray:
    """uint8 videos whose frame ``t`` has every pixel equal to ``t`` (+ 100 per video)."""
    t = np.arange(frames, dtype=np.uint8)[None, :, None, None, None] + np.array(
        [100 * v for v in range(n)], dtype=np.uint8)[:, None, None, None, None]
    return np.ascontiguousarray(np.broadcast_to(t, (n, frames, side, side, 3)))


def test_ten_uniformly_spaced_clips_have_their_logits_averaged():
    net = _ClipMean().train()
    logits = clip_averaged_logits(net, _timed_videos(), clip_frames=16, image_size=4)
    # VCOP's starts for 64 frames: centres linspace(8, 56, 10), minus 8, floored.
    starts = np.array([0, 5, 10, 16, 21, 26, 32, 37, 42, 48])
    seen = torch.cat(net.seen)  # [2 videos x 10 clips, 3, 16, 4, 4]
    assert seen.shape == (20, 3, 16, 4, 4)
    first_frames = ((seen[:, 0, 0, 0, 0] + 1) * 127.5).round().long().view(2, 10)
    assert first_frames[0].tolist() == starts.tolist()
    assert first_frames[1].tolist() == (starts + 100).tolist()
    for video, offset in enumerate((0, 100)):
        mean_frame = (starts + 7.5 + offset).mean()  # each clip: start .. start + 15
        assert logits[video, 0].item() == pytest.approx(mean_frame / 127.5 - 1, abs=1e-5)
    assert logits.shape == (2, 2) and not any(net.modes) and net.training


class _OneConfidentClip(nn.Module):
    """Class 0 gets +100 on the clip that holds frame 0 and -1 on every other clip."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        first = ((clips[:, 0, 0, 0, 0] + 1) * 127.5).round()
        score = torch.where(first == 0, torch.tensor(100.0), torch.tensor(-1.0))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_logits_are_averaged_not_votes():
    logits = clip_averaged_logits(_OneConfidentClip(), _timed_videos(1), clip_frames=16,
                                  image_size=4, num_clips=10)
    # Nine clips vote class 1, but the mean logit of class 0 is (100 - 9) / 10 > 0.
    assert logits[0].tolist() == pytest.approx([9.1, 0.0])
    assert logits.argmax(1).item() == 0


# ---------------------------------------------------------------------------- the loop
def test_finetuning_is_seeded_and_leaves_the_given_backbone_alone():
    cfg = RunConfig(**IMAGE)
    seed_global(0)
    backbone = get_task(cfg.task).build_model(cfg).backbone
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    settings = FineTuneSettings(label_fraction=0.01, epochs=2, max_test_samples=50)
    runs = [finetune(get_task(cfg.task), cfg, backbone, settings, seed=3) for _ in range(2)]
    for key in ("top1", "top5", "test-loss", "train-loss"):
        assert runs[0][key] == runs[1][key]
    per_class = np.bincount(get_task(cfg.task).data.split(cfg, "train").labels)
    assert runs[0]["train-samples"] == sum(max(1, round(n / 100)) for n in per_class)  # 1 %
    assert runs[0]["test-samples"] == 50
    assert [h["lr"] for h in runs[0]["history"]] == pytest.approx([0.01, 0.001])
    assert all(torch.equal(before[k], v) for k, v in backbone.state_dict().items())


def test_video_clips_keep_their_labels_through_training_and_the_10_clip_test():
    """Dark versus bright videos: any mix-up of clips and labels would stay near chance."""

    def videos(n: int, seed: int) -> VideoArrays:
        rng = np.random.default_rng(seed)
        labels = np.arange(n) % 2
        clips = rng.integers(0, 60, size=(n, 16, 32, 32, 3)) + 150 * labels[:, None, None,
                                                                             None, None]
        return VideoArrays(clips.astype(np.uint8), labels, 2, f"dark-bright/{seed}")

    splits = {"train": videos(32, 0), "test": videos(16, 1)}
    task = SimpleNamespace(modality="video",
                           data=SimpleNamespace(split=lambda cfg, name: splits[name]))
    torch.manual_seed(0)
    backbone = build_backbone("r3d-tiny", image_size=32, modality="video")
    result = finetune(task, RunConfig(**VIDEO), backbone,
                      FineTuneSettings(epochs=3, batch_size=8), seed=0)
    assert result["top1"] == 1.0 and result["top5"] == 1.0  # top-5 capped at the 2 classes
    assert result["history"][-1]["train-top1"] == 1.0


# ---------------------------------------------------------------------------- run directories
def _run_dir(path, values, *, final=True):
    """A run directory as a finished run leaves it: config.json, rounds 1-2, final model."""
    cfg = RunConfig(**(values | {"num_server_rounds": 2}))
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg.to_run_config() | {"run-dir": str(path)}))
    torch.manual_seed(1)
    state = get_task(cfg.task).build_model(cfg).state_dict()
    for rnd in (1, 2):
        save_round_model(path, rnd, state)
    if final:
        save_tensors(path / "final_model.safetensors", state)
    return path


def _csv_rows(path):
    with open(path / "finetune.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _check_result(entry):
    assert 0.0 <= entry["top1"] <= entry["top5"] <= 1.0
    assert entry["top1"] * entry["test-samples"] == pytest.approx(
        round(entry["top1"] * entry["test-samples"]))  # a fraction of the test samples


@pytest.mark.parametrize(("values", "extra", "fraction"), [
    (IMAGE, ["--baseline"], "0.01"),
    (AUDIO, [], "0.02"),
    (VIDEO, ["--baseline", "--test-clips", "10"], "0.03"),
], ids=["image", "audio", "video"])
def test_finetune_end_to_end(tmp_path, capsys, values, extra, fraction):
    run_dir = _run_dir(tmp_path / "run", values)
    assert main(["finetune", str(run_dir), "--label-fraction", fraction, *QUICK, *extra]) == 0
    out = capsys.readouterr().out
    assert "| weights" in out and "top-1" in out

    document = json.loads((run_dir / "finetune" / f"final-full-{fraction}.json").read_text())
    labels = ["final", "random-init"] if "--baseline" in extra else ["final"]
    assert [r["weights"] for r in document["results"]] == labels
    assert document["weights"]["round"] == 2 and document["settings"]["epochs"] == 1
    for entry in document["results"]:
        _check_result(entry)
        assert entry["test-samples"] == 40 and len(entry["history"]) == 1
    assert set(document["mean"]) == set(labels)
    rows = _csv_rows(run_dir)
    assert list(rows[0]) == list(CSV_COLUMNS) and [r["weights"] for r in rows] == labels
    if values is VIDEO:
        assert rows[0]["test-clips"] == "10" and document["results"][0]["train-samples"] == 30

    # A second fine-tune (another round, linear) adds its own file and rows; nothing is lost.
    assert main(["finetune", str(run_dir), "--round", "1", "--mode", "linear",
                 "--label-fraction", fraction, *QUICK]) == 0
    assert (run_dir / "finetune" / f"round-1-linear-{fraction}.json").is_file()
    assert (run_dir / "finetune" / f"final-full-{fraction}.json").is_file()
    rows = _csv_rows(run_dir)
    assert [r["weights"] for r in rows] == [*labels, "round-1"]
    assert rows[-1]["mode"] == "linear" and float(rows[-1]["weight-decay"]) == 0.0


# ---------------------------------------------------------------------------- which weights
def test_final_falls_back_to_the_checkpoint_then_the_last_kept_round(tmp_path):
    run_dir = _run_dir(tmp_path / "run", IMAGE, final=False)
    cfg = RunConfig(**IMAGE)
    weights = load_weights(run_dir, "final", cfg)
    assert (weights.label, weights.round) == ("final", 2) and "last kept round" in weights.source
    state = {k: v + 1 for k, v in weights.state.items()}
    save_checkpoint(run_dir, {"round": 3, "arrays": state, "strategy-state": {},
                              "rng": rng_state()})
    weights = load_weights(run_dir, "final", cfg)
    assert weights.round == 3 and "stopped after round 3" in weights.source
    assert load_weights(run_dir, 3, cfg).label == "round-3"
    assert load_weights(run_dir, 0, cfg).state is None  # the random init is rebuilt


# ---------------------------------------------------------------------------- refusals
def _refused(capsys, run_dir, *args, fragments):
    before = sorted(p.name for p in run_dir.rglob("*"))
    assert main(["finetune", str(run_dir), "-q", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    assert sorted(p.name for p in run_dir.rglob("*")) == before  # nothing written


@pytest.fixture
def image_run(tmp_path):
    return _run_dir(tmp_path / "run", IMAGE)


def test_a_directory_without_config_is_refused(tmp_path, capsys):
    _refused(capsys, tmp_path, fragments=["no config.json in", "fedssl run"])


def test_a_run_without_any_global_model_is_refused(tmp_path, capsys):
    run_dir = _run_dir(tmp_path / "run", IMAGE, final=False)
    for path in (run_dir / "rounds").iterdir():
        path.unlink()
    _refused(capsys, run_dir, fragments=["holds no global model", "final_model.safetensors",
                                         "--round 0"])


@pytest.mark.parametrize(("args", "fragments"), [
    (["--round", "7"], ["round 7", "was not kept", "final, 0 (the random init), a kept "
                        "round (1-2)"]),
    (["--round", "best"], ["no best-model.safetensors", "fedssl select-best"]),
    (["--label-fraction", "1.5"], ["label fraction 1.5 is not in (0, 1]", "0.01"]),
    (["--label-fraction", "0"], ["label fraction 0.0 is not in (0, 1]"]),
    (["--epochs", "0"], ["epochs 0 must be an integer >= 1"]),
    (["--device", "banana"], ["--device 'banana'", "cpu"]),
], ids=["unknown-round", "no-best", "fraction-above-1", "fraction-0", "epochs-0", "device"])
def test_bad_requests_are_refused_naming_what_is_valid(image_run, capsys, args, fragments):
    _refused(capsys, image_run, *args, fragments=fragments)


def test_a_bad_round_name_is_an_argument_error(image_run, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["finetune", str(image_run), "--round", "last"])
    assert stop.value.code == 2
    assert "'last' is not final, best or a round number" in capsys.readouterr().err


def test_a_supervised_run_is_refused(tmp_path, capsys):
    run_dir = _run_dir(tmp_path / "run", {"task": "image-classification", "model": "small-cnn"})
    _refused(capsys, run_dir, fragments=["task='image-classification' run",
                                         "image-ssl, audio-ssl, video-ssl"])


def test_weights_of_another_network_are_named(image_run, capsys):
    stored = json.loads((image_run / "config.json").read_text()) | {"model": "resnet18"}
    (image_run / "config.json").write_text(json.dumps(stored))
    _refused(capsys, image_run, fragments=["final_model.safetensors does not fit the run's "
                                           "model", "model='resnet18'"])


def test_a_foreign_finetune_csv_is_kept_and_refused(image_run, capsys):
    (image_run / "finetune.csv").write_text("a,b\n1,2\n")
    _refused(capsys, image_run, fragments=["finetune.csv has other columns", "rename"])
    assert (image_run / "finetune.csv").read_text() == "a,b\n1,2\n"
