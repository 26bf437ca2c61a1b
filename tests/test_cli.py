"""The ``cowrite`` command as a new user meets it: refusals in one clear line, ``--version``, and
the URL to open printed plainly once the server listens."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest

COWRITE = [sys.executable, "-m", "cowrite.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COWRITE_")}
    return subprocess.run(
        [*COWRITE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_version(tmp_path: Path) -> None:
    proc = run("--version", cwd=tmp_path)
    assert proc.returncode == 0
    # and which engine build runs (the child gets no COWRITE_* variables: the default choice)
    assert proc.stdout.strip() == f"cowrite {version('cowrite')} (engine: {default_build()})"


def default_build() -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COWRITE_")}
    code = "import cowrite.engine as e; print(e.engine_build())"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    build = done.stdout.strip()
    assert build == "mypyc-compiled" or build.startswith("pure Python")
    return build


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--database", "garbage", "--database 'garbage' (COWRITE_DATABASE) is not a postgresql://"),
        ("--database", "mysql://db/x", "--database 'mysql://db/x' (COWRITE_DATABASE) is not a"),
        ("--database", "sqlite:///x.db", "for SQLite use --data FILE"),
        ("--data", "mysql://db/x", "--data 'mysql://db/x' (COWRITE_DATA) is a URL, not a SQLite"),
        ("--redis", "localhost:6379", "--redis 'localhost:6379' (COWRITE_REDIS) is not a redis://"),
    ],
)
def test_unknown_database_schemes_are_refused(
    tmp_path: Path, flag: str, value: str, says: str
) -> None:
    proc = run("serve", "--port", "0", flag, value, cwd=tmp_path)
    assert proc.returncode == 2
    assert says in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert list(tmp_path.iterdir()) == []  # no SQLite file named after the URL


def test_a_failed_start_is_one_clear_line(tmp_path: Path) -> None:
    proc = run("serve", "--port", "0", "--data", str(tmp_path / "missing" / "x.db"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("cowrite serve: cannot start: ")
    assert "x.db" in last and len(last) < 400


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run("serve", "--port", str(port), "--data", ":memory:", cwd=tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("cowrite serve: cannot start: ") and "address already in use" in last


async def test_the_url_to_open_is_printed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COWRITE_")}
    proc = await asyncio.create_subprocess_exec(
        *COWRITE, "serve", "--port", "0", "--data", ":memory:",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert line.startswith("cowrite is running: open http://127.0.0.1:")
        url = line.split("open ", 1)[1].split()[0]
        assert url.endswith("/")
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        assert b"<html" in body.lower()
    finally:
        proc.terminate()
        await proc.wait()


def test_token_mints_what_the_server_verifies(tmp_path: Path) -> None:
    from urllib.parse import parse_qs, urlsplit

    from cowrite.server.auth import verify

    secret = "s" * 40
    proc = run(
        "token", "--secret", secret, "--user", "u1", "--name", "Ann", "--color", "#123456",
        "--doc", "notes=read,write", "--doc", "*=read", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    who = verify(proc.stdout.strip(), secret)
    assert (who.user_id, who.name, who.color) == ("u1", "Ann", "#123456")
    assert who.docs == {"notes": frozenset({"read", "write"}), "*": frozenset({"read"})}
    link = run("token", "--secret", secret, "--user", "u1", "--url", "127.0.0.1:8000", cwd=tmp_path)
    parts = urlsplit(link.stdout.strip())
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "127.0.0.1:8000", "/")
    assert verify(parse_qs(parts.query)["token"][0], secret).docs == {
        "*": frozenset({"read", "write", "chat"})
    }


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--user", "u"], "give --secret or set COWRITE_SECRET"),
        (["--secret", "x", "--user", "u", "--doc", "notes"], "expected DOC=RIGHTS"),
        (["--secret", "x", "--user", "u", "--doc", "notes=fly"], "unknown right 'fly'"),
        (["--secret", "x", "--user", "u", "--doc", "=read"], "expected DOC=RIGHTS"),
        (["--secret", "x", "--user", "u", "--ttl", "0"], "--ttl must be a positive"),
    ],
)
def test_token_refuses_bad_arguments_in_one_line(
    tmp_path: Path, args: list[str], reason: str
) -> None:
    proc = run("token", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert reason in proc.stderr and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
