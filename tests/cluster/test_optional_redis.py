"""redis is an optional dependency: only cluster mode may need it at import time."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import chatroom

PACKAGE = Path(chatroom.__file__).parent
# Cluster mode's own package is the one place that may import redis eagerly.
CLUSTER_PACKAGE = PACKAGE / "cluster"


def _import_time_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run when the module is imported: not function bodies, not the
    ``if TYPE_CHECKING:`` blocks only type checkers read."""
    for node in body:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _import_time_statements(node.orelse)
            continue
        for field in ("body", "orelse", "finalbody"):
            yield from _import_time_statements(getattr(node, field, []))
        for handler in getattr(node, "handlers", []):
            yield from _import_time_statements(handler.body)


def _imports_redis(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "redis" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] == "redis"
    return False


def redis_imports(root: Path) -> list[str]:
    """``path:line`` of every import-time ``import redis`` outside cluster/."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.is_relative_to(CLUSTER_PACKAGE):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _import_time_statements(tree.body):
            if _imports_redis(node):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_only_the_cluster_package_imports_redis_at_import_time() -> None:
    """A server without the cluster extra must start: no module outside
    chatroom/cluster/ imports redis when it is imported."""
    assert redis_imports(PACKAGE) == []


def test_the_scan_finds_import_time_imports(tmp_path: Path) -> None:
    """The scan sees imports at top level, in try and if blocks and class bodies, and
    lets through those inside functions and under TYPE_CHECKING."""
    (tmp_path / "eager.py").write_text(
        "import os\n"
        "try:\n    import redis.asyncio\nexcept ImportError:\n    pass\n"
        "class C:\n    from redis import Redis\n"
    )
    (tmp_path / "lazy.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import redis\n"
        "def connect():\n    import redis.asyncio\n"
        "from . import redisish\n"
    )
    assert redis_imports(tmp_path) == ["eager.py:3", "eager.py:7"]
