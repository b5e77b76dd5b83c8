"""The web app's logic (store, commands, protocol, text) under Node's own test runner.

Part of the README's test command, so nobody has to remember a second one. Where Node
is missing the test is skipped, except in CI, which must run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS_TESTS = Path(__file__).parent / "js"


def test_the_web_apps_logic_passes_its_node_tests() -> None:
    """Every test in tests/js passes under `node --test`, and there are some."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            raise AssertionError("CI must have Node.js to run tests/js")
        pytest.skip("Node.js is not installed")
    files = sorted(str(path) for path in JS_TESTS.glob("*.test.mjs"))
    assert files, "no JavaScript tests found"
    result = subprocess.run(
        [node, "--test", *files], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
    passed = next(line for line in result.stdout.splitlines() if line.startswith("# pass "))
    assert int(passed.split()[-1]) >= len(files)
