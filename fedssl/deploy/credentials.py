"""Credentials for a secure federation: a CA, the SuperLink's TLS certificate, SuperNode keys.

Flower's deployment needs three kinds of files (see the README, "Deployment"):

* ``ca.crt`` — the certificate authority every SuperNode and ``flwr`` client trusts;
* ``superlink.crt`` / ``superlink.key`` — the SuperLink's TLS certificate, signed by the CA,
  whose subject alternative names must list every host name or IP the SuperNodes dial;
* ``supernode-<i>`` / ``supernode-<i>.pub`` — an ECDSA key pair per SuperNode in OpenSSH
  format; the public half is registered on the SuperLink (``flwr supernode register``) and
  the private half authenticates the node.

Everything is made with ``cryptography`` (a Flower dependency), so no ``openssl`` or
``ssh-keygen`` binary is needed on the machine that prepares a federation.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_CERT",
    "SUPERLINK_CERT",
    "SUPERLINK_KEY",
    "Credentials",
    "create_credentials",
    "make_ca",
    "make_server_certificate",
    "make_supernode_keypair",
    "subject_alt_names",
    "supernode_key_name",
]

CA_CERT, CA_KEY = "ca.crt", "ca.key"
SUPERLINK_CERT, SUPERLINK_KEY = "superlink.crt", "superlink.key"
# Always valid on the SuperLink's own machine (the operator's `flwr` CLI, local SuperNodes).
LOCAL_HOSTS = ("localhost", "127.0.0.1")


def supernode_key_name(index: int) -> str:
    return f"supernode-{index}"


@dataclass(frozen=True)
class Credentials:
    """Paths of a credentials directory made by :func:`create_credentials`."""

    directory: Path
    num_supernodes: int

    @property
    def ca_cert(self) -> Path:
        return self.directory / CA_CERT

    @property
    def superlink_cert(self) -> Path:
        return self.directory / SUPERLINK_CERT

    @property
    def superlink_key(self) -> Path:
        return self.directory / SUPERLINK_KEY

    def supernode_private_key(self, index: int) -> Path:
        return self.directory / supernode_key_name(index)

    def supernode_public_key(self, index: int) -> Path:
        return self.directory / f"{supernode_key_name(index)}.pub"

    def files(self) -> list[Path]:
        paths = [self.ca_cert, self.directory / CA_KEY, self.superlink_cert, self.superlink_key]
        for i in range(self.num_supernodes):
            paths += [self.supernode_private_key(i), self.supernode_public_key(i)]
        return paths


def subject_alt_names(hosts: Iterable[str]) -> list[x509.GeneralName]:
    """IP addresses become IP SANs, everything else a DNS SAN; localhost is always included.

    gRPC/HTTP TLS checks the host a client dials against these names, so a SuperNode that
    dials ``10.0.0.5:9092`` needs ``IP:10.0.0.5`` here, and one that dials
    ``superlink:9092`` (a compose service name) needs ``DNS:superlink``.
    """
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in (*LOCAL_HOSTS, *hosts):
        host = host.strip()
        if not host or host in seen:
            continue
        if ":" in host and not _is_ip(host):
            raise ValueError(f"host {host!r} looks like host:port; give the host name or IP only")
        seen.add(host)
        if _is_ip(host):
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        else:
            if any(c.isspace() for c in host) or host.startswith("."):
                raise ValueError(f"host {host!r} is not a valid DNS name or IP address")
            names.append(x509.DNSName(host))
    return names


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedssl federation"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def make_ca(
    *, common_name: str = "fedssl CA", days: int = 365
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA (ECDSA P-384) that may sign server certificates and nothing below."""
    key = ec.generate_private_key(ec.SECP384R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA384())
    )
    return key, cert


def make_server_certificate(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: Iterable[str],
    *,
    days: int = 365,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The SuperLink's TLS certificate, signed by the CA, valid for ``hosts`` (+ localhost)."""
    key = ec.generate_private_key(ec.SECP384R1())
    sans = subject_alt_names(hosts)
    common_name = next((str(n.value) for n in sans[len(LOCAL_HOSTS):]), "localhost")
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA384())
    )
    return key, cert


def make_supernode_keypair(comment: str = "") -> tuple[bytes, bytes]:
    """An ECDSA P-384 key pair as (OpenSSH private key, OpenSSH public key line).

    The format is what ``ssh-keygen -t ecdsa -b 384`` writes and what Flower's
    ``--auth-supernode-private-key`` and ``flwr supernode register`` read.
    """
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    if comment:
        public += b" " + comment.encode()
    return private, public + b"\n"


def _write(path: Path, data: bytes, *, private: bool) -> None:
    # Private keys are created 0600 from the start, never world-readable even briefly.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600 if private else 0o644)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _check_covers(certificate: Path, hosts: list[str]) -> None:
    """An existing set is reused only when its certificate names every host asked for: a
    new host would otherwise be silently missing and its SuperNodes' TLS handshake fail."""
    cert = x509.load_pem_x509_certificate(certificate.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have = {str(v) for v in (*names.get_values_for_type(x509.DNSName),
                             *names.get_values_for_type(x509.IPAddress))}
    wanted = {str(n.value) for n in subject_alt_names(hosts)}
    if missing := sorted(wanted - have):
        raise FileExistsError(
            f"{certificate.parent} already holds a set whose SuperLink certificate does not name "
            f"{', '.join(missing)} (it names {', '.join(sorted(have))}); use another directory, "
            "or --force to make a new set (SuperNodes must then be registered again)")


def create_credentials(
    directory: str | Path,
    *,
    hosts: Iterable[str] = (),
    num_supernodes: int = 3,
    days: int = 365,
    overwrite: bool = False,
) -> Credentials:
    """Write a CA, a SuperLink certificate for ``hosts`` and ``num_supernodes`` key pairs.

    Refuses to replace existing files unless ``overwrite``: a new CA would silently lock
    every deployed SuperNode out. When every file already exists and ``overwrite`` is off,
    nothing is written and the existing set is returned (so a container can run this at
    every start).
    """
    if num_supernodes < 1:
        raise ValueError(f"num_supernodes={num_supernodes}; give at least 1")
    if days < 1:
        raise ValueError(f"days={days}; give at least 1")
    hosts = list(hosts)
    subject_alt_names(hosts)  # validate before touching the disk
    creds = Credentials(Path(directory).resolve(), num_supernodes)
    existing = [p for p in creds.files() if p.exists()]
    if existing and not overwrite:
        if len(existing) == len(creds.files()):
            _check_covers(creds.superlink_cert, hosts)
            return creds
        raise FileExistsError(
            f"{creds.directory} already holds {', '.join(p.name for p in existing)}; "
            "use another directory, or overwrite=True (--force) to replace them all "
            "(SuperNodes registered with the old keys must then be registered again)"
        )
    creds.directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = make_ca(days=days)
    server_key, server_cert = make_server_certificate(ca_key, ca_cert, hosts, days=days)
    _write(creds.ca_cert, _pem(ca_cert), private=False)
    _write(creds.directory / CA_KEY, _pem_key(ca_key), private=True)
    _write(creds.superlink_cert, _pem(server_cert), private=False)
    _write(creds.superlink_key, _pem_key(server_key), private=True)
    for i in range(num_supernodes):
        private, public = make_supernode_keypair(comment=supernode_key_name(i))
        _write(creds.supernode_private_key(i), private, private=True)
        _write(creds.supernode_public_key(i), public, private=False)
    return creds
