"""``wardgate audit prove|search|export|key|purge`` and configuration defaults, as subprocesses."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.audit.chain_helpers import Log, make_log, wardgate
from wardgate.audit.merkle import leaf_hash, verify_inclusion
from wardgate.audit.store import entry_hash


def _config(tmp_path: Path, log: Log) -> Path:
    path = tmp_path / "wardgate.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            audit:
              store: {log.db.relative_to(tmp_path)}
              key: {log.key.relative_to(tmp_path)}
              head_file: {log.heads.relative_to(tmp_path)}
              retention_days: 3650
            """
        )
    )
    return path


def test_prove_prints_a_proof_that_verifies_against_its_signed_head(tmp_path: Path) -> None:
    log = make_log(tmp_path, 20)
    result = wardgate("audit", "prove", "7", "--db", log.db)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    entry = out["entry"]
    data = json.dumps(entry["event"], sort_keys=True, separators=(",", ":")).encode()
    assert entry_hash(7, entry["prev_hash"], data) == entry["hash"]
    leaf = leaf_hash(bytes.fromhex(entry["hash"]))
    assert out["leaf_hash"] == leaf.hex() and out["head"]["tree_size"] == out["tree_size"] == 20
    proof = [bytes.fromhex(p) for p in out["proof"]]
    root = bytes.fromhex(out["head"]["root_hash"])
    assert verify_inclusion(leaf, 6, 20, proof, root)
    missing = wardgate("audit", "prove", "21", "--db", log.db)
    assert missing.returncode == 2 and "no signed head covers entry 21" in missing.stderr


def test_search_and_export(tmp_path: Path) -> None:
    log = make_log(tmp_path, 12)
    found = wardgate("audit", "search", "--db", log.db, "--decision", "deny")
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["5", "10"]
    assert "alice\tclinic\tdeny\tSELECT name FROM patients WHERE id = 5" in lines[0]
    as_json = wardgate(
        "audit",
        "search",
        "--db",
        log.db,
        "--user",
        "alice",
        "--since",
        "2026-11-29T07:00:11",
        "--json",
    )
    assert [json.loads(line)["seq"] for line in as_json.stdout.splitlines()] == [11, 12]
    jsonl = wardgate(
        "audit", "export", "--db", log.db, "--format", "jsonl", "--until", "2026-11-29T07:00:03"
    )
    assert [json.loads(line)["seq"] for line in jsonl.stdout.splitlines()] == [1, 2]
    for fmt in ("ocsf", "cef"):
        out = wardgate("audit", "export", "--db", log.db, "--format", fmt)
        if out.returncode == 2:  # the SIEM formats ship separately
            assert "not available" in out.stderr
        else:
            assert out.returncode == 0, out.stderr
            assert len(out.stdout.splitlines()) == 12


def test_defaults_come_from_the_configuration(tmp_path: Path) -> None:
    log = make_log(tmp_path, 10)
    config = _config(tmp_path, log)
    key = wardgate("audit", "key", "-c", config)
    assert key.returncode == 0 and key.stdout == log.public.read_text()
    verified = wardgate("audit", "verify", "-c", config)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (
        "10 anchored heads" not in verified.stdout and "anchored heads verified" in verified.stdout
    )
    purged = wardgate("audit", "purge", "-c", config)
    assert purged.returncode == 0 and "nothing to purge" in purged.stdout
    nothing = wardgate("audit", "verify")
    assert nothing.returncode == 2 and "no audit store" in nothing.stderr
