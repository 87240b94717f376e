"""A development certificate authority and a server certificate for loopback TLS.

The CA key sits unencrypted next to the certificates: anyone who can read the directory can mint
certificates that clients trusting ``ca.pem`` accept. It is for demos and tests, never production.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_COMMON_NAME = "wardgate development CA — not for production"
SERVER_COMMON_NAME = "wardgate development server"
DEFAULT_HOSTNAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

CA_LIFETIME = dt.timedelta(days=5 * 365)
SERVER_LIFETIME = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
# Tolerate a client clock that is slightly behind ours.
BACKDATE = dt.timedelta(minutes=5)

_Pair: TypeAlias = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


@dataclass(frozen=True)
class DevPKI:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def ensure_dev_pki(directory: Path, hostnames: Sequence[str] = DEFAULT_HOSTNAMES) -> DevPKI:
    """Reuse the files in `directory` while they stay valid, otherwise issue new ones.

    A still-valid CA is kept when only the server certificate needs reissuing, so clients that
    already trust ``ca.pem`` keep working. Calls on one directory are not coordinated across
    processes: two issuing at once can pair one's certificate with the other's key.
    """
    if not hostnames:
        raise ValueError("at least one hostname is required")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    pki = DevPKI(
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca-key.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
    )
    now = dt.datetime.now(dt.UTC)
    ca = _load_pair(pki.ca_cert, pki.ca_key)
    if ca is None or not _usable_ca(ca[0], now):
        ca = _issue_ca(now)
        _write(pki.ca_key, _key_pem(ca[1]), 0o600)
        _write(pki.ca_cert, ca[0].public_bytes(serialization.Encoding.PEM), 0o644)
        server = None
    else:
        server = _load_pair(pki.server_cert, pki.server_key)
    if server is None or not _usable_server(server[0], ca[0], hostnames, now):
        cert, key = _issue_server(ca, hostnames, now)
        _write(pki.server_key, _key_pem(key), 0o600)
        _write(pki.server_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return pki


def _load_pair(cert_path: Path, key_path: Path) -> _Pair | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _usable_ca(cert: x509.Certificate, now: dt.datetime) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca and _valid_for_a_while(cert, now)


def _usable_server(
    cert: x509.Certificate, ca: x509.Certificate, hostnames: Sequence[str], now: dt.datetime
) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    wanted = {_general_name(name) for name in hostnames}
    return wanted <= set(sans) and _valid_for_a_while(cert, now)


def _valid_for_a_while(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - now > RENEW_BEFORE


def _general_name(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname.lower())


def _issue_ca(now: dt.datetime) -> _Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue_server(ca: _Pair, hostnames: Sequence[str], now: dt.datetime) -> _Pair:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    sans = list(dict.fromkeys(_general_name(name) for name in hostnames))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_COMMON_NAME)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + SERVER_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write through a new file and a rename, so a key never exists with wider permissions."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
