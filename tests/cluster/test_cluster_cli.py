"""--cluster's command line: clear refusals, never a traceback."""

from __future__ import annotations

import asyncio
import os

import pytest
from conftest import TIMEOUT_S

from .node import SERVER
from .redis_server import free_port


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a node that is expected to refuse to start: its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        SERVER,
        "--bind",
        "127.0.0.1:0",
        "--no-history",
        "--quiet",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    async with asyncio.timeout(TIMEOUT_S * 2):
        output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_an_unreachable_redis_is_a_clear_error() -> None:
    """Nothing listens at the Redis address: the node says so and exits, no traceback."""
    code, output = await _run("--cluster", f"redis://127.0.0.1:{free_port()}/0")
    assert code != 0
    assert "cannot join the cluster" in output and "Traceback" not in output


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--cluster", "http://example.org/"), "takes a Redis URL"),
        (("--cluster", "redis://127.0.0.1:1/0", "--node-id", "a/b"), "--node-id"),
        (("--cluster", "redis://127.0.0.1:1/0", "--cluster-lease", "0.1"), "--cluster-lease"),
    ],
)
async def test_bad_cluster_options_are_refused_before_anything_starts(
    args: tuple[str, ...], complaint: str
) -> None:
    code, output = await _run(*args)
    assert code != 0
    assert complaint in output and "Traceback" not in output


async def test_a_password_in_the_redis_url_never_reaches_the_output() -> None:
    """The URL's password is a secret: refused or not, the node does not print it."""
    code, output = await _run("--cluster", f"redis://:hunter2secret@127.0.0.1:{free_port()}/0")
    assert code != 0
    assert "hunter2secret" not in output


async def test_the_redis_url_may_come_from_the_environment_out_of_ps() -> None:
    """CHATROOM_CLUSTER sets --cluster without a command line anyone can read."""
    port = free_port()
    secret_url = f"redis://:hunter2secret@127.0.0.1:{port}/0"
    code, text = await _run(env={**os.environ, "CHATROOM_CLUSTER": secret_url})
    assert code != 0
    assert f"127.0.0.1:{port}" in text and "cannot join the cluster" in text
    assert "hunter2secret" not in text
