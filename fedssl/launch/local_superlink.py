"""Run the Flower app on a private local SuperLink, the way `flwr run` should for research.

`flwr run` alone has three traps (see DESIGN.md / flower.md): its local SuperLink is a shared
daemon that outlives the run and keeps the environment of whoever started it, it re-installs
dependencies into each run unless told not to, and it exits 0 even when the run failed. Here
each :class:`LocalSuperLink` is our own child process on free ports, started from a neutral
directory with runtime installation disabled, and the run's real status decides the outcome.

A :class:`Federation` with a ``ray_address`` runs the ClientApps on an existing Ray cluster
instead of a private local Ray: Flower 1.41 has no federation-config key for a Ray address (its
``init-args-*`` keys are num-cpus, num-gpus, logging-level and log-to-driver only), but its Ray
backend calls a bare ``ray.init(...)``, which honours ``RAY_ADDRESS``. So the address goes into
the SuperLink's environment, which flower-superexec and flwr-simulation inherit.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedssl.launch.flwr_cli import (
    APP_DIR,
    FlwrCli,
    RunOutcome,
    flwr_bin,
    free_port,
    process_env,
)
from fedssl.launch.reaper import TOKEN_ENV, end_marked, supervised_command

__all__ = [
    "APP_DIR", "Federation", "LocalSuperLink", "RayClusterUnreachable", "RunOutcome",
    "check_ray_cluster", "parse_ray_address",
]

# ``HOST:PORT`` is the head's GCS address (``ray start --head --port``); ``ray://HOST:PORT`` is
# its Ray Client server (``--ray-client-server-port``, default 10001). Both were run end to end.
_RAY_ADDRESS = re.compile(
    r"^(?P<scheme>ray://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
    r":(?P<port>[0-9]{1,5})$"
)
RAY_ADDRESS_HELP = ("HOST:PORT of the head's GCS (what `ray start --head --port PORT` prints, "
                    "e.g. 127.0.0.1:6379 or head.example.org:6379) or ray://HOST:PORT of its "
                    "Ray Client server (e.g. ray://10.0.0.5:10001)")


class RayClusterUnreachable(ConnectionError):
    """Nothing that speaks Ray's gRPC answers at the given address."""


def parse_ray_address(address: str) -> tuple[str, int]:
    """``(host, port)`` of a Ray cluster address; ``ValueError`` naming the valid forms.

    Checked before anything starts because a malformed address would otherwise only fail inside
    flwr-simulation, after the SuperLink, the FAB install and the ServerApp start-up.
    """
    match = _RAY_ADDRESS.match(address)
    port = int(match.group("port")) if match else 0
    if address == "auto":
        why = "'auto' would attach to whichever cluster was started last on this machine"
    elif match and not 0 < port < 65536:
        why = f"port {port} is outside 1-65535"
    else:
        why = "it is not HOST:PORT or ray://HOST:PORT"
    if not match or not 0 < port < 65536:
        raise ValueError(f"--ray-address {address!r} is not valid: {why}. "
                         f"Give the {RAY_ADDRESS_HELP}")
    return match.group("host").strip("[]"), port


def check_ray_cluster(address: str, timeout: float = 10.0) -> None:
    """Fail fast (``RayClusterUnreachable``) unless a gRPC server answers at ``address``.

    Without this, ``ray.init`` in flwr-simulation retries an unreachable GCS for minutes (seen:
    over two minutes for a closed port) while the run shows nothing. Ray's GCS and its Ray Client
    server are both gRPC servers, so an HTTP/2 handshake also rejects a port that is open but
    belongs to something else.
    """
    import grpc

    host, port = parse_ray_address(address)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        flag = "--ray-client-server-port" if address.startswith("ray://") else "--port"
        raise RayClusterUnreachable(
            f"no Ray cluster at --ray-address {address}: cannot connect to {target} ({err}). "
            f"Is the head started (`ray start --head {flag} {port}`), the host name right and "
            f"the port open from this machine?") from None
    channel = grpc.insecure_channel(target)
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise RayClusterUnreachable(
            f"--ray-address {address}: {target} accepts connections but no gRPC server "
            f"answered within {timeout:.0f}s, so it is not a Ray head. Give the "
            f"{RAY_ADDRESS_HELP}") from None
    finally:
        channel.close()


def _local_gpus() -> int:
    import torch  # only when a GPU is asked for: torch takes a second to import

    return torch.cuda.device_count()


@dataclass(frozen=True)
class Federation:
    """The simulated federation: how many SuperNodes and what each ClientApp may use.

    ``ray_address`` (empty: a private local Ray) names an existing Ray cluster; every node of it
    then hosts as many ClientApp actors as its CPUs / ``client_cpus`` (and GPUs /
    ``client_gpus``) allow.
    """

    num_supernodes: int = 10
    client_cpus: float = 1.0
    client_gpus: float = 0.0
    ray_address: str = ""

    def __post_init__(self) -> None:
        # Refused here, before any process starts: Flower would otherwise fail 20-40 s into
        # the run with a traceback or a Ray warning buried in its log.
        if isinstance(self.num_supernodes, bool) or not isinstance(self.num_supernodes, int) \
                or self.num_supernodes < 1:
            raise ValueError(f"--num-supernodes={self.num_supernodes!r}: give a whole number "
                             ">= 1 (the simulated clients)")
        if not (float(self.client_cpus).is_integer() and self.client_cpus >= 1):
            raise ValueError(f"--client-cpus={self.client_cpus:g}: give a whole number >= 1 "
                             "(Flower's simulation stores it as an integer)")
        if not self.client_gpus >= 0:
            raise ValueError(f"--client-gpus={self.client_gpus:g}: give 0 (no GPU) or a "
                             "positive share of a GPU, e.g. 0.5")
        if self.client_gpus > 0 and not self.ray_address and not _local_gpus():
            raise ValueError(f"--client-gpus={self.client_gpus:g}, but this machine has no GPU "
                             "(torch sees none); use --client-gpus 0, or --ray-address for a "
                             "cluster with GPU nodes")
        if self.ray_address:
            parse_ray_address(self.ray_address)

    def check_fits(self, min_available_nodes: int, min_train_nodes: int) -> None:
        """Refuse a run that would wait for more nodes than the simulation starts."""
        for key, value in (("min-available-nodes", min_available_nodes),
                           ("min-train-nodes", min_train_nodes)):
            if value > self.num_supernodes:
                raise ValueError(
                    f"{key}={value} is more than --num-supernodes={self.num_supernodes}: the "
                    f"run would wait for nodes forever; raise --num-supernodes or lower {key}")

    def as_flwr_arg(self) -> str:
        return (f"num-supernodes={self.num_supernodes} "
                f"client-resources-num-cpus={self.client_cpus:g} "
                f"client-resources-num-gpus={self.client_gpus:g}")


class LocalSuperLink:
    """A simulation SuperLink owned by this process; use as a context manager.

    ``ray_address`` is the Ray cluster its runs use (empty: a private local Ray). It goes into
    the SuperLink's environment, which flower-superexec and flwr-simulation (where Flower
    calls ``ray.init``) inherit, so it is fixed for the SuperLink's life.
    """

    def __init__(self, startup_timeout: float = 30.0, ray_address: str = "") -> None:
        self.home = Path(tempfile.mkdtemp(prefix="fedssl-flwr-"))
        self.port, self.control_port = free_port(), free_port()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.ray_address = ray_address
        # The SuperLink runs under a supervisor (fedssl.launch.reaper) that ends every process
        # below it, whichever way this command ends. Each process also carries the token,
        # the `flwr` CLI processes this command starts outside that tree included.
        self.token = secrets.token_hex(8)
        self.env = process_env() | {"FLWR_HOME": str(self.home),
                                    "FLWR_DISABLE_UPDATE_CHECK": "1", TOKEN_ENV: self.token}
        # Only an explicit address reaches Ray: a RAY_ADDRESS left in the user's shell must not
        # silently send the ClientApps to some cluster (Ray's convention would honour it).
        self.env.pop("RAY_ADDRESS", None)
        if ray_address:
            self.env["RAY_ADDRESS"] = ray_address
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "fedssl"\n\n[superlink.fedssl]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )

    def __enter__(self) -> LocalSuperLink:
        command = [
            flwr_bin("flower-superlink"), "--insecure", "--simulation",
            "--isolation", "subprocess",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--control-api-address", f"127.0.0.1:{self.control_port}",
            "--disable-runtime-dependency-installation",
            "--log-file", str(self.home / "superlink.log"),
        ]
        # A session of its own: Ctrl-C reaches this command, which then stops it in order.
        self.process = subprocess.Popen(
            supervised_command(command, parent=os.getpid(), token=self.token, cleanup=self.home),
            cwd=self.home, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flower-superlink exited with code {self.process.returncode}; "
                                   f"see {self.home / 'superlink.log'}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"flower-superlink did not answer within {self.startup_timeout:.0f}s")

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """End the SuperLink and every process it started (SuperExec, the simulation, Ray),
        and remove its temporary directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the supervisor ends its whole tree
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        end_marked(self.token, grace=2.0)  # a second net: anything that escaped the tree
        shutil.rmtree(self.home, ignore_errors=True)

    def run(
        self,
        run_config: dict[str, Any],
        federation: Federation,
        *,
        on_line: Callable[[str], None] = print,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> RunOutcome:
        """Submit one run, stream its log, and return its final status."""
        if federation.ray_address != self.ray_address:
            raise ValueError(
                f"this SuperLink was started for ray_address={self.ray_address!r}, the run asks "
                f"for {federation.ray_address!r}; start it with LocalSuperLink(ray_address=...)")
        if federation.ray_address:
            try:
                check_ray_cluster(federation.ray_address)
            except RayClusterUnreachable as err:
                return RunOutcome("", "not-started:ray-unreachable", str(err),
                                  Path(run_config["output-dir"]), 0.0)
        # The SuperLink is ours alone, so its newest run is the one streamed.
        return FlwrCli(self.env, self.home).run(
            "fedssl", run_config, federation_config=federation.as_flwr_arg(),
            on_line=on_line, on_progress=on_progress)
