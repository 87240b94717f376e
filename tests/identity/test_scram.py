"""SCRAM-SHA-256 against the worked example of RFC 7677, section 3, and against malformed input."""

from __future__ import annotations

import base64

import pytest

from wardgate.identity.scram import ITERATIONS, ScramClient, ScramError, ScramServer, Verifier

# RFC 7677, section 3.
PASSWORD = "pencil"
CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_server(password: str = PASSWORD) -> ScramServer:
    return ScramServer(Verifier.from_password(password, SALT, 4096), nonce=SERVER_NONCE)


def test_server_answers_the_rfc_exchange_exactly() -> None:
    server = rfc_server()
    assert server.first(CLIENT_FIRST) == SERVER_FIRST
    assert server.final(CLIENT_FINAL) == SERVER_FINAL


def test_server_rejects_the_rfc_proof_for_another_password() -> None:
    server = rfc_server("pencil2")
    assert server.first(CLIENT_FIRST) == SERVER_FIRST  # the salt and nonce are the same
    with pytest.raises(ScramError, match="password authentication failed"):
        server.final(CLIENT_FINAL)


def test_client_completes_the_rfc_exchange() -> None:
    # PostgreSQL clients send an empty user name (n=), the user is in the start-up packet, so the
    # client's proof differs from the RFC's, which was made for n=user. Its final message keeps
    # the RFC's shape, and the server that reproduces the RFC exactly accepts it.
    client = ScramClient(PASSWORD, nonce=CLIENT_NONCE)
    first = client.first()
    assert first == b"n,,n=,r=" + CLIENT_NONCE.encode()
    server = rfc_server()
    assert server.first(first) == SERVER_FIRST
    final = client.final(SERVER_FIRST)
    without_proof, _, proof = final.partition(b",p=")
    assert without_proof == CLIENT_FINAL.partition(b",p=")[0]
    assert len(base64.b64decode(proof, validate=True)) == 32
    client.verify(server.final(final))


def test_client_with_a_wrong_password_is_refused() -> None:
    client = ScramClient("not-pencil", nonce=CLIENT_NONCE)
    server = rfc_server()
    server.first(client.first())
    with pytest.raises(ScramError, match="password authentication failed"):
        server.final(client.final(SERVER_FIRST))


def test_client_refuses_a_server_final_it_did_not_earn() -> None:
    client = ScramClient(PASSWORD, nonce=CLIENT_NONCE)
    client.final(SERVER_FIRST)
    # The RFC's own server-final is valid, but for another exchange (n=user): a replay.
    with pytest.raises(ScramError, match="server signature mismatch"):
        client.verify(SERVER_FINAL)
    with pytest.raises(ScramError, match="server signature mismatch"):
        client.verify(b"v=" + base64.b64encode(bytes(32)))
    with pytest.raises(ScramError):
        client.verify(b"")


def test_client_reports_a_server_error_attribute() -> None:
    client = ScramClient(PASSWORD, nonce=CLIENT_NONCE)
    client.final(SERVER_FIRST)
    with pytest.raises(ScramError, match="invalid-proof"):
        client.verify(b"e=invalid-proof")


@pytest.mark.parametrize(
    "client_first",
    [
        b"p=tls-server-end-point,,n=,r=abc",  # channel binding required
        b"n,a=admin,n=,r=abc",  # an authorization identity
        b"x,,n=,r=abc",  # unknown GS2 flag
        b"n,,n=,r=",  # empty nonce
        b"n,,n=",  # no nonce
        b"n,,n=,rabc",  # attribute without '='
        b"n,,n=,rr=abc",  # attribute name longer than one letter
        b"n",  # no GS2 header at all
        b"",
    ],
)
def test_server_rejects_malformed_client_first(client_first: bytes) -> None:
    with pytest.raises(ScramError):
        rfc_server().first(client_first)


@pytest.mark.parametrize(
    "client_final",
    [
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",  # no proof
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",  # nonce
        b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!!notbase64",
        b"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,"  # channel binding data the server did not offer
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=c2hvcnQ=",  # short proof
        b"c=biws,garbage,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    ],
)
def test_server_rejects_malformed_client_final(client_final: bytes) -> None:
    server = rfc_server()
    server.first(CLIENT_FIRST)
    with pytest.raises(ScramError):
        server.final(client_final)


@pytest.mark.parametrize(
    "server_first",
    [
        b"r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",  # does not extend our nonce
        b"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096",  # no salt
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=many",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=not*base64,i=4096",
        b"garbage",
    ],
)
def test_client_rejects_malformed_server_first(server_first: bytes) -> None:
    with pytest.raises(ScramError):
        ScramClient(PASSWORD, nonce=CLIENT_NONCE).final(server_first)


def test_verifier_round_trips_through_its_text_form() -> None:
    verifier = Verifier.from_password(PASSWORD, SALT, 4096)
    text = str(verifier)
    assert text.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    assert Verifier.parse(text) == verifier
    fresh = Verifier.from_password(PASSWORD)
    assert fresh.iterations == ITERATIONS and len(fresh.salt) == 16
    assert fresh.salt != Verifier.from_password(PASSWORD).salt
    assert Verifier.parse(str(fresh)) == fresh


@pytest.mark.parametrize(
    "text",
    [
        "",
        "md5d8578edf8458ce06fbc5bb76a58c5ca4",
        "SCRAM-SHA-1$4096:W22ZaJ0SNY7soEsUEjb6gQ==$YQ==:Yg==",
        "SCRAM-SHA-256$many:W22ZaJ0SNY7soEsUEjb6gQ==$YQ==:Yg==",
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$YQ==",
        "SCRAM-SHA-256$4096:***$YQ==:Yg==",
    ],
)
def test_verifier_parse_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a SCRAM-SHA-256 verifier"):
        Verifier.parse(text)
