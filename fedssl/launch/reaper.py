"""Nothing a command started outlives it: processes are marked, found and ended.

Flower's local SuperLink starts ``flower-superexec`` in a session of its own, which starts
``flwr-simulation``, which starts Ray (GCS, raylet, workers, agents); ending the SuperLink's
process group leaves the rest running. So every process a command starts carries one
environment variable, :data:`TOKEN_ENV`, with a token of its own (children inherit it, Ray's
workers included), and :func:`end_marked` ends every process that carries the token.

It runs when the command stops (normally, on Ctrl-C or on SIGTERM) and, should the command
itself be killed (SIGKILL, the parent's death), in a watchdog: ``python -m
fedssl.launch.reaper --parent PID --token T`` waits in a session of its own for the command to
die, then ends what is marked and removes the command's temporary directory. Linux only
(``/proc``); elsewhere it ends the SuperLink's process group alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["TOKEN_ENV", "end_marked", "marked_processes", "start_watchdog"]

TOKEN_ENV = "FEDSSL_LAUNCH_TOKEN"
_PROC = Path("/proc")


def marked_processes(token: str) -> list[int]:
    """PIDs of this user's processes whose environment holds ``TOKEN_ENV=token``."""
    needle = f"{TOKEN_ENV}={token}".encode() + b"\0"
    found = []
    for entry in _PROC.glob("[0-9]*") if _PROC.is_dir() else ():
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in environ and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has ended already


def end_marked(token: str, grace: float = 10.0) -> list[int]:
    """SIGTERM every marked process, then SIGKILL what is left after ``grace`` seconds;
    returns the PIDs that were found."""
    pids = marked_processes(token)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    # Then SIGKILL, scanning again until none is left: processes started meanwhile (a worker
    # Ray spawns while its raylet is shutting down) are marked too.
    # A process forked just before its parent died can appear after a scan that found
    # nothing, so it takes three empty scans in a row to be done.
    deadline, empty = time.monotonic() + 2 * grace, 0
    while empty < 3 and time.monotonic() < deadline:
        left = [p for p in {*pids, *marked_processes(token)} if _alive(p)]
        for pid in left:
            _signal(pid, signal.SIGKILL)
        empty = 0 if left else empty + 1
        time.sleep(0.5)
    return pids


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def start_watchdog(parent: int, token: str, cleanup: Path | None = None) -> subprocess.Popen:
    """A process that ends what is marked with ``token`` once ``parent`` has died."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}  # it must not end itself
    command = [sys.executable, "-m", "fedssl.launch.reaper", "--parent", str(parent),
               "--token", token]
    if cleanup is not None:
        command += ["--cleanup", str(cleanup)]
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _watch(parent: int, token: str, cleanup: str | None) -> None:
    while _alive(parent):
        time.sleep(1.0)
    end_marked(token)
    if cleanup:
        shutil.rmtree(cleanup, ignore_errors=True)


if __name__ == "__main__":
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--parent", type=int, required=True)
    args.add_argument("--token", required=True)
    args.add_argument("--cleanup", default=None)
    parsed = args.parse_args()
    _watch(parsed.parent, parsed.token, parsed.cleanup)
