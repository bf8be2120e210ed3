"""fedssl deploy without a federation: credentials, Flower command lines, connections, CLI."""

import os
import socket
import ssl
import stat
import threading
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedssl.cli import build_parser, main
from fedssl.compose import validate
from fedssl.config import ConfigError, RunConfig, load_defaults, paths_elsewhere
from fedssl.deploy.credentials import create_credentials, subject_alt_names
from fedssl.deploy.roles import (
    INSECURE_WARNING,
    DeployError,
    node_config_arg,
    superlink_command,
    supernode_command,
    write_connection,
)


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    return create_credentials(tmp_path_factory.mktemp("creds"),
                              hosts=["superlink", "10.0.0.5"], num_supernodes=2)


def _sans(cert_path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {f"DNS:{n}" for n in ext.get_values_for_type(x509.DNSName)} | {
        f"IP:{n}" for n in ext.get_values_for_type(x509.IPAddress)}


def test_server_certificate_names_every_host_and_is_signed_by_the_ca(creds):
    assert _sans(creds.superlink_cert) == {"DNS:localhost", "IP:127.0.0.1", "DNS:superlink",
                                           "IP:10.0.0.5"}
    ca = x509.load_pem_x509_certificate(creds.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(creds.superlink_cert.read_bytes())
    server.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_private_keys_are_owner_only_and_supernode_keys_are_openssh_ecdsa(creds):
    for path in (creds.superlink_key, creds.directory / "ca.key",
                 creds.supernode_private_key(0), creds.supernode_private_key(1)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    private = serialization.load_ssh_private_key(creds.supernode_private_key(1).read_bytes(),
                                                 password=None)
    public = serialization.load_ssh_public_key(creds.supernode_public_key(1).read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp384r1"
    assert private.public_key().public_numbers() == public.public_numbers()
    # Every node has its own key.
    other = serialization.load_ssh_public_key(creds.supernode_public_key(0).read_bytes())
    assert other.public_numbers() != public.public_numbers()


def _tls_handshake(creds, server_hostname: str) -> None:
    """A real TLS handshake: a server with the SuperLink's certificate, a client that trusts
    only the CA and checks the host name, as a SuperNode does."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(creds.superlink_cert, creds.superlink_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(creds.ca_cert))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            tls.sendall(b"x")
    finally:
        thread.join(timeout=5)
        listener.close()


@pytest.mark.parametrize("host", ["superlink", "10.0.0.5", "127.0.0.1", "localhost"])
def test_supernodes_dialling_a_listed_host_accept_the_superlink(creds, host):
    _tls_handshake(creds, host)


def test_a_host_missing_from_the_certificate_is_refused(creds):
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls_handshake(creds, "other.example.org")


def test_credentials_are_not_replaced_silently(creds, tmp_path):
    before = creds.ca_cert.read_bytes()
    # All files there: idempotent (a container may run this at every start).
    again = create_credentials(creds.directory, hosts=["superlink"], num_supernodes=2)
    assert again.ca_cert.read_bytes() == before
    # Some files there: refuse, naming them.
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "ca.crt").write_text("old")
    with pytest.raises(FileExistsError, match=r"ca\.crt"):
        create_credentials(partial)
    replaced = create_credentials(partial, overwrite=True, num_supernodes=1)
    assert replaced.ca_cert.read_text() != "old"


@pytest.mark.parametrize("host", ["host:9092", "bad host", ".lead"])
def test_bad_hosts_fail_before_anything_is_written(tmp_path, host):
    with pytest.raises(ValueError, match="host"):
        create_credentials(tmp_path / "c", hosts=[host])
    assert not (tmp_path / "c").exists()


def test_ipv6_and_dns_names_become_the_right_san_types():
    names = subject_alt_names(["::1", "node.example.org"])
    kinds = [type(n).__name__ for n in names]
    assert kinds == ["DNSName", "IPAddress", "IPAddress", "DNSName"]


def test_superlink_is_secure_by_default(creds, tmp_path):
    command = superlink_command(credentials=creds.directory, database=tmp_path / "s.db")
    joined = " ".join(command)
    assert "--insecure" not in command
    assert "--enable-supernode-auth" in command
    for flag, path in (("--ssl-ca-certfile", creds.ca_cert),
                       ("--ssl-certfile", creds.superlink_cert),
                       ("--ssl-keyfile", creds.superlink_key)):
        assert command[command.index(flag) + 1] == str(path)
    assert command[command.index("--database") + 1] == str((tmp_path / "s.db").resolve())
    assert "--disable-runtime-dependency-installation" in joined
    with pytest.raises(DeployError, match="credentials"):
        superlink_command(credentials=None, database=tmp_path / "s.db")
    with pytest.raises(DeployError, match="missing file"):
        superlink_command(credentials=tmp_path, database=tmp_path / "s.db")
    insecure = superlink_command(credentials=None, database=tmp_path / "s.db", insecure=True)
    assert "--insecure" in insecure and "--enable-supernode-auth" not in insecure


def test_supernode_command_carries_partition_data_and_credentials(creds):
    command = supernode_command(superlink="superlink:9092", partition_id=1, num_partitions=3,
                                ca_cert=creds.ca_cert, private_key=creds.supernode_private_key(1),
                                data_dir="/data/esc50", port=9101)
    assert command[command.index("--node-config") + 1] == (
        'partition-id=1 num-partitions=3 data-dir="/data/esc50"')
    assert command[command.index("--root-certificates") + 1] == str(creds.ca_cert)
    assert command[command.index("--auth-supernode-private-key") + 1] == str(
        creds.supernode_private_key(1))
    assert command[command.index("--port") + 1] == "9101"
    with pytest.raises(DeployError, match="CA certificate"):
        supernode_command(superlink="superlink:9092", partition_id=0, num_partitions=3)
    with pytest.raises(DeployError, match="HOST:PORT"):
        supernode_command(superlink="superlink", partition_id=0, num_partitions=3,
                          insecure=True)


def test_node_config_is_parsed_by_flower_as_written():
    from flwr.common.config import parse_config_args

    parsed = parse_config_args([node_config_arg(2, 4, "/mnt/my data")])
    assert parsed == {"partition-id": 2, "num-partitions": 4, "data-dir": "/mnt/my data"}
    with pytest.raises(DeployError, match="partition-id"):
        node_config_arg(4, 4)


def test_connections_are_added_without_losing_others(tmp_path, creds):
    (tmp_path / "config.toml").write_text(
        '[superlink]\ndefault = "local"\n[superlink.local]\naddress = ":local:"\n')
    path = write_connection(tmp_path, "prod", address="10.0.0.5:9092", ca_cert=creds.ca_cert)
    config = tomllib.loads(path.read_text())
    assert config["superlink"]["default"] == "local"
    assert config["superlink"]["local"] == {"address": ":local:"}
    assert config["superlink"]["prod"] == {"address": "10.0.0.5:9092",
                                           "root-certificates": str(creds.ca_cert)}
    write_connection(tmp_path, "test", address="127.0.0.1:9092", insecure=True)
    config = tomllib.loads(path.read_text())
    assert config["superlink"]["test"] == {"address": "127.0.0.1:9092", "insecure": True}
    with pytest.raises(DeployError, match="either"):
        write_connection(tmp_path, "x", address="127.0.0.1:9092")


def test_cli_credentials_and_insecure_warning(tmp_path, capsys, monkeypatch):
    assert main(["deploy", "credentials", "--out", str(tmp_path / "c"), "--host", "superlink",
                 "--supernodes", "1"]) == 0
    out = capsys.readouterr().out
    assert "supernode-0" in out and (tmp_path / "c" / "supernode-0.pub").is_file()
    # The connect command warns when insecure is asked for.
    monkeypatch.setenv("FLWR_HOME", str(tmp_path / "home"))
    assert main(["deploy", "connect", "--superlink", "127.0.0.1:9092", "--insecure"]) == 0
    assert INSECURE_WARNING in capsys.readouterr().err
    # A wrong address is a clear error, exit code 2.
    assert main(["deploy", "connect", "--superlink", "nohostport", "--insecure"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_every_role_parses(tmp_path):
    parser = build_parser()
    for argv in (
        ["deploy", "superlink", "--credentials", "c"],
        ["deploy", "supernode", "--superlink", "h:9092", "--ca", "c/ca.crt", "--key",
         "c/supernode-0", "--partition-id", "0", "--num-partitions", "3"],
        ["deploy", "register", "a.pub", "b.pub"],
        ["deploy", "submit", "num-server-rounds=2"],
    ):
        assert parser.parse_args(argv).role == argv[1]


def test_submitted_paths_name_files_on_other_machines(tmp_path):
    config = load_defaults() | {"resume-from": "/on/the/superlink/run"}
    with pytest.raises(ConfigError, match="resume-from"):
        RunConfig.from_run_config(config)
    with paths_elsewhere():
        cfg = RunConfig.from_run_config(config)
    assert cfg.resume_from == "/on/the/superlink/run"
    # Outside the block the local check is back.
    with pytest.raises(ConfigError):
        RunConfig.from_run_config(config)
    # Everything that is not a path is still checked.
    with paths_elsewhere(), pytest.raises(ConfigError, match="strategy"):
        validate(RunConfig.from_run_config(load_defaults() | {"strategy": "nope"}))


def test_a_supernode_data_dir_wins_over_the_run_config(tmp_path):
    from fedssl.flwr_app.client_app import _config

    items = frozenset((load_defaults() | {"data-dir": "/server/path"}).items())
    assert _config(items, "").data_dir == "/server/path"
    assert _config(items, str(tmp_path)).data_dir == str(tmp_path)


def test_roles_run_flower_secure_by_default_and_warn_when_insecure(creds, tmp_path, capsys,
                                                                    monkeypatch):
    import fedssl.deploy.foreground as foreground

    executed = []

    def run_in_foreground(command, env, *, role):
        executed.append((command, env))
        return 7

    monkeypatch.setattr(foreground, "run_in_foreground", run_in_foreground)
    assert main(["deploy", "superlink", "--credentials", str(creds.directory),
                 "--database", str(tmp_path / "state" / "s.db")]) == 7  # Flower's exit code
    argv, env = executed.pop()
    assert argv[0].endswith("flower-superlink") and "--enable-supernode-auth" in argv
    assert env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] == "1"
    assert (tmp_path / "state").is_dir()  # the database's directory is made
    assert INSECURE_WARNING not in capsys.readouterr().err

    main(["deploy", "superlink", "--insecure", "--database", str(tmp_path / "s.db")])
    argv, _ = executed.pop()
    assert "--insecure" in argv and INSECURE_WARNING in capsys.readouterr().err

    main(["deploy", "supernode", "--superlink", "127.0.0.1:9092", "--insecure",
          "--partition-id", "0", "--num-partitions", "2", "--data-dir", str(tmp_path)])
    argv, env = executed.pop()
    assert "--insecure" in argv and INSECURE_WARNING in capsys.readouterr().err
    assert f'data-dir="{tmp_path}"' in argv[argv.index("--node-config") + 1]
    assert "OMP_NUM_THREADS" not in env or env["OMP_NUM_THREADS"] == os.environ.get(
        "OMP_NUM_THREADS")  # torch's default unless asked
    main(["deploy", "supernode", "--superlink", "127.0.0.1:9092", "--insecure", "--threads",
          "1", "--partition-id", "0", "--num-partitions", "2"])
    _, env = executed.pop()
    assert env["OMP_NUM_THREADS"] == "1"
    # Secure is the default: without credentials a SuperNode does not start at all.
    assert main(["deploy", "supernode", "--superlink", "127.0.0.1:9092",
                 "--partition-id", "0", "--num-partitions", "2"]) == 2
    assert "CA certificate" in capsys.readouterr().err and not executed


def test_reusing_credentials_that_lack_a_new_host_is_refused(creds):
    before = creds.superlink_cert.read_bytes()
    with pytest.raises(FileExistsError, match=r"does not name 10\.0\.0\.9"):
        create_credentials(creds.directory, hosts=["superlink", "10.0.0.9"], num_supernodes=2)
    assert creds.superlink_cert.read_bytes() == before


def test_a_supernode_with_a_missing_data_dir_is_refused(tmp_path, capsys):
    code = main(["deploy", "supernode", "--superlink", "127.0.0.1:9092", "--insecure",
                 "--partition-id", "0", "--num-partitions", "2",
                 "--data-dir", str(tmp_path / "nope")])
    assert code == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "nope" in err and "Traceback" not in err


def test_credentials_into_an_unwritable_place_are_refused(capsys):
    assert main(["deploy", "credentials", "--out", "/proc/fedssl/creds"]) == 2
    err = capsys.readouterr().err
    assert "cannot write /proc/fedssl" in err and "Traceback" not in err
