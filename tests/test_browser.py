"""The web app in a real Chromium, driven by Playwright, against real servers.

Elements are found the way a screen reader finds them: by role and accessible name, as
the app's accessibility contract promises (docs/web.md). Debian's ``chromium`` is
launched by path, so no browser is downloaded; where it is missing these tests are
skipped, except in CI, which installs it and must run them.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import playwright.async_api as playwright_api
import pytest
import trustme
from conftest import TIMEOUT_S, RunningServer, StartServer

from chatroom.client import ClientConnection
from chatroom.history import HistoryStore
from chatroom.protocol import Message
from chatroom.server import ChatServer, ServerConfig
from chatroom.transports.http import CONTENT_SECURITY_POLICY

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI must install chromium (apt-get install chromium)")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)

# Chromium's own background traffic is refused by a closed network, many times a start;
# these flags keep it to the page under test.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MS = TIMEOUT_S * 1000

Page = Any  # playwright.async_api.Page, kept loose so mypy needs no stubs of it


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def _url(host: str, port: int) -> str:
    return f"http://{host}:{port}/"


async def new_page(browser: Any, **options: Any) -> Page:
    """A page in a new browser profile, waiting at most the test timeout."""
    context = await browser.new_context(**options)
    page = await context.new_page()
    page.set_default_timeout(MS)
    return page


async def submit_name(page: Page, name: str) -> Any:
    """Type ``name`` into the join form and press Join; returns the form."""
    form = page.get_by_role("form", name="Join")
    await form.get_by_role("textbox", name="Name").fill(name)
    await form.get_by_role("button", name="Join").click()
    return form


async def open_chat(browser: Any, host: str, port: int, name: str, **options: Any) -> Page:
    """A new browser profile on the app, joined as ``name``, connected."""
    page = await new_page(browser, **options)
    await page.goto(_url(host, port))
    await submit_name(page, name)
    await connected(page)
    return page


async def connected(page: Page) -> None:
    status = page.get_by_role("status", name="Connection")
    await playwright_api.expect(status).to_have_text(re.compile("connected", re.I), timeout=MS)


async def say(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="Message")
    await box.fill(text)
    await box.press("Enter")


def messages(page: Page) -> Any:
    return page.get_by_role("log", name="Messages").get_by_role("listitem")


async def shows(page: Page, text: str) -> None:
    """Wait until the current conversation shows an item with ``text``."""
    await playwright_api.expect(messages(page).filter(has_text=text)).to_have_count(1, timeout=MS)


async def switch_to(page: Page, room: str) -> None:
    nav = page.get_by_role("navigation", name="Conversations")
    await (
        nav.get_by_role("link", name=re.compile(f"^{re.escape(room)}\\b"))
        .or_(nav.get_by_role("button", name=re.compile(f"^{re.escape(room)}\\b")))
        .first.click()
    )


async def _plain_member(
    host: str, port: int, name: str
) -> tuple[asyncio.subprocess.Process, Callable[[str], Awaitable[None]]]:
    """``chatroom-tui --plain`` as a script would run it; returns it and a function that
    waits for a line of its output containing a text."""
    tui = Path(sys.executable).parent / "chatroom-tui"
    proc = await asyncio.create_subprocess_exec(
        str(tui),
        f"{host}:{port}",
        "--name",
        name,
        "--plain",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    seen: list[str] = []

    async def wait_line(text: str) -> None:
        assert proc.stdout is not None
        async with asyncio.timeout(TIMEOUT_S):
            while not any(text in line for line in seen):
                line = await proc.stdout.readline()
                assert line, f"the plain member ended before printing {text!r}"
                seen.append(line.decode())

    return proc, wait_line


async def test_two_browsers_and_a_plain_member_talk_in_two_rooms(
    browser: Any, chat_server: RunningServer
) -> None:
    """alice and bob in Chromium and carol in line mode talk in the lobby; alice and bob
    also in #dev, which carol does not hear; unread counts name the other room."""
    host, port = chat_server.host, chat_server.port
    alice = await open_chat(browser, host, port, "alice")
    bob = await open_chat(browser, host, port, "bob")
    carol, carol_saw = await _plain_member(host, port, "carol")
    assert carol.stdin is not None

    await say(alice, "hello from alice")
    await shows(bob, "hello from alice")
    await carol_saw("hello from alice")

    carol.stdin.write(b"hello from carol\n")
    await carol.stdin.drain()
    await shows(alice, "hello from carol")
    await shows(bob, "hello from carol")

    await say(alice, "/join dev")
    await say(bob, "/join dev")
    nav = alice.get_by_role("navigation", name="Conversations")
    await playwright_api.expect(nav.get_by_text("dev", exact=False).first).to_be_visible()
    await say(bob, "only in dev")
    await shows(alice, "only in dev")

    await switch_to(alice, "lobby")
    current = nav.locator("[aria-current]")
    await playwright_api.expect(current).to_have_accessible_name(re.compile("^lobby"))
    await say(bob, "dev again")
    await playwright_api.expect(
        nav.get_by_role("link", name=re.compile(r"^dev, 1 unread")).or_(
            nav.get_by_role("button", name=re.compile(r"^dev, 1 unread"))
        )
    ).to_have_count(1)

    carol.stdin.close()
    async with asyncio.timeout(TIMEOUT_S):
        assert await carol.wait() == 0
    assert carol.stdout is not None
    rest = (await carol.stdout.read()).decode()
    assert "only in dev" not in rest and "dev again" not in rest


async def test_markup_and_scripts_in_names_and_messages_stay_text(
    browser: Any, chat_server: RunningServer
) -> None:
    """HTML, a script tag and console markup in a name and a message are shown as the
    characters they are: no element is made of them and no script runs."""
    host, port = chat_server.host, chat_server.port
    alice = await open_chat(browser, host, port, "alice")
    hostile = await ClientConnection.connect(host, port)
    name = "<b>mal</b>"
    async with asyncio.timeout(TIMEOUT_S):
        await hostile.hello(name)
    text = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2> [bold]x[/]"
    await hostile.say(text)
    await shows(alice, "<script>window.pwned=1</script>")
    item = messages(alice).filter(has_text="window.pwned")
    await playwright_api.expect(item).to_contain_text(text)
    await playwright_api.expect(item).to_contain_text(name)
    log = alice.get_by_role("log", name="Messages")
    assert await log.locator("script, img, b").count() == 0
    assert await alice.evaluate("() => window.pwned") is None
    members = alice.get_by_role("complementary", name="Members")
    await playwright_api.expect(members).to_contain_text(name)
    assert await members.locator("b").count() == 0
    await hostile.close()


async def test_a_server_restart_resumes_with_nothing_missing_or_doubled(
    browser: Any, tmp_path: Path
) -> None:
    """The server restarts while the page is open: the page says so, reconnects by
    itself, shows what was said meanwhile once, and sends what was typed while it was
    down exactly once."""
    servers: list[tuple[ChatServer, HistoryStore]] = []

    async def start(port: int) -> ChatServer:
        store = HistoryStore.in_dir(tmp_path)
        server = ChatServer(
            ServerConfig(host="127.0.0.1", port=port, flood_rate=0, history_store=store)
        )
        await server.start()
        servers.append((server, store))
        return server

    try:
        first = await start(0)
        host, port = first.addresses[0]
        page = await open_chat(browser, host, port, "alice")
        bob = await ClientConnection.connect(host, port)
        async with asyncio.timeout(TIMEOUT_S):
            await bob.hello("bob")
        await bob.say("before the restart")
        await shows(page, "before the restart")

        await first.close()
        servers[0][1].close()
        status = page.get_by_role("status", name="Connection")
        await playwright_api.expect(status).not_to_have_text(
            re.compile("^connected", re.I), timeout=MS
        )
        await say(page, "typed while down")

        second = await start(port)
        bob = await ClientConnection.connect(host, port)
        async with asyncio.timeout(TIMEOUT_S):
            await bob.hello("bob")
            await bob.say("after the restart")
        await connected(page)
        await shows(page, "after the restart")
        await shows(page, "typed while down")
        for text in ("before the restart", "after the restart", "typed while down"):
            await playwright_api.expect(messages(page).filter(has_text=text)).to_have_count(1)
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                frame = await bob.recv()
                if isinstance(frame, Message) and frame.text == "typed while down":
                    break
        history = second.hub.history_page(second.hub.all_members()[0], "lobby", None, 100)[0]
        said = [e.text for e in history if isinstance(e, Message)]
        assert said.count("typed while down") == 1
        await bob.close()
    finally:
        for server, store in servers:
            await server.close()
            store.close()


async def test_a_page_from_another_origin_cannot_open_the_chat(
    browser: Any, chat_server: RunningServer
) -> None:
    """A page served by another origin that opens the chat's WebSocket is refused; the
    app's own page is let in."""

    async def other_site(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"<!doctype html><title>elsewhere</title>"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
        writer.close()

    elsewhere = await asyncio.start_server(other_site, "127.0.0.1", 0)
    try:
        other_port = elsewhere.sockets[0].getsockname()[1]
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"http://127.0.0.1:{other_port}/")
        probe = """(url) => new Promise((done) => {
            const ws = new WebSocket(url);
            ws.onopen = () => { ws.close(); done("open"); };
            ws.onerror = () => done("refused");
        })"""
        ws_url = f"ws://{chat_server.host}:{chat_server.port}/ws"
        assert await page.evaluate(probe, ws_url) == "refused"
        await page.goto(_url(chat_server.host, chat_server.port))
        assert await page.evaluate(probe, ws_url) == "open"
    finally:
        elsewhere.close()
        await elsewhere.wait_closed()


async def test_the_page_has_a_strict_policy_and_breaks_none_of_it(
    browser: Any, chat_server: RunningServer
) -> None:
    """The page comes with the Content-Security-Policy and nosniff, and using it
    (joining, talking) reports no policy violation and no script error."""
    page = await new_page(browser)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    response = await page.goto(_url(chat_server.host, chat_server.port))
    assert response is not None
    headers = await response.all_headers()
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    await submit_name(page, "alice")
    await connected(page)
    await say(page, "policy check")
    await shows(page, "policy check")
    assert problems == []


async def test_a_taken_name_is_asked_again_with_an_alert(
    browser: Any, start_server: StartServer
) -> None:
    """Joining under a taken name shows the server's reason as an alert and keeps the
    form, so another name can be tried."""
    running = await start_server(flood_rate=0)
    taken = await running.client("alice")
    page = await new_page(browser)
    await page.goto(_url(running.host, running.port))
    form = await submit_name(page, "alice")
    await playwright_api.expect(page.get_by_role("alert")).to_contain_text("taken")
    await form.get_by_role("textbox", name="Name").fill("alice2")
    await form.get_by_role("button", name="Join").click()
    await connected(page)
    await taken.close()


async def test_with_tls_the_page_is_https_and_the_chat_wss(
    browser: Any, start_server: StartServer
) -> None:
    """A server with a certificate serves the app over https on the same port, and the
    app talks to it over wss: it joins and hears an NDJSON-over-TLS member."""
    ca = trustme.CA()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    running = await start_server(flood_rate=0, ssl_context=server_ssl)
    page = await new_page(browser, ignore_https_errors=True)
    response = await page.goto(f"https://{running.host}:{running.port}/")
    assert response is not None and response.ok
    await submit_name(page, "alice")
    await connected(page)
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    bob = await ClientConnection.connect(running.host, running.port, ssl_context=client_ssl)
    async with asyncio.timeout(TIMEOUT_S):
        await bob.hello("bob")
    await bob.say("over tls")
    await shows(page, "over tls")
    assert await page.evaluate("() => window.isSecureContext") is True
    await bob.close()


async def test_the_server_password_is_asked_for_when_one_is_set(
    browser: Any, start_server: StartServer
) -> None:
    """Joining a server with a password without one shows the refusal as an alert and a
    Password field; with the right password the page connects."""
    running = await start_server(password="s3cret", auth_failure_delay_s=0.05)
    page = await new_page(browser)
    await page.goto(_url(running.host, running.port))
    form = await submit_name(page, "alice")
    await playwright_api.expect(page.get_by_role("alert")).to_be_visible()
    password = form.get_by_label("Password", exact=True)
    await playwright_api.expect(password).to_be_visible()
    await password.fill("s3cret")
    await form.get_by_role("button", name="Join").click()
    await connected(page)
    assert running.server.hub.members() == ["alice"]


async def test_older_history_loads_above_without_moving_what_is_read(
    browser: Any, start_server: StartServer, tmp_path: Path
) -> None:
    """With more history than the welcome carries, scrolling to the top loads older
    messages above, once each, and the message that was at the top stays in view."""
    store = HistoryStore.in_dir(tmp_path)
    running = await start_server(flood_rate=0, history_events=20, history_store=store)
    try:
        bob = await ClientConnection.connect(running.host, running.port)
        async with asyncio.timeout(TIMEOUT_S):
            await bob.hello("bob")
        for n in range(90):
            await bob.say(f"line {n:03d}")
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                frame = await bob.recv()
                if isinstance(frame, Message) and frame.text == "line 089":
                    break
        # Short enough that the welcome's twenty lines overflow the log.
        viewport = {"width": 900, "height": 420}
        page = await open_chat(browser, running.host, running.port, "alice", viewport=viewport)
        await shows(page, "line 089")
        await playwright_api.expect(messages(page).filter(has_text="line 060")).to_have_count(0)
        top = messages(page).filter(has_text=re.compile(r"line \d{3}")).first
        anchor_text = (await top.inner_text()).rsplit("line ", 1)[-1][:3]
        log = page.get_by_role("log", name="Messages")
        await log.evaluate("(el) => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }")
        # One page (up to 100 events) holds everything older: each line once, in order.
        for n in (0, 30, 60, 89):
            await playwright_api.expect(
                messages(page).filter(has_text=f"line {n:03d}")
            ).to_have_count(1)
        anchor = messages(page).filter(has_text=f"line {anchor_text}")
        await playwright_api.expect(anchor).to_be_in_viewport()
        texts = await messages(page).filter(has_text=re.compile(r"line \d{3}")).all_inner_texts()
        numbers = [int(text.rsplit("line ", 1)[-1][:3]) for text in texts]
        assert numbers == list(range(90))
        await bob.close()
    finally:
        await running.server.close()
        store.close()


async def test_keys_new_line_switching_and_marking_read(
    browser: Any, chat_server: RunningServer
) -> None:
    """Shift+Enter makes a new line in one message; Alt+Down and Alt+Up switch
    conversations; Esc marks the current one read."""
    host, port = chat_server.host, chat_server.port
    page = await open_chat(browser, host, port, "alice")
    box = page.get_by_role("textbox", name="Message")
    await box.fill("first line")
    await box.press("Shift+Enter")
    await box.type("second line")
    await box.press("Enter")
    await shows(page, "second line")
    item = messages(page).filter(has_text="first line")
    assert "first line\nsecond line" in await item.inner_text()
    await say(page, "/join dev")
    nav = page.get_by_role("navigation", name="Conversations")
    current = nav.locator("[aria-current]")
    await playwright_api.expect(current).to_have_accessible_name(re.compile("^dev"))
    await box.press("Alt+ArrowUp")
    await playwright_api.expect(current).to_have_accessible_name(re.compile("^lobby"))
    await box.press("Alt+ArrowDown")
    await playwright_api.expect(current).to_have_accessible_name(re.compile("^dev"))
    bob = await chat_server.client("bob")
    await bob.say("for the lobby")
    lobby = nav.get_by_role("button", name=re.compile(r"^lobby, 1 unread")).or_(
        nav.get_by_role("link", name=re.compile(r"^lobby, 1 unread"))
    )
    await playwright_api.expect(lobby).to_have_count(1)
    await box.press("Alt+ArrowUp")
    await shows(page, "for the lobby")
    await box.press("Escape")
    await playwright_api.expect(current).to_have_accessible_name("lobby")
    await bob.close()


async def test_a_registered_name_logs_in_and_roles_show_beside_names(
    browser: Any, start_server: StartServer, tmp_path: Path
) -> None:
    """A registered name asks for the account's password in the join form and logs in;
    a room's op is marked @ while the name stays the item's accessible text; a kick shows
    the kicked member who did it and why."""
    from chatroom.accounts import AccountStore, Argon2Cost

    store = AccountStore(tmp_path / "accounts.sqlite3", cost=Argon2Cost(64, 1, 1))
    running = await start_server(flood_rate=0, accounts=store, auth_failure_delay_s=0)
    store.register("alice", "correct horse")
    store.remember("alice")
    page = await new_page(browser)
    await page.goto(_url(running.host, running.port))
    form = await submit_name(page, "alice")
    await playwright_api.expect(page.get_by_role("alert")).to_contain_text("registered")
    await form.get_by_label("Account password").fill("correct horse")
    await form.get_by_role("button", name="Join").click()
    await connected(page)
    await say(page, "/join dev")
    members = page.get_by_role("complementary", name="Members")
    op = members.get_by_role("listitem").filter(has_text="alice")
    await playwright_api.expect(op).to_have_attribute("aria-description", "op")
    await playwright_api.expect(op.locator("[aria-hidden=true]")).to_have_text("@")
    # What a screen reader reads as the item is the name alone.
    snapshot = await members.get_by_role("list").aria_snapshot()
    assert "listitem: alice" in snapshot and "@" not in snapshot
    bob = await open_chat(browser, running.host, running.port, "bob")
    await say(bob, "/join dev")
    await playwright_api.expect(
        members.get_by_role("listitem").filter(has_text="bob")
    ).to_be_visible()
    await say(page, "/kick bob <b>enough</b>")
    await shows(bob, "bob was kicked by alice: <b>enough</b>")


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_servers_parameter_moves_past_dead_and_foreign_nodes(
    browser: Any, start_server: StartServer
) -> None:
    """?servers=FOREIGN,DEAD,NODE2 on node 1's page: a server node 1 does not count in
    its cluster (no --allow-origin) is out of the page's reach and passed over, so is
    one that refuses; node 2 (which lets node 1's pages in, as node 1 lets node 2's)
    is joined, the status names it, and a message reaches node 2's room."""
    first = await start_server(flood_rate=0)
    second = await start_server(flood_rate=0)
    foreign = await start_server(flood_rate=0)
    dead = _free_port()
    first.server.config.allow_origins.extend(
        [f"http://127.0.0.1:{second.port}", f"http://127.0.0.1:{dead}"]
    )
    second.server.config.allow_origins.append(f"http://127.0.0.1:{first.port}")
    bob = await second.client("bob")
    page = await new_page(browser)
    blocked: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text and not blocked.done():
            blocked.set_result(message.text)

    page.on("console", on_console)
    servers = f"127.0.0.1:{foreign.port},127.0.0.1:{dead},127.0.0.1:{second.port}"
    await page.goto(f"{_url(first.host, first.port)}?servers={servers}")
    await submit_name(page, "alice")
    status = page.get_by_role("status", name="Connection")
    await playwright_api.expect(status).to_have_text(
        f"Connected to 127.0.0.1:{second.port}", timeout=MS
    )
    async with asyncio.timeout(TIMEOUT_S):
        assert f"127.0.0.1:{foreign.port}" in await blocked
    assert foreign.server.connection_count == 0
    await say(page, "hello node 2")
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            frame = await bob.recv()
            if isinstance(frame, Message) and frame.sender == "alice":
                break
    assert frame.text == "hello node 2"
    await bob.close()
