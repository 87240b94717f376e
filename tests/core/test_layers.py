"""The layers, read from the imports: what core may depend on, and what the codecs may not."""

from __future__ import annotations

import ast
from pathlib import Path

import wardgate

SRC = Path(wardgate.__file__).parent
# What core may import from the package: itself, and the value types of a statement's analysis
# (which in turn import only the sql package and pglast).
CORE_MAY_IMPORT = ("wardgate.core", "wardgate.sql")
FEATURES = (
    "wardgate.policy", "wardgate.masking", "wardgate.approvals", "wardgate.recording",
    "wardgate.audit", "wardgate.identity", "wardgate.api", "wardgate.mcp", "wardgate.demo",
    "wardgate.protocols", "wardgate.app", "wardgate.cli", "wardgate.config",
)  # fmt: skip


def imports(path: Path) -> set[str]:
    """Every module a file imports, at run time or for type checking alike."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def package_imports(folder: str) -> dict[str, set[str]]:
    return {
        str(p.relative_to(SRC)): {m for m in imports(p) if m.split(".")[0] == "wardgate"}
        for p in sorted((SRC / folder).rglob("*.py"))
    }


def test_core_imports_no_feature_package() -> None:
    found = package_imports("core")
    assert found, "no core modules found"
    for module, names in found.items():
        stray = {n for n in names if not n.startswith(CORE_MAY_IMPORT)}
        assert not stray, f"core/{module} imports {sorted(stray)}"


def test_the_sql_analysis_imports_no_feature_package() -> None:
    """core reaches the sql package through the analysis types; that package must not reach
    back into a feature (or it would be core's dependency too)."""
    for module, names in package_imports("sql").items():
        stray = {n for n in names if n.startswith(FEATURES)}
        assert not stray, f"sql/{module} imports {sorted(stray)}"


def test_the_pipeline_imports_no_protocol_and_the_codecs_no_asyncio() -> None:
    pipeline = imports(SRC / "core" / "pipeline.py")
    assert not {n for n in pipeline if n.startswith("wardgate.protocols")}
    sans_io = ["wire.py", "framing.py", "relay.py", "copy.py", "upstream_auth.py"]
    for name in sans_io:
        found = imports(SRC / "protocols" / "postgres" / name)
        assert "asyncio" not in found, f"protocols/postgres/{name} imports asyncio"


def test_the_walk_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The check can fail: an import of a feature, even under TYPE_CHECKING, is seen."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from wardgate.masking.views import Labels\n"
    )
    assert "wardgate.masking.views" in imports(sample)
