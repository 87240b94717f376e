"""The sans-io pieces without sockets: the h11 codec with its limits, routing, documents."""

from __future__ import annotations

import pytest

from wardgate.protocols.http import documents
from wardgate.protocols.http.codec import (
    NEED_DATA,
    BodyChunk,
    CodecError,
    RequestEnd,
    RequestHead,
    ServerCodec,
)
from wardgate.protocols.http.routing import request_headers, response_headers, route


def test_keep_alive_and_chunked_bodies() -> None:
    codec = ServerCodec(max_body_bytes=100)
    codec.receive(b"POST /a/b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    head = codec.next_event()
    assert isinstance(head, RequestHead) and head.method == "POST" and head.target == "/a/b"
    assert codec.next_event() is NEED_DATA
    codec.receive(b"3\r\nabc\r\n0\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert codec.next_event() == BodyChunk(b"abc")
    assert codec.next_event() == RequestEnd()
    out = codec.response(200, [("content-type", "text/plain")], b"ok")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nok")
    assert codec.next_cycle()
    assert isinstance(codec.next_event(), RequestHead)


def test_body_limit_and_malformed() -> None:
    codec = ServerCodec(max_body_bytes=4)
    codec.receive(b"PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabcdef")
    assert isinstance(codec.next_event(), RequestHead)
    with pytest.raises(CodecError) as exc:
        codec.next_event()
    assert exc.value.status == 413
    bad = ServerCodec()
    bad.receive(b"NOT HTTP\r\n\r\n")
    with pytest.raises(CodecError) as exc:
        bad.next_event()
    assert exc.value.status == 400
    assert bad.error_response(400, [], b"bad").startswith(b"HTTP/1.1 400 ")


def test_unread_body_closes() -> None:
    codec = ServerCodec()
    codec.receive(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    assert isinstance(codec.next_event(), RequestHead)
    assert b"connection: close" in codec.response(401, [], b"")
    assert not codec.next_cycle()


@pytest.mark.parametrize(
    ("target", "api", "rest", "query"),
    [("/fhir", "fhir", "", ""), ("/fhir/Patient/1?x=1", "fhir", "Patient/1", "x=1"),
     ("/fhir/Patient?a=..%2f", "fhir", "Patient", "a=../")],
)  # fmt: skip
def test_routes(target: str, api: str, rest: str, query: str) -> None:
    found = route(target)
    assert (found.api, found.rest, found.query) == (api, rest, query)
    assert found.upstream_url("https://u/base/") == "https://u/base" + (
        f"/{rest}" if rest else ""
    ) + (f"?{query}" if query else "")


@pytest.mark.parametrize(
    "target", ["/fhir/../x", "/fhir/%2e%2E/x", "/fhir/a%2fb", "/fhir/a%5Cb", "http://x/fhir", "/"]
)
def test_refused_routes(target: str) -> None:
    with pytest.raises(CodecError):
        route(target)


def test_headers_that_never_cross() -> None:
    sent = (
        ("authorization", "Bearer mine"), ("cookie", "a=1"), ("connection", "x-hop"),
        ("x-hop", "1"), ("x-api-key", "forged"), ("accept", "application/fhir+json"),
        ("X-HTTP-Method-Override", "DELETE"), ("x-method-override", "PUT"),
    )  # fmt: skip
    assert request_headers(sent, frozenset({"x-api-key"})) == [("accept", "application/fhir+json")]
    got = response_headers(
        [("Set-Cookie", "s=1"), ("Location", "https://u/base/Patient/1"), ("ETag", 'W/"1"'),
         ("Transfer-Encoding", "chunked"), ("Content-Encoding", "gzip")],
        "https://u/base", "https://gw/fhir",
    )  # fmt: skip
    assert got == [("location", "https://gw/fhir/Patient/1"), ("etag", 'W/"1"')]
    link = response_headers(
        [("Link", '<https://u/base/Patient?page=2>; rel="next", <https://u/base>; rel="x"'),
         ("Content-Location", "https://u/base-other/1")],
        "https://u/base", "https://gw/fhir",
    )  # fmt: skip
    assert link == [
        ("link", '<https://gw/fhir/Patient?page=2>; rel="next", <https://gw/fhir>; rel="x"'),
        ("content-location", "https://u/base-other/1"),  # not under the base
    ]


def test_documents() -> None:
    assert documents.is_json("application/fhir+json; charset=utf-8")
    assert not documents.is_json("text/html")
    bundle = {"resourceType": "Bundle", "link": [{"url": "https://u/base/Patient?page=2"}],
              "entry": [{"fullUrl": "https://u/base-other/x"}]}  # fmt: skip
    documents.rewrite_links(bundle, "https://u/base", "https://gw/fhir")
    assert bundle["link"] == [{"url": "https://gw/fhir/Patient?page=2"}]
    assert bundle["entry"] == [{"fullUrl": "https://u/base-other/x"}]  # not under the base
    scan = documents.SecretScan(("s3cret-value",))
    assert not scan.found_in(b"...s3cret") and scan.found_in(b"-value...")


@pytest.mark.parametrize(
    "target",
    ["/fhir/Patient/%24export", "/fhir//Patient/$export/", "/fhir/Patient//%24export",
     "/%66hir/Patient/$export", "/fhir/Patient/$export?"],
)  # fmt: skip
def test_one_spelling_per_target(target: str) -> None:
    assert route(target).target == "/fhir/Patient/$export"


def test_fhir_spelling() -> None:
    found = route("/fhir/PATIENT/abc/%24EVERYTHING?_COUNT=5&a=b+c&x=%2524").fhir()
    assert found.target == "/fhir/Patient/abc/$everything?_COUNT=5&a=b%20c&x=%2524"
    assert route("/fhir/patient/Observation").fhir().segments == ("Patient", "Observation")
    assert route("/fhir/Patient/observation/observation").fhir().segments == (
        "Patient",
        "observation",
        "Observation",
    )  # ids keep their case; a type's place gets the type's spelling
    for bad in ("/fhir/Patient/a%20b", "/fhir/Patient/a:b"):
        with pytest.raises(CodecError):
            route(bad).fhir()


@pytest.mark.parametrize(
    "target",
    ["/fhir/a;b", "/fhir/a%3Bb", "/fhir/%2524export", "/fhir/a%00", "/fhir/%ff", "/fhir/a?b=%ff",
     "/fhir/a?b=%0a", "//fhir/a"],
)  # fmt: skip
def test_ambiguous_targets_are_refused(target: str) -> None:
    with pytest.raises(CodecError):
        route(target)


def test_public_url_defaults_to_the_listener() -> None:
    from wardgate.protocols.http.routing import default_public_url

    assert default_public_url("https", "127.0.0.1", 15443) == "https://127.0.0.1:15443"
    assert default_public_url("https", "::1", 443) == "https://[::1]"
    assert default_public_url("http", "0.0.0.0", 8080).endswith(":8080")
    assert "0.0.0.0" not in default_public_url("http", "0.0.0.0", 8080)


def test_export_manifest_and_outcome_rebased() -> None:
    manifest = {
        "transactionTime": "t",
        "request": "https://u/base/$export",
        "output": [{"type": "Patient", "url": "https://u/base/_export/j/Patient.ndjson"}],
    }
    documents.rewrite_links(manifest, "https://u/base", "https://gw/fhir")
    assert manifest["request"] == "https://gw/fhir/$export"
    assert manifest["output"][0]["url"] == "https://gw/fhir/_export/j/Patient.ndjson"  # type: ignore[index]
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"diagnostics": "poll https://u/base/_export/j"}],
    }
    documents.rewrite_links(outcome, "https://u/base", "https://gw/fhir")
    assert outcome["issue"][0]["diagnostics"] == "poll https://gw/fhir/_export/j"  # type: ignore[index]
    assert documents.is_ndjson("application/fhir+ndjson") and not documents.is_json("text/plain")
    capability = {
        "resourceType": "CapabilityStatement",
        "implementation": {"url": "https://u/base"},
        "rest": [{"documentation": "see https://u/base/metadata."}],
    }
    documents.rewrite_links(capability, "https://u/base", "https://gw/fhir")
    assert capability["implementation"] == {"url": "https://gw/fhir"}
    assert capability["rest"] == [{"documentation": "see https://gw/fhir/metadata."}]
    assert documents.may_quote(b'{"a":"\\u0068ttps://x"}', "https://u/base")
    assert not documents.may_quote(b'{"url":"https://other/base"}', "https://u.internal:8443/r4")
    assert documents.may_quote(b'{"url":"http://u.internal:8443"}', "https://u.internal:8443/r4")


def test_export_jobs_are_bound_with_every_path_under_them() -> None:
    from wardgate.protocols.http.exports import ExportJobs

    jobs = ExportJobs(limit=2)
    jobs.bind("ehr", "https://u/base/_export/Job1", "https://u/base/", "alice")
    jobs.bind("ehr", "/base/_export/job2", "https://u/base", "bob")  # a relative reference
    jobs.bind("ehr", "https://elsewhere/_export/x", "https://u/base", "bob")  # not the API's
    assert jobs.owner("ehr", ("_export", "job1", "Patient.ndjson")) == "alice"
    assert jobs.owner("ehr", ("_EXPORT", "JOB1")) == "alice"
    assert jobs.owner("ehr", ("_export", "job2")) == "bob"
    assert (
        jobs.owner("ehr", ("_export",)) is None and jobs.owner("other", ("_export", "job1")) is None
    )
    manifest = {"transactionTime": "t", "output": [{"url": "https://u/base/files/f1"}],
                "error": [{"url": "https://u/base/files/e1"}]}  # fmt: skip
    jobs.bind_manifest("ehr", manifest, "https://u/base", "carol")
    assert jobs.owner("ehr", ("files", "e1")) == "carol"
    assert jobs.owner("ehr", ("_export", "job1")) is None  # the oldest, past the limit


def test_echoed_ids_go_back_as_the_client_sent_them() -> None:
    from wardgate.protocols.http.routing import rewritten, unecho

    sent = route("/ehr/Patient/pid-AAA?subject=Patient/pid-BBB,pid-CCC&x=1")
    forward = route("/ehr/Patient/real-1?subject=Patient/real-2,real-3&x=1")
    echoes = rewritten(sent, forward)
    assert sorted(echoes) == [("real-1", "pid-AAA"), ("real-2", "pid-BBB"), ("real-3", "pid-CCC")]
    assert unecho("https://gw/ehr/Patient/real-1/_history/2", echoes).endswith("pid-AAA/_history/2")
