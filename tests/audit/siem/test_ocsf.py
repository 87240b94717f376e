"""Every event we emit validates against its OCSF 1.5.0 class, from the published schema export
shipped in the ``ocsf-json-schema`` package."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from tests.audit.siem.samples import AGENT, HOSTILE, all_events
from wardgate.audit.events import Event
from wardgate.audit.siem import OCSF_VERSION, to_ocsf


@functools.cache
def _schemas() -> Any:
    return OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))


@functools.cache
def _validator(class_uid: int, profiles: tuple[str, ...]) -> Draft202012Validator:
    schemas = _schemas()
    name = schemas.lookup_class_name_from_uid(class_uid)
    schema = schemas.get_class_schema(name, list(profiles))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _validate(out: dict[str, Any]) -> None:
    profiles = tuple(out["metadata"].get("profiles", ()))
    errors = sorted(_validator(out["class_uid"], profiles).iter_errors(out), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("event", all_events(), ids=lambda e: str(e.get("type", "empty")))
def test_every_event_validates_against_its_class(event: Event) -> None:
    _validate(to_ocsf(event))


def test_classes_and_type_uids() -> None:
    got = [(e.get("type"), to_ocsf(e)["class_uid"], to_ocsf(e)["type_uid"]) for e in all_events()]
    assert got[0] == ("session.start", 3002, 300201)
    assert got[1] == ("session.refused", 3002, 300201)
    assert ("session.end", 3002, 300202) in got
    assert ("api_call", 6003, 600301) in got
    assert ("approval.granted", 0, 99) in got
    statements = [t for kind, _, t in got if kind == "statement"]
    assert statements[:7] == [600504, 600505, 600502, 600504, 600506, 600501, 600599]


def test_authentication_fields() -> None:
    start, refused = (to_ocsf(e) for e in all_events()[:2])
    assert start["user"] == {
        "name": "triage-bot",
        "groups": [{"name": "reader"}, {"name": "agent"}],
    }
    assert start["unmapped"]["on_behalf_of"] == list(AGENT.on_behalf_of)
    assert start["src_endpoint"] == {"ip": "127.0.0.1", "port": 49086}
    assert start["service"] == {"name": "clinic"} and start["status_id"] == 1
    assert start["unmapped"]["client_tls"].startswith("TLSv1.3")
    assert refused["status_id"] == 2 and refused["status_code"] == "28P01"
    assert refused["status_detail"] == "user 'eve': password authentication failed"
    assert refused["user"] == {"name": "eve"} and refused["unmapped"]["identity_verified"] is False
    assert refused["src_endpoint"] == {"ip": "::1", "port": 50000}
    assert refused["severity_id"] == 3


def test_statement_fields() -> None:
    events = {e.get("statement"): to_ocsf(e) for e in all_events() if e.get("type") == "statement"}
    hostile = events[HOSTILE]
    assert hostile["query_info"] == {"query_string": HOSTILE, "uid": "1707c0ffee:3", "bytes": 4096}
    assert hostile["unmapped"]["rows"] == 12 and hostile["disposition_id"] == 1
    assert hostile["time"] == 1764400000250
    denied = events["DELETE FROM patients"]
    assert (denied["disposition_id"], denied["action_id"], denied["status_id"]) == (2, 2, 2)
    assert denied["status_detail"] == "writes need approval"
    failed = events["SELECT 1/0"]
    assert failed["status_code"] == "22012" and failed["status_detail"] == 'division by "zero"'
    assert events["select 2"]["status_id"] == 99  # skipped


def test_uid_is_stable_and_distinct() -> None:
    uids = [to_ocsf(e)["metadata"]["uid"] for e in all_events()]
    assert uids == [to_ocsf(e)["metadata"]["uid"] for e in all_events()]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda o: o.update(tls={"version": "TLSv1.3"}),  # Authentication has no tls attribute
        lambda o: o.update(activity_id=42),
        lambda o: o.pop("user"),
        lambda o: o["src_endpoint"].update(port="49086"),
    ],
)
def test_the_schema_is_strict_enough_to_catch_mistakes(spoil: Any) -> None:
    out = to_ocsf(all_events()[0])
    spoil(out)
    with pytest.raises(AssertionError):
        _validate(out)
