"""The service files in deploy/: the systemd unit passes systemd-analyze, and the
container file and sample config say what the README promises."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from chatroom.cli import _server_parser
from chatroom.config import add_ops_options, resolve

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """systemd-analyze verify finds nothing to say about the unit (with ExecStart
    pointed at this environment's chatroom-server, since it checks the file exists)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have systemd-analyze (.ci/run installs systemd)")
        pytest.skip("systemd-analyze is not installed")
    server = Path(sys.executable).parent / "chatroom-server"
    unit = (DEPLOY / "chatroom.service").read_text()
    copy = tmp_path / "chatroom.service"
    copy.write_text(unit.replace("/usr/local/bin/chatroom-server", str(server)))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_systemd_unit_is_hardened_and_reloads() -> None:
    """The settings the README relies on are in the unit."""
    lines = set((DEPLOY / "chatroom.service").read_text().splitlines())
    for setting in (
        "User=chatroom",
        "StateDirectory=chatroom",
        "LogsDirectory=chatroom",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert setting in lines, setting


def test_sample_config_is_valid_for_the_unit(tmp_path: Path) -> None:
    """deploy/chatroom.toml is accepted as is and uses the unit's directories."""
    parser = _server_parser()
    add_ops_options(parser)
    args = resolve(parser, ["--config", str(DEPLOY / "chatroom.toml")], environ={}).args
    assert args.data_dir == Path("/var/lib/chatroom")
    assert str(args.transcript).startswith("/var/log/chatroom/")
    assert tomllib.loads((DEPLOY / "chatroom.toml").read_text())["log-format"] == "json"


def test_containerfile_runs_as_a_user_with_a_data_volume() -> None:
    """Python slim, pip install ., a non-root user, /data as a volume, port 5000."""
    text = (DEPLOY / "Containerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    for line in (
        "RUN pip install --no-cache-dir .",
        "USER chatroom",
        "VOLUME /data",
        "EXPOSE 5000",
    ):
        assert line in text
