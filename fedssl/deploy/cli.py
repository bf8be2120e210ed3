"""``fedssl deploy``: credentials, SuperLink, SuperNode, registration and run submission.

One sub-command per role of a multi-machine federation (see the README, "Deployment"):

    fedssl deploy credentials --out certs --host <superlink host> --supernodes 3   # operator
    fedssl deploy superlink --credentials certs                                    # server
    fedssl deploy connect --superlink HOST:9092 --ca certs/ca.crt                  # operator
    fedssl deploy register certs/supernode-*.pub                                   # operator
    fedssl deploy supernode --superlink HOST:9092 --ca ca.crt --key supernode-0 \\
        --partition-id 0 --num-partitions 3 [--data-dir /data]                     # each node
    fedssl deploy submit [key=value ...]                                           # operator

``superlink`` and ``supernode`` run the Flower process in a session of their own and stop
it, and everything it started, on the first SIGINT (Ctrl-C), SIGTERM or SIGHUP: Flower gets
the signal, then whatever is left after a few seconds is killed; the exit code is
128 + the signal number (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedssl.config import ConfigError

__all__ = ["add_deploy_parser", "run_deploy"]


def add_deploy_parser(sub: argparse._SubParsersAction) -> None:
    from fedssl.deploy.roles import (
        DEFAULT_CONNECTION,
        DEFAULT_SUPERLINK_PORT,
        DEFAULT_SUPERNODE_PORT,
    )

    deploy = sub.add_parser(
        "deploy", help="run a real federation: SuperLink, SuperNodes (TLS + authentication)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = deploy.add_subparsers(dest="role", required=True)

    creds = roles.add_parser("credentials", help="create a CA, the SuperLink's TLS certificate "
                             "and SuperNode key pairs")
    creds.add_argument("--out", type=Path, required=True, help="directory to write them to")
    creds.add_argument("--host", action="append", default=[], metavar="HOST",
                       help="name or IP the SuperNodes dial to reach the SuperLink (repeat for "
                            "several; localhost and 127.0.0.1 are always included)")
    creds.add_argument("--supernodes", type=int, default=3,
                       help="SuperNode key pairs to make (default 3)")
    creds.add_argument("--days", type=int, default=365, help="validity (default 365 days)")
    creds.add_argument("--force", action="store_true",
                       help="replace existing files (registered SuperNodes must re-register)")

    link = roles.add_parser("superlink", help="start the SuperLink (TLS and SuperNode "
                            "authentication on; state kept in a database file)")
    link.add_argument("--credentials", type=Path,
                      help="directory made by `fedssl deploy credentials`")
    link.add_argument("--database", type=Path, default=Path("superlink-state.db"),
                      help="SQLite file that keeps runs, nodes and messages across restarts "
                           "(default ./superlink-state.db)")
    link.add_argument("--host", default="0.0.0.0",
                      help="interface to listen on (default 0.0.0.0: every interface)")
    link.add_argument("--port", type=int, default=DEFAULT_SUPERLINK_PORT,
                      help=f"the one port SuperNodes and `flwr` use (default "
                           f"{DEFAULT_SUPERLINK_PORT})")
    link.add_argument("--log-file", type=Path, default=None, help="also log to this file")
    link.add_argument("--insecure", action="store_true",
                      help="no TLS and no authentication (trusted test networks only)")

    connect = roles.add_parser("connect", help="save the SuperLink as a `flwr` connection "
                               "($FLWR_HOME/config.toml) for register/submit and plain `flwr`")
    connect.add_argument("--superlink", required=True, metavar="HOST:PORT")
    connect.add_argument("--ca", type=Path, help="the federation's ca.crt")
    connect.add_argument("--name", default=DEFAULT_CONNECTION,
                         help=f"connection name (default {DEFAULT_CONNECTION})")
    connect.add_argument("--insecure", action="store_true", help="the SuperLink runs --insecure")

    register = roles.add_parser("register", help="allow SuperNodes to join: register their "
                                "public keys on the SuperLink")
    register.add_argument("public_keys", nargs="+", type=Path, metavar="KEY.pub")
    register.add_argument("--connection", default=DEFAULT_CONNECTION)

    node = roles.add_parser("supernode", help="start a SuperNode holding one data partition")
    node.add_argument("--superlink", required=True, metavar="HOST:PORT",
                      help="the SuperLink's address, as named in its certificate")
    node.add_argument("--ca", type=Path, help="the federation's ca.crt")
    node.add_argument("--key", type=Path, help="this node's private key (supernode-<i>)")
    node.add_argument("--partition-id", type=int, required=True)
    node.add_argument("--num-partitions", type=int, required=True)
    node.add_argument("--data-dir", default="",
                      help="where this node's dataset is (real datasets; the run's data-dir "
                           "then applies to the SuperLink's machine only)")
    node.add_argument("--port", type=int, default=DEFAULT_SUPERNODE_PORT,
                      help=f"the node's local ClientApp API port (default "
                           f"{DEFAULT_SUPERNODE_PORT}; distinct per node on one machine)")
    node.add_argument("--threads", type=int, default=None,
                      help="torch/OpenMP threads of each ClientApp process (default: torch's, "
                           "all cores). 1 reproduces a simulation's numbers exactly: Ray's "
                           "actors use 1 thread with --client-cpus 1")
    node.add_argument("--max-retries", type=int, default=None,
                      help="give up after this many failed connection attempts (default: never)")
    node.add_argument("--insecure", action="store_true",
                      help="connect without TLS and authentication (trusted test networks only)")

    submit = roles.add_parser("submit", help="submit a run to the SuperLink and follow it")
    submit.add_argument("--connection", default=DEFAULT_CONNECTION)
    submit.add_argument("--experiment", type=Path, help="experiment TOML whose [base] to use")
    submit.add_argument("overrides", nargs="*", metavar="key=value",
                        help="run-config overrides; paths (output-dir, data-dir, resume-from) "
                             "are on the SuperLink's machine")
    submit.add_argument("-q", "--quiet", action="store_true",
                        help="show only the progress bar and the result, not the Flower log")


def run_deploy(args: argparse.Namespace) -> int:
    from fedssl.deploy.roles import DeployError

    try:
        return _ROLES[args.role](args)
    except (DeployError, FileExistsError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        print(f"fedssl deploy {args.role}: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a directory that cannot be made or written (e.g. under /proc)
        where = f" {err.filename}" if err.filename else ""
        print(f"fedssl deploy {args.role}: cannot write{where}: {err.strerror or err}; choose "
              "a directory you can write to", file=sys.stderr)
        return 2


def _credentials(args: argparse.Namespace) -> int:
    from fedssl.deploy.credentials import create_credentials

    creds = create_credentials(args.out, hosts=args.host, num_supernodes=args.supernodes,
                               days=args.days, overwrite=args.force)
    print(f"fedssl deploy: credentials in {creds.directory}")
    print(f"  SuperLink (server machine):  {creds.ca_cert.name}, {creds.superlink_cert.name}, "
          f"{creds.superlink_key.name}")
    print(f"  operator (register/submit):  {creds.ca_cert.name}, supernode-*.pub")
    for i in range(creds.num_supernodes):
        print(f"  SuperNode {i}:                 {creds.ca_cert.name}, "
              f"{creds.supernode_private_key(i).name}")
    print("  keep ca.key offline: it signs certificates the SuperNodes trust")
    return 0


def _run_flower(role: str, command: list[str], env: dict[str, str] | None = None) -> int:
    """Run the role's Flower process until it exits or a signal stops it (first signal)."""
    from fedssl.deploy.foreground import run_in_foreground
    from fedssl.launch import process_env

    return run_in_foreground(command, env or process_env(), role=role)


def _superlink(args: argparse.Namespace) -> int:
    from fedssl.deploy.roles import INSECURE_WARNING, superlink_command

    if args.insecure:
        print(INSECURE_WARNING, file=sys.stderr)
    args.database.parent.mkdir(parents=True, exist_ok=True)
    return _run_flower("superlink", superlink_command(
        credentials=None if args.insecure else args.credentials, database=args.database,
        host=args.host, port=args.port, insecure=args.insecure, log_file=args.log_file))


def _supernode(args: argparse.Namespace) -> int:
    from fedssl.deploy.roles import INSECURE_WARNING, DeployError, supernode_command
    from fedssl.launch import process_env

    if args.insecure:
        print(INSECURE_WARNING, file=sys.stderr)
    if args.data_dir and not Path(args.data_dir).is_dir():
        raise DeployError(f"--data-dir {args.data_dir!r} is not a directory (looked at "
                          f"{Path(args.data_dir).resolve()}); give the folder that holds this "
                          "node's dataset")
    env = process_env()
    if args.threads is not None:
        if args.threads < 1:
            raise DeployError(f"--threads={args.threads}; give 1 or more")
        # Inherited by every flwr-clientapp process the SuperNode starts; torch reads it at
        # import. Thread count changes float reduction order, hence the exact numbers.
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    return _run_flower("supernode", supernode_command(
        superlink=args.superlink, partition_id=args.partition_id,
        num_partitions=args.num_partitions, ca_cert=args.ca, private_key=args.key,
        data_dir=str(Path(args.data_dir).resolve()) if args.data_dir else "",
        port=args.port, insecure=args.insecure, max_retries=args.max_retries), env)


def _connect(args: argparse.Namespace) -> int:
    from fedssl.deploy.roles import INSECURE_WARNING, flwr_home, write_connection

    if args.insecure:
        print(INSECURE_WARNING, file=sys.stderr)
    path = write_connection(flwr_home(), args.name, address=args.superlink,
                            ca_cert=args.ca, insecure=args.insecure)
    print(f"fedssl deploy: connection {args.name!r} -> {args.superlink} saved in {path}")
    return 0


def _cli():
    from fedssl.deploy.roles import flwr_home
    from fedssl.launch import FlwrCli, process_env

    home = flwr_home()
    home.mkdir(parents=True, exist_ok=True)
    return FlwrCli(process_env() | {"FLWR_HOME": str(home)}, home)


def _register(args: argparse.Namespace) -> int:
    from fedssl.deploy.roles import register_supernodes

    for key, node_id in register_supernodes(_cli(), args.connection, args.public_keys).items():
        print(f"fedssl deploy: {key} -> SuperNode {node_id}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from fedssl.config import parse_overrides
    from fedssl.experiments.spec import load_experiment
    from fedssl.launch import RoundProgress, report_outcome
    from fedssl.launch.overrides import resolve_config

    base = load_experiment(args.experiment).base if args.experiment else {}
    # Paths name files on the SuperLink's and SuperNodes' machines: not checked or resolved here.
    cfg = resolve_config(base, parse_overrides(args.overrides), paths_elsewhere=True)
    cli = _cli()
    with RoundProgress(cfg.num_server_rounds, quiet=args.quiet) as bar:
        outcome = cli.run(args.connection, cfg.to_run_config(), on_line=bar.write,
                          on_progress=bar.update)
    if not outcome.completed:
        hint = f"flwr log {outcome.run_id} {args.connection} --show" if outcome.run_id else ""
        print(f"fedssl deploy submit: the ServerApp's log: {hint}", file=sys.stderr)
    return report_outcome(outcome)


_ROLES = {
    "credentials": _credentials,
    "superlink": _superlink,
    "supernode": _supernode,
    "connect": _connect,
    "register": _register,
    "submit": _submit,
}
