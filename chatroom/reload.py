"""Reloading a running server: SIGHUP, or ``chatroom-server admin reload``.

The file is read and checked as at the start; if anything is wrong, nothing changes
and the log says why. Otherwise what can change live does (:data:`~chatroom.config.
LIVE_KEYS`): limits, for open connections too; the password, for the next hello; the
TLS certificate and key, for the next handshake (members already connected keep their
session); the transcript's options; the log. What takes a restart is named in the log.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatroom.config import LIVE_KEYS, PID_FILE_NAME, ConfigError, Resolved, resolve
from chatroom.limits import MAX_SENDQ_BYTES
from chatroom.logs import configure_logging

if TYPE_CHECKING:
    from chatroom.console import ConsoleSink
    from chatroom.server import ChatServer
    from chatroom.transcript import Transcript

__all__ = [
    "RELOAD_ANSWER_S",
    "Reloader",
    "admin_main",
    "pid_file_path",
    "remove_pid_file",
    "write_pid_file",
]

log = logging.getLogger("chatroom.reload")

# How long `admin reload` waits for the server to say how its reload went.
RELOAD_ANSWER_S = 10.0
# Options that are limits, and the ServerConfig field each one sets.
_LIMIT_FIELDS = {
    "max_frame_bytes": "max_frame_bytes",
    "max_text": "max_text_chars",
    "sendq": "max_sendq_bytes",
    "flood_rate": "flood_rate",
    "flood_burst": "flood_burst",
    "handshake_timeout": "handshake_timeout_s",
    "ping_interval": "ping_interval_s",
    "ping_timeout": "ping_timeout_s",
    "max_connections": "max_connections",
    "max_per_ip": "max_per_ip",
}
_SECRET = frozenset({"password"})


def _key(dest: str) -> str:
    return dest.replace("_", "-")


def pid_file_path(args: argparse.Namespace) -> Path:
    """Where the server with these options writes its process id."""
    return Path(args.pid_file) if args.pid_file else Path(args.data_dir) / PID_FILE_NAME


def write_pid_file(path: Path) -> bool:
    """Write this process's id to ``path``; False (and a warning) when it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        log.warning(
            "cannot write the pid file %s: %s; `admin reload` will not find this "
            "server (SIGHUP still works)",
            path,
            exc.strerror or exc,
        )
        return False
    return True


def remove_pid_file(path: Path) -> None:
    """Remove ``path`` if it still names this process (a newer server may own it)."""
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()
            path.with_suffix(".reload").unlink(missing_ok=True)


class Reloader:
    """Re-reads the configuration and applies it to a running server.

    Args:
        parser: the server's argument parser (with the operations options).
        argv: the command line the server was started with; it still wins.
        resolved: the options the server started with.
        transcript: the transcript sink, whose options may change.
        console_sink: the console sink, if any (``no-log-private`` applies to it).
        ssl_context: the listener's TLS context, if any; a new chain is loaded into it.
        status_path: where the outcome of each reload is written for ``admin reload``.
    """

    def __init__(
        self,
        parser: argparse.ArgumentParser,
        argv: Sequence[str],
        resolved: Resolved,
        *,
        transcript: Transcript | None = None,
        console_sink: ConsoleSink | None = None,
        ssl_context: ssl.SSLContext | None = None,
        status_path: Path | None = None,
    ) -> None:
        self._parser = parser
        self._argv = list(argv)
        self.current = resolved
        self._transcript = transcript
        self._console_sink = console_sink
        self._ssl_context = ssl_context
        self.status_path = status_path
        self.server: ChatServer | None = None
        self.reloads = 0

    def reload(self) -> bool:
        """Re-read the file and apply what changed; False when it was refused."""
        self.reloads += 1
        path = self.current.path
        if path is None:
            return self._done(False, "there is no --config file to re-read; nothing changed")
        try:
            new = resolve(self._parser, self._argv)
            self._check_tls(new.args)
        except ConfigError as exc:
            return self._done(False, f"reload refused, the old settings stay: {exc}")
        except SystemExit:  # argparse: the same command line cannot fail twice, but be safe
            return self._done(False, "reload refused: the command line no longer parses")
        for warning in new.warnings:
            log.warning(warning)
        old = self.current.args
        changed = [d for d in vars(new.args) if getattr(old, d, None) != getattr(new.args, d)]
        live = [d for d in changed if d in LIVE_KEYS and d not in ("tls_cert", "tls_key")]
        # Turning TLS on or off changes what the listener is: that takes a restart.
        tls_toggled = bool(old.tls_cert) != bool(new.args.tls_cert)
        restart = [
            d for d in changed if d not in LIVE_KEYS or (d.startswith("tls_") and tls_toggled)
        ]
        try:
            if "transcript" in live and self._transcript is not None:
                self._transcript.move_to(Path(new.args.transcript))
        except OSError as exc:
            return self._done(
                False,
                f"reload refused, the old settings stay: cannot open the transcript "
                f"{new.args.transcript}: {exc.strerror or exc}",
            )
        self._apply(new.args, live)
        tls = self._reload_tls(new.args) if not tls_toggled else ""
        # What takes a restart keeps the value the server runs with, so it is named
        # again at every reload until the restart.
        for dest in vars(new.args):
            if dest not in restart:
                setattr(old, dest, getattr(new.args, dest))
        self.current.origins = new.origins
        parts = [self._describe(dest, new.args) for dest in live] or ["no live changes"]
        message = f"reloaded {path}: " + "; ".join(parts)
        if tls:
            message += f"; {tls}"
        if restart:
            message += "; these take a restart and keep their old values until then: " + ", ".join(
                _key(d) for d in restart
            )
        return self._done(
            True, message, changed=[_key(d) for d in live], restart=[_key(d) for d in restart]
        )

    # ------------------------------------------------------------------ internals

    def _describe(self, dest: str, new: argparse.Namespace) -> str:
        if dest in _SECRET:
            return f"{_key(dest)} changed"
        return f"{_key(dest)} = {getattr(new, dest)}"

    def _check_tls(self, args: argparse.Namespace) -> None:
        """Load the chain into a fresh context first: a failure must not leave the live
        one with a new certificate and the old key."""
        if self._ssl_context is None or not args.tls_cert:
            return
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                args.tls_cert, args.tls_key
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the TLS certificate or key: {exc}") from None

    def _reload_tls(self, args: argparse.Namespace) -> str:
        # Always, even when the paths are the same: a renewal rewrites the files in place.
        if self._ssl_context is None or not args.tls_cert:
            return ""
        try:
            self._ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:  # changed since the check a moment ago
            log.error("the TLS certificate could not be reloaded: %s", exc)
            return "the TLS certificate could NOT be reloaded"
        return f"TLS certificate reloaded from {args.tls_cert} for new connections"

    def _apply(self, args: argparse.Namespace, live: list[str]) -> None:
        server = self.server
        if server is not None:
            config = server.config
            limits = [dest for dest in live if dest in _LIMIT_FIELDS]
            for dest in limits:
                setattr(config, _LIMIT_FIELDS[dest], getattr(args, dest))
            if "sendq" in limits:
                config.soft_sendq_bytes = min(args.sendq, MAX_SENDQ_BYTES // 4)
            if limits:
                server.apply_limits()
            if "password" in live:
                config.password = args.password or None
            if "allow_origin" in live:
                config.allow_origins[:] = args.allow_origin
            if "metrics_allow" in live and server.ops is not None:
                server.ops.set_allow(args.metrics_allow)
        transcript = self._transcript
        if transcript is not None:
            transcript.max_bytes = args.transcript_max_bytes
            transcript.backups = args.transcript_backups
            transcript.log_private = not args.no_log_private
        if self._console_sink is not None:
            self._console_sink.log_private = not args.no_log_private
        if "log_format" in live or "log_level" in live:
            configure_logging(args.log_format, args.log_level)

    def _done(self, ok: bool, message: str, **fields: Any) -> bool:
        extra = {"event": "reload", "outcome": "ok" if ok else "refused", **fields}
        if ok:
            log.info(message, extra=extra)
        else:
            log.error(message, extra=extra)
        if self.status_path is not None:
            with contextlib.suppress(OSError):
                self.status_path.write_text(f"{os.getpid()} {self.reloads}\n{message}\n")
        return ok


def admin_main(argv: Sequence[str], parser: argparse.ArgumentParser) -> int:
    """``chatroom-server admin reload``: ask the running server to re-read its file."""
    commands = argparse.ArgumentParser(
        prog="chatroom-server admin", description="Talk to a running chatroom-server."
    )
    sub = commands.add_subparsers(dest="command", required=True)
    reload = sub.add_parser(
        "reload",
        help="re-read the configuration file (as SIGHUP does) and print what changed",
        description="Finds the server through its pid file (in its data directory, or "
        "--pid-file), sends it SIGHUP and prints the outcome of the reload.",
    )
    reload.add_argument("--config", type=Path, metavar="FILE", help="the server's config file")
    reload.add_argument("--data-dir", type=Path, metavar="DIR", help="the server's data dir")
    reload.add_argument("--pid-file", type=Path, metavar="FILE", help="the server's pid file")
    args = commands.parse_args(argv)
    server_argv: list[str] = []
    for option in ("config", "data_dir", "pid_file"):
        if getattr(args, option) is not None:
            server_argv += [f"--{_key(option)}", str(getattr(args, option))]
    try:
        # The file is checked here first: a server told to read a broken file would
        # only refuse it.
        resolved = resolve(parser, server_argv, environ={})
    except ConfigError as exc:
        return _fail(f"{exc}; the server was not asked to reload")
    pid_path = pid_file_path(resolved.args)
    try:
        pid = int(pid_path.read_text().strip())
    except (OSError, ValueError):
        return _fail(
            f"no running server found: cannot read {pid_path} "
            "(give the --config, --data-dir or --pid-file the server runs with)"
        )
    cmdline = Path(f"/proc/{pid}/cmdline")
    with contextlib.suppress(OSError):
        if b"chatroom" not in cmdline.read_bytes():
            return _fail(f"{pid_path} names process {pid}, which is not chatroom-server")
    status = pid_path.with_suffix(".reload")
    before = _read(status)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return _fail(f"{pid_path} names process {pid}, which is not running")
    except PermissionError:
        return _fail(f"not allowed to signal process {pid} (run as the server's user)")
    deadline = time.monotonic() + RELOAD_ANSWER_S
    while time.monotonic() < deadline:
        answer = _read(status)
        if answer is not None and answer != before:
            message = answer.split("\n", 1)[1].strip() if "\n" in answer else answer
            print(message)
            return 0 if message.startswith("reloaded") else 1
        time.sleep(0.05)  # a command-line tool waiting on another process's file
    print(f"sent SIGHUP to process {pid}; it said nothing in {RELOAD_ANSWER_S:g} s (see its log)")
    return 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _fail(message: str) -> int:
    print(f"chatroom-server admin: {message}", file=sys.stderr)
    return 2
