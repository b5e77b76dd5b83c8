"""``chatroom-server --config FILE``: every command-line option as a key of a TOML file.

The keys are the long options without their dashes (``--flood-rate`` is
``flood-rate``), read from the server's own argument parser, so an option added there
has its key at once. The command line wins over the file, the file over the defaults;
for the password, ``CHATROOM_PASSWORD`` sits between the command line and the file.
What is wrong in a file is refused with its path, line, key and a hint, at the start
and at a reload alike (:mod:`chatroom.reload`).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import re
import stat
import sys
import textwrap
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatroom.address import AddressError, parse_address
from chatroom.history import parse_retention
from chatroom.logs import LOG_FORMATS, LOG_LEVELS

__all__ = [
    "LIVE_KEYS",
    "PID_FILE_NAME",
    "ConfigError",
    "Option",
    "Resolved",
    "add_ops_options",
    "config_main",
    "example",
    "options",
    "resolve",
]

PID_FILE_NAME = "chatroom-server.pid"
# Options a reload applies to the running server; every other one takes a restart.
LIVE_KEYS = frozenset(
    {
        "max_frame_bytes",
        "max_text",
        "sendq",
        "flood_rate",
        "flood_burst",
        "handshake_timeout",
        "ping_interval",
        "ping_timeout",
        "max_connections",
        "max_per_ip",
        "password",
        "tls_cert",
        "tls_key",
        "allow_origin",
        "transcript",
        "transcript_max_bytes",
        "transcript_backups",
        "no_log_private",
        "log_format",
        "log_level",
        "metrics_allow",
    }
)
# What the example file says of options whose --help says nothing.
_NOTES = {
    "max_frame_bytes": "the longest frame a client may send, in bytes (newline included)",
    "max_text": "the longest message, in characters",
    "flood_burst": "frames a connection may send at once before the flood rate applies",
    "handshake_timeout": "seconds a new connection has to send its hello",
    "ping_interval": "seconds of silence before the server pings a member",
    "ping_timeout": "seconds a member has to answer a ping",
    "max_connections": "open connections in all",
}
# Options that are no key: they say what to do, not how to run.
_NOT_KEYS = frozenset({"help", "version", "config"})


class ConfigError(Exception):
    """A configuration that cannot be used; the message says where and how to fix it."""


@dataclass(frozen=True)
class Option:
    """One command-line option seen as a key of the file."""

    key: str
    dest: str
    kind: str  # "int", "float", "str", "path", "bool" or "list"
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return f"--{self.key}"


def add_ops_options(parser: argparse.ArgumentParser) -> None:
    """The options of running the server for real: config file, logs, metrics."""
    ops = parser.add_argument_group("operations")
    ops.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="read options from this TOML file (the command line wins); SIGHUP re-reads it",
    )
    ops.add_argument("--log-format", choices=LOG_FORMATS, default="text", help="the log's format")
    ops.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="the least to log")
    ops.add_argument(
        "--metrics-allow",
        action="append",
        default=[],
        metavar="CIDR",
        help="a network besides loopback that may read /metrics and /healthz (repeatable)",
    )
    ops.add_argument(
        "--no-metrics", action="store_true", help="serve no /metrics and /healthz on the port"
    )
    ops.add_argument(
        "--pid-file",
        type=Path,
        metavar="FILE",
        help=f"where `admin reload` finds the server (default: DATA_DIR/{PID_FILE_NAME})",
    )


def options(parser: argparse.ArgumentParser) -> dict[str, Option]:
    """Every option of ``parser`` that has a key, by key, in the parser's order."""
    found: dict[str, Option] = {}
    for action in parser._actions:
        longs = [name for name in action.option_strings if name.startswith("--")]
        if not longs or action.dest in _NOT_KEYS:
            continue
        if action.nargs == 0:
            kind = "bool"
        elif isinstance(action.default, list):
            kind = "list"
        elif action.type is int:
            kind = "int"
        elif action.type is float:
            kind = "float"
        elif action.type is Path:
            kind = "path"
        else:
            kind = "str"
        key = longs[0][2:]
        choices = tuple(str(c) for c in action.choices) if action.choices else None
        help_text = _NOTES.get(action.dest, action.help or "")
        found[key] = Option(key, action.dest, kind, action.default, str(help_text), choices)
    return found


# Options that may hold a secret, and the environment variable that sets each between
# the command line and the file: ps shows a command line, not a process's environment.
SECRET_VARIABLES = {"password": "CHATROOM_PASSWORD", "cluster": "CHATROOM_CLUSTER"}


@dataclass
class Resolved:
    """The options in force and where each came from."""

    args: argparse.Namespace
    path: Path | None = None
    # dest -> "default", "file", "command line" or "environment"
    origins: dict[str, str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def where(self, option: Option) -> str:
        """How to name an option in a message: its flag, or the file's line and key."""
        if self.origins.get(option.dest) == "file":
            return f"{self.path}:{self.lines.get(option.dest, 1)}: {option.key}"
        if self.origins.get(option.dest) == "environment":
            return SECRET_VARIABLES.get(option.dest, option.flag)
        return option.flag


def resolve(
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    environ: Mapping[str, str] = os.environ,
) -> Resolved:
    """Parse ``argv`` over the file it names (``--config``) over the defaults.

    Raises:
        ConfigError: the file is unreadable or wrong, or a value is out of range.
        SystemExit: the command line itself is wrong (argparse's usage error).
    """
    given = _given_on_command_line(parser, argv)
    known = options(parser)
    by_dest = {option.dest: option for option in known.values()}
    args = argparse.Namespace(
        **{
            action.dest: list(action.default)
            if isinstance(action.default, list)
            else action.default
            for action in parser._actions
            if action.default is not argparse.SUPPRESS
        }
    )
    resolved = Resolved(args, origins=dict.fromkeys(by_dest, "default"))
    path: Path | None = vars(given).get("config")
    args.config = path
    if path is not None:
        resolved.path = path
        values, lines = _read_file(path, known)
        resolved.lines = lines
        for dest, value in values.items():
            setattr(args, dest, value)
            resolved.origins[dest] = "file"
        if "password" in values and _world_readable(path):
            resolved.warnings.append(
                f"{path} holds the password and anyone on this machine can read it; "
                f"chmod 600 {path} (or 640, group of the server's user)"
            )
    for dest, value in vars(given).items():
        setattr(args, dest, value)
        resolved.origins[dest] = "command line"
    for dest, variable in SECRET_VARIABLES.items():
        secret = environ.get(variable)
        if secret and resolved.origins.get(dest) != "command line":
            setattr(args, dest, secret)
            resolved.origins[dest] = "environment"
    _check(resolved, by_dest)
    return resolved


def _given_on_command_line(
    parser: argparse.ArgumentParser, argv: Sequence[str]
) -> argparse.Namespace:
    """Only what ``argv`` says: every default set aside for one parse."""
    defaults = {id(action): action.default for action in parser._actions}
    try:
        for action in parser._actions:
            action.default = argparse.SUPPRESS
        return parser.parse_args(argv)
    finally:
        for action in parser._actions:
            action.default = defaults[id(action)]


def _world_readable(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & stat.S_IROTH)
    except OSError:
        return False


def _toml(value: Any) -> str:
    """``value`` as TOML writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


_KIND_NAMES = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "path": "a path, as a string",
    "bool": "true or false",
    "list": "a list of strings",
}


def _type_name(value: Any) -> str:
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _line_of(text: str, key: str) -> int:
    """The line where ``key`` is set or opens a table (1 when it cannot be found)."""
    quoted = re.escape(key)
    pattern = re.compile(
        rf"""^[ \t]*(?:\[+[ \t]*)?(?:{quoted}|"{quoted}"|'{quoted}')[ \t]*[=.\]]""",
        re.MULTILINE,
    )
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def _read_file(path: Path, known: Mapping[str, Option]) -> tuple[dict[str, Any], dict[str, int]]:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text, which TOML requires") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key, value in data.items():
        line = _line_of(text, key)
        where = f"{path}:{line}: {key}"
        option = known.get(key)
        if option is None:
            guess = difflib.get_close_matches(key.replace("_", "-"), list(known), n=1)
            hint = f"did you mean {guess[0]!r}?" if guess else "no option has that name;"
            if isinstance(value, dict) and not guess:
                hint = "keys go at the top level, not in [tables];"
            raise ConfigError(
                f"{path}:{line}: unknown key {key!r}: {hint} "
                "`chatroom-server config example` lists every key"
            )
        values[option.dest] = _typed(option, value, where, path)
        lines[option.dest] = line
    return values, lines


def _typed(option: Option, value: Any, where: str, path: Path) -> Any:
    kind = option.kind
    ok = {
        "int": type(value) is int,
        "float": type(value) in (int, float),
        "str": type(value) is str,
        "path": type(value) is str and value != "",
        "bool": type(value) is bool,
        "list": type(value) is list and all(type(item) is str for item in value),
    }[kind]
    if not ok:
        sample = option.default if option.default not in (None, []) else _SAMPLES[kind]
        raise ConfigError(
            f"{where} must be {_KIND_NAMES[kind]}, not {_type_name(value)}; "
            f"for example: {option.key} = {_toml(sample)}"
        )
    if option.choices is not None and value not in option.choices:
        raise ConfigError(f"{where} = {_toml(value)}: must be one of {', '.join(option.choices)}")
    if kind == "float":
        return float(value)
    if kind == "path":
        # Relative to the file, not to wherever the server happened to be started.
        return path.parent.absolute() / value if not Path(value).is_absolute() else Path(value)
    if kind == "list":
        return list(value)
    return value


_SAMPLES: dict[str, Any] = {
    "int": 10,
    "float": 1.5,
    "str": "text",
    "path": "/path/to/file",
    "bool": True,
    "list": ["one", "two"],
}


def _at_least(least: int) -> Callable[[Any], str | None]:
    return lambda value: None if value >= least else f"must be at least {least}"


def _more_than_zero(value: float) -> str | None:
    # NaN passes no comparison, so it is refused here too.
    return None if value > 0 and not math.isinf(value) else "must be more than 0 seconds"


def _zero_or_more(value: int) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _bind(value: str) -> str | None:
    try:
        parse_address(value, default_host="0.0.0.0")
    except AddressError as exc:
        return str(exc)
    return None


def _retention(value: str) -> str | None:
    try:
        parse_retention(value)
    except ValueError as exc:
        return str(exc)
    return None


def _networks(value: list[str]) -> str | None:
    from chatroom.metrics import parse_networks

    try:
        parse_networks(value)
    except ValueError as exc:
        return str(exc)
    return None


# The ranges every value must be in, wherever it came from. (Zero or negative timers
# would close every connection at once; a negative history length made every join fail.)
_RULES: dict[str, Callable[[Any], str | None]] = {
    "bind": _bind,
    "max_frame_bytes": _at_least(64),
    "max_text": _at_least(1),
    "sendq": _at_least(1),
    "flood_burst": _at_least(1),
    "max_connections": _at_least(1),
    "max_per_ip": _at_least(1),
    "handshake_timeout": _more_than_zero,
    "ping_interval": _more_than_zero,
    "ping_timeout": _more_than_zero,
    "history": _zero_or_more,
    "transcript_max_bytes": _zero_or_more,
    "transcript_backups": _zero_or_more,
    "history_retention": _retention,
    "metrics_allow": _networks,
}


def _check(resolved: Resolved, by_dest: Mapping[str, Option]) -> None:
    args = resolved.args
    for dest, rule in _RULES.items():
        option = by_dest.get(dest)
        if option is None:
            continue
        problem = rule(getattr(args, dest))
        if problem is None:
            continue
        where = resolved.where(option)
        if resolved.origins.get(dest) == "file":
            raise ConfigError(
                f"{where} = {_toml(getattr(args, dest))}: {problem} "
                f"(the default is {_toml(option.default)})"
            )
        raise ConfigError(f"{where} {problem}")
    if bool(args.tls_cert) != bool(args.tls_key):
        cert, key = by_dest["tls_cert"], by_dest["tls_key"]
        if "file" in (resolved.origins.get("tls_cert"), resolved.origins.get("tls_key")):
            named = cert if args.tls_cert else key
            raise ConfigError(f"{resolved.where(named)}: tls-cert and tls-key go together")
        raise ConfigError(f"{cert.flag} and {key.flag} go together")


def example(parser: argparse.ArgumentParser) -> str:
    """A commented config file with every key at its default."""
    known = options(parser)
    by_dest = {option.dest: option for option in known.values()}
    out = [
        "# chatroom-server configuration: chatroom-server --config THIS_FILE",
        "# Every key is a command-line option without its leading dashes; an option given",
        "# on the command line wins over this file. Relative paths are relative to this",
        "# file's directory. SIGHUP (or `chatroom-server admin reload`) re-reads it:",
        '# keys marked "live" change at once, the others at the next restart.',
    ]
    for group in parser._action_groups:
        members = [by_dest[a.dest] for a in group._group_actions if a.dest in by_dest]
        if not members:
            continue
        title = group.title or ""
        heading = "general" if title in ("options", "optional arguments") else title
        out += ["", f"# ---- {heading}"]
        for option in members:
            live = "live" if option.dest in LIVE_KEYS else "restart"
            description = option.help.replace("%(default)s", str(option.default))
            if option.dest == "password":
                description = (
                    "the password members must give; keep this file unreadable to others "
                    "(chmod 600); CHATROOM_PASSWORD, when set, wins over it"
                )
            comment = f"{description} [{live}]" if description else f"[{live}]"
            out += textwrap.wrap(comment, 86, initial_indent="# ", subsequent_indent="#   ")
            if option.choices:
                out.append(f"# one of: {', '.join(option.choices)}")
            if option.default is None:
                sample = _SAMPLES[option.kind] if option.kind != "str" else "secret"
                out.append(f"# {option.key} = {_toml(sample)}")
            else:
                out.append(f"{option.key} = {_toml(option.default)}")
    return "\n".join(out) + "\n"


def config_main(argv: Sequence[str], parser: argparse.ArgumentParser) -> int:
    """``chatroom-server config example|check FILE``."""
    commands = argparse.ArgumentParser(
        prog="chatroom-server config", description="Write or check a configuration file."
    )
    sub = commands.add_subparsers(dest="command", required=True)
    sub.add_parser("example", help="print a commented file with every key at its default")
    check = sub.add_parser("check", help="read a file as the server would, and say what is wrong")
    check.add_argument("file", type=Path)
    args = commands.parse_args(argv)
    if args.command == "example":
        sys.stdout.write(example(parser))
        return 0
    try:
        resolved = resolve(parser, ["--config", str(args.file)], environ={})
    except ConfigError as exc:
        print(f"chatroom-server: {exc}", file=sys.stderr)
        return 2
    for warning in resolved.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.file}: ok ({len(resolved.lines)} keys)")
    return 0
