"""A deployed federation on loopback: TLS, SuperNode authentication, faults and resume.

Every role runs as its own process through `fedssl deploy` (LoopbackFederation): a SuperLink
with TLS and SuperNode authentication, three registered SuperNodes, and `fedssl deploy submit`
for the runs. The tests run in file order against the same federation.
"""

import json
import os
import signal
import time

import pandas as pd
import pytest
import torch
from tiny_runs import TINY_TRAINING

from fedssl.deploy.loopback import CONNECTION, LoopbackFederation, is_alive
from fedssl.tracking import load_checkpoint, load_tensors
from fedssl.tracking.wandb_offline import read_offline_run

pytestmark = pytest.mark.e2e



@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    fed = LoopbackFederation(tmp_path_factory.mktemp("deploy"), num_supernodes=3, num_keys=4)
    # W&B must run offline whatever the machine has configured (the default mode is auto).
    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        fed.env.pop(key, None)
    with fed:
        yield fed
        pids = fed.all_pids()
    assert pids  # the SuperLink and three SuperNodes were running
    leftover = [pid for pid in pids if is_alive(pid)]
    assert not leftover, f"processes left running: {leftover}"


def follow(process, until: str, timeout: float = 600) -> list[str]:
    """Read the submit process's output up to (and including) the first line with ``until``."""
    lines, deadline = [], time.monotonic() + timeout
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if until in line:
            return lines
        assert time.monotonic() < deadline, f"no {until!r} within {timeout:.0f}s"
    raise AssertionError(f"the run ended before {until!r}:\n" + "\n".join(lines[-30:]))


def finish(process, timeout: float = 600) -> tuple[int, list[str]]:
    lines = [line.rstrip("\n") for line in process.stdout]
    return process.wait(timeout=timeout), lines


def test_a_supernode_with_an_unregistered_key_is_rejected(federation):
    intruder = federation.start_supernode(0, key_index=3)  # key pair 3 was never registered
    assert intruder.wait(timeout=120) != 0
    log = federation.log_path("supernode-0").read_text()
    assert "Failed to activate SuperNode" in log
    nodes = federation.nodes()
    assert len(nodes) == 3 and all(n["status"] == "online" for n in nodes)


def test_a_killed_serverapp_is_resumed_from_its_last_checkpoint(federation):
    run_dir = federation.root / "run-resume"
    submit = federation.submit("num-server-rounds=2", f"output-dir={run_dir}", *TINY_TRAINING,
                               quiet=False)
    follow(submit, "[fedssl] round 1/2")
    serverapps = federation.serverapp_pids()
    assert len(serverapps) == 1
    os.kill(serverapps[0], signal.SIGKILL)
    # The operator stops the orphaned run (otherwise it fails after the ServerApp's heartbeat
    # timeout, about a minute later).
    run_id, status, _ = federation.cli.status(CONNECTION)
    assert status.startswith("running")
    federation.cli.stop(CONNECTION, run_id)
    code, _ = finish(submit)
    assert code == 1
    assert federation.cli.status(CONNECTION, run_id)[1] == "finished:stopped"
    assert load_checkpoint(run_dir)["round"] == 1
    assert not (run_dir / "summary.json").exists()

    resume = federation.submit("num-server-rounds=2", f"resume-from={run_dir}", *TINY_TRAINING)
    code, lines = finish(resume)
    assert code == 0, "\n".join(lines[-30:])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed-after-round"] == 1 and summary["rounds"] == 2
    metrics = pd.read_csv(run_dir / "metrics.csv")
    loss = metrics[(metrics["source"] == "client") & (metrics["metric"] == "train-loss")]
    assert sorted(loss["round"].unique()) == [1, 2]
    assert load_checkpoint(run_dir)["round"] == 2


def test_a_video_run_under_fedvssl_completes_on_the_deployed_federation(federation):
    """task=video-ssl over TLS with authenticated SuperNodes: the same ClientApp and
    ServerApp as in simulation, CtP under FedVSSL's backbone-only updating, one round."""
    run_dir = federation.root / "run-video"
    submit = federation.submit(
        "task=video-ssl", "dataset=motion-digits", "model=r3d-tiny-ctp", "ssl-method=ctp",
        "strategy=fedvssl", "partial-prefix=backbone.", "num-server-rounds=1",
        "max-local-steps=1", "batch-size=8", "eval-max-samples=40", "linear-probe=false",
        "wandb-mode=disabled", f"output-dir={run_dir}", quiet=True)
    code, lines = finish(submit)
    assert code == 0, "\n".join(lines[-40:])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["num-partitions"] == 3
    assert 0.0 <= summary["retrieval-r1"] <= summary["retrieval-r5"] <= 1.0
    metrics = pd.read_csv(run_dir / "metrics.csv")
    kept = metrics[(metrics["metric"] == "partial-local-arrays")
                   & (metrics["source"] == "client")]
    assert len(kept) == 3  # each client reported what it kept of its own (round 1: nothing)


def test_default_experiment_completes_when_a_supernode_dies_in_round_2(federation):
    """The default experiment (only two rounds instead of eight) over TLS with authenticated
    SuperNodes; SuperNode 2 is killed (SIGKILL) once round 2 has been sent out."""
    run_dir = federation.root / "run-default"
    started = time.perf_counter()
    submit = federation.submit("num-server-rounds=2", f"output-dir={run_dir}", quiet=False)
    follow(submit, "[fedssl] round 1/2")
    time.sleep(1.0)
    federation.kill_supernode(2)
    code, lines = finish(submit)
    wall = time.perf_counter() - started
    assert code == 0, "\n".join(lines[-40:])
    print(f"deployment run (default experiment, 2 rounds, SuperNode killed): {wall:.1f}s")

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["num-partitions"] == 3
    assert summary["total-failures"] == 1
    assert 0.0 <= summary["linear-probe-accuracy"] <= 1.0
    metrics = pd.read_csv(run_dir / "metrics.csv")
    client = metrics[metrics["source"] == "client"]
    loss = client[client["metric"] == "train-loss"]
    assert sorted(loss[loss["round"] == 1]["partition"]) == [0, 1, 2]
    assert sorted(loss[loss["round"] == 2]["partition"]) == [0, 1]
    failed = client[client["metric"] == "failed"]
    assert failed[["round", "partition"]].values.tolist() == [[2, 2]]
    assert any("reply of partition 2" in line and "node lost" in line for line in lines)
    # The final model is the aggregate of the two survivors, and it is a real model.
    state = load_tensors(run_dir / "final_model.safetensors")
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())

    # W&B ran offline (the default, no API key) and recorded the dashboards.
    (offline_dir,) = (run_dir / "wandb").glob("offline-run-*")
    wandb_run = read_offline_run(offline_dir)
    history = wandb_run.frame()
    assert {"train/train-loss", "train/failures", "central/knn-accuracy"} <= set(history.columns)
    assert wandb_run.values("train/failures") == {1: 0, 2: 1}
    assert wandb_run.summary["linear-probe-accuracy"] == pytest.approx(
        summary["linear-probe-accuracy"])
