"""The ``--plain`` line mode: each stdin line is said in the room, each event is a stdout line.

Made for scripts and bots (``printf 'a\\nb\\n' | chatroom-tui host:5000 --name bot --plain``):
one message is in flight at a time, a ``rate_limited`` answer is retried after a short
pause, and at the end of input it waits until the server echoed every line back (its
acknowledgement) before saying ``bye``. It does not reconnect: given several servers
of a cluster it joins the first that answers, in order, and stops when that one goes.
Every untrusted string is printed through
:func:`~chatroom.text.inert`, so nothing a stranger sends can drive the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import ssl
import sys
import threading
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import BinaryIO, TextIO

from chatroom import protocol
from chatroom.address import format_address
from chatroom.client import ClientConnection, ConnectError, ConnectionClosed, ServerError
from chatroom.framing import ErrorCode
from chatroom.text import inert
from chatroom.transcript import mod_line

__all__ = [
    "ACK_TIMEOUT_S",
    "JOIN_TIMEOUT_S",
    "RATE_LIMIT_RETRY_S",
    "format_event",
    "main_plain",
    "run_plain",
    "stdin_lines",
]

# How long one line may go unacknowledged (retries after rate_limited start it afresh)
# before the client gives up on the server: a few seconds, so a script never hangs.
ACK_TIMEOUT_S = 5.0
JOIN_TIMEOUT_S = 15.0
# The server's bucket refills 5 tokens a second (protocol-v1 default): one is back in 0.2 s.
RATE_LIMIT_RETRY_S = 0.3
# Lines read ahead of the network; the reader thread blocks beyond this.
STDIN_QUEUE_LINES = 256
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
_PROG = "chatroom-tui"


def _clock(ts: str) -> str:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return inert(ts[11:19])


def format_event(event: protocol.Event) -> str:
    """One event as one inert line: ``HH:MM:SS <alice> hi``, ``--> bob joined``..."""
    clock = _clock(event.ts)
    match event:
        case protocol.Message(sender=sender, text=text, action=True):
            return f"{clock} * {inert(sender)} {inert(text)}"
        case protocol.Message(sender=sender, text=text):
            return f"{clock} <{inert(sender)}> {inert(text)}"
        case protocol.Dm(sender=sender, to=to, text=text, action=action):
            said = f"* {inert(sender)} {inert(text)}" if action else inert(text)
            return f"{clock} *{inert(sender)} -> {inert(to)}* {said}"
        case protocol.Join(name=name):
            return f"{clock} --> {inert(name)} joined"
        case protocol.Leave(name=name, reason=reason, by=str(by), text=text):
            why = f": {inert(text)}" if text else ""
            return f"{clock} <-- {inert(name)} was {inert(reason)} by {inert(by)}{why}"
        case protocol.Leave(name=name, reason=reason):
            return f"{clock} <-- {inert(name)} left ({inert(reason)})"
        case protocol.Mod():
            return f"{clock} --- {mod_line(event)}"
        case protocol.Nick(old=old, new=new):
            return f"{clock} --- {inert(old)} is now known as {inert(new)}"
        case protocol.Topic(sender=sender, text=text):
            return f"{clock} --- {inert(sender)} set the topic: {inert(text)}"
    return f"{clock} --- {inert(type(event).__name__.lower())} event"


def _explain_refusal(exc: ServerError) -> str:
    if exc.code == ErrorCode.NAME_REGISTERED:
        return f"{inert(exc.message or exc.code)}: set CHATROOM_ACCOUNT_PASSWORD"
    if exc.code == ErrorCode.AUTH_FAILED:
        return f"{inert(exc.message or exc.code)}: pass --password or set CHATROOM_PASSWORD"
    return f"the server refused to let us in: {inert(str(exc))}"


# Given a lost connection's last event id and session token: a new connection to
# another server of the cluster, welcomed with a resume, or why none would do.
Rejoin = Callable[
    [int | None, str | None], Awaitable["tuple[ClientConnection, protocol.Welcome] | str"]
]


class _Session:
    """A joined connection: prints events, delivers lines one at a time. With
    ``rejoin``, a lost connection is resumed on another server of the cluster: what was
    missed is printed, and the line waiting for its echo is sent again with its nonce
    unless the replay holds it."""

    def __init__(
        self,
        conn: ClientConnection,
        welcome: protocol.Welcome,
        out: TextIO,
        err: TextIO,
        rejoin: Rejoin | None = None,
    ) -> None:
        self.conn = conn
        self.me = welcome.name
        self.session_token = welcome.session
        self.last_id: int | None = max((event.id for event in welcome.history), default=None)
        self._rejoin = rejoin
        self._replaying = False
        self._rejoin_failure: str | None = None
        self.out = out
        self.err = err
        # The line on the wire: its text, its nonce, and what settles it (None: the echo).
        self.waiting: tuple[str, str, asyncio.Future[protocol.Error | None]] | None = None
        self._nonce_prefix = secrets.token_hex(4)
        self._nonces = 0
        self.lost: str | None = None
        self.unsent = 0

    def say_line(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def complain(self, line: str) -> None:
        self.err.write(f"{_PROG}: {line}\n")
        self.err.flush()

    async def read_frames(self) -> None:
        """Print every event until the connection ends (and cannot be resumed
        elsewhere); settle the waiting line."""
        while True:
            try:
                frame = await self.conn.recv()
            except ConnectionClosed as exc:
                if await self._resume(str(exc)):
                    continue
                self.lost = self._rejoin_failure or str(exc)
                if self.waiting is not None and not self.waiting[2].done():
                    self.waiting[2].set_exception(ConnectionClosed(str(exc)))
                return
            if isinstance(frame, protocol.Event):
                self.last_id = frame.id
                if self._replaying and isinstance(frame, protocol.Join) and frame.name == self.me:
                    # The replay is over: what it did not acknowledge goes again.
                    self._replaying = False
                    await self._send_waiting()
            match frame:
                case (
                    protocol.Message()
                    | protocol.Join()
                    | protocol.Leave()
                    | protocol.Topic()
                    | protocol.Nick()
                    | protocol.Dm()
                    | protocol.Mod()
                ):
                    self.say_line(format_event(frame))
                    if isinstance(frame, protocol.Nick) and frame.old == self.me:
                        self.me = frame.new
                    if self._acknowledges(frame):
                        assert self.waiting is not None
                        self.waiting[2].set_result(None)
                case protocol.Error():
                    # Only says are ever sent, so an error while one waits is about it.
                    if self.waiting is not None and not self.waiting[2].done():
                        self.waiting[2].set_result(frame)
                    else:
                        self.complain(f"server: {inert(frame.message or frame.code)}")
                case _:
                    pass

    async def _resume(self, why: str) -> bool:
        """After a loss: join another server, resuming after the last event seen."""
        if self._rejoin is None:
            return False
        await self.conn.close()
        self.complain(f"connection lost: {inert(why)}; resuming on another server…")
        joined = await self._rejoin(self.last_id, self.session_token)
        if isinstance(joined, str):
            self._rejoin_failure = f"{why}; no other server resumed us ({joined})"
            return False
        self.conn, welcome = joined
        self.me = welcome.name
        self.session_token = welcome.session
        self._replaying = True
        return True

    async def _send_waiting(self) -> None:
        waiting = self.waiting
        if waiting is not None and not waiting[2].done():
            with contextlib.suppress(ConnectionClosed):
                await self.conn.say(waiting[0], nonce=waiting[1])

    def _acknowledges(self, event: protocol.Event) -> bool:
        """Whether ``event`` is the echo of the line waiting for one."""
        if self.waiting is None or self.waiting[2].done():
            return False
        if not isinstance(event, protocol.Message) or event.sender != self.me:
            return False
        text, nonce, _ = self.waiting
        # A server that does not echo nonces: one line at a time, so the text tells.
        return event.nonce == nonce if event.nonce is not None else event.text == text

    async def deliver(self, text: str) -> None:
        """Say ``text`` and wait for its echo, resending while the server rate-limits."""
        loop = asyncio.get_running_loop()
        self._nonces += 1
        nonce = f"{self._nonce_prefix}-{self._nonces}"
        while True:
            answer: asyncio.Future[protocol.Error | None] = loop.create_future()
            self.waiting = (text, nonce, answer)
            try:
                with contextlib.suppress(ConnectionClosed):
                    # Lost meanwhile: the reader resumes elsewhere and sends it again.
                    await self.conn.say(text, nonce=nonce)
                async with asyncio.timeout(ACK_TIMEOUT_S + (JOIN_TIMEOUT_S if self._rejoin else 0)):
                    error = await answer
            except TimeoutError:
                raise ConnectionClosed(
                    f"no acknowledgement from the server within {ACK_TIMEOUT_S:g} s"
                ) from None
            finally:
                self.waiting = None
            if error is None:
                return
            if error.code == ErrorCode.RATE_LIMITED:
                # A deliberate pause for the server's bucket to refill, not a wait on state.
                await asyncio.sleep(RATE_LIMIT_RETRY_S)
                continue
            self.unsent += 1
            self.complain(f"not sent: {inert(error.message or error.code)}")
            return

    async def send_lines(self, lines: AsyncIterable[str]) -> None:
        async for line in lines:
            text = line.rstrip("\r\n")
            if text.strip():
                await self.deliver(text)

    async def run(self, lines: AsyncIterable[str]) -> int:
        reader = asyncio.create_task(self.read_frames())
        sender = asyncio.create_task(self.send_lines(lines))
        try:
            await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done():
                try:
                    sender.result()
                except ConnectionClosed as exc:
                    self.complain(str(exc))
                    return EXIT_FAILED
                return EXIT_FAILED if self.unsent else EXIT_OK
            self.complain(f"connection lost: {self.lost}")
            return EXIT_FAILED
        finally:
            for task in (reader, sender):
                task.cancel()
            await asyncio.gather(reader, sender, return_exceptions=True)


async def _join(
    host: str,
    port: int,
    name: str,
    password: str | None,
    ssl_context: ssl.SSLContext | None,
    *,
    resume_after: int | None = None,
    session: str | None = None,
) -> tuple[ClientConnection, protocol.Welcome] | str:
    """Connect and say hello: the joined connection, or why this server would not do.

    Raises:
        ServerError: the server refused us (a name, a password): another server of the
            cluster would refuse the same.
    """
    try:
        conn = await ClientConnection.connect(host, port, ssl_context=ssl_context)
    except ConnectError as exc:
        return f"cannot connect: {exc}"
    try:
        async with asyncio.timeout(JOIN_TIMEOUT_S):
            # The account's password from the environment only: ps shows arguments.
            welcome = await conn.hello(
                name,
                password,
                account_password=os.environ.get("CHATROOM_ACCOUNT_PASSWORD"),
                resume_after=resume_after,
                session=session,
            )
    except ConnectionClosed as exc:
        await conn.close()
        return str(exc)
    except TimeoutError:
        await conn.close()
        return f"no welcome from {format_address(host, port)} within {JOIN_TIMEOUT_S:g} s"
    except BaseException:
        await conn.close()
        raise
    return conn, welcome


async def run_plain(
    host: str,
    port: int,
    name: str,
    *,
    lines: AsyncIterable[str],
    password: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    more_addresses: Sequence[tuple[str, int]] = (),
) -> int:
    """Join as ``name``, say each of ``lines``, print events; the exit status.

    ``more_addresses`` are other servers of the same cluster, tried in order when
    ``host:port`` cannot be reached or lets the connection go before welcoming us.

    Returns:
        0 when every line was acknowledged and the input ended; 1 when no server could
        be reached, one refused us, went away, or a line was not delivered.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    addresses = list(dict.fromkeys([(host, port), *more_addresses]))
    joined = None
    number = 0
    for number, (server_host, server_port) in enumerate(addresses, 1):
        try:
            joined = await _join(server_host, server_port, name, password, ssl_context)
        except ServerError as exc:
            err.write(f"{_PROG}: {_explain_refusal(exc)}\n")
            return EXIT_FAILED
        if not isinstance(joined, str):
            break
        if number < len(addresses):
            # stderr, where scripts expect the reasons; one line per server given up on.
            joined += f"; trying {format_address(*addresses[number])}…"
        err.write(f"{_PROG}: {inert(joined)}\n")
        err.flush()
    if joined is None or isinstance(joined, str):
        return EXIT_FAILED
    conn, welcome = joined
    at = number - 1  # the server that let us in

    async def rejoin(
        after: int | None, token: str | None
    ) -> tuple[ClientConnection, protocol.Welcome] | str:
        """One round of the other servers, the next one first."""
        nonlocal at
        reasons = []
        for step in range(1, len(addresses) + 1):
            candidate = addresses[(at + step) % len(addresses)]
            try:
                found = await _join(
                    *candidate, session.me, password, ssl_context, resume_after=after, session=token
                )
            except ServerError as exc:
                found = _explain_refusal(exc)
            if not isinstance(found, str):
                at = (at + step) % len(addresses)
                err.write(f"{_PROG}: resumed on {format_address(*candidate)}\n")
                err.flush()
                return found
            reasons.append(found)
        return "; ".join(reasons) or "no server to resume on"

    session = _Session(conn, welcome, out, err, rejoin if len(addresses) > 1 else None)
    try:
        for event in welcome.history:
            session.say_line(format_event(event))
        return await session.run(lines)
    finally:
        await session.conn.close()  # bye, unless the server already closed


async def stdin_lines(stream: BinaryIO) -> AsyncIterator[str]:
    """Lines of ``stream`` (UTF-8, bad bytes replaced), read by a helper thread.

    A thread, because event-loop pipes refuse regular files (``< lines.txt``) and a
    blocked terminal read must not keep the process alive: it is a daemon thread.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(STDIN_QUEUE_LINES)

    def pump() -> None:
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace")
                asyncio.run_coroutine_threadsafe(queue.put(line), loop).result()
        except Exception:  # the loop is gone or stdin broke: either way, that is EOF
            pass
        finally:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


async def _main(
    host: str,
    port: int,
    name: str,
    password: str | None,
    ssl_context: ssl.SSLContext | None,
    more_addresses: Sequence[tuple[str, int]],
) -> int:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            # SIGTERM leaves as Ctrl-C does: cancelled, the connection still says bye.
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
    return await run_plain(
        host,
        port,
        name,
        lines=stdin_lines(sys.stdin.buffer),
        password=password,
        ssl_context=ssl_context,
        more_addresses=more_addresses,
    )


def main_plain(
    host: str,
    port: int,
    name: str,
    password: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    more_addresses: Sequence[tuple[str, int]] = (),
) -> int:
    """Run the line mode on stdin/stdout until input ends; the process exit status.

    ``more_addresses``: other servers of the cluster, tried in order if ``host:port``
    does not answer.
    """
    # Terminals that cannot show a character get a replacement, never a traceback.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        return asyncio.run(_main(host, port, name, password, ssl_context, more_addresses))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILED
