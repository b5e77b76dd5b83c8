"""``chatroom-server admin``: grant and revoke staff roles from the server machine.

Whoever can write the data directory runs the server, so that is the proof of being its
owner: no role is ever handed out over the network, and registering first earns nothing.
A grant is committed to ``accounts.sqlite3`` at once; a running server sees it the next
time it needs a role (see :mod:`chatroom.accounts`).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from chatroom.accounts import ACCOUNTS_DB_NAME, AccountStore, Argon2Cost
from chatroom.framing import ProtocolError
from chatroom.moderation import STAFF_ROLES
from chatroom.names import check_name, name_keys

__all__ = ["admin_main"]

EXIT_USAGE = 2
EXIT_NOT_FOUND = 1
# Granting hashes nothing; a cheap cost spares the dummy hash the store makes on opening.
_NO_HASHING = Argon2Cost(memory_kib=8, time_cost=1, parallelism=1)


def _parser(default_data_dir: Path) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatroom-server admin",
        description="Grant or revoke the server's staff roles (admin, moderator), or "
        "have the running server reload its config file. Works while the server runs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, default=default_data_dir, metavar="DIR")
    commands = parser.add_subparsers(dest="command", required=True)
    grant = commands.add_parser("grant", help="make a registered account staff")
    grant.add_argument("name", help="the account (its registered name)")
    grant.add_argument("role", choices=sorted(STAFF_ROLES))
    revoke = commands.add_parser("revoke", help="take an account's staff role away")
    revoke.add_argument("name")
    commands.add_parser("list", help="list the staff")
    # Answered by chatroom.reload; listed here so that `admin --help` names it.
    commands.add_parser("reload", help="re-read the running server's config file (as SIGHUP)")
    return parser


def admin_main(argv: Sequence[str], default_data_dir: Path) -> int:
    """Run ``chatroom-server admin ...``; returns the exit status."""
    parser = _parser(default_data_dir)
    args = parser.parse_args(argv)
    path = args.data_dir / ACCOUNTS_DB_NAME
    if not path.exists():
        print(
            f"{parser.prog}: no accounts in {args.data_dir} (no {ACCOUNTS_DB_NAME})",
            file=sys.stderr,
        )
        return EXIT_NOT_FOUND
    try:
        store = AccountStore(path, cost=_NO_HASHING)
    except sqlite3.Error as exc:
        print(f"{parser.prog}: cannot open {path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "list":
            for staff, staff_role in sorted(store.staff().items()):
                print(f"{staff_role}\t{staff}")
            return 0
        try:
            account = store.account_for(name_keys(check_name(args.name)))
        except ProtocolError as exc:
            print(f"{parser.prog}: {exc.detail}", file=sys.stderr)
            return EXIT_USAGE
        if account is None:
            print(
                f"{parser.prog}: no account is called {args.name!r}; "
                "its owner registers it first (/register in the client)",
                file=sys.stderr,
            )
            return EXIT_NOT_FOUND
        role = args.role if args.command == "grant" else None
        store.grant(account, role)
        print(f"{account}: {role or 'no staff role'}")
        return 0
    finally:
        store.close()
