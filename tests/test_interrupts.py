"""A run stopped by SIGTERM (a scheduler, `timeout`) or killed outright (SIGKILL) leaves no
process behind, and its last checkpoint stays usable (real CLI, real SuperLink and Ray)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from fedssl.tracking import load_checkpoint

pytestmark = pytest.mark.e2e

MARK = "FEDSSL_TEST_MARK"


def _marked(mark: str) -> list[int]:
    """Processes started under this test: they inherit the mark in their environment."""
    needle = f"{MARK}={mark}".encode() + b"\0"
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (entry / "environ").read_bytes():
                stat = (entry / "stat").read_text()
                if stat.rsplit(")", 1)[-1].split()[0] != "Z":
                    pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def _start(run_dir: Path, mark: str) -> subprocess.Popen:
    env = os.environ | {MARK: mark, "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "fedssl.cli", "run", "-q", "--num-supernodes", "2",
         "num-server-rounds=30", "max-local-steps=1", "batch-size=16", "eval-every=0",
         "linear-probe=false", "eval-max-samples=100", "partitioner=iid",
         "wandb-mode=disabled", "keep-round-models=false", f"output-dir={run_dir}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for_a_round(process: subprocess.Popen, run_dir: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        if any(run_dir.glob("checkpoint*")):
            return
        time.sleep(1)
    raise AssertionError("no round finished in time")


def _none_left(mark: str, timeout: float) -> list[str]:
    """The command lines of marked processes still alive after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (left := _marked(mark)) and time.monotonic() < deadline:
        time.sleep(1)
    return [_cmdline(pid) for pid in left]


def _cmdline(pid: int) -> str:
    try:
        return f"{pid}: " + (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(
            b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return f"{pid}: (gone)"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_sigterm_stops_the_run_and_everything_it_started(tmp_path):
    mark = uuid.uuid4().hex
    process = _start(tmp_path / "run", mark)
    _wait_for_a_round(process, tmp_path / "run")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=90) == 128 + signal.SIGTERM
    err = process.stderr.read()
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert _none_left(mark, timeout=30) == []
    assert load_checkpoint(tmp_path / "run")["round"] >= 1


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_a_killed_command_leaves_no_process_behind(tmp_path):
    mark = uuid.uuid4().hex
    process = _start(tmp_path / "run", mark)
    _wait_for_a_round(process, tmp_path / "run")
    process.kill()  # no handler of the command runs: its supervisor ends what it started
    process.wait(timeout=30)
    assert _none_left(mark, timeout=90) == []
    assert load_checkpoint(tmp_path / "run")["round"] >= 1
