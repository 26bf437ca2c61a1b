"""Settings: environment variables and flags, and refusals with a clear reason."""

from __future__ import annotations

import pytest

from cowrite.server.config import Settings


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    env = {"COWRITE_PORT": "9001", "COWRITE_LOG_JSON": "false", "COWRITE_IDLE_AFTER_S": "2.5"}
    settings = Settings.from_env(env)
    assert (settings.port, settings.log_json, settings.idle_after_s) == (9001, False, 2.5)
    assert Settings.from_env(env, port=9002).port == 9002


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"COWRITE_PORT": "eighty"}, "COWRITE_PORT='eighty' is not a valid int"),
        ({"COWRITE_LOG_JSON": "maybe"}, "COWRITE_LOG_JSON='maybe' is not a valid bool"),
        ({"COWRITE_PORT": "70000"}, "port 70000 out of range"),
        ({"COWRITE_HEARTBEAT_TIMEOUT_S": "1"}, "heartbeat_timeout_s must exceed heartbeat_s"),
        ({"COWRITE_OUTBOX_MESSAGES": "0"}, "outbox_messages must be positive"),
        ({"COWRITE_SNAPSHOT_EVERY_BYTES": "0"}, "snapshot_every_bytes must be positive"),
        ({"COWRITE_SNAPSHOT_EVERY_BYTES": "1MB"}, "is not a valid int"),
        ({"COWRITE_HISTORY_TIME_RESOLUTION_MS": "0"}, "history_time_resolution_ms must be"),
        ({"COWRITE_HISTORY_YJS_KEPT_BYTES": "-1"}, "history_yjs_kept_bytes must not be negative"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValueError) as exc:
        Settings.from_env(env)
    assert fragment in str(exc.value)


def test_serve_refuses_bad_settings_without_a_traceback() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "COWRITE_PORT": "eighty"}
    proc = subprocess.run(
        [sys.executable, "-m", "cowrite.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "COWRITE_PORT='eighty' is not a valid int" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_limits_must_be_positive() -> None:
    for name in ("outbox_bytes", "presence_per_second", "join_burst", "http_request_timeout_s"):
        with pytest.raises(ValueError, match=name):
            Settings.from_env({f"COWRITE_{name.upper()}": "0"})


def test_default_heartbeat_drops_a_dead_client_within_60_s_and_clients_wait_longer() -> None:
    """The field's pace (y-websocket pings every 30 s and drops a client that did not answer
    the previous ping; Hocuspocus' timeout is 30 s): a client silent since just after a beat
    is dropped at the first beat that finds it silent for over ``heartbeat_timeout_s``; and a
    client waits for the server longer than one heartbeat (``silence_limit_s``)."""
    from cowrite.client.transport import silence_limit_s

    s = Settings()
    assert s.heartbeat_s == 30
    beats = int(s.heartbeat_timeout_s // s.heartbeat_s) + 1
    assert beats == 2  # one missed pong is tolerated up to the next beat, not two
    assert beats * s.heartbeat_s <= 60
    assert silence_limit_s(s.heartbeat_s) - s.heartbeat_s >= 10  # room for a late ping
