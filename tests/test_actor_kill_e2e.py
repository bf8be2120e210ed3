"""`kill -9` of one Ray ClientApp actor mid-run (real CLI, real SuperLink, real Ray).

Flower 1.41 keeps the dead actor in its pool and hands it later messages, so the rounds after
the kill lose clients; the run must end failed, naming the round, the count and the error,
not "completed" with exit 0. ``max-failed-fraction=0`` makes the first lost client stop the
run, so the outcome does not depend on how Ray schedules the surviving actor (with the
default 0.5 a round must lose two of three clients; tests/test_round_failures.py covers it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from tiny_runs import TINY_TRAINING

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")]

MARK = "FEDSSL_TEST_MARK"


def _marked(mark: str) -> dict[int, str]:
    """Live processes started under this test (they inherit the mark), with their cmdline."""
    needle = f"{MARK}={mark}".encode() + b"\0"
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (needle in (entry / "environ").read_bytes()
                    and (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"):
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(
                    b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
    return found


def _kill_a_busy_actor(mark: str, process: subprocess.Popen, timeout: float) -> str:
    """SIGKILL one ClientApp actor while it runs a message (Ray titles it
    ``ray::ClientAppActor.run`` then); an idle one if none is caught busy in time."""
    deadline = time.monotonic() + timeout
    idle: dict[int, str] = {}
    while time.monotonic() < deadline and process.poll() is None:
        actors = {pid: cmd for pid, cmd in _marked(mark).items()
                  if cmd.startswith("ray::ClientAppActor")}
        busy = [pid for pid, cmd in actors.items() if cmd.startswith("ray::ClientAppActor.run")]
        idle = actors
        if busy:
            os.kill(busy[0], signal.SIGKILL)
            return actors[busy[0]]
        time.sleep(0.05)
    assert idle, "no ClientApp actor found"
    pid = next(iter(idle))
    os.kill(pid, signal.SIGKILL)
    return idle[pid]


def test_killed_client_actor_fails_the_run_naming_round_and_error(tmp_path):
    mark = uuid.uuid4().hex
    run_dir = tmp_path / "run"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = os.environ | {MARK: mark, "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "fedssl.cli", "run", "-q", "--num-supernodes", "3",
             *TINY_TRAINING, "num-server-rounds=4", "min-train-nodes=1",
             "min-available-nodes=3", "max-local-steps=4", "eval-every=0",
             "keep-round-models=false", "max-failed-fraction=0.0", f"output-dir={run_dir}"],
            env=env, stdout=stdout, stderr=stderr, text=True)
    try:
        deadline = time.monotonic() + 300
        while "round 1/4" not in out.read_text():
            assert process.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "round 1 did not finish in time"
            time.sleep(0.2)
        killed = _kill_a_busy_actor(mark, process, timeout=60)
        code = process.wait(timeout=600)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
        left = _marked(mark)
        deadline = time.monotonic() + 90
        while left and time.monotonic() < deadline:
            time.sleep(1)
            left = _marked(mark)
        for pid in left:  # only what this test started; then fail below
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    stderr_text = err.read_text()
    assert not left, f"processes left behind: {left}"
    assert code == 1, f"exit {code} after killing {killed!r}; stderr: {stderr_text}"

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed", summary
    failed_round = summary["failed-round"]
    assert failed_round >= 2 and summary["failures-by-round"][str(failed_round)] >= 1
    assert "Traceback" not in stderr_text
    assert "did not complete: status finished:failed" in stderr_text
    assert f"round {failed_round}: " in stderr_text
    assert "of 3 sampled clients failed" in stderr_text
    assert "actor" in stderr_text.lower()  # the error: the ClientApp's Ray actor died
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["round"].max() == failed_round  # no round ran after the failing one
    failures = metrics[(metrics["source"] == "server") & (metrics["metric"] == "failures")]
    assert failures.set_index("round")["value"][failed_round] >= 1
