"""Accounts, staff, room roles, bans and modes in SQLite; Argon2id passwords; login throttling.

One file, ``accounts.sqlite3`` in the data directory, beside the history. Every change
is committed before the server acknowledges it (WAL, ``synchronous=NORMAL``: a commit is
in the operating system's hands when it returns, so a SIGKILL of the server loses
nothing acknowledged). Staff roles are written by ``chatroom-server admin`` from another
process while the server runs; the server sees them through ``PRAGMA data_version``,
which changes when another connection commits, read each time a staff role is needed.

Hashing a password costs tens of milliseconds and 19 MiB by design: :meth:`AccountStore.register`,
:meth:`AccountStore.verify` and :meth:`AccountStore.set_password` are meant to run on a
worker thread, never on the event loop. The store's connection is shared under a lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from chatroom.framing import ErrorCode, ProtocolError
from chatroom.moderation import ROOM_ROLES, STAFF_ROLES, RoomModes, Sanction
from chatroom.names import name_keys

__all__ = [
    "ACCOUNTS_DB_NAME",
    "DEFAULT_COST",
    "MAX_PASSWORD_CHARS",
    "MIN_PASSWORD_CHARS",
    "OWASP_MINIMUM",
    "AccountStore",
    "Argon2Cost",
    "LoginThrottle",
    "NameRegistered",
    "check_password",
]

ACCOUNTS_DB_NAME = "accounts.sqlite3"
# NIST SP 800-63B: at least 8 characters; an upper bound so hashing stays cheap to ask for.
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 256


@dataclass(frozen=True)
class Argon2Cost:
    """Argon2id's cost: memory in KiB, passes, lanes."""

    memory_kib: int
    time_cost: int
    parallelism: int

    def at_least(self, other: Argon2Cost) -> bool:
        return (
            self.memory_kib >= other.memory_kib
            and self.time_cost >= other.time_cost
            and self.parallelism >= other.parallelism
        )


# OWASP Password Storage Cheat Sheet: Argon2id, m=19 MiB, t=2, p=1 at the least.
OWASP_MINIMUM = Argon2Cost(memory_kib=19 * 1024, time_cost=2, parallelism=1)
# About 65 ms a hash on a 2020s core: a guess per 65 ms of a stolen file's core time.
DEFAULT_COST = OWASP_MINIMUM

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY,        -- the name as registered (NFC)
    hash TEXT NOT NULL,              -- Argon2id, PHC string
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS account_keys (
    key TEXT PRIMARY KEY,            -- names.name_keys of the account's name
    account TEXT NOT NULL REFERENCES accounts (account) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS staff (
    account TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'moderator'))
);
CREATE TABLE IF NOT EXISTS room_roles (
    room TEXT NOT NULL,              -- case-folded
    account TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('op', 'voice')),
    PRIMARY KEY (room, account)
);
CREATE TABLE IF NOT EXISTS bans (
    room TEXT NOT NULL,              -- case-folded; '' for the whole server
    name TEXT NOT NULL,
    keys TEXT NOT NULL,              -- JSON list of name keys
    account TEXT,
    address TEXT,
    until REAL,                      -- epoch seconds; NULL until lifted
    by TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS modes (
    room TEXT PRIMARY KEY,
    modes TEXT NOT NULL              -- JSON object of RoomModes
);
"""


def check_password(raw: str) -> str:
    """The password as hashed: NFC, 8 to 256 characters.

    Raises:
        ProtocolError: ``bad_request`` saying which bound it misses.
    """
    password = unicodedata.normalize("NFC", raw)
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters",
        )
    return password


class NameRegistered(Exception):
    """The name, or one that looks like it, already has an account."""


class AccountStore:
    """The accounts database. Reads come from memory; writes commit before returning.

    Args:
        path: the database file, or ``":memory:"``.
        cost: Argon2id's cost for new hashes (tests pass a cheap one; verifying uses
            the cost stored in each hash).
    """

    def __init__(self, path: Path | str, *, cost: Argon2Cost = DEFAULT_COST) -> None:
        if isinstance(path, Path):
            path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.cost = cost
        self._hasher = PasswordHasher(
            time_cost=cost.time_cost,
            memory_cost=cost.memory_kib,
            parallelism=cost.parallelism,
            type=Type.ID,
        )
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        # A hash of nothing anyone knows, verified when a name has no account: the
        # answer then takes as long as for a name that has one.
        self._dummy_hash = self._hasher.hash("not a password: " + str(time.time_ns()))
        self._keys: dict[str, str] = {}
        self._hashes: dict[str, str] = {}
        self._staff: dict[str, str] = {}
        self._data_version = -1
        for account, stored in self._db.execute("SELECT account, hash FROM accounts"):
            self._hashes[account] = stored
        for key, account in self._db.execute("SELECT key, account FROM account_keys"):
            self._keys[key] = account
        self._reload_staff()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ accounts

    def account_for(self, keys: Iterable[str]) -> str | None:
        """The account holding a name with any of these keys (look-alikes included)."""
        for key in keys:
            account = self._keys.get(key)
            if account is not None:
                return account
        return None

    def register(self, name: str, password: str) -> str:
        """Hash and store; runs on a worker thread. Returns the account's name.

        Raises:
            NameRegistered: the name or a look-alike is taken; nothing is stored.
        """
        hashed = self._hasher.hash(password)
        keys = name_keys(name)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO accounts (account, hash, created) VALUES (?, ?, ?)",
                    (name, hashed, time.time()),
                )
                self._db.executemany(
                    "INSERT INTO account_keys (key, account) VALUES (?, ?)",
                    [(key, name) for key in keys],
                )
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                raise NameRegistered(name) from None
        return name

    def remember(self, account: str) -> None:
        """Load a newly registered account into memory (on the loop, after register)."""
        with self._lock:
            row = self._db.execute(
                "SELECT hash FROM accounts WHERE account = ?", (account,)
            ).fetchone()
            keys = self._db.execute(
                "SELECT key FROM account_keys WHERE account = ?", (account,)
            ).fetchall()
        if row is not None:
            self._hashes[account] = row[0]
            self._keys.update({key: account for (key,) in keys})

    def verify(self, account: str | None, password: str) -> bool:
        """Whether ``password`` is ``account``'s; runs on a worker thread. With no
        account, or a password out of bounds, a dummy hash is verified all the same."""
        stored = self._hashes.get(account) if account is not None else None
        try:
            candidate = check_password(password)
        except ProtocolError:
            candidate = ""
        try:
            matched = self._hasher.verify(stored or self._dummy_hash, candidate or "x" * 8)
        except (VerificationError, InvalidHashError):
            return False
        return matched and stored is not None and bool(candidate)

    def set_password(self, account: str, password: str) -> str:
        """Replace the hash; runs on a worker thread. Returns the new hash."""
        hashed = self._hasher.hash(password)
        with self._lock:
            self._db.execute("UPDATE accounts SET hash = ? WHERE account = ?", (hashed, account))
        return hashed

    def password_set(self, account: str, hashed: str) -> None:
        """Take the new hash into memory (on the loop, after set_password)."""
        self._hashes[account] = hashed

    def known(self, account: str) -> bool:
        return account in self._hashes

    # ------------------------------------------------------------------ staff

    def staff_role(self, account: str | None) -> str | None:
        """``admin``, ``moderator`` or None; a grant committed by another process is
        seen here at once."""
        if account is None:
            return None
        self._reload_staff()
        return self._staff.get(account)

    def grant(self, account: str, role: str | None) -> None:
        """Make ``account`` staff (None: no longer). For ``chatroom-server admin``."""
        if role is not None and role not in STAFF_ROLES:
            raise ValueError(f"a staff role is one of {', '.join(STAFF_ROLES)}")
        with self._lock:
            if role is None:
                self._db.execute("DELETE FROM staff WHERE account = ?", (account,))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO staff (account, role) VALUES (?, ?)", (account, role)
                )
        self._reload_staff()

    def staff(self) -> dict[str, str]:
        self._reload_staff()
        return dict(self._staff)

    def _reload_staff(self) -> None:
        with self._lock:
            version = self._db.execute("PRAGMA data_version").fetchone()[0]
            if version == self._data_version:
                return
            self._data_version = version
            self._staff = dict(self._db.execute("SELECT account, role FROM staff"))

    # ------------------------------------------------------------------ room roles

    def room_roles(self) -> dict[tuple[str, str], str]:
        """(room key, account) -> ``op`` or ``voice``."""
        with self._lock:
            rows = self._db.execute("SELECT room, account, role FROM room_roles").fetchall()
        return {(room, account): role for room, account, role in rows}

    def set_room_role(self, room: str, account: str, role: str) -> None:
        if role not in ROOM_ROLES:
            raise ValueError(role)
        with self._lock:
            if role == "none":
                self._db.execute(
                    "DELETE FROM room_roles WHERE room = ? AND account = ?", (room, account)
                )
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO room_roles (room, account, role) VALUES (?, ?, ?)",
                    (room, account, role),
                )

    # ------------------------------------------------------------------ bans and modes

    def bans(self) -> list[Sanction]:
        with self._lock:
            rows = self._db.execute(
                "SELECT room, name, keys, account, address, until, by, reason FROM bans"
            ).fetchall()
        return [
            Sanction(room, name, frozenset(json.loads(keys)), account, address, until, by, reason)
            for room, name, keys, account, address, until, by, reason in rows
        ]

    def replace_bans(self, room: str, gone: Iterable[Sanction], new: Sanction | None) -> None:
        """Delete the bans in ``gone`` and add ``new``, in one transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for ban in gone:
                self._db.execute(
                    "DELETE FROM bans WHERE room = ? AND keys = ? AND until IS ?",
                    (ban.room, _keys_json(ban.keys), ban.until),
                )
            if new is not None:
                self._db.execute(
                    "INSERT INTO bans (room, name, keys, account, address, until, by, reason)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        new.room,
                        new.name,
                        _keys_json(new.keys),
                        new.account,
                        new.address,
                        new.until,
                        new.by,
                        new.reason,
                    ),
                )
            self._db.execute("COMMIT")

    def modes(self) -> dict[str, RoomModes]:
        with self._lock:
            rows = self._db.execute("SELECT room, modes FROM modes").fetchall()
        found: dict[str, RoomModes] = {}
        for room, text in rows:
            try:
                found[room] = RoomModes(**json.loads(text))
            except (TypeError, ValueError):
                continue  # written by another version: the room opens up rather than fail
        return found

    def set_modes(self, room: str, modes: RoomModes) -> None:
        with self._lock:
            if modes.default:
                self._db.execute("DELETE FROM modes WHERE room = ?", (room,))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO modes (room, modes) VALUES (?, ?)",
                    (room, json.dumps(_modes(modes))),
                )


def _modes(modes: RoomModes) -> dict[str, object]:
    return {
        "invite_only": modes.invite_only,
        "key": modes.key,
        "moderated": modes.moderated,
        "registered_only": modes.registered_only,
        "slow_s": modes.slow_s,
    }


def _keys_json(keys: frozenset[str]) -> str:
    return json.dumps(sorted(keys), ensure_ascii=False)


class LoginThrottle:
    """Slower and slower answers to wrong passwords, never a lock-out.

    Per address (key): after FREE_FAILURES wrong passwords, each further attempt from
    it within a window that doubles with every failure (capped at MAX_WINDOW_S) is
    refused without being checked. Per account: the answer to a wrong password is held
    back longer the more wrong passwords the account has seen from anywhere (capped at
    MAX_ACCOUNT_DELAY_S). A right password from an address that is not throttled is
    never held back, so the owner logs in from elsewhere while someone guesses. Counts
    are forgotten after FORGET_S without a failure. Times are the caller's clock.

    Checks take time, so failures are counted late: many attempts sent at once from one
    address would all be checked before the first failure counts. So at most
    MAX_CHECKING per address are checked at a time; the others are refused unchecked.
    """

    FREE_FAILURES = 3
    # The first window outlasts the slowest answer (MAX_ACCOUNT_DELAY_S is reached
    # only after many failures), so a guesser waiting for answers stays throttled.
    WINDOW_BASE_S = 5.0
    BASE_S = 1.0
    MAX_WINDOW_S = 300.0
    MAX_ACCOUNT_DELAY_S = 30.0
    FORGET_S = 3600.0
    MAX_CHECKING = 2

    def __init__(self) -> None:
        self._checking: dict[str, int] = {}
        # key -> (failures, time of the last one)
        self._by_address: dict[str, tuple[int, float]] = {}
        self._by_account: dict[str, tuple[int, float]] = {}

    def _backoff(self, failures: int, base: float, cap: float) -> float:
        over = failures - self.FREE_FAILURES
        if over < 0:
            return 0.0
        return float(min(cap, base * 2.0 ** min(over, 30)))

    def _count(
        self, table: dict[str, tuple[int, float]], key: str, now: float
    ) -> tuple[int, float]:
        failures, last = table.get(key, (0, now))
        if now - last >= self.FORGET_S:
            table.pop(key, None)
            return 0, now
        return failures, last

    def begin(self, address: str, now: float) -> bool:
        """An attempt from ``address``: True when it may be checked (then call
        :meth:`end` once it has been), False when it is refused unchecked."""
        if self.blocked_for(address, now) > 0:
            return False
        checking = self._checking.get(address, 0)
        if checking >= self.MAX_CHECKING:
            return False
        self._checking[address] = checking + 1
        return True

    def end(self, address: str) -> None:
        checking = self._checking.pop(address, 1) - 1
        if checking > 0:
            self._checking[address] = checking

    def blocked_for(self, address: str, now: float) -> float:
        """Seconds until ``address`` may try again (0: it may now)."""
        failures, last = self._count(self._by_address, address, now)
        window = self._backoff(failures, self.WINDOW_BASE_S, self.MAX_WINDOW_S)
        return max(0.0, last + window - now)

    def failure_delay(self, account: str | None, base_s: float, now: float) -> float:
        """How long after the attempt a wrong password is answered."""
        if account is None:
            return base_s
        failures, _ = self._count(self._by_account, account, now)
        return max(base_s, self._backoff(failures, self.BASE_S, self.MAX_ACCOUNT_DELAY_S))

    def failed(self, account: str | None, address: str, now: float) -> None:
        failures, _ = self._count(self._by_address, address, now)
        self._by_address[address] = (failures + 1, now)
        if account is not None:
            failures, _ = self._count(self._by_account, account, now)
            self._by_account[account] = (failures + 1, now)

    def succeeded(self, address: str) -> None:
        self._by_address.pop(address, None)
