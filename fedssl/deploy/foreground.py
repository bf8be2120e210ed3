"""Run a Flower role (``flower-supernode``, ``flower-superlink``) so that one signal stops it.

``fedssl deploy supernode`` and ``superlink`` used to replace themselves with the Flower
process (exec). Then Ctrl-C reached Flower's own signal handler, whose graceful exit
(deactivate the node, stop the HTTP server, join threads) is unbounded in principle, returned
exit code 0, and left what Flower started (``flower-superexec``, ``flwr-clientapp``,
``flwr-serverapp``) to notice on its own that its parent was gone; a ClientApp in the middle
of training went on to the end of its round. A signal sent to the ``fedssl`` process only (a
process manager, ``kill PID``) reached nothing else at all.

:func:`run_in_foreground` instead keeps ``fedssl`` as the parent and bounds the stop:

* Flower runs in a session (and process group) of its own, so a terminal's Ctrl-C reaches
  only ``fedssl``, which forwards it (SIGHUP as SIGTERM) to the Flower process alone: Flower
  leaves as it normally does (a SuperNode deactivates itself on the SuperLink). The ClientApp
  processes are not signalled by the terminal, so none prints a ``KeyboardInterrupt``
  traceback.
* After ``grace`` seconds, or at once on a second signal, everything still running is
  SIGKILLed: Flower's process group, every descendant of the Flower process (found before
  the signal, by walking ``/proc`` parent PIDs) and every process carrying this start's
  :data:`TOKEN_ENV` marker (which Flower's children inherit, so one re-parented to PID 1 is
  found too); scanning again until three scans in a row find nothing.
* One line says that the role stopped; the exit code is ``128 + signal`` (130 for Ctrl-C,
  143 for SIGTERM, 129 for SIGHUP).
* If ``fedssl`` itself is SIGKILLed, the kernel sends the Flower process SIGTERM
  (``PR_SET_PDEATHSIG``), so it does not run on unsupervised.

When Flower exits on its own (a refused key, a lost SuperLink), its code is returned and
what it left behind is ended the same way. Linux only for the ``/proc`` scans and
``PR_SET_PDEATHSIG``; elsewhere only Flower's process group is signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from fedssl.common import processes

__all__ = ["STOP_GRACE_S", "TOKEN_ENV", "marked_processes", "run_in_foreground"]

TOKEN_ENV = "FEDSSL_DEPLOY_TOKEN"
STOP_GRACE_S = 5.0  # Flower's own force-exit timer is 5 s too
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def marked_processes(token: str) -> list[int]:
    """Live processes of this user whose environment holds ``TOKEN_ENV=token``."""
    return processes.marked_processes(TOKEN_ENV, token)


def _tree(root: int) -> set[int]:
    """``root``'s process group and every live descendant of ``root`` (``root`` excluded)."""
    table = processes.process_table()
    found = {pid for pid, (_, group) in table.items() if group == root}
    found.update(processes.descendants(root, table=table))
    found.discard(root)
    return found


def _identity(pids: set[int]) -> dict[int, str]:
    """pid → start time, to tell a PID from its reuse."""
    return {pid: start for pid in pids if (start := processes.start_time(pid)) is not None}


def _die_with(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGTERM the child when ``parent`` dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before the fork
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _end(child: subprocess.Popen, known: dict[int, str], token: str, sig: int,
         grace: float) -> set[int]:
    """Signal what is left of ``child``'s tree with ``sig``; SIGKILL it after ``grace`` s,
    scanning until three scans in a row find nothing alive (or 30 s have passed); return
    what is still alive then (nothing, unless a process could not be killed)."""

    def scan() -> set[int]:
        same = _identity(set(known))  # a known PID counts only while it is the same process
        pids = {pid for pid, start in same.items() if known[pid] == start}
        pids |= set(marked_processes(token))
        if child.poll() is None:
            pids |= _tree(child.pid) | {child.pid}
        return {pid for pid in pids if processes.alive(pid)}

    def signal_all(s: int) -> set[int]:
        left = scan()
        if child.poll() is None:  # the leader not yet reaped: its group id is still its own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, s)
        for pid in left:
            processes.send_signal(pid, s)
        return left

    if sig != signal.SIGKILL:
        signal_all(sig)
        deadline = time.monotonic() + grace
        while scan() and time.monotonic() < deadline:
            time.sleep(0.1)
    deadline, empty = time.monotonic() + 30, 0
    while empty < 3 and time.monotonic() < deadline:
        empty = 0 if signal_all(signal.SIGKILL) else empty + 1
        time.sleep(0.1)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=5)
    return scan()


def run_in_foreground(command: Sequence[str], env: Mapping[str, str], *, role: str,
                      grace: float = STOP_GRACE_S) -> int:
    """Run ``command`` until it exits or this process gets SIGINT/SIGTERM/SIGHUP (see the
    module docstring); return its exit code, or ``128 + signal`` when stopped by one."""
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    token = secrets.token_hex(12)
    child: subprocess.Popen | None = None
    try:
        print(f"fedssl deploy: {' '.join(command)}", file=sys.stderr, flush=True)
        child = subprocess.Popen(list(command), env={**env, TOKEN_ENV: token},
                                 start_new_session=True, preexec_fn=_die_with(os.getpid()))
        known: dict[int, str] = {}
        polls = 0
        while child.poll() is None and not received:
            if polls % 10 == 0:  # Flower's children, while they are still below it
                known = _identity(_tree(child.pid))
            polls += 1
            time.sleep(0.2)
        if not received:  # Flower ended on its own: end what it left behind
            code = child.returncode
            _end(child, known, token, signal.SIGTERM, grace=3.0)
            return code if code >= 0 else 128 - code
        signum = received[0]
        started = time.monotonic()
        if child.poll() is None:
            known |= _identity(_tree(child.pid))
            processes.send_signal(child.pid, signal.SIGINT if signum == signal.SIGINT
                                  else signal.SIGTERM)
        deadline = started + grace
        while child.poll() is None and time.monotonic() < deadline and len(received) < 2:
            time.sleep(0.1)
        graceful = child.poll() is not None
        left = _end(child, known, token, signal.SIGKILL, grace=0.0)
        name = signal.Signals(signum).name
        how = ("it exited" if graceful else
               f"killed: it had not exited after {grace:.0f} s" if len(received) < 2 else
               "killed on a second signal")
        ended = (f"PIDs {sorted(left)} could not be killed" if left else
                 "every process it started has ended")
        print(f"fedssl deploy {role}: stopped on {name} in {time.monotonic() - started:.1f} s "
              f"({how}; {ended})", file=sys.stderr, flush=True)
        return 128 + signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child is not None and child.poll() is None:  # an error in this function
            _end(child, {}, token, signal.SIGKILL, grace=0.0)
