"""Installing and running the test OpenID provider (``provider.mjs``) as a child process."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from joserfc.jwk import ECKey, KeyParameters, KeySet, OKPKey, RSAKey

from tests.npm import NodeUnavailable, npm_install

HERE = Path(__file__).parent
INSTALL_TIMEOUT = 300.0
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


class IdpUnavailable(Exception):
    """Node or npm is missing: the tests that need the provider are skipped."""


def install() -> Path:
    """``npm ci`` the pinned packages into a cache directory keyed by the lock file; its path."""
    try:
        return npm_install(HERE, "wardgate-test-idp")
    except NodeUnavailable as exc:
        raise IdpUnavailable(
            f"the test OpenID provider needs node and npm on PATH ({exc})"
        ) from exc


def make_keys(generation: int) -> KeySet:
    """One RS256, one ES256 and one EdDSA key; key ids carry the generation."""

    def params(kind: str, alg: str) -> KeyParameters:
        return {"use": "sig", "kid": f"{kind}-{generation}", "alg": alg}

    return KeySet(
        [
            RSAKey.generate_key(2048, params("rsa", "RS256")),
            ECKey.generate_key("P-256", params("ec", "ES256")),
            OKPKey.generate_key("Ed25519", params("ed", "EdDSA")),
        ]
    )


@dataclass
class TestIdp:
    """A running provider. ``keys`` holds the private keys it signs with (tests sign with them
    too, to craft tokens that only a wrong claim spoils)."""

    __test__ = False  # not a test class, despite the name

    workdir: Path
    install_dir: Path
    issuer: str = ""
    port: int = 0
    generation: int = 0
    keys: KeySet = field(default_factory=lambda: make_keys(0))
    _process: subprocess.Popen[bytes] | None = None

    @property
    def stdout_path(self) -> Path:
        return self.workdir / "provider.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / "provider.stderr"

    def key(self, alg: str) -> Any:
        return next(k for k in self.keys if k.alg == alg)

    def logs(self) -> str:
        out = [p.read_text(errors="replace") for p in (self.stdout_path, self.stderr_path)]
        return "\n".join(o for o in out if o)

    def start(self) -> None:
        script = self.workdir / "provider.mjs"
        shutil.copy2(HERE / "provider.mjs", script)
        modules = self.workdir / "node_modules"
        if not modules.exists():
            modules.symlink_to(self.install_dir / "node_modules", target_is_directory=True)
        jwks = self.workdir / f"jwks-{self.generation}.json"
        jwks.write_text(json.dumps(self.keys.as_dict(private=True)))
        jwks.chmod(0o600)
        node = shutil.which("node") or "node"
        command = [node, str(script), "--jwks", str(jwks), "--port", str(self.port)]
        with self.stdout_path.open("wb") as out, self.stderr_path.open("ab") as err:
            self._process = subprocess.Popen(command, cwd=self.workdir, stdout=out, stderr=err)
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the test OpenID provider exited early:\n{self.logs()}")
            line = self.stdout_path.read_text().partition("\n")
            if line[1]:
                ready = json.loads(line[0])
                self.issuer, self.port = ready["issuer"], ready["port"]
                discovery = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=5)
                discovery.raise_for_status()
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"the test OpenID provider did not start in {START_TIMEOUT} s:\n{self.logs()}"
        )

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)

    def set_enabled(self, account: str, enabled: bool) -> None:
        """Disable an account as an IdP administrator would (or enable it again)."""
        action = "enable" if enabled else "disable"
        response = httpx.post(f"{self.issuer}/test/accounts/{account}/{action}", timeout=5)
        assert response.status_code == 204, response.text

    def rotate(self) -> None:
        """Restart on the same port with new keys. Sessions, grants and tokens are forgotten."""
        self.stop()
        self.generation += 1
        self.keys = make_keys(self.generation)
        self.start()
