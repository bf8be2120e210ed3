"""Adding a task is one file plus one registry entry: a toy task registered here, in the test
file, runs through the real ClientApp and ServerApp in process, with no edit to the config
module or to ``fedssl/flwr_app``. The strategy's client half (FedProx's proximal term) reaches
it through the round's instructions, without the task knowing the strategy."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch
from flower_fakes import InProcessGrid, set_task_identity
from torch import nn

from fedssl.clients import TASKS, ClientTask, RoundInstructions, register_task
from fedssl.clients.base import local_step_budget, seed_everything, steps_over
from fedssl.clients.image_data import IMAGE_DATA
from fedssl.compose import validate
from fedssl.config import ConfigError, RunConfig, load_defaults
from fedssl.flwr_app.server_app import run_federated
from fedssl.models import build_backbone


class BrightnessRegressor(nn.Module):
    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, nn.Linear(backbone.feature_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)).squeeze(1)


def _batches(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 255.0
    return x, x.mean(dim=(1, 2, 3))  # target: the image's mean brightness


@register_task
class ToyBrightnessTask(ClientTask):
    """Regress each image's mean brightness from a registered backbone's features."""

    name = "toy-brightness"
    modality = "image"

    def build_model(self, cfg: RunConfig) -> nn.Module:
        return BrightnessRegressor(build_backbone(cfg.model, image_size=cfg.image_size))

    def cached_model(self, cfg: RunConfig) -> nn.Module:
        return self._model_once((cfg.model, cfg.image_size), lambda: self.build_model(cfg))

    def train(self, model, cfg, *, partition_id, num_partitions,
              instructions: RoundInstructions):
        start = time.perf_counter()
        data = IMAGE_DATA.partition(cfg, partition_id, num_partitions)
        seed_everything(cfg.seed, instructions.server_round, partition_id)
        x, y = _batches(data.images)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                             batch_size=cfg.batch_size, shuffle=True)
        optimizer = instructions.optimizer(model, model.parameters(), lr=cfg.lr)
        penalty = instructions.penalty(model)
        losses = []
        model.train()
        for xb, yb in steps_over(loader, local_step_budget(len(loader), cfg)):
            loss = nn.functional.mse_loss(model(xb), yb) + penalty()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return {"train-loss": float(np.mean(losses)), "num-examples": len(data),
                "partition-id": partition_id, "train-time": time.perf_counter() - start,
                "rules": len(instructions.rules)}

    def evaluate_local(self, model, cfg, *, partition_id, num_partitions):
        data = IMAGE_DATA.partition(cfg, partition_id, num_partitions)
        return {"eval-mse": self._mse(model, data.images), "num-examples": len(data),
                "partition-id": partition_id}

    def class_histograms(self, cfg: RunConfig, num_partitions: int) -> pd.DataFrame:
        return IMAGE_DATA.class_histograms(cfg, num_partitions)

    @torch.no_grad()
    def _mse(self, model: nn.Module, images: np.ndarray) -> float:
        model.eval()
        x, y = _batches(images)
        return float(nn.functional.mse_loss(model(x), y))

    def central_evaluate(self, model, cfg):
        return {"test-mse": self._mse(model, IMAGE_DATA.eval_split(cfg, "test").images)}

    def final_evaluate(self, model, cfg, baseline):
        test = IMAGE_DATA.eval_split(cfg, "test").images
        return {"test-mse": self._mse(model, test),
                "random-init-test-mse": self._mse(baseline, test)}


def test_the_toy_task_is_registered_and_validated_by_its_own_rules():
    assert TASKS.tags("toy-brightness") == {"modality": "image", "model_kinds": ("backbone",),
                                            "trains_ssl_method": False}
    validate(RunConfig(task="toy-brightness"))
    with pytest.raises(ConfigError, match="task='toy-brightness' does not fit: dataset="):
        validate(RunConfig(task="toy-brightness", dataset="spoken-digits"))


def test_a_task_registered_in_a_test_runs_through_the_client_and_server_apps(tmp_path):
    cfg = validate(RunConfig.from_run_config(load_defaults() | {
        "task": "toy-brightness", "strategy": "fedprox", "proximal-mu": 0.1,
        "num-server-rounds": 2, "max-local-steps": 8, "batch-size": 32, "lr": 0.05,
        "eval-every": 1, "eval-max-samples": 200, "partitioner": "iid",
        "min-train-nodes": 3, "min-available-nodes": 3, "wandb-mode": "disabled",
        "keep-round-models": False, "output-dir": str(tmp_path)}))
    set_task_identity()
    summary = run_federated(InProcessGrid(cfg, 3), cfg)

    assert summary["total-failures"] == 0 and summary["num-partitions"] == 3
    assert summary["test-mse"] < summary["random-init-test-mse"]
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    client = metrics[metrics["source"] == "client"]
    # Every partition trained in both rounds, and FedProx's rule reached the toy task.
    trained = client[client["metric"] == "train-loss"]
    assert sorted(map(tuple, trained[["round", "partition"]].values)) == [
        (r, p) for r in (1, 2) for p in range(3)]
    assert set(client[client["metric"] == "rules"]["value"]) == {1.0}
    central = metrics[metrics["phase"] == "central"]
    assert list(central[central["metric"] == "test-mse"]["round"]) == [1, 2]
