"""Configuration errors say ``file:line: where: what``; relative paths follow the file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wardgate.config import ConfigError, load

VALID = """\
listeners:
  postgres:
    port: 15432
    tls:
      cert: certs/server.pem
      key: certs/server-key.pem
users:
  - name: alice
    password: alice-secret
targets:
  - name: clinic
    host: 127.0.0.1
    port: 5432
    database: clinic
    user: gateway
    ca: certs/ca.pem
audit:
  path: audit/audit.jsonl
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wardgate.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load(path)
    return str(excinfo.value)


def test_valid_file_loads(tmp_path: Path) -> None:
    config = load(write(tmp_path, VALID))
    target = config.target("clinic")
    assert target is not None and target.port == 5432 and target.tls == "verify-full"
    assert [u.name for u in config.users] == ["alice"]


def test_relative_paths_resolve_against_the_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = write(folder, VALID)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load(Path("..") / "etc" / "wardgate.yaml")
    pg = config.listeners.postgres
    assert pg is not None and pg.tls is not None
    base = (Path("..") / "etc").absolute()
    assert pg.tls.cert.absolute() == base / "certs" / "server.pem"
    assert pg.tls.key.absolute() == base / "certs" / "server-key.pem"
    target = config.target("clinic")
    assert target is not None and target.ca is not None
    assert target.ca.absolute() == base / "certs" / "ca.pem"
    assert config.audit.path is not None
    assert config.audit.path.absolute() == base / "audit" / "audit.jsonl"
    assert config.audit.path.resolve() == path.parent.resolve() / "audit" / "audit.jsonl"


def test_absolute_paths_stay_as_they_are(tmp_path: Path) -> None:
    text = VALID.replace("path: audit/audit.jsonl", "path: /var/log/wardgate/audit.jsonl")
    config = load(write(tmp_path, text))
    assert config.audit.path == Path("/var/log/wardgate/audit.jsonl")


def test_wrong_type_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("port: 5432", "port: fivefourthreetwo"))
    message = error_of(path)
    assert message.startswith(f"{path}:13: targets[0].port: ")
    assert "valid integer" in message


def test_missing_required_field_points_at_its_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    host: 127.0.0.1\n", ""))
    message = error_of(path)
    assert message.startswith(f"{path}:11: targets[0].host: ")
    assert "required" in message.lower()


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    port: 15432\n", "    port: 15432\n    prot: 1\n"))
    message = error_of(path)
    assert message.startswith(f"{path}:4: listeners.postgres.prot: ")
    assert "not permitted" in message


def test_every_error_is_reported(tmp_path: Path) -> None:
    text = VALID.replace("port: 5432", "port: 70000").replace("user: gateway", "user: 5")
    text = text.replace("name: alice", "name: ''")
    path = write(tmp_path, text)
    lines = error_of(path).splitlines()
    assert [line.split(": ")[0:2] for line in lines] == [
        [f"{path}:8", "users[0].name"],
        [f"{path}:13", "targets[0].port"],
        [f"{path}:15", "targets[0].user"],
    ]


def test_duplicate_key_names_its_place(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    port: 5432\n", "    port: 5432\n    port: 5433\n"))
    message = error_of(path)
    assert message.startswith(f"{path}:14: targets[0].port: ")
    assert "duplicate key" in message


def test_duplicate_top_level_section(tmp_path: Path) -> None:
    path = write(tmp_path, VALID + "audit:\n  path: other.jsonl\n")
    message = error_of(path)
    assert message.startswith(f"{path}:19: audit: ")
    assert "duplicate key" in message


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("    user: gateway", "    user: [gateway"))
    message = error_of(path)
    assert message.startswith(f"{path}:")
    line = int(message.split(":")[1])
    assert 15 <= line <= 17  # the reader notices the unclosed bracket a line or two later
    assert "not valid YAML" in message


def test_unset_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARDGATE_TEST_UNSET", raising=False)
    path = write(
        tmp_path, VALID.replace("password: alice-secret", "password: ${WARDGATE_TEST_UNSET}")
    )
    message = error_of(path)
    assert message.startswith(f"{path}:9: users[0].password: ")
    assert "WARDGATE_TEST_UNSET" in message and "not set" in message


def test_environment_variable_is_substituted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDGATE_TEST_SECRET", "from-the-environment")
    text = VALID.replace(
        "user: gateway", "user: gateway\n    password: pre-${WARDGATE_TEST_SECRET}"
    )
    target = load(write(tmp_path, text)).target("clinic")
    assert target is not None and target.password is not None
    assert target.password.get_secret_value() == "pre-from-the-environment"


def test_unreadable_file(tmp_path: Path) -> None:
    message = error_of(tmp_path / "missing.yaml")
    assert message.startswith(f"{tmp_path / 'missing.yaml'}: cannot read configuration")


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WARDGATE_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "wardgate", "check", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_check_command_reports_an_error_with_exit_code_2(tmp_path: Path) -> None:
    path = write(tmp_path, VALID.replace("port: 5432", "port: fivefourthreetwo"))
    result = run_check(path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"wardgate: {path}:13: targets[0].port: ")


def test_check_command_accepts_a_valid_file(tmp_path: Path) -> None:
    result = run_check(write(tmp_path, VALID))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "configuration OK: 1 target(s), 1 user(s)"


def test_audit_store_settings_resolve_and_default(tmp_path: Path) -> None:
    text = VALID + (
        "  store: audit/audit.db\n"
        "  head_file: anchors/heads.jsonl\n"
        "  webhook: http://127.0.0.1:8080/heads\n"
        "  checkpoint_entries: 50\n"
        "  checkpoint_seconds: 5\n"
        "  retention_days: 3000\n"
    )
    audit = load(write(tmp_path, text)).audit
    assert audit.path == tmp_path / "audit" / "audit.jsonl"  # the JSON-lines sink still works
    assert audit.store == tmp_path / "audit" / "audit.db"
    assert audit.head_file == tmp_path / "anchors" / "heads.jsonl"
    assert audit.key_path() == tmp_path / "audit-keys" / "audit-signing.key"  # not by the store
    assert audit.alarm_path() == tmp_path / "audit-keys" / "audit-alarms.jsonl"
    assert (audit.checkpoint_entries, audit.checkpoint_seconds) == (50, 5.0)
    assert audit.retention_days == 3000
    plain = load(write(tmp_path, VALID)).audit
    assert plain.store is None and plain.key_path() is None and plain.retention_days == 2191
    assert (plain.checkpoint_entries, plain.checkpoint_seconds) == (1000, 1.0)


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ("  store: a/audit.db\n  head_file: a/heads.jsonl\n", "head_file must be in another"),
        ("  webhook: ftp://127.0.0.1/\n", "audit.webhook"),
        ("  retention_days: 0\n", "audit.retention_days"),
        ("  checkpoint_entries: 0\n", "audit.checkpoint_entries"),
    ],
)
def test_bad_audit_settings_are_refused(tmp_path: Path, extra: str, where: str) -> None:
    assert where in error_of(write(tmp_path, VALID + extra))


SIEM = """\
siem:
  spool: spool/siem
  max_spool_bytes: 2097152
  sinks:
    - kind: syslog
      address: siem.example.org:6514
      ca: certs/siem-ca.pem
    - name: splunk
      kind: http
      url: https://splunk.example.org:8088/services/collector/raw
      headers:
        Authorization: Splunk ${WARDGATE_TEST_HEC_TOKEN}
      body: lines
    - kind: file
      path: export/ocsf.jsonl
"""


def test_siem_section_resolves_and_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDGATE_TEST_HEC_TOKEN", "hec-secret")
    siem = load(write(tmp_path, VALID + SIEM)).siem
    assert siem.spool == tmp_path / "spool" / "siem" and siem.max_spool_bytes == 2 << 20
    syslog, splunk, file = siem.sinks
    assert (syslog.output, syslog.host_port(), syslog.ca) == (
        "cef",
        ("siem.example.org", 6514),
        tmp_path / "certs" / "siem-ca.pem",
    )
    assert syslog.key == "syslog:siem.example.org:6514"
    assert (splunk.key, splunk.output, splunk.body) == ("splunk", "ocsf", "lines")
    assert splunk.headers["Authorization"].get_secret_value() == "Splunk hec-secret"
    assert "hec-secret" not in repr(splunk)
    assert (file.path, file.output) == (tmp_path / "export" / "ocsf.jsonl", "ocsf")
    plain = load(write(tmp_path, VALID)).siem
    assert plain.sinks == () and plain.max_spool_bytes == 1 << 30


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        ("kind: syslog\n      path: x.log", "a syslog sink needs 'address'"),
        ("kind: file\n      path: x\n      url: http://x", "a file sink takes no 'url'"),
        ("kind: http\n      url: https://x\n      format: cef", "http sink sends OCSF JSON"),
        ("kind: http\n      url: ftp://x", "url must start with"),
        ("kind: syslog\n      address: siem.example.org", "address must be host:port"),
        ("kind: kafka\n      address: x:1", "siem.sinks[0].kind"),
    ],
)
def test_bad_siem_sinks_are_refused(tmp_path: Path, sink: str, message: str) -> None:
    text = VALID + f"siem:\n  sinks:\n    - {sink}\n"
    assert message in error_of(write(tmp_path, text))


def test_siem_sink_names_must_be_unique(tmp_path: Path) -> None:
    sink = "    - kind: file\n      path: same.jsonl\n"
    text = VALID + "siem:\n  sinks:\n" + sink + sink
    assert "siem sink names must be unique; repeated: file:same.jsonl" in error_of(
        write(tmp_path, text)
    )


def test_audit_cannot_be_turned_off(tmp_path: Path) -> None:
    path = tmp_path / "wardgate.yaml"
    path.write_text("audit:\n  path: null\n")
    with pytest.raises(ConfigError, match="audit needs a 'store', a 'path', or both"):
        load(path)
    path.write_text("audit:\n  path: null\n  store: state/audit.db\n")
    config = load(path)
    assert config.audit.path is None and config.audit.store == tmp_path / "state" / "audit.db"
