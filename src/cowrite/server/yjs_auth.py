"""A Yjs connection's credentials: the rights a token (or an ``on_authenticate`` hook) gives on
each document, and the end of the session at the earliest token's ``exp``.

y-websocket authenticates once, from the URL's ``token`` query parameter; Hocuspocus once per
document (its Auth message), and again when a provider sends a fresh token. Without a server
secret every connection is an anonymous writer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from cowrite.adapters.store import validate_doc_id
from cowrite.server.auth import AuthError, Identity, anonymous, anonymous_id, verify
from cowrite.server.config import Settings
from cowrite.server.hooks import AuthRequest
from cowrite.server.hub import Hub
from cowrite.server.yjs_member import (
    CLOSE_FORBIDDEN,
    CLOSE_POLICY,
    CLOSE_TOKEN_EXPIRED,
    CLOSE_UNAUTHORIZED,
)
from cowrite.server.yjs_wire import Dialect
from cowrite.yjs import PENDING, Denied, Rights
from cowrite.yjs.session import AuthResult

log = logging.getLogger("cowrite.connection")


class Owner(Protocol):
    """The connection whose credentials these are."""

    hub: Hub
    settings: Settings
    session: str
    dialect: Dialect

    def close(self, code: int, reason: str) -> None: ...

    def _ids(self) -> dict[str, object]: ...


class YjsAuth:
    """The credentials of one Yjs connection (``owner``): ``identities`` by document, and the
    timer that closes it (4001) at the earliest token's expiry. (It holds only its owner and
    what it adds: every idle connection has one.)"""

    __slots__ = ("_expires_at", "_expiry", "identities", "owner")

    def __init__(self, owner: Owner) -> None:
        self.owner = owner
        self.identities: dict[str, Identity] = {}
        """By document: the identity its token gave (Hocuspocus authenticates per document)."""
        self._expiry: asyncio.TimerHandle | None = None
        self._expires_at: float | None = None

    def check(self, token: str, document: str) -> AuthResult:
        """A token's rights on ``document`` (every right without a server secret); PENDING when
        an ``on_authenticate`` hook decides (then call ``check_with_hooks``). A granted
        identity is kept in ``identities[document]``."""
        try:
            validate_doc_id(document)
        except ValueError:
            return Denied("invalid document name")
        owner = self.owner
        if owner.hub.hooks.custom_auth:
            return PENDING
        secret = owner.settings.secret
        identity: Identity
        if secret:
            try:
                identity = verify(token, secret)
            except AuthError as exc:
                log.info("Yjs token refused: %s", exc, extra=owner._ids())
                return Denied("unauthorized")
        else:
            identity = anonymous(anonymous_id(None, owner.session))
        return self._rights(identity, document)

    async def check_with_hooks(self, token: str, document: str) -> Rights | Denied:
        """The ``on_authenticate`` hooks' answer for ``document``."""
        owner = self.owner
        request = AuthRequest(token or None, document, owner.session, owner.dialect)
        try:
            identity = await owner.hub.hooks.authenticate(request)
        except Exception as exc:  # AuthError, Refused, or whatever a hook raised
            log.info("Yjs credential refused: %s", exc, extra=owner._ids())
            return Denied(f"unauthorized: {exc}"[:120])
        return self._rights(replace(identity, verified=True), document)

    def _rights(self, identity: Identity, document: str) -> Rights | Denied:
        identity = self.owner.hub.permissions.limit(identity)
        rights = identity.rights(document)
        if "read" not in rights:
            return Denied("forbidden")
        self.identities[document] = identity
        if identity.expires_at is not None:
            self._expire_at(identity.expires_at)
        return Rights.READ_WRITE if "write" in rights else Rights.READ

    def reschedule(self, identities: Iterable[Identity]) -> None:
        """After a fresh token: the session ends with the earliest token of ``identities`` (the
        connection's open documents)."""
        at = min((i.expires_at for i in identities if i.expires_at is not None), default=None)
        self.cancel()
        if at is not None:
            self._expire_at(at)

    def cancel(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._expires_at = None

    def _expire_at(self, at: float) -> None:
        """The session ends with its first token's ``exp`` (a later token cannot extend it:
        every document's rights last until their own token's expiry, the earliest first)."""
        if self._expires_at is not None and self._expires_at <= at:
            return
        self._expires_at = at
        if self._expiry is not None:
            self._expiry.cancel()
        delay = max(0.0, at - time.time())
        self._expiry = asyncio.get_running_loop().call_later(
            delay, self.owner.close, CLOSE_TOKEN_EXPIRED, "token expired"
        )


def close_code_for_denial(reason: str) -> int:
    """The close code of a refused y-websocket connection (``Denied.reason``'s kind)."""
    kind = reason.partition(":")[0]
    return {"forbidden": CLOSE_FORBIDDEN, "unauthorized": CLOSE_UNAUTHORIZED}.get(
        kind, CLOSE_POLICY
    )
