"""Run the Flower app on a private local SuperLink, the way `flwr run` should for research.

`flwr run` alone has three traps (see DESIGN.md / flower.md): its local SuperLink is a shared
daemon that outlives the run and keeps the environment of whoever started it, it re-installs
dependencies into each run unless told not to, and it exits 0 even when the run failed. Here
each :class:`LocalSuperLink` is our own child process on free ports, started from a neutral
directory with runtime installation disabled, and the run's real status decides the outcome.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

__all__ = ["APP_DIR", "Federation", "LocalSuperLink", "RunOutcome"]

APP_DIR = Path(__file__).resolve().parents[2]
PROGRESS = re.compile(r"\[fedssl\] round (\d+)/(\d+)")
STARTED = re.compile(r"started run (\d+)", re.IGNORECASE)
# Lines that are noise on every run (see flower.md, pitfall 10).
NOISE = ("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "warnings.warn(")


@dataclass(frozen=True)
class Federation:
    """The simulated federation: how many SuperNodes and what each ClientApp may use."""

    num_supernodes: int = 10
    client_cpus: float = 1.0
    client_gpus: float = 0.0

    def as_flwr_arg(self) -> str:
        return (f"num-supernodes={self.num_supernodes} "
                f"client-resources-num-cpus={self.client_cpus:g} "
                f"client-resources-num-gpus={self.client_gpus:g}")


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    details: str
    run_dir: Path
    wall_time_s: float

    @property
    def completed(self) -> bool:
        return self.status == "finished:completed"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bin(name: str) -> str:
    # Prefer the executables of the running interpreter's environment over whatever is on PATH.
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


class LocalSuperLink:
    """A simulation SuperLink owned by this process; use as a context manager."""

    def __init__(self, startup_timeout: float = 30.0) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="fedssl-flwr-"))
        self.port, self.control_port = _free_port(), _free_port()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.env = os.environ | {
            "FLWR_HOME": str(self.home),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "PYTHONUNBUFFERED": "1",
            # The SuperLink spawns flower-superexec / flwr-simulation by name.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "fedssl"\n\n[superlink.fedssl]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )

    def __enter__(self) -> LocalSuperLink:
        command = [
            _bin("flower-superlink"), "--insecure", "--simulation",
            "--isolation", "subprocess",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--control-api-address", f"127.0.0.1:{self.control_port}",
            "--disable-runtime-dependency-installation",
            "--log-file", str(self.home / "superlink.log"),
        ]
        self.process = subprocess.Popen(
            command, cwd=self.home, env=self.env, stdout=subprocess.DEVNULL,
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
        """End the SuperLink and the processes it started (its own process group)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        shutil.rmtree(self.home, ignore_errors=True)

    def _flwr(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
        return subprocess.run([_bin("flwr"), *args], cwd=self.home, env=self.env,
                              capture_output=True, text=True, **kwargs)

    def run(
        self,
        run_config: dict[str, Any],
        federation: Federation,
        *,
        on_line: Callable[[str], None] = print,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> RunOutcome:
        """Submit one run, stream its log, and return its final status."""
        start = time.perf_counter()
        overrides = self.home / f"run-config-{time.time_ns()}.toml"
        overrides.write_text(tomli_w.dumps(run_config))
        command = [_bin("flwr"), "run", str(APP_DIR), "fedssl", "--stream",
                   "--run-config", str(overrides), "--federation-config", federation.as_flwr_arg()]
        with subprocess.Popen(command, cwd=self.home, env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
            assert proc.stdout is not None
            run_id = ""
            for line in proc.stdout:
                if not run_id and (started := STARTED.search(line)):
                    run_id = started.group(1)
                line = line.rstrip("\n")
                if any(noise in line for noise in NOISE):
                    continue
                on_line(line)
                if on_progress and (match := PROGRESS.search(line)):
                    on_progress(int(match.group(1)), int(match.group(2)))
        run_id, status, details = self._run_status(run_id)
        return RunOutcome(run_id, status, details, Path(run_config["output-dir"]),
                          time.perf_counter() - start)

    def _run_status(self, run_id: str) -> tuple[str, str, str]:
        # The SuperLink is ours alone: without a parsed id, the newest run is the one streamed.
        args = ["--run-id", run_id] if run_id else []
        result = self._flwr("ls", "fedssl", *args, "--format", "json", timeout=60)
        try:
            runs = json.loads(result.stdout).get("runs", [])
        except json.JSONDecodeError:
            return "", "unknown", result.stdout + result.stderr
        if not runs:
            return "", "unknown", "no run was registered on the SuperLink"
        run = max(runs, key=lambda r: str(r.get("pending-at", "")))
        return str(run.get("run-id", "")), str(run.get("status", "unknown")), str(
            run.get("status-details", "")
        )
