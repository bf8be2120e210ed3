"""Submit a run with the ``flwr`` CLI, stream its log, and read its real final status.

``flwr run`` exits 0 as soon as a run is submitted, even when the ServerApp later crashes
(flower.md, pitfall 3), so the outcome is taken from ``flwr ls --run-id``. Used for the
private simulation SuperLink (:mod:`fedssl.launch.local_superlink`) and for deployment
(``fedssl deploy``: :mod:`fedssl.deploy.roles`, ``submit``). Also the one environment Flower's
processes get (:func:`process_env`) and the reader of the CLI's JSON output
(:func:`json_output`).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

__all__ = [
    "APP_DIR", "FlwrCli", "RunOutcome", "flwr_bin", "free_port", "json_output", "process_env",
]

APP_DIR = Path(__file__).resolve().parents[2]
PROGRESS = re.compile(r"\[fedssl\] round (\d+)/(\d+)")
STARTED = re.compile(r"started run (\d+)", re.IGNORECASE)
# Lines that are noise on every run (see flower.md, pitfall 10). Flower 1.41's simulation warns
# about its default federation size on every run, even when the size is given (as fedssl
# always does: --num-supernodes), and tells how to resize with its own CLI.
NOISE = ("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "warnings.warn(",
         "default simulated SuperNodes changed from 10 to 2",
         "To change federation size, use the following command",
         "flwr federation simulation-config")


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for Flower's processes (simulation and deployment alike).

    The SuperLink and SuperNodes start ``flower-superexec``, ``flwr-serverapp``,
    ``flwr-simulation`` and ``flwr-clientapp`` by name, so this interpreter's ``bin`` goes
    first on PATH; runtime dependency installation stays off so the apps use this
    environment's pinned torch.
    """
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    env.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def flwr_bin(name: str) -> str:
    """An executable of the running interpreter's environment, before whatever is on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def json_output(text: str) -> dict:
    """The JSON object the ``flwr`` CLI prints with ``--format json`` ({} if there is none)."""
    start = text.find("{")
    try:
        payload = json.loads(text[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}
    return payload if isinstance(payload, dict) else {}


@dataclass(frozen=True)
class RunOutcome:
    """How a submitted run ended: its id, Flower's final status and where its results are."""

    run_id: str
    status: str
    details: str
    run_dir: Path | None
    wall_time_s: float

    @property
    def completed(self) -> bool:
        return self.status == "finished:completed"


@dataclass
class FlwrCli:
    """The ``flwr`` CLI with a fixed environment (``FLWR_HOME`` names the connections)."""

    env: Mapping[str, str]
    cwd: Path

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([flwr_bin("flwr"), *args], cwd=self.cwd, env=dict(self.env),
                              capture_output=True, text=True, timeout=timeout)

    def run(
        self,
        connection: str,
        run_config: dict[str, Any],
        *,
        federation_config: str = "",
        app_dir: Path = APP_DIR,
        on_line: Callable[[str], None] = print,
        on_progress: Callable[[int, int], None] | None = None,
        on_started: Callable[[str], None] | None = None,
    ) -> RunOutcome:
        """Submit ``app_dir`` with ``run_config`` to ``connection``; block until it ends."""
        start = time.perf_counter()
        overrides = Path(self.cwd) / f"run-config-{time.time_ns()}.toml"
        overrides.write_text(tomli_w.dumps(run_config))
        command = [flwr_bin("flwr"), "run", str(app_dir), connection, "--stream",
                   "--run-config", str(overrides)]
        if federation_config:
            command += ["--federation-config", federation_config]
        run_id = ""
        try:
            with subprocess.Popen(command, cwd=self.cwd, env=dict(self.env),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  bufsize=1) as proc:
                assert proc.stdout is not None
                for line in proc.stdout:
                    if not run_id and (started := STARTED.search(line)):
                        run_id = started.group(1)
                        if on_started is not None:
                            on_started(run_id)
                    line = line.rstrip("\n")
                    if any(noise in line for noise in NOISE):
                        continue
                    on_line(line)
                    if on_progress and (match := PROGRESS.search(line)):
                        on_progress(int(match.group(1)), int(match.group(2)))
        finally:
            overrides.unlink(missing_ok=True)
        run_id, status, details = self.status(connection, run_id)
        output_dir = run_config.get("output-dir")
        return RunOutcome(run_id, status, details, Path(output_dir) if output_dir else None,
                          time.perf_counter() - start)

    def status(self, connection: str, run_id: str = "") -> tuple[str, str, str]:
        """(run id, status, details) of ``run_id``, or of the newest run when it is empty."""
        args = ["--run-id", run_id] if run_id else []
        result = self("ls", connection, *args, "--format", "json", timeout=60)
        payload = json_output(result.stdout)
        if not payload:
            return run_id, "unknown", result.stdout + result.stderr
        runs = payload.get("runs", [])
        if not runs:
            return run_id, "unknown", "no run was registered on the SuperLink"
        run = max(runs, key=lambda r: str(r.get("pending-at", "")))
        return (str(run.get("run-id", "")), str(run.get("status", "unknown")),
                str(run.get("status-details", "")))

    def stop(self, connection: str, run_id: str) -> subprocess.CompletedProcess:
        return self("stop", run_id, connection, timeout=60)
