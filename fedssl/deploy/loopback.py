"""A whole deployed federation on one machine: the same commands as on many, over loopback.

:class:`LoopbackFederation` runs ``fedssl deploy credentials``, ``superlink``, ``connect``,
``register`` and one ``supernode`` per partition, each role in its own process group on
free ports, with TLS and SuperNode authentication on. The end-to-end tests and the
deployment benchmark use it; a user can use it to rehearse a deployment before spreading
the roles over machines (``python -m fedssl.deploy.loopback --help``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fedssl.deploy.credentials import Credentials
from fedssl.launch.flwr_cli import FlwrCli, free_port, json_output, process_env

__all__ = ["LoopbackFederation", "is_alive", "process_tree"]

CONNECTION = "loopback"


def _process_table() -> dict[int, tuple[int, int, str]]:
    """pid → (parent pid, process group, command line) of every live process (Linux /proc)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the parenthesised command name: state ppid pgrp ...
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
        table[int(entry.name)] = (int(fields[1]), int(fields[2]), cmdline)
    return table


def process_tree(pid: int) -> dict[int, str]:
    """pid → command line of ``pid``'s process group and all its descendants.

    Both are needed: the SuperLink starts ``flower-superexec`` in a session of its own, and
    that starts the ServerApp, so the ServerApp is a descendant outside the group.
    """
    table = _process_table()
    members = {p for p, (_, group, _) in table.items() if group == pid}
    if pid in table:
        members.add(pid)
    frontier = set(members)
    while frontier:
        frontier = {p for p, (parent, _, _) in table.items()
                    if parent in frontier and p not in members}
        members |= frontier
    return {p: table[p][2] for p in sorted(members)}


class LoopbackFederation:
    """SuperLink + ``num_supernodes`` SuperNodes on 127.0.0.1; a context manager.

    ``num_keys`` may exceed ``num_supernodes``: the extra key pairs exist but are not
    registered (to show that an unregistered SuperNode is refused).
    """

    def __init__(self, root: str | Path | None = None, *, num_supernodes: int = 3,
                 num_keys: int | None = None, startup_timeout: float = 90.0) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="fedssl-loopback-")).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.num_supernodes = num_supernodes
        self.num_keys = max(num_keys or num_supernodes, num_supernodes)
        self.startup_timeout = startup_timeout
        # The SuperNodes share this machine's cores: one share each, as Ray's actors in a
        # simulation would have (1 thread each on 2 cores also gives simulation's numbers).
        self.client_threads = max(1, (os.cpu_count() or 1) // num_supernodes)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.creds = Credentials(self.root / "credentials", self.num_keys)
        self.operator_home = self.root / "operator"
        self.env = process_env() | {"FLWR_HOME": str(self.operator_home)}
        self.cli = FlwrCli(self.env, self.root)
        self.superlink: subprocess.Popen | None = None
        self.supernodes: dict[int, subprocess.Popen] = {}
        self._logs: list = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LoopbackFederation:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._fedssl("credentials", "--out", str(self.creds.directory), "--host", "127.0.0.1",
                     "--supernodes", str(self.num_keys))
        self.superlink = self._spawn("superlink", [
            "superlink", "--credentials", str(self.creds.directory),
            "--database", str(self.root / "superlink" / "state.db"),
            "--host", "127.0.0.1", "--port", str(self.port),
        ], home=self.root / "superlink")
        self._wait_for_port()
        self._fedssl("connect", "--superlink", self.address, "--ca", str(self.creds.ca_cert),
                     "--name", CONNECTION)
        self._fedssl("register", "--connection", CONNECTION,
                     *(str(self.creds.supernode_public_key(i))
                       for i in range(self.num_supernodes)))
        for i in range(self.num_supernodes):
            self.start_supernode(i)
        self.wait_online(self.num_supernodes)

    def start_supernode(self, partition_id: int, *, key_index: int | None = None,
                        num_partitions: int | None = None) -> subprocess.Popen:
        """Start the SuperNode of ``partition_id`` with key pair ``key_index`` (default: same)."""
        key = self.creds.supernode_private_key(partition_id if key_index is None else key_index)
        home = self.root / f"supernode-{partition_id}"
        process = self._spawn(f"supernode-{partition_id}", [
            "supernode", "--superlink", self.address, "--ca", str(self.creds.ca_cert),
            "--key", str(key), "--partition-id", str(partition_id),
            "--num-partitions", str(num_partitions or self.num_supernodes),
            "--port", str(free_port()), "--max-retries", "3",
            "--threads", str(self.client_threads),
        ], home=home)
        if key_index is None or key_index == partition_id:
            self.supernodes[partition_id] = process
        return process

    def kill_supernode(self, partition_id: int, sig: int = signal.SIGKILL) -> None:
        """End a SuperNode and its ClientApp process as a crash would (SIGKILL by default)."""
        process = self.supernodes.pop(partition_id)
        _kill_group(process, sig)

    def stop(self) -> None:
        """End every process this federation started (each role's whole process group)."""
        for process in [*self.supernodes.values(), self.superlink]:
            if process is not None:
                _kill_group(process, signal.SIGTERM)
        self.supernodes.clear()
        self.superlink = None
        for fh in self._logs:
            fh.close()
        self._logs.clear()

    # ------------------------------------------------------------------ queries
    def log_path(self, role: str) -> Path:
        return self.root / "logs" / f"{role}.log"

    def nodes(self) -> list[dict]:
        result = self.cli("supernode", "ls", CONNECTION, "--format", "json", timeout=60)
        return json_output(result.stdout).get("nodes", [])

    def wait_online(self, count: int, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        while time.monotonic() < deadline:
            # Processes first: a node that crashed a moment ago still shows as online.
            for pid, process in self.supernodes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"SuperNode {pid} exited with {process.returncode}; "
                                       f"see {self.log_path(f'supernode-{pid}')}")
            if sum(n.get("status") == "online" for n in self.nodes()) >= count:
                return
            time.sleep(1.0)
        raise TimeoutError(f"fewer than {count} SuperNodes online after "
                           f"{timeout or self.startup_timeout:.0f}s")

    def serverapp_pids(self) -> list[int]:
        """The ServerApp processes the SuperLink runs (one per active run)."""
        assert self.superlink is not None
        return [pid for pid, cmd in process_tree(self.superlink.pid).items()
                if "flwr-serverapp" in cmd]

    def all_pids(self) -> list[int]:
        groups = [p.pid for p in [*self.supernodes.values(), self.superlink] if p is not None]
        return [pid for g in groups for pid in process_tree(g)]

    # ------------------------------------------------------------------ runs
    def submit(self, *overrides: str, quiet: bool = True, on_line: Callable[[str], None]
               | None = None) -> subprocess.Popen:
        """Start ``fedssl deploy submit`` (its output is a line stream on ``.stdout``)."""
        command = [sys.executable, "-m", "fedssl.cli", "deploy", "submit",
                   "--connection", CONNECTION, *(["-q"] if quiet else []), *overrides]
        return subprocess.Popen(command, cwd=self.root, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1,
                                start_new_session=True)

    # ------------------------------------------------------------------ helpers
    def _fedssl(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "fedssl.cli", "deploy", *args],
                                cwd=self.root, env=self.env, capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"fedssl deploy {args[0]} failed ({result.returncode}): "
                               f"{result.stderr or result.stdout}")
        return result.stdout

    def _spawn(self, role: str, args: list[str], *, home: Path) -> subprocess.Popen:
        home.mkdir(parents=True, exist_ok=True)
        log = self.log_path(role)
        log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(log, "a")  # noqa: SIM115 - closed in stop()
        self._logs.append(fh)
        # Each role has its own FLWR_HOME, as it would on its own machine.
        return subprocess.Popen([sys.executable, "-m", "fedssl.cli", "deploy", *args],
                                cwd=home, env=self.env | {"FLWR_HOME": str(home)}, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_for_port(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self.superlink is not None
            if self.superlink.poll() is not None:
                raise RuntimeError(f"the SuperLink exited with {self.superlink.returncode}; "
                                   f"see {self.log_path('superlink')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"the SuperLink did not listen on {self.address}")


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    """Signal a role's process group and every descendant; SIGKILL what is left after 20 s."""
    tree = process_tree(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    deadline = time.monotonic() + 20
    while (left := [p for p in tree if is_alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
        process.wait()


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has ended; Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fedssl.deploy.loopback",
        description="Rehearse a deployment on this machine: a TLS SuperLink with SuperNode "
                    "authentication and N SuperNodes on loopback; submit one run; stop all.")
    parser.add_argument("--supernodes", type=int, default=3)
    parser.add_argument("--root", type=Path, default=None, help="working directory (default: "
                        "a new temporary one; it keeps the credentials, state and logs)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    with LoopbackFederation(args.root, num_supernodes=args.supernodes) as federation:
        print(f"loopback federation in {federation.root}: SuperLink {federation.address}, "
              f"{args.supernodes} SuperNodes online", flush=True)
        submit = federation.submit(*args.overrides, quiet=False)
        assert submit.stdout is not None
        for line in submit.stdout:
            print(line, end="", flush=True)
        return submit.wait()


if __name__ == "__main__":
    sys.exit(main())
