from __future__ import annotations

import shutil
import socket
import ssl
import stat
import struct
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509

from wardgate.pki import CA_COMMON_NAME, DevPKI, ensure_dev_pki

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPKI:
    return ensure_dev_pki(tmp_path_factory.mktemp("pki") / "tls")


@contextmanager
def tls_server(pki: DevPKI, address: str, *, postgres: bool = False) -> Iterator[int]:
    """Serve one handshake per connection on `address` until the block ends; yields the port.

    With `postgres`, speak just enough of the wire protocol for libpq to start TLS and then
    receive a FATAL error that proves the handshake completed.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((address, 0))
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            if postgres and not _answer_encryption_requests(conn):
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    if postgres:
                        tls.recv(65536)  # the startup message
                        tls.sendall(_error_response("wardgate-test: tls ok"))
                    else:
                        tls.sendall(b"ok")
            except (OSError, ssl.SSLError):
                pass  # the client rejected us; the client side asserts on that

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            serve_one(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


def _answer_encryption_requests(conn: socket.socket) -> bool:
    while True:
        header = _recv_exact(conn, 8)
        if len(header) < 8:
            return False
        code = struct.unpack("!ii", header)[1]
        if code == GSSENC_REQUEST:
            conn.sendall(b"N")
        elif code == SSL_REQUEST:
            conn.sendall(b"S")
            return True
        else:
            return False


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _error_response(message: str) -> bytes:
    fields = b"SFATAL\0VFATAL\0C28000\0M" + message.encode() + b"\0\0"
    return b"E" + struct.pack("!i", len(fields) + 4) + fields


def _handshake(pki: DevPKI, address: str, server_hostname: str) -> bytes:
    context = ssl.create_default_context(cafile=pki.ca_cert)
    assert context.check_hostname
    with (
        tls_server(pki, address) as port,
        socket.create_connection((address, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        return tls.recv(2)


@pytest.mark.parametrize("server_hostname", ["127.0.0.1", "localhost", "LocalHost"])
def test_python_client_verifies_hostname_over_ipv4(pki: DevPKI, server_hostname: str) -> None:
    assert _handshake(pki, "127.0.0.1", server_hostname) == b"ok"


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_python_client_verifies_ipv6_literal(pki: DevPKI) -> None:
    assert _handshake(pki, "::1", "::1") == b"ok"


def test_python_client_rejects_a_name_not_in_the_certificate(pki: DevPKI) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(pki, "127.0.0.1", "wardgate.invalid")


def test_python_client_rejects_another_ca(pki: DevPKI, tmp_path: Path) -> None:
    other = ensure_dev_pki(tmp_path / "other")
    context = ssl.create_default_context(cafile=other.ca_cert)
    with (
        tls_server(pki, "127.0.0.1") as port,
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"),
    ):
        context.wrap_socket(raw, server_hostname="localhost")


def _psql(pki: DevPKI, port: int, host: str) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed")
    conninfo = (
        f"host={host} hostaddr=127.0.0.1 port={port} user=wardgate dbname=wardgate "
        f"sslmode=verify-full sslrootcert={pki.ca_cert} gssencmode=disable connect_timeout=5"
    )
    env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": "unused", "HOME": "/nonexistent"}
    return subprocess.run(
        [psql, conninfo, "-c", "select 1"], capture_output=True, text=True, env=env, timeout=30
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_psql_verify_full_accepts_the_server(pki: DevPKI, host: str) -> None:
    with tls_server(pki, "127.0.0.1", postgres=True) as port:
        result = _psql(pki, port, host)
    assert "wardgate-test: tls ok" in result.stderr


def test_psql_verify_full_rejects_a_wrong_name(pki: DevPKI) -> None:
    with tls_server(pki, "127.0.0.1", postgres=True) as port:
        result = _psql(pki, port, "wardgate.invalid")
    assert "does not match host name" in result.stderr


def test_ca_and_server_certificate_contents(pki: DevPKI) -> None:
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    assert ca.subject.rfc4514_string() == f"CN={CA_COMMON_NAME}"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    lifetime = server.not_valid_after_utc - server.not_valid_before_utc
    assert 364 <= lifetime.days <= 366
    server.verify_directly_issued_by(ca)


def test_private_keys_are_owner_only_and_directory_is_private(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path / "fresh")
    assert stat.S_IMODE(pki.ca_key.parent.stat().st_mode) == 0o700
    for key in (pki.ca_key, pki.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert list(tmp_path.glob("fresh/.*")) == []  # no temporary files left behind


def test_second_call_reuses_the_files(tmp_path: Path) -> None:
    first = ensure_dev_pki(tmp_path)
    before = {path: path.read_bytes() for path in vars(first).values()}
    second = ensure_dev_pki(tmp_path)
    assert second == first
    assert {path: path.read_bytes() for path in vars(second).values()} == before


def test_new_hostname_reissues_only_the_server_certificate(tmp_path: Path) -> None:
    first = ensure_dev_pki(tmp_path)
    ca_before = first.ca_cert.read_bytes()
    server_before = first.server_cert.read_bytes()
    ensure_dev_pki(tmp_path, ("localhost", "127.0.0.1", "::1", "wardgate.test"))
    assert first.ca_cert.read_bytes() == ca_before
    assert first.server_cert.read_bytes() != server_before
    server = x509.load_pem_x509_certificate(first.server_cert.read_bytes())
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "wardgate.test" in sans.get_values_for_type(x509.DNSName)


def test_damaged_files_are_replaced(tmp_path: Path) -> None:
    first = ensure_dev_pki(tmp_path)
    first.ca_key.write_bytes(b"not a key")
    ensure_dev_pki(tmp_path)
    ca = x509.load_pem_x509_certificate(first.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(first.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    assert stat.S_IMODE(first.ca_key.stat().st_mode) == 0o600
