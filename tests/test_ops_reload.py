"""Reloading a running server: limits and password while members stay, a certificate
swap seen by new TLS clients, bad files changing nothing, and SIGHUP from outside."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import ssl
import sys
from pathlib import Path

import pytest
import trustme
from conftest import TIMEOUT_S, StartServer, expect

from chatroom.cli import _server_parser
from chatroom.client import ClientConnection, ConnectError, ServerError
from chatroom.config import add_ops_options, resolve
from chatroom.protocol import Error, Join, Message
from chatroom.reload import Reloader

SERVER = str(Path(sys.executable).parent / "chatroom-server")


def _reloader(path: Path, **kwargs: object) -> Reloader:
    parser = _server_parser()
    add_ops_options(parser)
    argv = ["--config", str(path)]
    return Reloader(parser, argv, resolve(parser, argv, environ={}), **kwargs)  # type: ignore[arg-type]


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


async def test_reload_changes_rate_limit_and_password_while_members_stay(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A member joined before the reload stays; afterwards it is held to the new flood
    limit, the old password no longer joins and the new one does."""
    config = tmp_path / "chatroom.toml"
    _write(config, 'flood-rate = 0\npassword = "old-pw"\n')
    running = await start_server(flood_rate=0, password="old-pw", auth_failure_delay_s=0.01)
    reloader = _reloader(config)
    reloader.server = running.server
    alice = await ClientConnection.connect(running.host, running.port)
    await alice.hello("alice", password="old-pw")

    _write(config, 'flood-rate = 0.5\nflood-burst = 2\npassword = "new-pw"\n')
    assert reloader.reload()

    for n in range(4):
        await alice.say(f"line {n}")
    limited = await expect(alice, Error, where=lambda e: e.code == "rate_limited")
    assert "0.5" in limited.message
    late = await ClientConnection.connect(running.host, running.port)
    with pytest.raises(ServerError) as caught:
        await late.hello("mallory", password="old-pw")
    assert caught.value.code == "auth_failed"
    bob = await ClientConnection.connect(running.host, running.port)
    await bob.hello("bob", password="new-pw")
    assert (await expect(alice, Join, where=lambda j: j.name == "bob")).name == "bob"
    assert running.server.hub.members() == ["alice", "bob"]
    for conn in (alice, bob, late):
        await conn.close()


async def test_bad_file_keeps_the_old_settings_and_says_why(
    start_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reload of a broken file changes nothing; the log names the file, line and key.
    A key that takes a restart is named, and keeps its old value."""
    config = tmp_path / "chatroom.toml"
    _write(config, "flood-burst = 10\n")
    running = await start_server(flood_burst=10)
    reloader = _reloader(config)
    reloader.server = running.server
    _write(config, "flood-burst = 3\nmax-per-ip = 0\n")
    with caplog.at_level(logging.INFO, logger="chatroom"):
        assert not reloader.reload()
        assert running.server.config.flood_burst == 10
        refusal = [r for r in caplog.records if getattr(r, "event", None) == "reload"]
        assert refusal and refusal[-1].levelno == logging.ERROR
        assert f"{config}:2: max-per-ip" in refusal[-1].getMessage()

        _write(config, 'flood-burst = 3\nbind = "127.0.0.1:1"\n')
        assert reloader.reload()
    assert running.server.config.flood_burst == 3
    message = caplog.records[-1].getMessage()
    assert "flood-burst = 3" in message and "restart" in message and "bind" in message
    assert reloader.current.args.bind != "127.0.0.1:1"


def _cert_files(ca: trustme.CA, where: Path, name: str) -> tuple[Path, Path]:
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = where / f"{name}-cert.pem", where / f"{name}-key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


def _trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_certificate_swap_is_seen_by_new_tls_clients(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A renewed certificate (here from another CA) is served to new handshakes after
    a reload, while a member connected over the old one keeps chatting."""
    old_ca, new_ca = trustme.CA(), trustme.CA()
    old_cert, old_key = _cert_files(old_ca, tmp_path, "old")
    new_cert, new_key = _cert_files(new_ca, tmp_path, "new")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(old_cert, old_key)
    config = tmp_path / "chatroom.toml"
    _write(config, f'tls-cert = "{old_cert}"\ntls-key = "{old_key}"\n')
    running = await start_server(flood_rate=0, ssl_context=context)
    reloader = _reloader(config, ssl_context=context)
    reloader.server = running.server
    alice = await ClientConnection.connect(
        running.host, running.port, ssl_context=_trusting(old_ca)
    )
    await alice.hello("alice")
    with pytest.raises(ConnectError):
        await ClientConnection.connect(running.host, running.port, ssl_context=_trusting(new_ca))

    _write(config, f'tls-cert = "{new_cert}"\ntls-key = "{new_key}"\n')
    assert reloader.reload()

    bob = await ClientConnection.connect(running.host, running.port, ssl_context=_trusting(new_ca))
    await bob.hello("bob")
    await alice.say("still here")
    assert (await expect(bob, Message)).text == "still here"
    await alice.close()
    await bob.close()


async def test_unloadable_certificate_keeps_the_old_one(
    start_server: StartServer, tmp_path: Path
) -> None:
    """A reload naming a key that does not match the certificate is refused, and the
    old chain still serves new clients."""
    ca, other = trustme.CA(), trustme.CA()
    cert, key = _cert_files(ca, tmp_path, "good")
    _, wrong_key = _cert_files(other, tmp_path, "other")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    config = tmp_path / "chatroom.toml"
    _write(config, f'tls-cert = "{cert}"\ntls-key = "{key}"\n')
    running = await start_server(ssl_context=context)
    reloader = _reloader(config, ssl_context=context)
    reloader.server = running.server
    _write(config, f'tls-cert = "{cert}"\ntls-key = "{wrong_key}"\n')
    assert not reloader.reload()
    conn = await ClientConnection.connect(running.host, running.port, ssl_context=_trusting(ca))
    await conn.hello("alice")
    await conn.close()


async def test_sighup_and_admin_reload_on_a_real_process(tmp_path: Path) -> None:
    """chatroom-server --config FILE; `admin reload` finds it by its pid file, it
    re-reads the file (the new password works, the member stays), and the command
    prints what changed."""
    config = tmp_path / "chatroom.toml"
    data = tmp_path / "data"
    _write(
        config,
        f'bind = "127.0.0.1:0"\nquiet = true\ndata-dir = "{data}"\n'
        f'transcript = "{tmp_path / "t.log"}"\npassword = "one"\nflood-rate = 0\n',
    )
    process = await asyncio.create_subprocess_exec(
        SERVER,
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        port = None
        async with asyncio.timeout(TIMEOUT_S * 2):
            while port is None:
                line = (await process.stdout.readline()).decode()
                assert line, "the server exited before listening"
                if found := re.search(r"chatroom-tui 127\.0\.0\.1:(\d+)", line):
                    port = int(found.group(1))
        alice = await ClientConnection.connect("127.0.0.1", port)
        await alice.hello("alice", password="one")
        _write(config, config.read_text().replace('"one"', '"two"'))
        admin = await asyncio.create_subprocess_exec(
            SERVER, "admin", "reload", "--config", str(config), stdout=asyncio.subprocess.PIPE
        )
        async with asyncio.timeout(TIMEOUT_S * 2):
            out, _ = await admin.communicate()
        assert admin.returncode == 0, out
        assert out.decode().startswith(f"reloaded {config}: password changed")
        bob = await ClientConnection.connect("127.0.0.1", port)
        await bob.hello("bob", password="two")
        assert (await expect(alice, Join, where=lambda j: j.name == "bob")).name == "bob"
        # SIGHUP itself, with a file that breaks: refused, and the log says where.
        _write(config, config.read_text() + "nonsense = 1\n")
        process.send_signal(signal.SIGHUP)
        async with asyncio.timeout(TIMEOUT_S):
            while b"reload refused" not in (line := await process.stderr.readline()):
                assert line, "the server exited"
        assert f"{config}:7: unknown key 'nonsense'".encode() in line
        assert b"two" not in line
        await alice.close()
        await bob.close()
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TIMEOUT_S * 2):
            assert await process.wait() == 0
        assert not (data / "chatroom-server.pid").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
