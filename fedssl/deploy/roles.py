"""The three roles of a deployed federation: SuperLink, SuperNode and the operator's CLI.

Each role is a function that builds the exact Flower command line (pure, unit-tested)
plus a thin launcher. Security is the default: the SuperLink serves TLS and accepts only
SuperNodes whose public keys were registered; ``insecure=True`` must be asked for and
prints :data:`INSECURE_WARNING`. The verified Flower 1.41 commands these mirror are in
``flower.md`` §6.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import tomli_w

from fedssl.deploy.credentials import Credentials
from fedssl.launch.flwr_cli import FlwrCli, flwr_bin, json_output

__all__ = [
    "DEFAULT_CONNECTION",
    "DEFAULT_SUPERLINK_PORT",
    "DEFAULT_SUPERNODE_PORT",
    "INSECURE_WARNING",
    "DeployError",
    "flwr_home",
    "node_config_arg",
    "register_supernodes",
    "superlink_command",
    "supernode_command",
    "write_connection",
]

DEFAULT_SUPERLINK_PORT = 9092
DEFAULT_SUPERNODE_PORT = 9094
DEFAULT_CONNECTION = "fedssl-deploy"
INSECURE_WARNING = (
    "WARNING: insecure mode: traffic to the SuperLink is not encrypted and any process that "
    "reaches its port can join as a SuperNode or submit runs. Use it only on a trusted test "
    "network; for a real federation run `fedssl deploy credentials` and leave --insecure off."
)


class DeployError(ValueError):
    """A deployment setting is wrong; the message says what is valid."""


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (IPv6 as ``[::1]:9092``) → (host, port), with a clear error."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DeployError(f"address {address!r} is not HOST:PORT, e.g. 10.0.0.5:"
                          f"{DEFAULT_SUPERLINK_PORT} or superlink.example.org:"
                          f"{DEFAULT_SUPERLINK_PORT}")
    return host.strip("[]"), int(port)


def superlink_command(
    *,
    credentials: Path | None,
    database: Path,
    host: str = "0.0.0.0",
    port: int = DEFAULT_SUPERLINK_PORT,
    insecure: bool = False,
    log_file: Path | None = None,
) -> list[str]:
    """``flower-superlink`` with TLS and SuperNode authentication, state in ``database``."""
    command = [flwr_bin("flower-superlink"), "--host", host, "--port", str(port),
               "--database", str(Path(database).resolve()),
               "--disable-runtime-dependency-installation"]
    if insecure:
        if credentials is not None:
            raise DeployError("give either a credentials directory or insecure, not both")
        command.append("--insecure")
    else:
        if credentials is None:
            raise DeployError("a secure SuperLink needs the credentials directory made by "
                              "`fedssl deploy credentials` (or --insecure, for tests only)")
        creds = Credentials(Path(credentials).resolve(), num_supernodes=0)
        _require_files(creds.ca_cert, creds.superlink_cert, creds.superlink_key)
        command += ["--ssl-ca-certfile", str(creds.ca_cert),
                    "--ssl-certfile", str(creds.superlink_cert),
                    "--ssl-keyfile", str(creds.superlink_key),
                    "--enable-supernode-auth"]
    if log_file is not None:
        command += ["--log-file", str(log_file)]
    return command


def node_config_arg(partition_id: int, num_partitions: int, data_dir: str = "") -> str:
    """The ``--node-config`` string: which partition this node holds and where its data is."""
    if num_partitions < 1 or not 0 <= partition_id < num_partitions:
        raise DeployError(f"partition-id={partition_id} with num-partitions={num_partitions}; "
                          "give 0 <= partition-id < num-partitions")
    parts = [f"partition-id={partition_id}", f"num-partitions={num_partitions}"]
    if data_dir:
        if '"' in data_dir or "'" in data_dir:
            raise DeployError(f"data-dir {data_dir!r}: quotes are not allowed in the path")
        parts.append(f'data-dir="{data_dir}"')
    return " ".join(parts)


def supernode_command(
    *,
    superlink: str,
    partition_id: int,
    num_partitions: int,
    ca_cert: Path | None = None,
    private_key: Path | None = None,
    data_dir: str = "",
    port: int = DEFAULT_SUPERNODE_PORT,
    insecure: bool = False,
    max_retries: int | None = None,
    max_wait_time: float | None = None,
) -> list[str]:
    """``flower-supernode`` that trusts ``ca_cert`` and authenticates with ``private_key``.

    ``port`` is the node's own local runtime API (its ClientApp process talks to it): two
    SuperNodes on one machine need different ports.
    """
    parse_address(superlink)
    command = [flwr_bin("flower-supernode"), "--superlink", superlink, "--port", str(port),
               "--node-config", node_config_arg(partition_id, num_partitions, data_dir)]
    if insecure:
        if ca_cert is not None or private_key is not None:
            raise DeployError("give either --ca and --key, or insecure, not both")
        command.append("--insecure")
    else:
        if ca_cert is None or private_key is None:
            raise DeployError("a secure SuperNode needs the CA certificate (ca.crt) and its "
                              "private key (supernode-<i>) from `fedssl deploy credentials` "
                              "(or --insecure, for tests only)")
        _require_files(ca_cert, private_key)
        command += ["--root-certificates", str(Path(ca_cert).resolve()),
                    "--auth-supernode-private-key", str(Path(private_key).resolve())]
    if max_retries is not None:
        command += ["--max-retries", str(max_retries)]
    if max_wait_time is not None:
        command += ["--max-wait-time", str(max_wait_time)]
    return command


def _require_files(*paths: Path) -> None:
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise DeployError(f"missing file(s): {', '.join(missing)}; make them with "
                          "`fedssl deploy credentials --out DIR --host <superlink host>`")


def flwr_home(env: Mapping[str, str] | None = None) -> Path:
    """Where the ``flwr`` CLI keeps its connections: ``$FLWR_HOME`` or ``~/.flwr``."""
    env = os.environ if env is None else env
    return Path(env.get("FLWR_HOME") or Path.home() / ".flwr").expanduser()


def write_connection(
    home: Path,
    name: str,
    *,
    address: str,
    ca_cert: Path | None = None,
    insecure: bool = False,
) -> Path:
    """Add (or replace) connection ``name`` in ``home/config.toml``, keeping the others."""
    parse_address(address)
    if not name.replace("-", "").replace("_", "").isalnum():
        raise DeployError(f"connection name {name!r}: use letters, digits, - and _")
    if insecure == (ca_cert is not None):
        raise DeployError("a connection needs either the CA certificate (secure) or insecure")
    path = Path(home) / "config.toml"
    config: dict = {}
    if path.exists():
        with open(path, "rb") as fh:
            config = tomllib.load(fh)
    superlink = config.setdefault("superlink", {})
    entry: dict = {"address": address}
    if insecure:
        entry["insecure"] = True
    else:
        _require_files(Path(ca_cert))
        entry["root-certificates"] = str(Path(ca_cert).resolve())
    superlink[name] = entry
    superlink.setdefault("default", name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tomli_w.dumps(config))
    return path


def register_supernodes(
    cli: FlwrCli, connection: str, public_keys: Iterable[Path]
) -> dict[Path, str]:
    """Register each public key on the SuperLink; return key path → node id.

    A key that is already registered is reported, not re-registered (so a compose
    federation can run this at every start).
    """
    registered: dict[Path, str] = {}
    for key in public_keys:
        key = Path(key)
        _require_files(key)
        result = cli("supernode", "register", str(key), connection, "--name", key.stem,
                     "--format", "json")
        payload = json_output(result.stdout)
        if payload.get("success"):
            registered[key] = str(payload.get("node-id", ""))
            continue
        message = str(payload.get("error-message", "")) or result.stderr or result.stdout
        if "already" in message.lower():
            registered[key] = "already registered"
            continue
        raise DeployError(f"registering {key} on {connection!r} failed: {message.strip()}")
    return registered
