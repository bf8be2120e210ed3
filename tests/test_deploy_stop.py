"""`fedssl deploy supernode` / `superlink` stop on the first SIGINT or SIGTERM.

Ctrl-C in a terminal signals the whole foreground process group; a process manager or
``kill PID`` signals the ``fedssl`` process only. Either way the role must exit within
seconds with 128 + the signal number, say so in one line, print no traceback, and leave no
process it started. The fast tests use a stand-in for Flower that hangs in its own signal
handler and starts a process in a session of its own; the e2e tests use a real SuperLink and
SuperNode (TLS, authentication) through the CLI.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from fedssl.deploy.loopback import LoopbackFederation, is_alive, process_tree

# Generous: the stop itself takes seconds (Flower gets 5 s before it is killed).
STOP_TIMEOUT = 60


def marked(name: str, value: str) -> list[int]:
    """Live processes of this user whose environment holds ``name=value``."""
    needle = f"{name}={value}".encode() + b"\0"
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (entry / "environ").read_bytes() and is_alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_gone(pids, timeout: float = 10.0) -> list[int]:
    """The PIDs still alive after ``timeout`` s (a process may take a moment to be reaped)."""
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if is_alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def send(process: subprocess.Popen, sig: int, to_group: bool) -> None:
    """``to_group``: as a terminal's Ctrl-C does (``process`` leads its own group)."""
    if to_group:
        os.killpg(process.pid, sig)
    else:
        os.kill(process.pid, sig)


# ---------------------------------------------------------------- a Flower that hangs
FAKE_FLOWER = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    # A process of its own session that ignores SIGINT and SIGTERM (as a ClientApp that
    # is busy would take its time); only a SIGKILL ends it.
    subprocess.Popen([sys.executable, "-c",
                      "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                      "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"],
                     start_new_session=True)
    def hang(signum, frame):  # a graceful exit that never ends
        print("flower: graceful exit...", flush=True)
        time.sleep(600)
    mode = sys.argv[1]
    if mode == "hang":
        signal.signal(signal.SIGINT, hang)
        signal.signal(signal.SIGTERM, hang)
    open(sys.argv[2], "w").close()  # ready
    if mode == "exit":
        time.sleep(0.5)
        sys.exit(3)
    time.sleep(600)
""")


def start_fake_role(tmp_path: Path, mode: str, mark: str) -> subprocess.Popen:
    script = tmp_path / "flower.py"
    script.write_text(FAKE_FLOWER)
    ready = tmp_path / "ready"
    runner = ("import os, sys; from fedssl.deploy.foreground import run_in_foreground; "
              f"sys.exit(run_in_foreground([sys.executable, {str(script)!r}, {mode!r}, "
              f"{str(ready)!r}], os.environ, role='supernode', grace=1.0))")
    process = subprocess.Popen([sys.executable, "-c", runner], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               env=os.environ | {"FEDSSL_TEST_MARK": mark})
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "the stand-in Flower did not start"
        time.sleep(0.1)
    time.sleep(0.5)  # its detached child is running too
    return process


@pytest.mark.parametrize(("sig", "to_group"), [(signal.SIGINT, True), (signal.SIGINT, False),
                                               (signal.SIGTERM, False)],
                         ids=["ctrl-c", "sigint-fedssl-only", "sigterm"])
def test_a_flower_that_hangs_in_its_signal_handler_is_stopped(tmp_path, sig, to_group):
    mark = uuid.uuid4().hex
    process = start_fake_role(tmp_path, "hang", mark)
    started = marked("FEDSSL_TEST_MARK", mark)
    assert len(started) == 3  # fedssl, the stand-in Flower and its detached child
    send(process, sig, to_group)
    output, _ = process.communicate(timeout=STOP_TIMEOUT)
    assert process.returncode == 128 + sig, output
    name = signal.Signals(sig).name
    assert f"fedssl deploy supernode: stopped on {name}" in output, output
    assert "it had not exited after 1 s" in output and "every process it started has ended" \
        in output
    assert "Traceback" not in output
    assert not wait_gone(started), f"left running: {marked('FEDSSL_TEST_MARK', mark)}"


def test_a_second_signal_kills_at_once(tmp_path):
    mark = uuid.uuid4().hex
    process = start_fake_role(tmp_path, "hang", mark)
    started = marked("FEDSSL_TEST_MARK", mark)
    os.kill(process.pid, signal.SIGINT)
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=STOP_TIMEOUT)
    assert process.returncode == 130 and "killed on a second signal" in output, output
    assert not wait_gone(started)


def test_flower_exiting_on_its_own_gives_its_code_and_leaves_nothing(tmp_path):
    mark = uuid.uuid4().hex
    process = start_fake_role(tmp_path, "exit", mark)
    output, _ = process.communicate(timeout=STOP_TIMEOUT)
    assert process.returncode == 3, output
    assert "stopped on" not in output
    assert not wait_gone(marked("FEDSSL_TEST_MARK", mark))


# ---------------------------------------------------------------- real Flower (e2e)
@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    with LoopbackFederation(tmp_path_factory.mktemp("deploy-stop"), num_supernodes=1) as fed:
        yield fed


def stop_role(federation, process: subprocess.Popen, role: str, sig: int,
              to_group: bool, log_offset: int) -> None:
    """Signal a running role once; check code, message, traceback and leftovers."""
    home = federation.root / role
    tree = process_tree(process.pid)  # fedssl, Flower and what Flower started
    assert len(tree) >= 3, tree  # fedssl, flower-<role>, flower-superexec
    send(process, sig, to_group)
    code = process.wait(timeout=STOP_TIMEOUT)
    log = federation.log_path(role).read_text()[log_offset:]
    assert code == 128 + sig, log[-3000:]
    assert f"fedssl deploy {role.split('-')[0]}: stopped on {signal.Signals(sig).name}" in log
    assert "Traceback" not in log, log[-3000:]
    left = wait_gone(tree)
    assert not left, f"left running: {[tree[p] for p in left]}"
    assert not marked("FLWR_HOME", str(home)), "a process of this role is still running"


@pytest.mark.e2e
@pytest.mark.parametrize(("sig", "to_group"), [(signal.SIGINT, True), (signal.SIGINT, False),
                                               (signal.SIGTERM, False)],
                         ids=["ctrl-c", "sigint-fedssl-only", "sigterm"])
def test_a_connected_supernode_stops_on_the_first_signal(federation, sig, to_group):
    log = federation.log_path("supernode-0")
    offset = log.stat().st_size if log.exists() else 0
    if federation.supernodes[0].poll() is not None:  # stopped by the previous case
        federation.start_supernode(0)
        federation.wait_online(1)
    stop_role(federation, federation.supernodes[0], "supernode-0", sig, to_group, offset)


@pytest.mark.e2e
def test_the_superlink_stops_on_the_first_ctrl_c(federation):
    offset = federation.log_path("superlink").stat().st_size
    stop_role(federation, federation.superlink, "superlink", signal.SIGINT, True, offset)
