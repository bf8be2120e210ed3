"""``fedssl run --ray-address``: ClientApps on an existing multi-node Ray cluster.

The cluster is a real one: a head and a worker node started with ``ray start --block`` on this
host, each with one CPU, so the two ClientApp actors of a ``--client-cpus 1`` run can only fit
one per node. Ray's own GCS actor table then says on which node each ``ClientAppActor`` ran;
a run that started a private local Ray instead leaves no actor in it at all.

Ray's state API (``ray list actors``, ``ray.util.state``) needs ``ray[default]`` and the
dashboard, which flwr[simulation] does not install, so the actor table is read through a
driver (``ray._private.state``) in a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from tiny_runs import TINY

from fedssl.cli import main
from fedssl.launch import (
    Federation,
    LocalSuperLink,
    RayClusterUnreachable,
    check_ray_cluster,
    parse_ray_address,
)

RAY = str(Path(sys.executable).parent / "ray")

# Run in a fresh interpreter so that this test process never becomes a Ray driver.
CLUSTER_STATE = """
import json, sys, time
import ray
from ray._private.state import state

address, want_nodes, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ray.init(address=address, logging_level="ERROR", log_to_driver=False)
deadline = time.monotonic() + timeout
while True:
    alive = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    if len(alive) >= want_nodes or time.monotonic() > deadline:
        break
    time.sleep(0.5)
actors = [{"class": a["ActorClassName"], "state": a["State"], "node": a["Address"]["NodeID"],
           "pid": a["Pid"]} for a in state.actor_table(None).values()]
print(json.dumps({"alive_nodes": alive, "actors": actors}))
ray.shutdown()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _free_port_block(size: int) -> int:
    """First port of ``size`` consecutive free ports, below Linux's ephemeral range (32768+)
    so that connections made meanwhile do not land in it."""
    for _ in range(200):
        first = random.randint(20000, 32000 - size)
        try:
            for port in range(first, first + size):
                with socket.socket() as sock:
                    sock.bind(("", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no block of {size} free ports found")


def _node_ports() -> list[str]:
    """Every port a Ray node opens, chosen free, so that parallel test runs do not collide
    (several default to fixed numbers, e.g. the dashboard agent's 52365)."""
    workers = _free_port_block(16)
    return [
        "--node-manager-port", str(_free_port()), "--object-manager-port", str(_free_port()),
        "--min-worker-port", str(workers), "--max-worker-port", str(workers + 15),
        "--dashboard-agent-listen-port", str(_free_port()),
        "--dashboard-agent-grpc-port", str(_free_port()),
        "--runtime-env-agent-port", str(_free_port()),
        "--metrics-export-port", str(_free_port()),
    ]


def cluster_state(address: str, want_nodes: int = 0, timeout: float = 0.0) -> dict:
    proc = subprocess.run([sys.executable, "-c", CLUSTER_STATE, address, str(want_nodes),
                           str(timeout)], capture_output=True, text=True, timeout=timeout + 90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _processes_of(temp_dir: str, groups: set[int]) -> list[str]:
    """Live processes in the nodes' process groups or naming their temp dir (Ray workers
    rewrite their command line to ``ray::...``, hence the group check)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if state[0] == "Z":
            continue
        if temp_dir in cmdline or int(state[2]) in groups:
            found.append(f"{entry.name} {cmdline[:120]}")
    return found


@dataclass
class RayCluster:
    address: str
    node_ids: list[str]
    temp_dir: str


@pytest.fixture
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    """A head and one worker node, each with 1 CPU, owned (and ended) by this fixture."""
    # Ray puts unix sockets under the temp dir; their paths are limited to ~107 bytes.
    temp_dir = f"/tmp/rc-{uuid.uuid4().hex[:8]}"
    logs = tmp_path_factory.mktemp("ray-nodes")
    gcs_port = _free_port()
    address = f"127.0.0.1:{gcs_port}"
    # --node-ip-address 127.0.0.1 is rewritten by Ray to this host's routable address, and the
    # nodes listen on all interfaces: the free ports matter on every interface.
    common = ["--num-cpus", "1", "--num-gpus", "0", "--object-store-memory", str(200 * 2**20),
              "--node-ip-address", "127.0.0.1", "--temp-dir", temp_dir,
              "--disable-usage-stats", "--block"]
    head_cmd = [RAY, "start", "--head", "--port", str(gcs_port),
                "--ray-client-server-port", str(_free_port()),
                "--include-dashboard", "false", "--dashboard-port", str(_free_port()),
                *common, *_node_ports()]
    worker_cmd = [RAY, "start", "--address", address, *common, *_node_ports()]
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    nodes: list[subprocess.Popen] = []
    try:
        for name, command in (("head", head_cmd), ("worker", worker_cmd)):
            with open(logs / f"{name}.log", "w") as log:
                nodes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                              env=env, start_new_session=True))
            if name == "head":
                deadline = time.monotonic() + 60
                while True:
                    assert nodes[0].poll() is None, (logs / "head.log").read_text()[-3000:]
                    try:
                        check_ray_cluster(address, timeout=2)
                        break
                    except RayClusterUnreachable:
                        assert time.monotonic() < deadline, "the Ray head did not come up"
                        time.sleep(0.5)
        state = cluster_state(address, want_nodes=2, timeout=60)
        assert len(state["alive_nodes"]) == 2, (state, (logs / "worker.log").read_text())
        assert not [a for a in state["actors"] if a["class"] == "ClientAppActor"]
        yield RayCluster(address, state["alive_nodes"], temp_dir)
    finally:
        groups = {node.pid for node in nodes}
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        deadline = time.monotonic() + 20
        while (left := _processes_of(temp_dir, groups)) and time.monotonic() < deadline:
            time.sleep(0.5)
        for group in groups if left else ():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes outlived their node: {left}"


@pytest.mark.e2e
def test_client_apps_run_on_every_node_of_an_existing_cluster(tmp_path, ray_cluster):
    run_dir = tmp_path / "run"
    code = main(["run", "-q", "--num-supernodes", "4", "--client-cpus", "1",
                 "--ray-address", ray_cluster.address, *TINY, f"output-dir={run_dir}"])
    assert code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["num-partitions"] == 4
    metrics = pd.read_csv(run_dir / "metrics.csv")
    loss = metrics[(metrics["source"] == "client") & (metrics["metric"] == "train-loss")]
    assert sorted(loss["partition"].unique()) == [0, 1, 2, 3]
    # The cluster had no ClientAppActor before the run (checked by the fixture); now each of
    # its two 1-CPU nodes has hosted one. A private local Ray would leave none here.
    actors = [a for a in cluster_state(ray_cluster.address)["actors"]
              if a["class"] == "ClientAppActor"]
    assert len(actors) == 2, actors
    assert sorted(a["node"] for a in actors) == sorted(ray_cluster.node_ids), actors


def test_malformed_ray_address_is_refused_with_the_valid_forms(capsys):
    assert main(["run", "--ray-address", "head-node", "num-server-rounds=1"]) == 2
    err = capsys.readouterr().err
    assert "'head-node' is not valid" in err
    assert "127.0.0.1:6379" in err and "ray://" in err
    for bad in ("auto", "http://h:6379", "h:70000", "h:", ":6379", "h:6379 "):
        with pytest.raises(ValueError, match="is not valid"):
            Federation(ray_address=bad)
    assert parse_ray_address("ray://head.example.org:10001") == ("head.example.org", 10001)
    assert parse_ray_address("10.0.0.5:6379") == ("10.0.0.5", 6379)


def test_unreachable_cluster_fails_fast_before_any_process(capsys):
    port = _free_port()  # nothing listens there now
    start = time.perf_counter()
    assert main(["run", "--ray-address", f"127.0.0.1:{port}", "num-server-rounds=1"]) == 2
    assert time.perf_counter() - start < 30
    err = capsys.readouterr().err
    assert f"no Ray cluster at --ray-address 127.0.0.1:{port}" in err
    assert f"ray start --head --port {port}" in err


def test_a_port_that_is_not_ray_is_told_apart():
    with socket.socket() as server:  # accepts TCP, never speaks gRPC
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(RayClusterUnreachable, match="not a Ray head"):
            check_ray_cluster(f"127.0.0.1:{port}", timeout=2)


def test_only_an_explicit_address_reaches_the_superlink(monkeypatch):
    """The SuperLink's environment is what flwr-simulation (and so ray.init) inherits."""
    monkeypatch.setenv("RAY_ADDRESS", "10.9.9.9:6379")
    link = LocalSuperLink()
    try:
        assert "RAY_ADDRESS" not in link.env  # a stray shell variable is not used
        with pytest.raises(ValueError, match="ray_address"):  # a run cannot switch clusters
            link.run({"output-dir": "unused"}, Federation(ray_address="127.0.0.1:6379"))
    finally:
        link.stop()
    link = LocalSuperLink(ray_address="127.0.0.1:6379")
    try:
        assert link.env["RAY_ADDRESS"] == "127.0.0.1:6379"
    finally:
        link.stop()
    assert "init-args" not in Federation(ray_address="127.0.0.1:6379").as_flwr_arg()
