"""Command-line entry points: ``chatroom-server`` and ``chatroom-tui``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib
import importlib.util
import logging
import secrets
import signal
import socket
import sqlite3
import ssl
import struct
import sys
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import IO, Any

from chatroom import __version__
from chatroom.address import DEFAULT_PORT, AddressError, parse_address
from chatroom.cluster import NODE_ID, ClusterUnavailable
from chatroom.config import ConfigError, add_ops_options, config_main, resolve
from chatroom.framing import MAX_FRAME_BYTES
from chatroom.history import parse_retention
from chatroom.hub import DEFAULT_HISTORY_EVENTS, LAZY_MEMBERS_ABOVE, EventSink
from chatroom.logs import configure_logging
from chatroom.protocol import MAX_TEXT_CHARS
from chatroom.reload import Reloader, pid_file_path, remove_pid_file, write_pid_file
from chatroom.reload import admin_main as reload_main
from chatroom.server import (
    FLOOD_BURST,
    FLOOD_RATE_PER_S,
    HANDSHAKE_TIMEOUT_S,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP,
    MAX_SENDQ_BYTES,
    PING_INTERVAL_S,
    PING_TIMEOUT_S,
    ChatServer,
    ServerConfig,
    display_addresses,
)
from chatroom.transcript import (
    DEFAULT_TRANSCRIPT_BACKUPS,
    DEFAULT_TRANSCRIPT_MAX_BYTES,
    DEFAULT_TRANSCRIPT_NAME,
    Transcript,
)

__all__ = ["DEFAULT_PORT", "AddressError", "parse_address", "server_main", "tui_main"]

EXIT_USAGE = 2


def _interface_addresses() -> list[str]:
    """This machine's addresses, loopback last, for the start-up banner."""
    found: list[str] = []
    with contextlib.suppress(OSError, AttributeError, ImportError):
        import fcntl

        siocgifaddr = 0x8915  # Linux
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for _, name in socket.if_nameindex():
                with contextlib.suppress(OSError):
                    packed = struct.pack("256s", name.encode()[:15])
                    answer = fcntl.ioctl(probe.fileno(), siocgifaddr, packed)
                    found.append(socket.inet_ntoa(answer[20:24]))
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            fields = line.split()
            raw, scope = fields[0], int(fields[3], 16)
            if scope == 0:  # global addresses only; link-local ones need a zone to use
                found.append(socket.inet_ntop(socket.AF_INET6, bytes.fromhex(raw)))
    if not found:
        with contextlib.suppress(OSError):
            for info in socket.getaddrinfo(socket.gethostname(), None):
                found.append(str(info[4][0]))
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda host: host.startswith("127.") or host == "::1")


def _server_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatroom-server",
        description="Run a chatroom server. With no options it listens on 0.0.0.0:5000 "
        "and writes the transcript to ./" + DEFAULT_TRANSCRIPT_NAME + ".",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"chatroom {__version__}")
    parser.add_argument(
        "--bind",
        default=f"0.0.0.0:{DEFAULT_PORT}",
        metavar="HOST:PORT",
        help="where to listen; IPv6 as [::]:5000",
    )
    parser.add_argument(
        "--transcript",
        type=Path,
        default=Path(DEFAULT_TRANSCRIPT_NAME),
        metavar="PATH",
        help="the transcript file (tail -f it)",
    )
    parser.add_argument(
        "--transcript-max-bytes",
        type=int,
        default=DEFAULT_TRANSCRIPT_MAX_BYTES,
        metavar="N",
        help="rotate the transcript past this size (0: never)",
    )
    parser.add_argument(
        "--transcript-backups",
        type=int,
        default=DEFAULT_TRANSCRIPT_BACKUPS,
        metavar="N",
        help="rotated transcripts to keep",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print events on the console")
    parser.add_argument(
        "--history",
        type=int,
        default=DEFAULT_HISTORY_EVENTS,
        metavar="N",
        help="recent events a newcomer is shown",
    )
    parser.add_argument(
        "--lazy-members-above",
        type=int,
        default=LAZY_MEMBERS_ABOVE,
        metavar="N",
        help="in rooms of more than N members, clients that ask for it (chatroom-tui does) "
        "are not sent other members' joins and leaves",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=_default_data_dir(),
        metavar="DIR",
        help="where the history database lives",
    )
    parser.add_argument(
        "--history-retention",
        default="forever",
        metavar="KEEP",
        help="history to keep: an event count (100000), an age (30d, 12h), "
        "both (30d,100000), or forever",
    )
    parser.add_argument(
        "--no-log-private",
        action="store_true",
        help="keep private messages out of the transcript and the console",
    )
    parser.add_argument(
        "--no-history", action="store_true", help="keep history in memory only (lost at restart)"
    )
    parser.add_argument(
        "--argon2",
        default=None,
        metavar="KIB,PASSES,LANES",
        help="Argon2id cost of new password hashes; the default is OWASP's minimum "
        "(19456,2,1). Lower only for tests",
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        # Measured: uvloop is no faster from 100 members up, and it flushes once per join,
        # so 10,000 clients joining at once took minutes instead of seconds.
        help="event loop; uvloop needs chatroom[fast] and is slower for big join storms",
    )
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-frame-bytes", type=int, default=MAX_FRAME_BYTES, metavar="N")
    limits.add_argument("--max-text", type=int, default=MAX_TEXT_CHARS, metavar="CHARS")
    limits.add_argument(
        "--sendq",
        type=int,
        default=MAX_SENDQ_BYTES,
        metavar="BYTES",
        help="pending output per connection before it is dropped",
    )
    limits.add_argument(
        "--flood-rate",
        type=float,
        default=FLOOD_RATE_PER_S,
        metavar="PER_S",
        help="frames per second per connection after the burst (0: no limit)",
    )
    limits.add_argument("--flood-burst", type=int, default=FLOOD_BURST, metavar="N")
    limits.add_argument("--handshake-timeout", type=float, default=HANDSHAKE_TIMEOUT_S, metavar="S")
    limits.add_argument("--ping-interval", type=float, default=PING_INTERVAL_S, metavar="S")
    limits.add_argument("--ping-timeout", type=float, default=PING_TIMEOUT_S, metavar="S")
    limits.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS, metavar="N")
    limits.add_argument(
        "--max-per-ip",
        type=int,
        default=MAX_CONNECTIONS_PER_IP,
        metavar="N",
        help="connections from one address (loopback is exempt)",
    )
    access = parser.add_argument_group("access")
    access.add_argument(
        "--password",
        default=None,
        help="require this password (better: set CHATROOM_PASSWORD, which ps does not show)",
    )
    access.add_argument("--tls-cert", type=Path, metavar="FILE", help="serve TLS with this cert")
    access.add_argument("--tls-key", type=Path, metavar="FILE", help="the certificate's key")
    access.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web page origin besides this server's own that may open the chat "
        "WebSocket, e.g. https://chat.example.org (repeatable)",
    )
    access.add_argument(
        "--no-web",
        action="store_true",
        help="serve no web app or WebSocket on the port: chatroom-tui and NDJSON only "
        "(/metrics and /healthz stay, unless --no-metrics)",
    )
    irc = parser.add_argument_group("IRC gateway")
    irc.add_argument(
        "--irc",
        metavar="HOST:PORT",
        help="also let IRC clients (irssi, WeeChat, HexChat) in on this address, e.g. "
        "0.0.0.0:6667; TLS with --tls-cert (off unless given)",
    )
    irc.add_argument(
        "--server-name",
        metavar="NAME",
        help="the server's name in IRC numerics (default: this machine's host name)",
    )
    cluster = parser.add_argument_group("cluster")
    cluster.add_argument(
        "--cluster",
        metavar="REDIS_URL",
        help="be one node of a cluster sharing this Redis, e.g. redis://10.0.0.5:6379/0 "
        "(needs pip install 'chatroom[cluster]'; a URL with a password: better set "
        "CHATROOM_CLUSTER, which ps does not show); see docs/cluster.md",
    )
    cluster.add_argument(
        "--node-id",
        metavar="ID",
        help="this node's name in the cluster: letters, digits, '.', '-', '_' "
        "(default: the host name and a random suffix)",
    )
    cluster.add_argument(
        "--cluster-lease",
        type=float,
        default=5.0,
        metavar="S",
        help="how long a silent node keeps its members' names before others end them",
    )
    return parser


def _default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("chatroom", appauthor=False))


def _export_main(argv: Sequence[str]) -> int:
    """``chatroom-server export``: dump stored history as JSON lines or transcript text."""
    parser = argparse.ArgumentParser(
        prog="chatroom-server export",
        description="Print the stored history, oldest first.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, default=_default_data_dir(), metavar="DIR")
    parser.add_argument(
        "--since",
        metavar="TIME",
        help="only events at or after this UTC time, e.g. 2026-11-24 or 2026-11-24T12:00:00Z",
    )
    parser.add_argument("--format", choices=("jsonl", "text"), default="text")
    args = parser.parse_args(argv)
    from chatroom.framing import encode_object
    from chatroom.history import DB_NAME, HistoryStore
    from chatroom.transcript import format_event_line

    if not (args.data_dir / DB_NAME).exists():
        return _fail(parser.prog, f"no history in {args.data_dir} (no {DB_NAME} there)")
    # Beside a running server (or after one was killed): read its journal, leave it be.
    store = HistoryStore.in_dir(args.data_dir, writer=False)
    out = sys.stdout.buffer
    try:
        for event in store.export(since=args.since):
            if args.format == "jsonl":
                out.write(encode_object(event.to_wire()))
            else:
                out.write(format_event_line(event).encode("utf-8"))
        out.flush()
    except BrokenPipeError:
        pass  # `| head` closed the pipe: not an error
    finally:
        store.close()
    return 0


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return EXIT_USAGE


def _subcommand(argv: Sequence[str]) -> str | None:
    """The first word of ``argv`` that is neither an option nor an option's value."""
    for index, word in enumerate(argv):
        if not word.startswith("-") and (index == 0 or not argv[index - 1].startswith("--")):
            return word
    return None


def server_main(argv: Sequence[str] | None = None) -> int:
    """``chatroom-server``: parse options, run until Ctrl-C or SIGTERM, exit 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["export"]:
        return _export_main(argv[1:])
    parser = _server_parser()
    add_ops_options(parser)
    if argv[:1] == ["config"]:
        return config_main(argv[1:], parser)
    if argv[:1] == ["admin"]:
        if _subcommand(argv[1:]) == "reload":
            return reload_main(argv[1:], parser)
        from chatroom.admin import admin_main

        return admin_main(argv[1:], _default_data_dir())
    prog = parser.prog
    # The file's values and the command line's, checked (ranges, --bind, retention).
    try:
        resolved = resolve(parser, argv)
    except ConfigError as exc:
        return _fail(prog, str(exc))
    args = resolved.args
    host, port = parse_address(args.bind, default_host="0.0.0.0")
    irc_host, irc_port = "0.0.0.0", None
    if args.irc:
        try:
            irc_host, irc_port = parse_address(args.irc, default_host="0.0.0.0")
        except AddressError as exc:
            return _fail(prog, f"--irc {exc}")
    if args.server_name is not None and (
        not args.server_name or any(char in args.server_name for char in " \r\n\0:!@,")
    ):
        return _fail(prog, "--server-name must be one word, e.g. chat.example.org")
    ssl_context = None
    if args.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            return _fail(prog, f"cannot load the TLS certificate or key: {exc}")
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        return _fail(prog, "--loop uvloop: uvloop is not installed (pip install 'chatroom[fast]')")
    password = args.password
    node_id = args.node_id or f"{socket.gethostname() or 'node'}-{secrets.token_hex(2)}"
    if args.cluster is not None:
        if importlib.util.find_spec("redis") is None:
            return _fail(prog, "--cluster needs the redis client: pip install 'chatroom[cluster]'")
        if not args.cluster.startswith(("redis://", "rediss://", "unix://")):
            return _fail(prog, "--cluster takes a Redis URL, e.g. redis://127.0.0.1:6379/0")
        if not NODE_ID.fullmatch(node_id):
            return _fail(prog, "--node-id: 1 to 64 letters, digits, '.', '-' or '_'")
        if not 0.5 <= args.cluster_lease <= 600:
            return _fail(prog, "--cluster-lease must be from 0.5 to 600 seconds")

    from rich.console import Console

    console = Console(stderr=False, highlight=False)
    configure_logging(args.log_format, args.log_level)
    for warning in resolved.warnings:
        logging.getLogger("chatroom.config").warning(warning)
    # asyncio warns once per write to a connection it has already lost ("socket.send()
    # raised exception.", "SSL connection is closed"). Over TLS the server learns of a
    # reset only after a loop turn, so a peer that sends a chunk of garbage lines and
    # resets produced a warning per error reply: thousands of lines. Its errors stay on.
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    try:
        transcript = Transcript(
            args.transcript,
            max_bytes=args.transcript_max_bytes,
            backups=args.transcript_backups,
            log_private=not args.no_log_private,
        )
    except OSError as exc:
        return _fail(prog, f"cannot open the transcript {args.transcript}: {exc.strerror or exc}")
    from chatroom.history import HistoryStore

    retention = parse_retention(args.history_retention)
    from chatroom.accounts import ACCOUNTS_DB_NAME, DEFAULT_COST, AccountStore, Argon2Cost

    cost = DEFAULT_COST
    if args.argon2 is not None:
        try:
            memory_kib, passes, lanes = (int(part) for part in args.argon2.split(","))
            cost = Argon2Cost(memory_kib, passes, lanes)
        except ValueError:
            return _fail(prog, "--argon2 takes three numbers: KIB,PASSES,LANES")
        if min(memory_kib, passes, lanes) < 1 or memory_kib < 8 * lanes:
            return _fail(prog, "--argon2: at least 8 KiB per lane, 1 pass, 1 lane")
    try:
        accounts = AccountStore(args.data_dir / ACCOUNTS_DB_NAME, cost=cost)
    except (OSError, sqlite3.Error) as exc:
        return _fail(prog, f"cannot open the accounts in {args.data_dir}: {exc}")
    store = None
    if not args.no_history:
        try:
            lock = _lock_data_dir(args.data_dir)
        except OSError as exc:
            return _fail(prog, f"cannot use {args.data_dir}: {exc.strerror or exc}")
        if lock is None:
            return _fail(
                prog,
                f"{args.data_dir} is in use by another running chatroom-server; "
                "give each server (each node of a cluster) its own --data-dir",
            )
        try:
            store = HistoryStore.in_dir(args.data_dir, retention=retention)
        except (OSError, sqlite3.Error) as exc:
            return _fail(prog, f"cannot open the history in {args.data_dir}: {exc}")
    sinks: list[EventSink] = [transcript]
    console_sink = None
    if not args.quiet:
        from chatroom.console import ConsoleSink

        console_sink = ConsoleSink(console, log_private=not args.no_log_private)
        sinks.append(console_sink)
    config = ServerConfig(
        host=host,
        port=port,
        max_frame_bytes=args.max_frame_bytes,
        max_text_chars=args.max_text,
        max_sendq_bytes=args.sendq,
        soft_sendq_bytes=min(args.sendq, MAX_SENDQ_BYTES // 4),
        flood_rate=args.flood_rate,
        flood_burst=args.flood_burst,
        handshake_timeout_s=args.handshake_timeout,
        ping_interval_s=args.ping_interval,
        ping_timeout_s=args.ping_timeout,
        max_connections=args.max_connections,
        max_per_ip=args.max_per_ip,
        password=password or None,
        history_events=args.history,
        lazy_members_above=args.lazy_members_above,
        history_store=store,
        # Microseconds since 1970: above any id an earlier run can have reached, and
        # still well inside JSON's safe integers (2**53).
        first_event_id=1 if store is not None else time.time_ns() // 1000,
        ssl_context=ssl_context,
        web=not args.no_web,
        allow_origins=list(args.allow_origin),
        sinks=sinks,
        irc_host=irc_host,
        irc_port=irc_port,
        irc_server_name=args.server_name,
        metrics=not args.no_metrics,
        metrics_allow=list(args.metrics_allow),
        # Accounts live in each node's own files: a cluster does not share them yet.
        accounts=accounts if args.cluster is None else None,
        cluster_url=args.cluster,
        node_id=node_id,
        cluster_lease_s=args.cluster_lease,
    )
    pid_path = pid_file_path(args)
    reloader = Reloader(
        parser,
        argv,
        resolved,
        transcript=transcript,
        console_sink=console_sink,
        ssl_context=ssl_context,
        status_path=pid_path.with_suffix(".reload"),
    )
    try:
        return _run(_serve(config, transcript, console, prog, reloader, pid_path), args.loop)
    finally:
        transcript.close()
        if store is not None:
            store.close()
        accounts.close()
        if console_sink is not None:
            console_sink.close()


def _lock_data_dir(data_dir: Path) -> IO[bytes] | None:
    """Hold the data directory for this process (None: another one holds it). Two
    servers appending to one history journal would interleave their writes; the lock
    goes with the process, however it ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / "server.lock").open("ab")
    try:
        import fcntl
    except ImportError:  # no advisory locks here (Windows): one server per directory
        _HELD.append(handle)
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    _HELD.append(handle)
    return handle


# Open for the process's life: closing a file releases its lock.
_HELD: list[IO[bytes]] = []


def _run(main: Coroutine[Any, Any, int], loop: str) -> int:
    """Run ``main`` on the chosen event loop (uvloop comes with ``chatroom[fast]``)."""
    if loop == "uvloop":
        uvloop = importlib.import_module("uvloop")
        result: int = uvloop.run(main)
        return result
    from chatroom.eventloop import new_event_loop

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)


async def _serve(
    config: ServerConfig,
    transcript: Transcript,
    console: object,
    prog: str,
    reloader: Reloader,
    pid_path: Path,
) -> int:
    from rich.console import Console

    assert isinstance(console, Console)
    server = ChatServer(config)
    reloader.server = server
    try:
        await server.start()
    except OSError as exc:
        where = f"{config.host}:{config.port}"
        if exc.errno == errno.EADDRINUSE:
            reason = "the port is in use (is another server running? --bind picks another)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            reason = "this machine has no such address"
        else:
            reason = exc.strerror or str(exc)
        return _fail(prog, f"cannot listen on {where}: {reason}")
    except ClusterUnavailable as exc:
        return _fail(prog, f"cannot join the cluster: {exc}")
    port = server.addresses[0][1]
    scheme = " --tls" if config.ssl_context else ""
    console.print(f"chatroom {__version__} is listening. People can join with:", highlight=False)
    web = config.web and server.static_files.has_app
    http = "https" if config.ssl_context else "http"
    addresses = display_addresses(config.host, port, _interface_addresses())
    width = max((len(address) for address in addresses), default=0)
    for address in addresses:
        line = f"    chatroom-tui {address}{scheme}"
        if web:
            line = f"{line:<{width + len(scheme) + 20}}  or a browser: {http}://{address}"
        console.print(line, style="bold", highlight=False)
    for _, irc_port in server.irc_addresses[:1]:
        irc_tls = " with TLS" if config.ssl_context else ""
        for address in display_addresses(config.irc_host, irc_port, _interface_addresses()):
            console.print(f"    an IRC client{irc_tls}: {address}", style="bold", highlight=False)
    console.print(f"transcript: {transcript.path.resolve()}   (tail -f it)", highlight=False)
    if config.history_store is not None:
        console.print(f"history:    {config.history_store.path}", highlight=False)
    if config.password:
        console.print("a password is required to join", highlight=False)
    if server.engine is not None:
        console.print(
            f"cluster:    node {config.node_id} of the cluster at {server.engine.safe_url()}",
            highlight=False,
        )
    console.print("Ctrl-C stops the server.", style="dim", highlight=False)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
        loop.add_signal_handler(signal.SIGHUP, reloader.reload)
    wrote_pid = write_pid_file(pid_path)
    try:
        await stop.wait()
    finally:
        console.print("shutting down…", style="dim", highlight=False)
        await server.close()
        if wrote_pid:
            remove_pid_file(pid_path)
    return 0


def tui_main(argv: Sequence[str] | None = None) -> int:
    """``chatroom-tui``: join a server in the Textual app, or in ``--plain`` line mode."""
    from chatroom.tui_client import main

    return main(argv)
