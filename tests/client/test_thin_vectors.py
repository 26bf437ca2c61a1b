"""The shared thin-client test vectors (``tests/vectors/thin/*.json``, schema in
``tests/vectors/README.md``) against the Python SDK's core, ``ThinDocState``; the same files run
against the JavaScript client in ``web/test/thin_vectors.test.js`` (run from here too), and
regenerating them from the real ``Room`` must give the committed files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cowrite import protocol as p
from cowrite.client.thin import ThinDocState

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"
FILES = sorted((VECTORS / "thin").glob("*.json"))
NODE = shutil.which("node")
EVENTS = {"join", "send", "local", "receive", "disconnect", "cursor_to_local", "cursor_to_server"}


def clean(value: Any) -> Any:
    """Wire JSON with ``"key": null`` left out (the vectors' spelling of a register write)."""
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        out = {k: clean(v) for k, v in value.items()}
        if out.get("type") == "set" and out.get("key", 0) is None:
            del out["key"]
        return out
    return value


def wire(msg: Any) -> Any:
    return clean(msgspec.to_builtins(msg))


def run_step(state: ThinDocState, step: dict[str, Any]) -> dict[str, Any]:
    """Carry out one event; what the client then shows and sends, spelled like ``expect``."""
    got: dict[str, Any] = {}
    event = step["event"]
    if event == "join":
        msg = state.join_message(create=True)
        got["sends"] = {
            "type": "join",
            "doc": msg.doc,
            "mode": msg.mode,
            "version": msg.version,
            "epoch": msg.epoch,
            "state": msg.state,
            "inflight": msg.inflight,
        }
    elif event == "send":
        got["sends"] = wire(state.take_batch())
    elif event == "local":
        op = msgspec.convert(step["op"], p.EditOp)
        if isinstance(op, p.SeqEdit):
            state.local_edit(op.node, op.edit)
        elif isinstance(op, p.SetKey):
            state.local_set(op.node, op.key, op.value)
        elif isinstance(op, p.DeleteKey):
            state.local_delete(op.node, op.key)
        else:
            state.local_add(op.node, op.amount)
    elif event == "receive":
        msg = msgspec.convert(step["message"], p.ServerMessage)
        changes: list[p.EditOp] = []
        if isinstance(msg, p.Joined):
            changes = state.on_joined(msg)
        elif isinstance(msg, p.Remote):
            changes = state.on_remote(msg)
        elif isinstance(msg, p.Ack):
            changes = state.on_ack(msg)
        elif isinstance(msg, p.Error):
            changes = state.on_error(msg).changes
        elif isinstance(msg, p.Resync):
            state.on_resync()
        got["changes"] = wire(changes)
    elif event == "disconnect":
        state.on_disconnect()
    elif event == "cursor_to_local":
        where = state.cursor_to_local(msgspec.convert(step["cursor"], p.Cursor))
        got["cursor"] = list(where) if where is not None else None
    elif event == "cursor_to_server":
        got["cursor"] = wire(state.cursor_to_server(step["node"], step["anchor"], step["head"]))
    else:  # pragma: no cover - the schema test names every event
        raise AssertionError(f"unknown event {event!r}")
    state.check_invariants()
    got["shows"] = {node: state.value(node) for node in sorted(state.local)}
    got["version"] = state.version
    got["synced"] = state.synced
    got["rejoin"] = state.rejoin_needed
    return got


def test_there_are_enough_vectors_and_they_follow_the_schema() -> None:
    assert len(FILES) >= 20
    for path in FILES:
        vector = json.loads(path.read_text(encoding="utf-8"))
        assert vector["name"] == path.stem
        assert set(vector) == {
            "name",
            "about",
            "client",
            "initial",
            "server_history",
            "steps",
            "final",
        }
        for step in vector["steps"]:
            assert step["event"] in EVENTS, (path.name, step)
            assert {"shows", "version", "synced", "rejoin"} <= set(step["expect"])


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_the_python_client_follows_the_vector(path: Path) -> None:
    vector = json.loads(path.read_text(encoding="utf-8"))
    client = vector["client"]
    state = ThinDocState(
        client["doc"], client["client_id"], edit_id_prefix=client["edit_id_prefix"]
    )
    for i, step in enumerate(vector["steps"]):
        got = run_step(state, step)
        assert got == step["expect"], f"{path.name} step {i} ({step['event']})"
    final = vector["final"]
    assert state.synced and state.version == final["version"]
    for node, value in final["document"].items():
        assert state.value(node) == value


def test_regenerating_the_vectors_from_the_room_gives_the_committed_files() -> None:
    sys.path.insert(0, str(VECTORS))
    try:
        import generate
    finally:
        sys.path.remove(str(VECTORS))
    files = generate.generate()
    assert sorted(files) == [f.name for f in FILES], "run: python tests/vectors/generate.py"
    for name, text in files.items():
        assert (VECTORS / "thin" / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run python tests/vectors/generate.py"
        )


def _fuzz() -> Any:
    sys.path.insert(0, str(VECTORS))
    try:
        import fuzz
        import generate
    finally:
        sys.path.remove(str(VECTORS))
    return fuzz, generate


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(rng=st.randoms(use_true_random=False))
def test_random_schedules_keep_the_sdk_with_the_room(rng: Any) -> None:
    """Recording checks every step against the real Room (see ``vectors.py``); Hypothesis draws
    the schedule (and shrinks it when a check fails)."""
    fuzz, _ = _fuzz()
    fuzz.Fuzz("hypothesis", rng, 50).run().finish()


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_python_and_javascript_agree_on_fresh_random_schedules(tmp_path: Path) -> None:
    """Differential: 40 more seeded schedules, recorded from the SDK against the Room, replayed
    by ``thin.js`` (``COWRITE_VECTORS`` points the node runner at them)."""
    fuzz, generate = _fuzz()
    for seed in range(1000, 1040):
        vector = fuzz.fuzz(seed, 60)().finish()
        (tmp_path / f"fuzz-{seed}.json").write_text(generate.render(vector), encoding="utf-8")
    done = subprocess.run(
        [NODE or "node", "--test", str(ROOT / "web" / "test" / "thin_vectors.test.js")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COWRITE_VECTORS": str(tmp_path)},
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_the_javascript_client_follows_the_vectors() -> None:
    """``node --test web/test/thin_vectors.test.js``: the same files against ``thin.js``."""
    done = subprocess.run(
        [NODE or "node", "--test", str(ROOT / "web" / "test" / "thin_vectors.test.js")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-3000:]
