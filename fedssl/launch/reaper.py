"""Nothing a command started outlives it, however the command ends.

Flower's local SuperLink starts ``flower-superexec`` in a session of its own, which starts
``flwr-simulation``, which starts Ray (GCS, raylet, workers, agents); ending the SuperLink's
process group leaves the rest running, and a process whose parent dies is re-parented to
PID 1, out of anyone's reach. So the SuperLink is started by a supervisor,
``fedssl.launch.reaper.main --parent PID --token T -- COMMAND...``, that:

* declares itself a *child subreaper* (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``): every process
  below it that loses its parent is re-parented to the supervisor, never to PID 1, so the
  supervisor's descendants are exactly what the command started, whatever double-forks or
  new sessions Flower and Ray use;
* ends that whole tree (SIGTERM, a grace period, then SIGKILL until none is left) when it is
  told to stop (SIGTERM or SIGINT: the command's normal end, Ctrl-C) or when the command
  (``--parent``) dies, even by SIGKILL; and exits with the SuperLink's code when the SuperLink
  ends on its own.

Every process also carries one environment variable, :data:`TOKEN_ENV`, with a token of its
own: :func:`end_marked` ends whatever carries it, as a second net (and the only one where
``prctl`` is missing). Linux only (``/proc``); elsewhere the supervisor ends the SuperLink's
process group alone.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from fedssl.common import processes

__all__ = [
    "TOKEN_ENV", "descendants", "end_marked", "main", "marked_processes", "supervise",
    "supervised_command",
]

TOKEN_ENV = "FEDSSL_LAUNCH_TOKEN"
_PR_SET_CHILD_SUBREAPER = 36


def marked_processes(token: str) -> list[int]:
    """PIDs of this user's live processes whose environment holds ``TOKEN_ENV=token``."""
    return processes.marked_processes(TOKEN_ENV, token)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), zombies included."""
    return processes.descendants(pid, zombies=True)


def _reap() -> None:
    """Collect the exit status of every ended child (orphans come to a subreaper to die)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _end(find: Iterable[int] | None, token: str | None, grace: float) -> list[int]:
    """SIGTERM what ``find()`` and the token name, SIGKILL what is left after ``grace`` s.

    Scans again until three scans in a row find nothing alive: a process forked just before
    its parent died (a worker Ray spawns while its raylet shuts down) appears late.
    """
    def scan() -> set[int]:
        pids = set(find() if find else ())
        if token:
            pids.update(marked_processes(token))
        return {p for p in pids if processes.alive(p)}

    first = scan()
    for pid in first:
        processes.send_signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while scan() and time.monotonic() < deadline:
        _reap()
        time.sleep(0.2)
    deadline, empty = time.monotonic() + 2 * grace + 30, 0
    while empty < 3 and time.monotonic() < deadline:
        left = scan()
        for pid in left:
            processes.send_signal(pid, signal.SIGKILL)
        _reap()
        empty = 0 if left else empty + 1
        time.sleep(0.3)
    return sorted(first)


def end_marked(token: str, grace: float = 10.0) -> list[int]:
    """SIGTERM every process marked with ``token``, then SIGKILL what is left after ``grace``
    seconds; returns the PIDs that were found."""
    return _end(None, token, grace)


def supervised_command(command: list[str], *, parent: int, token: str,
                       cleanup: Path | None = None, grace: float = 10.0) -> list[str]:
    """``command`` wrapped in the supervisor (see the module docstring)."""
    wrapped = [sys.executable, "-c", "import sys; from fedssl.launch.reaper import main; "
               "sys.exit(main())", "--parent", str(parent), "--token", token, "--grace", str(grace)]
    if cleanup is not None:
        wrapped += ["--cleanup", str(cleanup)]
    return [*wrapped, "--", *command]


def _become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop(signum)


def supervise(command: list[str], *, parent: int, token: str, cleanup: str | None,
              grace: float) -> int:
    """Run ``command`` (in a session of its own, carrying the token) until it ends, this
    process is told to stop, or ``parent`` dies; then end every process below this one."""
    subreaper = _become_subreaper()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _raise_stop)
    child = None
    code = 0
    try:
        child = subprocess.Popen(command, env=os.environ | {TOKEN_ENV: token},
                                 start_new_session=True)
        while True:
            if child.poll() is not None:
                code = child.returncode
                break
            if os.getppid() != parent:  # re-parented: the command has died
                code = 1
                break
            _reap_orphans(child.pid)
            time.sleep(0.5)
    except _Stop:
        code = 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if child is not None and child.poll() is None:
            # The SuperLink first, as a whole group: it stops its runs in order.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGTERM)
        me = os.getpid()
        _end((lambda: descendants(me)) if subreaper else None, token, grace)
        if child is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        _reap()
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)
    return code


def _reap_orphans(keep: int) -> None:
    """Collect orphans that ended (so they do not linger as zombies), never ``keep``, whose
    status ``Popen.poll`` must see."""
    for pid in descendants(os.getpid()):
        if pid != keep and not processes.alive(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def main(argv: list[str] | None = None) -> int:
    """``supervise`` from the command line (what :func:`supervised_command` runs)."""
    args = argparse.ArgumentParser(prog="fedssl-supervisor",
                                   description=__doc__.splitlines()[0])
    args.add_argument("--parent", type=int, required=True)
    args.add_argument("--token", required=True)
    args.add_argument("--grace", type=float, default=10.0)
    args.add_argument("--cleanup", default=None)
    args.add_argument("command", nargs=argparse.REMAINDER)
    parsed = args.parse_args(argv)
    command = parsed.command[1:] if parsed.command[:1] == ["--"] else parsed.command
    if not command:
        args.error("give the command to supervise after --")
    return supervise(command, parent=parsed.parent, token=parsed.token,
                     cleanup=parsed.cleanup, grace=parsed.grace)
