"""Finding and ending processes through ``/proc`` (Linux), for the two places that must leave
nothing running: the supervisor under each local SuperLink (:mod:`fedssl.launch.reaper`) and
``fedssl deploy``'s foreground roles (:mod:`fedssl.deploy.foreground`).

Standard library only. Where ``/proc`` is missing every scan finds nothing, so callers fall
back to what they started themselves (process groups).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["alive", "descendants", "marked_processes", "process_table", "send_signal",
           "start_time"]

_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first), or ``None``."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and has not ended (a zombie has ended already)."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != "Z"


def start_time(pid: int) -> str | None:
    """``pid``'s start time (``stat`` field 22), which tells a process from a later one that
    reuses its PID; ``None`` when it is gone."""
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else None


def send_signal(pid: int, sig: int) -> None:
    """``os.kill``, quiet when the process is gone or not ours."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def marked_processes(variable: str, token: str) -> list[int]:
    """Live processes of this user (this one excluded) whose environment holds
    ``variable=token``: a mark every process a command starts inherits."""
    needle = f"{variable}={token}".encode() + b"\0"
    found = []
    for entry in _PROC.glob("[0-9]*") if _PROC.is_dir() else ():
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        pid = int(entry.name)
        if needle in environ and pid != os.getpid() and alive(pid):
            found.append(pid)
    return found


def process_table(*, zombies: bool = False) -> dict[int, tuple[int, int]]:
    """PID -> (parent PID, process group) of every process in ``/proc`` (zombies only when
    asked: a subreaper must still collect them)."""
    table = {}
    for entry in _PROC.glob("[0-9]*") if _PROC.is_dir() else ():
        fields = _stat_fields(int(entry.name))
        if fields and (zombies or fields[0] != "Z"):
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def descendants(root: int, *, zombies: bool = False,
                table: dict[int, tuple[int, int]] | None = None) -> list[int]:
    """Every process below ``root`` (children, their children, ...), from ``table`` (default:
    a fresh :func:`process_table`)."""
    table = process_table(zombies=zombies) if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found
