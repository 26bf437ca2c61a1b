"""Exactly-once keys: who an edit key belongs to, what the edit said, and how both are stored.

A thin client names each batch ``(client_id, edit_id)`` and resends it with the same name until it
is acknowledged; the server recognises the name and acknowledges instead of applying it again.
Three things make that safe against other clients:

* **Scope.** ``client_id`` and edit ids are visible to every member (each ``remote`` carries them)
  and chosen by the client, so a key is scoped by the authenticated user: ``key_client`` prefixes
  the client id with a tag of the user id. Another user who sends the same ``client_id`` and edit
  ids gets other keys, so cannot make the victim's next edits look like resends.
* **Digest.** ``edit_digest`` names what a thin batch does in a way rebasing does not change
  (inserted content, keys written, values, amounts; not positions), so a true resend (rebased
  over what happened since) matches and a reused edit id with other content is refused
  (``edit_id_reused``) instead of being acknowledged and dropped. A replica's ``sync`` needs no
  digest: its resend adds nothing to the document (``delta_is_known``); one that adds something
  is other content.
* **Stored form.** An update in the log carries the scoped key and the digest (``wrap_update``), so
  a room replaying its log after a restart recognises resends exactly as before the restart.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from typing import Any

import msgspec

from cowrite import protocol as p
from cowrite.engine import Document, decode_ops, op_span

SCOPE_SEPARATOR = "\x1f"
"""Between the user tag and the client id in a scoped key (a tag is hex: it never holds one)."""

_UPDATE_V1 = b"CWU\x01"  # client id, edit id, delta
_UPDATE_V2 = b"CWU\x02"  # client key, edit id, digest, delta
_UPDATE_V3 = b"CWU\x03"  # client key, edit id, digest, extra (4-byte length), delta

_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_LENGTHS = struct.Struct(">H")


def key_client(user_id: str, client_id: str) -> str:
    """The client part of an edit key: ``client_id`` scoped by the authenticated ``user_id``."""
    return f"{_user_tag(user_id)}{SCOPE_SEPARATOR}{client_id}"


@functools.lru_cache(maxsize=4096)
def _user_tag(user_id: str) -> str:
    """(Cached: the hub scopes the key of every edit it receives, most of them by a few users.)"""
    return hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def client_of(key: str) -> str:
    """The client id of a key made by `key_client` (an unscoped key, from before: itself)."""
    tag, sep, client_id = key.partition(SCOPE_SEPARATOR)
    if sep and len(tag) == 24:
        return client_id
    return key


def edit_digest(ops: list[p.EditOp]) -> str:
    """A digest of what a thin batch does that a rebase leaves unchanged.

    Rebasing moves positions, may shrink or drop deletions (someone else deleted the same
    elements) and so join inserts that a deletion separated, or drop an op that only deleted:
    per sequence op only the concatenation of what it inserts counts (nothing for an op that
    inserts nothing); map keys and values and counter amounts count as they are.
    """
    if len(ops) == 1 and type(ops[0]) is p.SeqEdit:  # typing: one text op, no list items
        texts = []
        for c in ops[0].edit:
            if isinstance(c, str):
                texts.append(c)
            elif isinstance(c, list):
                break
        else:
            text = "".join(texts)
            data = _encode_sorted([["seq", ops[0].node, text, []]] if text else [])
            return hashlib.sha256(data).hexdigest()[:32]
    parts: list[Any] = []
    for op in ops:
        if isinstance(op, p.SeqEdit):
            text = "".join(c for c in op.edit if isinstance(c, str))
            items = [x for c in op.edit if isinstance(c, list) for x in c]
            if text or items:
                parts.append(["seq", op.node, text, items])
        elif isinstance(op, p.SetKey):
            parts.append(["set", op.node, op.key, op.value])
        elif isinstance(op, p.DeleteKey):
            parts.append(["del", op.node, op.key])
        else:
            parts.append(["add", op.node, op.amount])
    try:
        data = _encode_sorted(parts)
    except (TypeError, ValueError):  # a value JSON cannot carry: refused later by validation
        data = repr(parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:32]


def delta_is_known(doc: Document, delta: bytes) -> bool:
    """Whether ``doc`` already has every operation of a replica's ``delta`` (a true resend of a
    ``sync``: the CRDT merge would change nothing). False for bytes that are not a delta."""
    try:
        ops = decode_ops(doc, delta)
    except Exception:  # DecodeError, or worse from hostile bytes
        return False
    have = doc.version
    for op in ops:
        replica, _, end = op_span(doc, op)
        if end > have.get(replica, 0):
            return False
    return True


def wrap_update(
    client: str, edit_id: str, delta: bytes, digest: str = "", extra: bytes = b""
) -> bytes:
    """A stored update: the engine delta with the key of the edit it came from.

    ``CWU\\x02``, then the client key, the edit id and the digest (each a 2-byte big-endian length
    and UTF-8), then the delta. A restarted room reads them back (``unwrap_update``) so that
    catch-up ``remote``s still name their edits and a resent edit is still recognised. With
    ``extra`` (what the room decided about the batch that must outlive it: the names an undo
    revived, ``revivals.py``), ``CWU\\x03`` and the extra bytes (4-byte length) before the delta.
    """
    c, e, d = client.encode(), edit_id.encode(), digest.encode()
    if len(c) > 0xFFFF or len(e) > 0xFFFF or len(d) > 0xFFFF:
        raise ValueError("an edit key part over 65535 bytes")
    head = (_LENGTHS.pack(len(c)), c, _LENGTHS.pack(len(e)), e, _LENGTHS.pack(len(d)), d)
    if not extra:
        return b"".join((_UPDATE_V2, *head, delta))
    return b"".join((_UPDATE_V3, *head, len(extra).to_bytes(4, "big"), extra, delta))


def unwrap_update(data: bytes) -> tuple[str, str, str, bytes]:
    """``(client key, edit_id, digest, delta)`` of a stored update.

    Reads the earlier format (``CWU\\x01``: no digest, an unscoped client id) and bare deltas (no
    edit: empty strings). Raises `ValueError` for a truncated header.
    """
    client, edit_id, digest, _, delta = unwrap_update_extra(data)
    return client, edit_id, digest, delta


def unwrap_update_extra(data: bytes) -> tuple[str, str, str, bytes, bytes]:
    """``(client key, edit_id, digest, extra, delta)`` of a stored update (``extra``: empty
    unless ``CWU\\x03``). Raises `ValueError` for a truncated header."""
    if data.startswith(_UPDATE_V2) or data.startswith(_UPDATE_V3):
        count = 3
    elif data.startswith(_UPDATE_V1):
        count = 2
    else:
        return "", "", "", b"", data
    at = len(_UPDATE_V2)
    parts: list[str] = []
    for _ in range(count):
        if at + 2 > len(data):
            raise ValueError("truncated update header")
        n = int.from_bytes(data[at : at + 2], "big")
        if at + 2 + n > len(data):
            raise ValueError("truncated update header")
        parts.append(data[at + 2 : at + 2 + n].decode())
        at += 2 + n
    if count == 2:
        parts.append("")
    extra = b""
    if data.startswith(_UPDATE_V3):
        if at + 4 > len(data):
            raise ValueError("truncated update header")
        n = int.from_bytes(data[at : at + 4], "big")
        if at + 4 + n > len(data):
            raise ValueError("truncated update header")
        extra = data[at + 4 : at + 4 + n]
        at += 4 + n
    return parts[0], parts[1], parts[2], extra, data[at:]
