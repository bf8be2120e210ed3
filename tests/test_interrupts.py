"""A run stopped by Ctrl-C, by SIGTERM (a scheduler, `timeout`) or killed outright (SIGKILL)
leaves no process behind, and its last checkpoint stays usable (real CLI, real SuperLink and
Ray)."""

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
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        # and, like one, with Ctrl-C's default action: a shell without job control starts
        # background commands (CI launched with `cmd &`) with SIGINT ignored, and Python
        # keeps an ignored SIGINT ignored, so the run would never see the Ctrl-C.
        preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


def _superlink_home(mark: str) -> Path:
    """The temporary directory of the command's SuperLink (its supervisor is told to remove
    it: ``--cleanup DIR`` on its command line)."""
    for pid in _marked(mark):
        try:
            args = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "--cleanup" in args:
            home = Path(args[args.index("--cleanup") + 1])
            assert home.is_dir(), home
            return home
    raise AssertionError("no SuperLink supervisor among the command's processes")


def _gone(path: Path, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(1)
    return not path.exists()


def _cmdline(pid: int) -> str:
    try:
        return f"{pid}: " + (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(
            b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return f"{pid}: (gone)"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
@pytest.mark.parametrize(("how", "code", "said"), [
    ("sigterm", 128 + signal.SIGTERM, "interrupted (SIGTERM)"),  # a scheduler, `timeout`
    ("ctrl-c", 130, "interrupted;"),  # SIGINT to the terminal's whole foreground group
])
def test_a_stopped_run_ends_everything_it_started(tmp_path, how, code, said):
    mark = uuid.uuid4().hex
    process = _start(tmp_path / "run", mark)
    _wait_for_a_round(process, tmp_path / "run")
    home = _superlink_home(mark)
    if how == "sigterm":
        process.send_signal(signal.SIGTERM)
    else:
        os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=90) == code
    err = process.stderr.read()
    assert said in err and "Traceback" not in err
    assert _none_left(mark, timeout=30) == []
    assert _gone(home)  # temporary directories go too
    # Nothing trains on: the checkpoint stays at the round it had when everything ended.
    done = load_checkpoint(tmp_path / "run")["round"]
    assert done >= 1
    time.sleep(5)
    assert load_checkpoint(tmp_path / "run")["round"] == done


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_a_killed_command_leaves_no_process_behind(tmp_path):
    mark = uuid.uuid4().hex
    process = _start(tmp_path / "run", mark)
    _wait_for_a_round(process, tmp_path / "run")
    home = _superlink_home(mark)
    process.kill()  # no handler of the command runs: its supervisor ends what it started
    process.wait(timeout=30)
    assert _none_left(mark, timeout=90) == []
    assert _gone(home)
    assert load_checkpoint(tmp_path / "run")["round"] >= 1
