"""Typed configuration: ``wardgate.yaml`` plus ``${VARIABLE}`` references to the environment.

Errors name the file, the line and what is wrong, e.g.
``wardgate.yaml:12: targets[0].port: Input should be a valid integer``. Relative paths are read
relative to the file's own folder, so a config works from any working directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from wardgate.audit.location import location
from wardgate.identity.credentials import parse_duration
from wardgate.identity.oidc import OidcSettings
from wardgate.identity.scram import Verifier

CONFIG_ENV = "WARDGATE_CONFIG"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """A configuration that cannot be used; the message says where and why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Port = Annotated[int, Field(ge=0, le=65535)]
# A SQLite file, or a PostgreSQL URL kept as the text it is (see audit/location.py).
StoreLocation = Annotated[
    Path | str, BeforeValidator(lambda v: location(v) if isinstance(v, str) else v)
]


class ListenerTLS(_Model):
    cert: Path
    key: Path
    required: bool = True


class ThrottleKey(_Model):
    """Backoff for one kind of key: ``free`` failures cost nothing, then ``base * 2**k``
    seconds, at most ``cap``; forgotten after ``forget`` seconds without a failure."""

    free: int = Field(default=5, ge=0)
    base: float = Field(default=1.0, gt=0)
    cap: float = Field(default=60.0, gt=0)
    forget: float = Field(default=900.0, gt=0)


class LoginThrottleSettings(_Model):
    """Failed sign-ins throttled per user name and per source address (identity/throttle.py).
    ``hold``: at most this long an answer is held back (and at most half the handshake
    timeout); the backoff itself may be longer, attempts within it are refused."""

    enabled: bool = True
    user: ThrottleKey = ThrottleKey()
    address: ThrottleKey = ThrottleKey(free=20)
    hold: float = Field(default=5.0, ge=0)


class PostgresListener(_Model):
    host: str = "127.0.0.1"
    port: Port = 15432
    tls: ListenerTLS | None = None
    auth: Literal["scram-sha-256", "password"] = "scram-sha-256"
    max_message_bytes: int = Field(default=64 << 20, ge=1024, le=(1 << 30) - 1)
    handshake_timeout: float = Field(default=15.0, gt=0)
    throttle: LoginThrottleSettings = LoginThrottleSettings()


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class ApiListener(_Model):
    """The HTTP API (``wardgate.api``): sign-in configuration, credentials, SCIM. Bearer tokens
    cross it, so TLS is required unless it listens on loopback only."""

    host: str = "127.0.0.1"
    port: Port = 15480
    tls: ListenerTLS | None = None
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    mcp: bool = Field(
        default=False,
        description="serve MCP (Streamable HTTP) at /mcp, a client of the postgres/http listeners",
    )

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> ApiListener:
        if self.tls is None and self.host not in _LOOPBACK_HOSTS:
            raise ValueError(f"an API listener on {self.host} needs tls (cert and key)")
        return self


class HttpListener(_Model):
    """The HTTP reverse proxy for ``apis`` (docs/http.md). Bearer tokens cross it, so TLS is
    required unless it listens on loopback only."""

    host: str = "127.0.0.1"
    port: Port = 15443
    tls: ListenerTLS | None = None
    max_request_bytes: int = Field(default=10 << 20, ge=1024, le=1 << 30)
    max_response_bytes: int = Field(default=64 << 20, ge=1024, le=1 << 32)
    request_timeout: float = Field(default=30.0, gt=0, description="to receive one request")
    keepalive_timeout: float = Field(default=15.0, gt=0, description="idle between requests")
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^/?#]+$",
        description="scheme://host[:port] clients use; default: the listener's host and port",
    )

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> HttpListener:
        if self.tls is None and self.host not in _LOOPBACK_HOSTS:
            raise ValueError(f"an HTTP listener on {self.host} needs tls (cert and key)")
        return self


class Listeners(_Model):
    postgres: PostgresListener | None = None
    api: ApiListener | None = None
    http: HttpListener | None = None

    @model_validator(mode="after")
    def _mcp_reaches_data(self) -> Listeners:
        if self.api is not None and self.api.mcp and self.postgres is None and self.http is None:
            raise ValueError("api.mcp needs listeners.postgres or listeners.http to reach data")
        return self


class User(_Model):
    name: str = Field(min_length=1)
    password: SecretStr | None = None
    scram: str | None = None
    roles: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_secret(self) -> User:
        if (self.password is None) == (self.scram is None):
            raise ValueError("give exactly one of 'password' or 'scram' (a SCRAM-SHA-256 verifier)")
        if self.scram is not None:
            Verifier.parse(self.scram)
        return self

    def verifier(self) -> Verifier:
        if self.scram is not None:
            return Verifier.parse(self.scram)
        assert self.password is not None
        return Verifier.from_password(self.password.get_secret_value())


class Target(_Model):
    name: str = Field(min_length=1, description="the database name clients connect to")
    kind: Literal["postgres"] = "postgres"
    host: str
    port: Port = 5432
    database: str
    user: str
    password: SecretStr | None = None
    tls: Literal["disable", "require", "verify-full"] = "verify-full"
    ca: Path | None = None
    connect_timeout: float = Field(default=10.0, gt=0)
    allow_superuser: bool = Field(
        default=False,
        description="accept a login that is a superuser or may read or write server files or "
        "run server programs (docs/configuration.md, least privilege upstream)",
    )
    phi: dict[str, str] = Field(
        default_factory=dict,
        description="column labels: 'table.column' or 'schema.table.column' -> an entity "
        "(SSN, NAME, ...) or TEXT (free text, content-scanned)",
    )

    @model_validator(mode="after")
    def _labels(self) -> Target:
        from wardgate.masking.entities import Entity

        known = {e.value for e in Entity} | {"TEXT"}
        for column, entity in self.phi.items():
            if not 2 <= len(column.split(".")) <= 3:
                raise ValueError(f"phi label {column!r}: write table.column or schema.table.column")
            if entity not in known:
                raise ValueError(f"phi label {column}: unknown entity {entity!r}; known: "
                                 f"{', '.join(sorted(known))}")  # fmt: skip
        return self


class ApiKeyAuth(_Model):
    header: str = Field(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    value: SecretStr = Field(min_length=8)


class ClientCertAuth(_Model):
    cert: Path
    key: Path


class ApiAuth(_Model):
    """How the gateway authenticates to an API: exactly one of the three. The client never
    sees it."""

    api_key: ApiKeyAuth | None = None
    bearer: SecretStr | None = Field(default=None, min_length=8)
    client_cert: ClientCertAuth | None = None

    @model_validator(mode="after")
    def _one(self) -> ApiAuth:
        given = [n for n in ("api_key", "bearer", "client_cert") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'api_key', 'bearer' or 'client_cert'")
        return self

    def secrets(self) -> tuple[str, ...]:
        """The values that must never reach a client."""
        if self.api_key is not None:
            return (self.api_key.value.get_secret_value(),)
        if self.bearer is not None:
            return (self.bearer.get_secret_value(),)
        return ()


class ApiTarget(_Model):
    """An HTTP API behind the gateway, reached as ``<gateway>/<name>/<path>``."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    kind: Literal["fhir", "json"] = "json"
    url: str = Field(pattern=r"^https?://[^/?#]+(/[^?#]*)?$")
    tls: Literal["require", "verify-full"] = "verify-full"
    ca: Path | None = None
    auth: ApiAuth | None = None
    timeout: float = Field(default=30.0, gt=0, description="connect, and between bytes")
    max_response_bytes: int | None = Field(default=None, ge=1024)
    # Masking (masking/documents.py): FHIR answers by the resource model; other JSON by rules
    # of JSON path -> entity (or TEXT), and optionally a content scan of every other string.
    phi: dict[str, str] = Field(default_factory=dict, description="JSON path -> entity")
    scan_strings: bool = False

    @model_validator(mode="after")
    def _loopback_only_in_clear(self) -> ApiTarget:
        if self.url.startswith("http://"):
            host = self.url[len("http://") :].split("/", 1)[0]
            host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if host.strip("[]") not in _LOOPBACK_HOSTS:
                raise ValueError("url must be https:// (http:// only on loopback)")
        return self


OperatorConfig = str | dict[str, Any]


class MaskingRole(_Model):
    """What one role sees: ``raw`` entities unmasked, ``operators`` overriding the defaults."""

    raw: tuple[str, ...] = ()
    operators: dict[str, OperatorConfig] = Field(default_factory=dict)


class Masking(_Model):
    """PHI masking in results (``masking/``). Labels are per target (``targets[].phi``)."""

    key: Path | None = Field(default=None, description="HMAC key for pseudonyms, created 0600")
    unresolved: Literal["redact", "scan", "deny"] = Field(
        default="redact",
        description="a result column whose lineage is unknown in a statement touching PHI",
    )
    agents_see_raw: bool = Field(default=False, description="agents and services: owner's view")
    operators: dict[str, OperatorConfig] = Field(default_factory=dict)
    roles: dict[str, MaskingRole] = Field(default_factory=dict)
    mrn_patterns: tuple[str, ...] = ()
    catalog_refresh: float = Field(default=300.0, gt=0, description="seconds between reloads")

    @model_validator(mode="after")
    def _known(self) -> Masking:
        from wardgate.masking.entities import Entity
        from wardgate.masking.operators import operator_from_config

        known = {e.value for e in Entity} | {"TEXT"}
        tables = [("masking.operators", self.operators)] + [
            (f"masking.roles.{name}.operators", r.operators) for name, r in self.roles.items()
        ]
        for where, operators in tables:
            for entity, spec in operators.items():
                if entity not in known:
                    raise ValueError(f"{where}: unknown entity {entity!r}")
                operator_spec(spec, operator_from_config)
        for name, role in self.roles.items():
            # UNRESOLVED raw: what lineage cannot follow comes raw too (with every label, the
            # role sees the target unmasked: an administrator's view)
            unknown = [e for e in role.raw if e not in known | {"UNRESOLVED"}]
            if unknown:
                raise ValueError(f"masking.roles.{name}.raw: unknown entities {unknown}")
        return self


def operator_spec(spec: OperatorConfig, build: Any) -> Any:
    """An operator from its configuration: a name, or a mapping with ``operator`` and params."""
    if isinstance(spec, str):
        return build(spec)
    params = dict(spec)
    name = params.pop("operator", None)
    if not isinstance(name, str):
        raise ValueError(f"{spec!r}: name the operator ('operator: partial')")
    return build(name, params)


def _names(value: Any) -> Any:
    """``"*"`` or one name for a list of names."""
    return (value,) if isinstance(value, str) else value


Names = Annotated[tuple[str, ...], BeforeValidator(_names)]
PolicyKind = Literal["read", "write", "ddl", "dcl", "transaction", "admin", "copy"]


class PolicyRule(_Model):
    """Who (``roles``, ``targets``: names or ``*``) and which statements (the conditions; each
    one given must hold) get which ``action``. See docs/policy.md."""

    name: str = ""
    roles: Names = ("*",)
    targets: Names = ("*",)
    kinds: tuple[PolicyKind, ...] | None = None
    tables: tuple[str, ...] | None = Field(default=None, description="table or schema.table")
    phi: bool | None = None
    unfiltered: bool | None = Field(default=None, description="no key filter and no LIMIT")
    multi_statement: bool | None = None
    dangerous: bool | None = None
    agents: bool | None = Field(default=None, description="an identity acting for someone")
    # HTTP APIs (FHIR): the resource type, operations named in the path, a bulk read
    resources: tuple[str, ...] | None = Field(default=None, description="FHIR resource types")
    operations: tuple[str, ...] | None = Field(default=None, description="$export, $everything")
    bulk: bool | None = Field(default=None, description="a FHIR bulk read; see docs/policy.md")
    action: Literal["allow", "deny", "cap_rows", "require_approval"] | None = None
    reason: str = ""
    cap_rows: int | None = Field(default=None, ge=0)
    # require_approval: who approves, how many, single-use or a window (default: `approvals`)
    approvers: tuple[str, ...] | None = None
    min_approvals: int | None = Field(default=None, ge=1, le=10)
    window: float | None = Field(default=None, ge=0, description="seconds of JIT access")

    @model_validator(mode="after")
    def _action(self) -> PolicyRule:
        action = self.action or ("cap_rows" if self.cap_rows is not None else None)
        if action is None:
            raise ValueError("a rule needs an action: allow, deny or cap_rows: N")
        if action == "cap_rows" and self.cap_rows is None:
            raise ValueError("action cap_rows needs cap_rows: N")
        if action != "cap_rows" and self.cap_rows is not None:
            raise ValueError(f"cap_rows goes with action cap_rows, not {action}")
        if self.reason and action not in ("deny", "require_approval"):
            raise ValueError("a reason goes with action deny or require_approval")
        approval = (self.approvers, self.min_approvals, self.window)
        if action != "require_approval" and any(v is not None for v in approval):
            raise ValueError("approvers, min_approvals and window go with require_approval")
        return self

    @property
    def effective_action(self) -> Literal["allow", "deny", "cap_rows", "require_approval"]:
        """``action``, or cap_rows where only ``cap_rows: N`` was given."""
        return self.action or "cap_rows"


class PolicySettings(_Model):
    """Statement policy (``policy/``): ordered rules, first match wins, then ``default``."""

    rules: tuple[PolicyRule, ...] = ()
    default: Literal["allow", "deny"] = "allow"
    admin_roles: tuple[str, ...] = Field(
        default=(), description="may run what the gateway cannot judge, audited as such"
    )
    deny_dangerous: bool = Field(
        default=True, description="refuse what the gateway cannot judge (docs/policy.md)"
    )
    bulk_count: int = Field(default=100, ge=1, description="a FHIR _count above this is bulk")
    max_statement_bytes: int = Field(
        default=16 << 20, ge=1024, description="a longer SQL statement is refused (42501)"
    )
    deny_smuggled_for_agents: bool = Field(
        default=True, description="transaction control or DDL after another statement, agents"
    )


class Audit(_Model):
    """``path`` is the JSON-lines sink; ``store`` (when set) the hash-chained, signed store.
    With a store, ``path: null`` turns the JSON-lines copy off; one of the two is required."""

    path: Path | None = Path("audit.jsonl")
    store: StoreLocation | None = Field(default=None, description="a file, or postgresql://")
    key: Path | None = Field(default=None, description="Ed25519 signing key, created 0600")
    head_file: Path | None = Field(default=None, description="anchored heads, one JSON per line")
    webhook: str | None = Field(default=None, pattern=r"^https?://")
    checkpoint_entries: int = Field(default=1000, ge=1)
    checkpoint_seconds: float = Field(default=1.0, gt=0)
    retention_days: int = Field(default=2191, ge=1)
    alarm_file: Path | None = Field(default=None, description="tamper alarms; default: by the key")
    anchor_lag: float = Field(default=300.0, gt=0, description="health degraded past it (s)")
    pin: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$", description="key id")
    max_statement_bytes: int = Field(
        default=64 << 10, ge=1024, le=1 << 30,
        description="a statement's text kept in its event; longer: cut, with length and SHA-256",
    )  # fmt: skip

    @model_validator(mode="after")
    def _somewhere(self) -> Audit:
        if self.path is None and self.store is None:
            raise ValueError("audit needs a 'store', a 'path', or both: it cannot be turned off")
        return self

    @model_validator(mode="after")
    def _anchor_apart(self) -> Audit:
        store, heads = self.store, self.head_file
        if isinstance(store, Path) and heads is not None and heads.parent == store.parent:
            raise ValueError("head_file must be in another directory than the store")
        return self

    @model_validator(mode="after")
    def _key_of_a_database(self) -> Audit:
        if isinstance(self.store, str) and self.key is None:
            raise ValueError(
                "a PostgreSQL audit store needs 'key', the path of the signing key"
                " (there is no folder beside the store to keep it in)"
            )
        return self

    def key_path(self) -> Path | None:
        """The signing key: ``key``, or else ``audit-signing.key`` in the folder ``<F>-keys``
        beside the SQLite store's folder ``F`` (outside it: whoever can rewrite the store must
        not thereby hold the key). A key kept beside the store by older versions is still used."""
        if self.key is not None or not isinstance(self.store, Path):
            return self.key
        legacy = self.store.parent / "audit-signing.key"
        if legacy.exists():
            return legacy
        folder = self.store.parent if self.store.parent.name else self.store.resolve().parent
        return folder.with_name(folder.name + "-keys") / "audit-signing.key"

    def alarm_path(self) -> Path | None:
        """``alarm_file``, or ``audit-alarms.jsonl`` beside the signing key."""
        key = self.key_path()
        if self.alarm_file is not None or key is None:
            return self.alarm_file
        return key.parent / "audit-alarms.jsonl"


class Recording(_Model):
    """Session recording (``recording/``, docs/recording.md). Off unless turned on: a recording
    holds every result a client saw, so an existing deployment opts in knowingly (disk, key).
    Recordings are kept for ``audit.retention_days`` (``wardgate sessions purge``)."""

    enabled: bool = False
    directory: Path | None = Field(default=None, description="default: recordings/ by health")
    key: Path | None = Field(default=None, description="AES-256 key, created 0600 on first start")
    max_bytes: int = Field(default=1 << 30, ge=65536, description="then a truncation marker")


class SiemSink(_Model):
    """One SIEM destination; ``name`` keys its cursor in the spool (renaming one resends all)."""

    name: str = ""
    kind: Literal["file", "http", "syslog"]
    format: Literal["ocsf", "cef"] | None = Field(default=None, description="cef for syslog")
    path: Path | None = None
    url: str | None = None
    address: str | None = Field(default=None, description="host:port of a syslog receiver")
    ca: Path | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    body: Literal["array", "lines"] = Field(default="array", description="http only")
    timeout: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _fits_kind(self) -> SiemSink:
        wanted = {"file": "path", "http": "url", "syslog": "address"}[self.kind]
        if getattr(self, wanted) is None:
            raise ValueError(f"a {self.kind} sink needs '{wanted}'")
        for option in ("path", "url", "address"):
            if option != wanted and getattr(self, option) is not None:
                raise ValueError(f"a {self.kind} sink takes no '{option}'")
        if self.kind == "http" and self.format == "cef":
            raise ValueError("an http sink sends OCSF JSON; use syslog or a file for CEF")
        if self.kind == "http" and not (self.url or "").startswith(("https://", "http://")):
            raise ValueError("url must start with https:// or http://")
        if self.kind == "syslog":
            self.host_port()
        return self

    @property
    def key(self) -> str:
        return self.name or f"{self.kind}:{self.path or self.url or self.address}"

    @property
    def output(self) -> Literal["ocsf", "cef"]:
        return self.format or ("cef" if self.kind == "syslog" else "ocsf")

    def host_port(self) -> tuple[str, int]:
        host, _, port = (self.address or "").rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"address must be host:port, not {self.address!r}")
        return host.strip("[]"), int(port)


class Siem(_Model):
    sinks: tuple[SiemSink, ...] = ()
    spool: Path = Path("siem-spool")
    max_spool_bytes: int = Field(default=1 << 30, ge=1 << 20)

    @model_validator(mode="after")
    def _unique_keys(self) -> Siem:
        keys = [s.key for s in self.sinks]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"siem sink names must be unique; repeated: {', '.join(dupes)}")
        return self


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Approvals(_Model):
    """Just-in-time approval of held statements (``approvals/``); the rules that hold a
    statement are the policy's."""

    approver_roles: tuple[str, ...] = Field(default=("compliance",), min_length=1)
    min_approvals: int = Field(default=1, ge=1, le=10)
    window: Duration = Field(default=0.0, ge=0, description="0: single-use; else JIT seconds")
    ttl: Duration = Field(default=3600.0, gt=0, description="a request expires after this")
    wait: Duration = Field(default=300.0, gt=0, description="how long a held statement waits")
    webhook: str | None = Field(default=None, pattern=r"^https?://")


class ScimSettings(_Model):
    """SCIM 2.0 provisioning at ``/scim/v2`` on the API listener. The IdP sends the bearer
    ``token``; give it (e.g. ``${WARDGATE_SCIM_TOKEN}``) or only its SHA-256 in hex."""

    token: SecretStr | None = Field(default=None, min_length=32)
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _one_token(self) -> ScimSettings:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of 'token' or 'token_sha256'")
        return self


class IdentitySettings(_Model):
    """``state`` turns on gateway credentials and revocation; ``oidc`` accepts provider tokens."""

    state: Path | None = Field(default=None, description="SQLite file of humans and credentials")
    credential_ttl: Duration = 3600.0
    credential_max_ttl: Duration = Field(default=86400.0, description="humans and agents")
    service_max_ttl: Duration = 90 * 86400.0
    watch_interval: Duration = Field(default=1.0, le=5.0)
    revalidate_interval: Duration = Field(default=60.0, ge=1.0)
    # How long a provider that does not answer keeps people as they are before they are
    # suspended (``revalidate.degraded`` is audited at once).
    revalidate_grace: Duration = Field(default=900.0, ge=0)
    oidc: OidcSettings | None = None
    scim: ScimSettings | None = None

    @model_validator(mode="after")
    def _ttls(self) -> IdentitySettings:
        if self.credential_ttl > self.credential_max_ttl:
            raise ValueError("credential_ttl cannot exceed credential_max_ttl")
        return self


class Config(_Model):
    listeners: Listeners = Listeners()
    users: tuple[User, ...] = ()
    targets: tuple[Target, ...] = ()
    apis: tuple[ApiTarget, ...] = ()
    audit: Audit = Audit()
    siem: Siem = Siem()
    identity: IdentitySettings = IdentitySettings()
    masking: Masking = Masking()
    approvals: Approvals = Approvals()
    policy: PolicySettings = PolicySettings()
    recording: Recording = Recording()
    health_file: Path | None = Field(
        default=None, description="where `wardgate serve` keeps its health; see health_path()"
    )

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for kind, names in (
            ("user", [u.name for u in self.users]),
            ("target", [t.name for t in self.targets]),
            ("api", [a.name for a in self.apis]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind} names must be unique; repeated: {', '.join(dupes)}")
        return self

    def health_path(self) -> Path:
        """``health_file``, or ``health.json`` beside the JSON-lines audit (or else the store).
        Best kept off the store's disk: a report that cannot be written goes stale, which
        `wardgate health` also reports as a failure, but says less."""
        if self.health_file is not None:
            return self.health_file
        where = self.audit.path or self.audit.store
        if not isinstance(where, Path):  # a PostgreSQL store: beside the signing key
            where = self.audit.key
        assert where is not None  # the Audit model requires one of them (and a key with a URL)
        return where.parent / "health.json"

    def target(self, name: str) -> Target | None:
        return next((t for t in self.targets if t.name == name), None)


def config_path(explicit: str | os.PathLike[str] | None) -> Path:
    chosen = explicit or os.environ.get(CONFIG_ENV)
    if not chosen:
        raise ConfigError(f"no configuration: pass -c/--config FILE or set {CONFIG_ENV}")
    return Path(chosen)


def load(path: str | os.PathLike[str]) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from exc
    return loads(text, path)


def loads(text: str, path: Path) -> Config:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}") from exc
    lines: dict[tuple[str | int, ...], int] = {}
    data = _plain(node, (), lines, path) if node is not None else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the configuration must be a mapping of sections")
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, lines, path)) from None
    return _resolve_paths(config, path.parent)


def _plain(
    node: yaml.Node, at: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int], path: Path
) -> Any:
    lines[at] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                line = key_node.start_mark.line + 1
                raise ConfigError(f"{path}:{line}: {_where((*at, key))}: duplicate key")
            out[key] = _plain(value_node, (*at, key), lines, path)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*at, i), lines, path) for i, item in enumerate(node.value)]
    value = yaml.SafeLoader(" ").construct_object(node)
    if isinstance(value, str):
        return _expand(value, path, node.start_mark.line + 1, at)
    return value


def _expand(value: str, path: Path, line: int, at: tuple[str | int, ...]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(
                f"{path}:{line}: {_where(at)}: environment variable {name} is not set"
            )
        return os.environ[name]

    return _VAR.sub(sub, value)


def _describe(exc: ValidationError, lines: dict[tuple[str | int, ...], int], path: Path) -> str:
    out = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if p not in ("function-after",))
        line = 0
        for i in range(len(loc), -1, -1):
            if loc[:i] in lines:
                line = lines[loc[:i]]
                break
        out.append(f"{path}:{line}: {_where(loc)}: {error['msg']}")
    return "\n".join(out)


def _where(loc: tuple[str | int, ...]) -> str:
    """``targets[0].port`` for ("targets", 0, "port")."""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return where or "(top)"


def _resolve_paths(config: Config, base: Path) -> Config:
    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else (base / p)

    listeners = config.listeners
    for name in ("postgres", "api", "http"):
        listener = getattr(listeners, name)
        if listener is not None and listener.tls is not None:
            t = listener.tls
            tls = t.model_copy(update={"cert": fix(t.cert), "key": fix(t.key)})
            listener = listener.model_copy(update={"tls": tls})
            listeners = listeners.model_copy(update={name: listener})
    targets = tuple(t.model_copy(update={"ca": fix(t.ca)}) for t in config.targets)
    apis = tuple(_api_paths(a, fix) for a in config.apis)
    a = config.audit
    audit = a.model_copy(
        update={
            "path": fix(a.path),
            "store": a.store if isinstance(a.store, str) else fix(a.store),
            "key": fix(a.key),
            "head_file": fix(a.head_file),
        }
    )
    sinks = tuple(
        k.model_copy(update={"path": fix(k.path), "ca": fix(k.ca)}) for k in config.siem.sinks
    )
    siem = config.siem.model_copy(update={"spool": fix(config.siem.spool), "sinks": sinks})
    rec = config.recording
    return config.model_copy(
        update={
            "listeners": listeners,
            "targets": targets,
            "apis": apis,
            "audit": audit,
            "siem": siem,
            "health_file": fix(config.health_file),
            "masking": config.masking.model_copy(update={"key": fix(config.masking.key)}),
            "identity": config.identity.model_copy(update={"state": fix(config.identity.state)}),
            "recording": rec.model_copy(
                update={"directory": fix(rec.directory), "key": fix(rec.key)}
            ),
        }
    )


def _api_paths(api: ApiTarget, fix: Any) -> ApiTarget:
    update: dict[str, Any] = {"ca": fix(api.ca)}
    auth = api.auth
    if auth is not None and auth.client_cert is not None:
        cert = auth.client_cert
        cert = cert.model_copy(update={"cert": fix(cert.cert), "key": fix(cert.key)})
        update["auth"] = auth.model_copy(update={"client_cert": cert})
    return api.model_copy(update=update)
