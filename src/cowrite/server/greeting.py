"""A native connection's greeting: ``hello`` checked, the client authenticated (the server's
secret or an ``on_authenticate`` hook) or named (anonymous), and welcomed. Its counterpart on an
open connection, a fresh token, is ``reauth``."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from cowrite import protocol as p
from cowrite.server.auth import anonymous, anonymous_id
from cowrite.server.hooks import AuthRequest

if TYPE_CHECKING:
    from cowrite.server.connection import Connection

CLOSE_POLICY = 1008


async def greet(conn: Connection, msg: p.Hello) -> bool:
    """Answer the connection's first message: True, greeted (``welcome`` and ``features``
    sent); False, refused (the client was told, and the connection is closing)."""
    if msg.protocol != p.PROTOCOL_VERSION:
        conn.error(p.ErrorCode.BAD_MESSAGE, f"protocol {msg.protocol} unsupported (speak 1)")
        conn.close(CLOSE_POLICY, "unsupported protocol")
        return False
    conn.client_id = msg.client_id
    hooks = conn.hub.hooks
    secret = hooks.authenticates  # the server's secret, or an on_authenticate hook
    if secret:
        request = AuthRequest(msg.token, None, conn.session, "ws")
        try:
            identity = await hooks.authenticate(request)
        except Exception as exc:  # AuthError, Refused, or whatever a hook raised
            conn.error(p.ErrorCode.UNAUTHORIZED, str(exc) or type(exc).__name__)
            conn.close(CLOSE_POLICY, "unauthorized")
            return False
        if conn.closing is not None:
            return False
        conn.identity = conn.hub.permissions.limit(replace(identity, verified=True))
    else:
        name = msg.user.name if msg.user else ""
        conn.identity = anonymous(anonymous_id(msg.key, conn.session), name)
    user = p.User(
        id=conn.identity.user_id,
        name=(msg.user.name if msg.user and not secret else conn.identity.name) or "Anonymous",
        color=(msg.user.color if msg.user else "") or conn.identity.color,
    )
    conn.identity = replace(conn.identity, name=user.name, color=user.color)
    conn.expire_at(conn.identity.expires_at)
    conn.send_message(
        p.Welcome(
            session=conn.session,
            user=user,
            heartbeat_s=conn.settings.heartbeat_s,
            auth=bool(secret),
        )
    )
    conn.send_message(p.Features(features=list(p.FEATURES)))
    return True
