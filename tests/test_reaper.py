"""The supervisor under each local SuperLink: whatever the command started ends with it, even
processes that start a session of their own and whose parent dies (Flower's SuperExec, Ray's
agents), and even when the command itself is SIGKILLed. Real processes, no Flower."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedssl.launch.reaper import descendants, supervised_command

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")

# A child that leaves an orphan in a session of its own (as a daemon does), then sleeps.
_TREE = ("import subprocess, sys, time; "
         "subprocess.Popen(['sh', '-c', '(sleep 300 &); sleep 300'], start_new_session=True); "
         "time.sleep(300)")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _wait_gone(pids: list[int], timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _wait_tree(root: int, size: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(tree := [p for p in descendants(root) if _alive(p)]) < size:
        assert time.monotonic() < deadline, f"tree of {root} is {tree}"
        time.sleep(0.1)
    return tree


def test_descendants_follow_every_level():
    outer = subprocess.Popen([sys.executable, "-c", "import subprocess; subprocess.run("
                              "['sh', '-c', 'sleep 300; true'])"])
    try:
        tree = _wait_tree(outer.pid, 2)  # sh, then sleep below it
    finally:
        for pid in [outer.pid, *descendants(outer.pid)]:
            os.kill(pid, signal.SIGKILL)
        outer.wait()
    assert len(tree) == 2


def _launcher(tmp_path: Path) -> tuple[subprocess.Popen, int]:
    """A stand-in for `fedssl run`: it starts the supervisor and prints its PID."""
    code = (
        "import os, subprocess, sys, time\n"
        "from fedssl.launch.reaper import supervised_command\n"
        f"cmd = supervised_command([sys.executable, '-c', {_TREE!r}], parent=os.getpid(), "
        f"token='t{os.getpid()}', cleanup={str(tmp_path / 'home')!r}, grace=2)\n"
        "p = subprocess.Popen(cmd, start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(300)\n")
    (tmp_path / "home").mkdir()
    launcher = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return launcher, int(launcher.stdout.readline())


def test_a_killed_command_takes_the_whole_tree_with_it(tmp_path):
    launcher, supervisor = _launcher(tmp_path)
    tree = _wait_tree(supervisor, 4)  # python child, sh, two sleeps
    launcher.kill()  # SIGKILL: no handler of the command runs
    launcher.wait()
    assert _wait_gone([supervisor, *tree]) == []
    assert not (tmp_path / "home").exists()


def test_sigterm_to_the_supervisor_ends_the_tree_and_exits_0(tmp_path):
    (tmp_path / "home").mkdir()
    supervisor = subprocess.Popen(supervised_command(
        [sys.executable, "-c", _TREE], parent=os.getpid(), token="t-sigterm",
        cleanup=tmp_path / "home", grace=2))
    tree = _wait_tree(supervisor.pid, 4)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    assert _wait_gone(tree) == []
    assert not (tmp_path / "home").exists()


def test_the_supervisor_exits_with_the_code_of_its_command():
    supervisor = subprocess.Popen(supervised_command(
        [sys.executable, "-c", "import sys; sys.exit(3)"], parent=os.getpid(), token="t-code",
        grace=1))
    assert supervisor.wait(timeout=30) == 3


def test_a_marked_child_is_found_by_its_mark_and_known_by_its_start_time():
    from fedssl.common import processes

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             env=os.environ | {"FEDSSL_TEST_PROCESS_MARK": "m1"})
    try:
        deadline = time.monotonic() + 10
        while processes.marked_processes("FEDSSL_TEST_PROCESS_MARK", "m1") != [child.pid]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert processes.marked_processes("FEDSSL_TEST_PROCESS_MARK", "other") == []
        assert processes.alive(child.pid) and processes.start_time(child.pid) is not None
        assert processes.process_table()[child.pid][0] == os.getpid()
    finally:
        processes.send_signal(child.pid, signal.SIGKILL)
        child.wait()
    assert not processes.alive(child.pid) and processes.start_time(child.pid) is None
    processes.send_signal(child.pid, signal.SIGKILL)  # gone: quiet
