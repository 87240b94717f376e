"""A real rsyslog from Debian receives the CEF stream over TLS, and loses nothing while it is away.

rsyslog listens on 127.0.0.1 with the ``ossl`` (OpenSSL) netstream driver from the
``rsyslog-openssl`` package, using a certificate from ``wardgate.pki.ensure_dev_pki``, and writes
each message's MSG part, the CEF line, to a file of its own.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audit.siem.helpers import numbered, wait_until
from wardgate.audit.siem import DiskSpool, Forwarder, to_cef
from wardgate.audit.siem.sinks import SinkError, SyslogSink
from wardgate.pki import ensure_dev_pki

pytestmark = pytest.mark.slow

CONFIG = """\
global(
  workDirectory="{dir}"
  maxMessageSize="64k"
  defaultNetstreamDriver="ossl"
  defaultNetstreamDriverCAFile="{pki}/ca.pem"
  defaultNetstreamDriverCertFile="{pki}/server.pem"
  defaultNetstreamDriverKeyFile="{pki}/server-key.pem"
)
module(load="imtcp" streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" address="127.0.0.1" port="{port}")
template(name="msgonly" type="string" string="%msg%\\n")
action(type="omfile" file="{out}" template="msgonly")
"""


def _installed() -> str | None:
    binary = shutil.which("rsyslogd") or (
        "/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None
    )
    driver = glob.glob("/usr/lib/*/rsyslog/lmnsd_ossl.so") + glob.glob(
        "/usr/lib/rsyslog/lmnsd_ossl.so"
    )
    return binary if binary and driver else None


@pytest.fixture(scope="module")
def rsyslogd() -> str:
    binary = _installed()
    if binary is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "rsyslog", "rsyslog-openssl"]
        if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
            subprocess.run(install, env=env, capture_output=True, timeout=600)
        binary = _installed()
    if binary is None:
        pytest.skip(
            "rsyslogd with the ossl driver is not installed and we are not root to apt-get it"
        )
    return binary


class Rsyslog:
    def __init__(self, binary: str, directory: Path) -> None:
        self.binary, self.dir = binary, directory
        self.pki = ensure_dev_pki(directory / "pki")
        self.out = directory / "received.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.conf = directory / "rsyslog.conf"
        self.conf.write_text(
            CONFIG.format(dir=directory, pki=directory / "pki", port=self.port, out=self.out)
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [self.binary, "-n", "-f", str(self.conf), "-i", str(self.dir / "rsyslogd.pid")]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._listening, timeout=20, what=f"rsyslogd on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None

    def _listening(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, "rsyslogd exited"
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines() if self.out.exists() else []


@pytest.fixture
def rsyslog(rsyslogd: str, tmp_path: Path) -> Iterator[Rsyslog]:
    server = Rsyslog(rsyslogd, tmp_path / "rsyslog")
    (tmp_path / "rsyslog").mkdir(exist_ok=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_cef_over_tls_arrives_in_order_and_survives_an_outage(
    rsyslog: Rsyslog, tmp_path: Path
) -> None:
    sink = SyslogSink("rsyslog", "127.0.0.1", rsyslog.port, ca=rsyslog.pki.ca_cert, timeout=5)
    forwarder = Forwarder(DiskSpool(tmp_path / "spool"), [sink], batch_size=64, backoff=(0.05, 0.5))
    forwarder.start()
    try:
        before = numbered(0, 300)
        for event in before:
            forwarder.submit(event)
        wait_until(lambda: len(rsyslog.lines()) >= 300, what="the first 300 events")
        assert rsyslog.lines() == [to_cef(e) for e in before]

        rsyslog.stop()
        during = numbered(300, 200)
        for event in during:
            forwarder.submit(event)
        wait_until(
            lambda: "syslog 127.0.0.1" in forwarder.status()["sinks"]["rsyslog"]["last_error"]
        )
        time.sleep(1.5)  # the receiver stays away for a while; the events wait in the spool
        assert forwarder.status()["sinks"]["rsyslog"]["queued"] == 200
        assert len(rsyslog.lines()) == 300

        rsyslog.start()  # same port, same output file
        wait_until(lambda: len(rsyslog.lines()) >= 500, what="the events spooled in the outage")
        lines = rsyslog.lines()
        assert lines == [to_cef(e) for e in before + during]  # nothing lost, none repeated
        numbers = [int(m.group(1)) for m in map(re.compile(r"n\\=(\d+)").search, lines) if m]
        assert numbers == list(range(500))
    finally:
        assert forwarder.stop(timeout=10)


def test_a_receiver_with_an_unknown_certificate_is_refused(
    rsyslog: Rsyslog, tmp_path: Path
) -> None:
    other = ensure_dev_pki(tmp_path / "other-pki")
    sink = SyslogSink("rsyslog", "127.0.0.1", rsyslog.port, ca=other.ca_cert, timeout=5)
    with pytest.raises(SinkError, match=r"(?i)certificate.verify.failed"):
        sink.send(numbered(0, 1))
    sink.close()
    assert rsyslog.lines() == []
