"""``chatroom-tui``: join a chatroom server in the Textual app, or in ``--plain`` line mode."""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from collections.abc import Sequence

from chatroom import __version__
from chatroom.address import DEFAULT_PORT, AddressError, format_address, parse_address_list

__all__ = ["main"]

EXIT_USAGE = 2
_PROG = "chatroom-tui"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Join a chatroom server. Ctrl+Q quits; /help inside lists the commands.",
    )
    parser.add_argument(
        "address",
        metavar="HOST:PORT[,HOST:PORT...]",
        help=f"the server (port {DEFAULT_PORT} if left out; IPv6 as [::1]:5000); "
        "several servers of one cluster, comma-separated, are tried in that order, "
        "and the next one is used when one goes away",
    )
    parser.add_argument("--name", help="the name to join as (asked for when left out)")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="no TUI: say each stdin line, print each event as a line",
    )
    parser.add_argument(
        "--password",
        default=None,
        help="the server's password (better: set CHATROOM_PASSWORD, which ps does not show)",
    )
    parser.add_argument(
        "--no-bell",
        action="store_true",
        help="never ring the terminal bell (by default it rings on mentions and private "
        "messages; /bell on|off inside)",
    )
    parser.add_argument("--tls", action="store_true", help="connect with TLS")
    parser.add_argument(
        "--ca",
        metavar="FILE",
        help="trust the server certificates signed by this CA (implies --tls)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="TLS without checking the certificate (self-signed tests only)",
    )
    parser.add_argument("--version", action="version", version=f"chatroom {__version__}")
    return parser


def _fail(message: str) -> int:
    print(f"{_PROG}: {message}", file=sys.stderr)
    return EXIT_USAGE


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The client TLS context the options ask for, or None for plain TCP.

    Raises:
        OSError, ssl.SSLError: the CA file cannot be read or parsed.
    """
    if not (args.tls or args.ca or args.insecure):
        return None
    context = ssl.create_default_context(cafile=args.ca)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options and run the app (or the line mode); the process exit status."""
    args = _parser().parse_args(argv)
    try:
        parsed = parse_address_list(args.address, default_port=DEFAULT_PORT)
    except AddressError as exc:
        return _fail(str(exc))
    addresses = [(host or "localhost", port) for host, port in parsed]
    for host, port in addresses:
        if port == 0:
            where = format_address(host, port)
            return _fail(f"{where!r}: the port must be a number from 1 to 65535")
    (host, port), *more_addresses = addresses
    name = args.name
    if name is not None:
        name = name.strip()
        if not name:
            return _fail("--name must not be empty")
    if args.plain and not name:
        return _fail("--plain needs --name")
    password = args.password if args.password is not None else os.environ.get("CHATROOM_PASSWORD")
    try:
        ssl_context = _ssl_context(args)
    except (OSError, ssl.SSLError) as exc:
        return _fail(f"cannot use --ca {args.ca}: {getattr(exc, 'strerror', None) or exc}")

    if args.plain:
        from chatroom.plain import main_plain

        assert name is not None
        return main_plain(host, port, name, password or None, ssl_context, more_addresses)

    from chatroom.tui import ChatApp

    app = ChatApp(
        host,
        port,
        name=name,
        password=password or None,
        ssl_context=ssl_context,
        bell=not args.no_bell,
        more_addresses=more_addresses,
    )
    app.run()
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
