"""FedRepOpt glue: the strategy ships the scales, the classification task trains with masks,
the hyper-search writes a scales file, and the run config refuses inconsistent settings."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from flower_fakes import FakeGrid, numpy_of, record, reply, set_task_identity
from flwr.app import ConfigRecord
from flwr.serverapp.strategy import FedAvg

from fedssl.cli import main
from fedssl.clients import RoundInstructions, get_task
from fedssl.clients.hyper_search import (
    HyperSearchSettings,
    load_scales,
    run_hyper_search,
    save_scales,
)
from fedssl.clients.image_classification import (
    build_train_transform,
    evaluate_classifier,
    weight_decay_groups,
)
from fedssl.clients.repopt import RepOptMasks
from fedssl.compose import validate
from fedssl.config import ConfigError, RunConfig, load_defaults
from fedssl.experiments.runner import rounds_to_target
from fedssl.models.repopt import build_repopt_model, default_scales, repopt_grad_masks
from fedssl.strategies import build_strategy
from fedssl.strategies.fedrepopt import GRAD_SCALES_KEY, FedRepOpt, scales_record
from fedssl.strategies.registry import StrategyParams

TINY = "repopt-vgg-tiny"


def _cfg(**overrides) -> RunConfig:
    base = load_defaults() | {"task": "image-classification", "model": TINY,
                              "batch-size": 32, "lr": 0.01, "momentum": 0.0,
                              "weight-decay": 0.0, "max-local-steps": 1, "augment": "none",
                              "partitioner": "iid"}
    return RunConfig.from_run_config(base | overrides)


@pytest.fixture(scope="module")
def scales_file(tmp_path_factory):
    """A scales file of the tiny VGG with distinctive values (s3 = 2, s1 = 0.5, s_id = 1)."""
    scales = {}
    for key, value in default_scales(TINY).items():
        kind = key.rsplit(".", 1)[1]
        fill = {"scale_3x3": 2.0, "scale_1x1": 0.5}.get(kind, 1.0)
        scales[key] = torch.full_like(value, fill)
    path = tmp_path_factory.mktemp("scales") / "vgg-tiny.pt"
    settings = HyperSearchSettings(model=TINY)
    save_scales(path, settings, {"scales": scales, "test-accuracy": 0.0, "history": [],
                                 "proxy": "hand-made"})
    return path


# ---------------------------------------------------------------- strategy
def test_scales_travel_with_every_training_instruction():
    set_task_identity()
    scales = {"stage0.scale_3x3": torch.tensor([1.0, 2.0]), "stage0.scale_1x1": np.ones(2)}
    strategy = FedRepOpt(scales, min_train_nodes=1, min_available_nodes=1)
    messages = list(strategy.configure_train(3, record({"w": np.zeros(2, np.float32)}),
                                             ConfigRecord(), FakeGrid([1, 2, 3])))
    assert len(messages) == 3
    for message in messages:
        sent = numpy_of(message.content[GRAD_SCALES_KEY])
        np.testing.assert_array_equal(sent["stage0.scale_3x3"], [1.0, 2.0])
        np.testing.assert_array_equal(sent["stage0.scale_1x1"], [1.0, 1.0])
        assert message.content["config"]["server-round"] == 3


def test_fedrepopt_aggregates_exactly_like_fedavg():
    set_task_identity()
    replies = [reply(i + 1, {"w": np.array([float(i), 2.0 * i], np.float32)},
                     {"num-examples": n}) for i, n in enumerate([10, 30, 60])]
    ours = FedRepOpt({"s": np.ones(2)}, min_train_nodes=1, min_available_nodes=1)
    reference = FedAvg(min_train_nodes=1, min_available_nodes=1)
    ours_arrays, _ = ours.aggregate_train(1, replies)
    ref_arrays, _ = reference.aggregate_train(1, replies)
    np.testing.assert_array_equal(numpy_of(ours_arrays)["w"], numpy_of(ref_arrays)["w"])
    np.testing.assert_allclose(numpy_of(ours_arrays)["w"], [1.5, 3.0], rtol=1e-6)


@pytest.mark.parametrize("bad", [{}, {"s": np.ones((2, 2))}, {"s": np.array([1.0, np.nan])}])
def test_scales_record_refuses_bad_scales(bad):
    with pytest.raises(ValueError, match="scale"):
        scales_record(bad)


def test_registry_builds_fedrepopt_from_the_scales_file(scales_file):
    strategy = build_strategy("fedrepopt", StrategyParams(repopt_scales=str(scales_file)))
    assert isinstance(strategy, FedRepOpt)
    assert set(strategy.scales) == set(default_scales(TINY))
    with pytest.raises(ValueError, match="repopt-scales"):
        build_strategy("fedrepopt", StrategyParams())


# ---------------------------------------------------------------- client task
def test_weight_decay_spares_batchnorm_biases_and_scales():
    model = build_repopt_model(TINY, mode="hs", num_classes=10)
    decay, no_decay = weight_decay_groups(model, 4e-5)
    assert decay["weight_decay"] == 4e-5 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"])
    names = {id(p): n for n, p in model.named_parameters()}
    spared = {names[id(p)] for p in no_decay["params"]}
    assert any("bn" in n for n in spared) and any("scale" in n for n in spared)
    assert "linear.bias" in spared


def test_build_model_initialises_the_plain_network_from_the_scales(tmp_path):
    # With s3 = s1 = 0 only the identity term is left: the kernel is exactly s_id at the
    # centre of [c, c] for blocks with an identity branch, and zero elsewhere.
    scales = {k: torch.zeros_like(v) if not k.endswith("scale_identity") else torch.full_like(
        v, 0.5) for k, v in default_scales(TINY).items()}
    path = tmp_path / "zeros.pt"
    save_scales(path, HyperSearchSettings(model=TINY), {"scales": scales, "test-accuracy": 0.0,
                                                        "history": [], "proxy": "hand-made"})
    model = get_task("image-classification").build_model(_cfg(**{"repopt-scales": str(path)}))
    masks = repopt_grad_masks(model, scales)
    assert masks, "the plain model has no masked kernels"
    with_identity = {k.rsplit(".", 1)[0] for k in scales if k.endswith("scale_identity")}
    for name, param in model.named_parameters():
        if param not in masks:
            continue
        block = name.rsplit(".", 2)[0]
        expected = torch.zeros_like(param)
        if block in with_identity:
            channels = torch.arange(param.shape[0])
            expected[channels, channels, 1, 1] = 0.5
        torch.testing.assert_close(param.detach(), expected, atol=0, rtol=0)


def test_local_training_multiplies_the_first_step_by_the_mask(scales_file):
    """One step of lr·(mask ⊙ g) against one plain SGD step lr·g from the same weights."""
    task = get_task("image-classification")
    cfg = _cfg()
    scales = load_scales(scales_file, arch=TINY)
    torch.manual_seed(0)
    start = {k: v.clone() for k, v in task.build_model(cfg).state_dict().items()}
    updates = {}
    for name, grad_scales in (("plain", None), ("masked", scales)):
        model = task.cached_model(cfg)
        model.load_state_dict(start)
        instructions = RoundInstructions.from_message(
            {"server-round": 1}, {GRAD_SCALES_KEY: grad_scales} if grad_scales else {}, cfg)
        metrics = task.train(model, cfg, partition_id=0, num_partitions=4,
                             instructions=instructions)
        assert metrics["local-steps"] == 1
        assert instructions.reply_metrics() == ({"repopt-masks": 1} if grad_scales else {})
        updates[name] = {k: v - start[k] for k, v in model.state_dict().items()}
    masks = repopt_grad_masks(task.cached_model(cfg), scales)
    names = {id(p): n for n, p in task.cached_model(cfg).named_parameters()}
    assert len(masks) > 0
    for param, mask in masks.items():
        key = names[id(param)]
        plain, masked = updates["plain"][key], updates["masked"][key]
        assert plain.abs().max() > 0
        torch.testing.assert_close(masked, mask * plain, atol=1e-7, rtol=1e-4)
    # Parameters without a mask (BN, classifier) move identically.
    torch.testing.assert_close(updates["masked"]["linear.weight"],
                               updates["plain"]["linear.weight"], atol=1e-7, rtol=1e-5)


def test_image_ssl_refuses_gradient_scales():
    task = get_task("image-ssl")
    cfg = RunConfig.from_run_config(load_defaults() | {"max-local-steps": 1})
    instructions = RoundInstructions(server_round=1, rules=(RepOptMasks({"x": torch.ones(2)}),))
    with pytest.raises(ValueError, match="image-classification"):
        task.train(task.cached_model(cfg), cfg, partition_id=0, num_partitions=4,
                   instructions=instructions)


def test_evaluate_classifier_counts_correct_predictions():
    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.tensor([0.0, 5.0]))

        def forward(self, x):
            return self.bias.expand(len(x), 2)

    images = np.zeros((4, 8, 8, 3), np.uint8)
    result = evaluate_classifier(Constant(), images, np.array([1, 1, 0, 1]), batch_size=3)
    assert result["accuracy"] == 0.75
    expected = -np.log(np.exp(5) / (1 + np.exp(5))) * 3 / 4 - np.log(1 / (1 + np.exp(5))) / 4
    assert math.isclose(result["loss"], expected, rel_tol=1e-5)


def test_train_transforms_keep_shape_and_normalise():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    for augment in ("none", "crop", "randaugment"):
        out = build_train_transform(augment, 32)(image)
        assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    torch.testing.assert_close(build_train_transform("none", 32)(torch.zeros(3, 4, 4,
                               dtype=torch.uint8))[0, 0, 0], torch.tensor(-0.485 / 0.229))
    with pytest.raises(ValueError, match="augment"):
        build_train_transform("mixup", 32)


# ---------------------------------------------------------------- hyper-search
def test_hyper_search_learns_scales_and_writes_a_loadable_file(tmp_path):
    settings = HyperSearchSettings(model=TINY, epochs=2, warmup_epochs=1, max_steps=6,
                                   batch_size=32)
    result = run_hyper_search(settings, progress=False)
    initial = default_scales(TINY)
    assert result["scales"].keys() == initial.keys()
    moved = [k for k in initial if not torch.equal(result["scales"][k], initial[k])]
    assert moved, "training did not change any scale"
    assert len(result["history"]) == 2 and 0.0 <= result["test-accuracy"] <= 1.0
    path = save_scales(tmp_path / "s.pt", settings, result)
    loaded = load_scales(path, arch=TINY)
    for key, value in result["scales"].items():
        torch.testing.assert_close(loaded[key], value)
    with pytest.raises(ValueError, match="repopt-ghost-tiny"):
        load_scales(path, arch="repopt-ghost-tiny")


def test_load_scales_refuses_other_files(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="not a scales file"):
        load_scales(tmp_path / "model.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a scales file"):
        load_scales(tmp_path / "text.pt")
    with pytest.raises(FileNotFoundError, match="hyper-search"):
        load_scales(tmp_path / "missing.pt")


def test_hyper_search_command_writes_file_and_plot(tmp_path, capsys):
    out = tmp_path / "ghost.pt"
    code = main(["hyper-search", "--model", "repopt-ghost-tiny", "--out", str(out),
                 "--epochs", "2", "--max-steps", "4", "--batch-size", "32"])
    assert code == 0
    assert out.is_file() and out.with_suffix(".png").is_file()
    assert "scale_dw" in capsys.readouterr().out
    assert load_scales(out, arch="repopt-ghost-tiny").keys() == default_scales(
        "repopt-ghost-tiny").keys()


def test_hyper_search_command_rejects_a_plain_backbone(capsys):
    code = main(["hyper-search", "--model", "small-cnn", "--out", "/tmp/never.pt"])
    assert code == 2
    assert "repopt-vgg-tiny" in capsys.readouterr().err


# ---------------------------------------------------------------- run config
def test_fedrepopt_config_lists_every_missing_setting():
    with pytest.raises(ConfigError) as err:
        validate(RunConfig.from_run_config(load_defaults() | {"strategy": "fedrepopt"}))
    message = str(err.value)
    assert "task='image-ssl'" in message and "model='small-cnn'" in message
    assert "repopt-scales" in message


def test_config_refuses_inconsistent_repopt_settings(scales_file):
    with pytest.raises(ConfigError, match="image-classification"):
        validate(RunConfig.from_run_config(load_defaults() | {"model": TINY}))
    with pytest.raises(ConfigError, match="repopt-mode=target"):
        validate(_cfg(**{"repopt-mode": "rep", "repopt-scales": str(scales_file)}))
    with pytest.raises(ConfigError, match="no such file"):
        validate(_cfg(**{"repopt-scales": "/nonexistent/scales.pt"}))
    with pytest.raises(ConfigError, match="repopt-mode"):
        validate(_cfg(**{"repopt-mode": "branchy"}))
    ok = _cfg(strategy="fedrepopt", **{"repopt-scales": str(scales_file)})
    assert ok.strategy == "fedrepopt"


# ---------------------------------------------------------------- experiment report
def test_rounds_to_target_is_the_first_round_at_or_above_it(tmp_path):
    rows = [(r, "central", "test-accuracy", v) for r, v in [(1, 0.2), (2, 0.5), (3, 0.4),
                                                               (4, 0.7)]]
    rows.append((1, "train", "test-accuracy", 0.9))  # another phase: ignored
    frame = pd.DataFrame(rows, columns=["round", "phase", "metric", "value"])
    frame.to_csv(tmp_path / "metrics.csv", index=False)
    assert rounds_to_target(tmp_path / "metrics.csv", "test-accuracy", 0.5) == 2
    assert rounds_to_target(tmp_path / "metrics.csv", "test-accuracy", 0.65) == 4
    assert math.isnan(rounds_to_target(tmp_path / "metrics.csv", "test-accuracy", 0.9))
    assert math.isnan(rounds_to_target(tmp_path / "none.csv", "test-accuracy", 0.5))


def test_an_empty_partition_replies_with_the_same_metric_keys():
    from fedssl.clients.image_data import IMAGE_DATA

    task = get_task("image-classification")
    cfg = _cfg(partitioner="paper-dirichlet", **{"dirichlet-alpha": 0.1})
    sizes = [len(p) for p in IMAGE_DATA.partition_indices(cfg, 100)]
    empty, full = sizes.index(min(sizes)), sizes.index(max(sizes))
    assert sizes[empty] < 2
    replies = [task.train(task.cached_model(cfg), cfg, partition_id=pid, num_partitions=100,
                          instructions=RoundInstructions(server_round=1))
               for pid in (empty, full)]
    assert replies[0].keys() == replies[1].keys()
    assert replies[0]["num-examples"] == 0
