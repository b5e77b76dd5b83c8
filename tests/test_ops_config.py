"""The configuration file: every key, the command line's precedence, refused files."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import TIMEOUT_S

from chatroom.cli import _server_parser
from chatroom.config import ConfigError, add_ops_options, example, options, resolve

SERVER = str(Path(sys.executable).parent / "chatroom-server")


def _parser() -> argparse.ArgumentParser:
    parser = _server_parser()
    add_ops_options(parser)
    return parser


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chatroom.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


# A value other than the default for every key, as TOML and as the option it sets.
EVERY_KEY: dict[str, tuple[str, Any]] = {
    "bind": ('"127.0.0.1:6000"', "127.0.0.1:6000"),
    "transcript": ('"/var/log/chat/t.log"', Path("/var/log/chat/t.log")),
    "transcript-max-bytes": ("1000", 1000),
    "transcript-backups": ("2", 2),
    "quiet": ("true", True),
    "history": ("50", 50),
    "lazy-members-above": ("30", 30),
    "data-dir": ('"/var/lib/chat"', Path("/var/lib/chat")),
    "history-retention": ('"30d"', "30d"),
    "no-log-private": ("true", True),
    "no-history": ("true", True),
    "loop": ('"uvloop"', "uvloop"),
    "max-frame-bytes": ("4096", 4096),
    "max-text": ("500", 500),
    "sendq": ("65536", 65536),
    "flood-rate": ("2", 2.0),
    "flood-burst": ("4", 4),
    "handshake-timeout": ("3.5", 3.5),
    "ping-interval": ("20", 20.0),
    "ping-timeout": ("7", 7.0),
    "max-connections": ("100", 100),
    "max-per-ip": ("3", 3),
    "password": ('"hunter2"', "hunter2"),
    "tls-cert": ('"/etc/chat/cert.pem"', Path("/etc/chat/cert.pem")),
    "tls-key": ('"/etc/chat/key.pem"', Path("/etc/chat/key.pem")),
    "allow-origin": ('["https://chat.example.org"]', ["https://chat.example.org"]),
    "no-web": ("true", True),
    "irc": ('"0.0.0.0:6667"', "0.0.0.0:6667"),
    "server-name": ('"chat.example.org"', "chat.example.org"),
    "cluster": ('"redis://10.0.0.5:6379/0"', "redis://10.0.0.5:6379/0"),
    "node-id": ('"a"', "a"),
    "cluster-lease": ("3", 3.0),
    "argon2": ('"19456,2,1"', "19456,2,1"),
    "log-format": ('"json"', "json"),
    "log-level": ('"debug"', "debug"),
    "metrics-allow": ('["10.0.0.0/8"]', ["10.0.0.0/8"]),
    "no-metrics": ("true", True),
    "pid-file": ('"/run/chat.pid"', Path("/run/chat.pid")),
}


def test_every_option_has_a_key_and_every_key_is_read(tmp_path: Path) -> None:
    """A file setting every key: each option takes the file's value."""
    known = options(_parser())
    assert set(known) == set(EVERY_KEY)
    path = _write(tmp_path, "".join(f"{key} = {toml}\n" for key, (toml, _) in EVERY_KEY.items()))
    resolved = resolve(_parser(), ["--config", str(path)], environ={})
    for key, (_, expected) in EVERY_KEY.items():
        assert getattr(resolved.args, known[key].dest) == expected, key
        assert resolved.origins[known[key].dest] == "file"
    assert resolved.lines[known["pid-file"].dest] == len(EVERY_KEY)


def test_example_is_every_default(tmp_path: Path) -> None:
    """`config example` is valid TOML with every key that has a default, at it."""
    parser = _parser()
    text = example(parser)
    data = tomllib.loads(text)
    known = options(parser)
    assert set(data) == {key for key, option in known.items() if option.default is not None}
    commented = {key for key, option in known.items() if option.default is None}
    assert all(f"# {key} = " in text for key in commented)
    path = _write(tmp_path, text)
    from_file = resolve(_parser(), ["--config", str(path)], environ={}).args
    defaults = resolve(_parser(), [], environ={}).args
    for key, option in known.items():
        if key == "transcript":  # relative: beside the file
            assert from_file.transcript == tmp_path / defaults.transcript
        else:
            assert getattr(from_file, option.dest) == getattr(defaults, option.dest), key


def test_command_line_wins_then_environment_then_file(tmp_path: Path) -> None:
    """The command line beats the file, lists included; CHATROOM_PASSWORD beats the
    file's password but not --password."""
    path = _write(
        tmp_path, 'flood-rate = 1\npassword = "from-file"\nallow-origin = ["https://a.example"]\n'
    )
    argv = ["--config", str(path), "--flood-rate", "3", "--allow-origin", "https://b.example"]
    resolved = resolve(_parser(), argv, environ={})
    assert resolved.args.flood_rate == 3.0
    assert resolved.origins["flood_rate"] == "command line"
    assert resolved.args.allow_origin == ["https://b.example"]
    assert resolved.args.password == "from-file"
    env = {"CHATROOM_PASSWORD": "from-env"}
    assert resolve(_parser(), argv, environ=env).args.password == "from-env"
    with_flag = resolve(_parser(), [*argv, "--password", "flag"], environ=env)
    assert with_flag.args.password == "flag"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('bind = "127.0.0.1:0"\nflood_rate = 2\n', 2, ["unknown key 'flood_rate'", "flood-rate"]),
        ('quiet = true\nflood-burst = "10"\n', 2, ["flood-burst", "whole number", "= 10"]),
        ("\n\nhistory = -1\n", 3, ["history = -1", "0 or more", "default is 100"]),
        ("handshake-timeout = 0\n", 1, ["handshake-timeout", "more than 0 seconds"]),
        ('bind = "nowhere:port"\n', 1, ["bind", "default is"]),
        ('log-format = "xml"\n', 1, ["log-format", "text, json"]),
        ('metrics-allow = ["10.0.0.0/33"]\n', 1, ["metrics-allow", "not a network"]),
        ('history-retention = "soon"\n', 1, ["history-retention", "30d"]),
        ("[limits]\nflood-rate = 2\n", 1, ["unknown key 'limits'", "top level"]),
        ('tls-cert = "c.pem"\n', 1, ["tls-cert", "go together"]),
        ("quiet = yes\n", 1, ["not valid TOML", "line 1"]),
    ],
)
def test_bad_files_are_refused_with_file_line_key_and_hint(
    tmp_path: Path, text: str, line: int, words: list[str]
) -> None:
    """Unknown keys, wrong types and bad values: the message names the file, the line,
    the key and what to write instead."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        resolve(_parser(), ["--config", str(path)], environ={})
    message = str(caught.value)
    assert str(path) in message
    assert f":{line}:" in message or f"line {line}" in message, message
    for word in words:
        assert word in message, message


def test_missing_file_is_refused(tmp_path: Path) -> None:
    """A config file that is not there: one clear error."""
    with pytest.raises(ConfigError, match="cannot read the config file"):
        resolve(_parser(), ["--config", str(tmp_path / "absent.toml")], environ={})


def test_world_readable_file_with_a_password_is_warned_about(tmp_path: Path) -> None:
    """A password in a file anyone can read: a warning that says how to fix it."""
    path = _write(tmp_path, 'password = "pw"\n')
    assert resolve(_parser(), ["--config", str(path)], environ={}).warnings == []
    path.chmod(0o644)
    warnings = resolve(_parser(), ["--config", str(path)], environ={}).warnings
    assert len(warnings) == 1 and "chmod 600" in warnings[0] and "pw" not in warnings[0]


def test_server_refuses_a_bad_file_in_one_line(tmp_path: Path) -> None:
    """chatroom-server --config with a bad file: one line on stderr, exit 2."""
    path = _write(tmp_path, "max-text = 0\n")
    result = subprocess.run(
        [SERVER, "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S * 2,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"chatroom-server: {path}:1: max-text = 0: must be at least 1 (the default is 4000)"
    ]


def test_config_subcommands(tmp_path: Path) -> None:
    """`config example` prints the file; `config check` says ok or what is wrong."""
    run = [SERVER, "config"]
    printed = subprocess.run(
        [*run, "example"], capture_output=True, text=True, timeout=TIMEOUT_S * 2, check=True
    )
    assert "flood-rate = 5.0" in printed.stdout
    good = _write(tmp_path, printed.stdout)
    checked = subprocess.run(
        [*run, "check", str(good)], capture_output=True, text=True, timeout=TIMEOUT_S * 2
    )
    assert checked.returncode == 0 and "ok" in checked.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("sendq = 0\n")
    refused = subprocess.run(
        [*run, "check", str(bad)], capture_output=True, text=True, timeout=TIMEOUT_S * 2
    )
    assert refused.returncode == 2 and "bad.toml:1: sendq" in refused.stderr
