"""The ServerApp's round loop with the real ClientApp called in this process (no Flower or Ray
processes): broken replies are left out, counted and charged to their partition."""

import json

import pandas as pd
import pytest
from flower_fakes import InProcessGrid, set_task_identity

from fedssl.config import RunConfig, load_defaults
from fedssl.flwr_app.server_app import run_federated


@pytest.mark.parametrize("kind", ["nan", "shape", "keys"])
def test_a_corrupt_reply_is_left_out_and_the_round_goes_on(tmp_path, kind):
    """The process-level path (a ClientApp that raises) is in test_e2e.py; these corrupt the
    arrays of a reply that arrives normally."""
    cfg = RunConfig.from_run_config(load_defaults() | {
        "num-server-rounds": 1, "max-local-steps": 1, "batch-size": 16, "eval-every": 0,
        "linear-probe": False, "eval-max-samples": 100, "partitioner": "iid",
        "min-train-nodes": 2, "min-available-nodes": 3, "wandb-mode": "disabled",
        "keep-round-models": False, "fault-partition": 1, "fault-kind": kind,
        "output-dir": str(tmp_path / kind)})
    set_task_identity()
    summary = run_federated(InProcessGrid(cfg, 3), cfg)
    assert summary["total-failures"] == 1
    metrics = pd.read_csv(tmp_path / kind / "metrics.csv")
    client = metrics[metrics["source"] == "client"]
    assert sorted(client[client["metric"] == "train-loss"]["partition"]) == [0, 2]
    failed = client[client["metric"] == "failed"]
    assert failed[["round", "partition"]].values.tolist() == [[1, 1]]
    assert json.loads((tmp_path / kind / "summary.json").read_text())["total-failures"] == 1
