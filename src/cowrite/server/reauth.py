"""Live permissions on a native connection: ``reauth`` (a fresh token on an open connection)
and applying changed rights to every joined document (``permissions.py`` for the
administrator's side)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from cowrite import protocol as p
from cowrite.server.hooks import AuthRequest

if TYPE_CHECKING:
    from cowrite.server.connection import Connection


async def reauth(conn: Connection, msg: p.Reauth) -> None:
    """A fresh token for the same user: new rights on every joined document, new expiry."""
    hooks = conn.hub.hooks
    if not hooks.authenticates:
        conn.error(p.ErrorCode.BAD_MESSAGE, "this server has no authentication to renew")
        return
    try:
        identity = await hooks.authenticate(AuthRequest(msg.token, None, conn.session, "ws"))
    except Exception as exc:  # AuthError, Refused, or whatever a hook raised
        conn.error(p.ErrorCode.UNAUTHORIZED, f"reauth refused: {exc}")
        return
    if identity.user_id != conn.identity.user_id:
        conn.error(p.ErrorCode.UNAUTHORIZED, "reauth refused: the token names another user")
        return
    if conn.closing is not None:
        return
    old = conn.identity
    identity = replace(identity, verified=True, name=old.name, color=old.color)
    conn.identity = conn.hub.permissions.limit(identity)
    conn.expire_at(conn.identity.expires_at)
    conn.send_message(p.Reauthed(expires_at=conn.identity.expires_at))
    rights_changed(conn, "new token")


def rights_changed(conn: Connection, reason: str) -> None:
    """Apply the identity's rights to every joined document: a ``rights`` message where
    they changed; a document no longer readable is left."""
    for doc_id in list(conn.docs):
        lr = conn.hub.rooms.get(doc_id)
        member = None if lr is None else lr.crdt.members.get(conn.session)
        rights = conn.identity.rights(doc_id)
        if member is None or member.rights == rights:
            continue
        if "read" not in rights:
            conn.hub.leave(conn, doc_id)
        else:
            member.rights = rights
        conn.send_message(p.Rights(doc=doc_id, rights=sorted(rights), reason=reason))
