"""Administration over REST: ``cowrite.client.Admin`` (live permissions).

``restrict_user`` caps a user's rights on every instance at once (connections told and
restricted, later ones too: ``docs/extending.md``, "Live permissions"); it needs a token with the
``admin`` right on ``"*"`` when the server has a secret.
"""

from __future__ import annotations

import msgspec

from cowrite.client.errors import ClientError
from cowrite.client.rest_client import RestClient


class AdminError(ClientError):
    """The server refused an admin request: HTTP ``status``, its ``code`` and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class _Permissions(msgspec.Struct):
    docs: dict[str, list[str]] | None
    user: str | None = None
    token: str | None = None


class Admin(RestClient):
    """Admin calls to the server at ``url`` with ``token`` (``admin`` on ``"*"``)."""

    error_type = AdminError

    async def restrict_user(self, user: str, docs: dict[str, list[str]]) -> None:
        """From now on, ``user`` has at most ``docs`` rights (document id or ``"*"`` ->
        rights, e.g. ``{"*": ["read"]}`` to downgrade to read-only, ``{"*": []}`` to
        revoke everything), on every instance; open connections are told and restricted."""
        await self._call(
            "POST",
            "/api/admin/permissions",
            _Permissions,
            body={"user": user, "docs": {d: list(r) for d, r in docs.items()}},
        )

    async def restrict_token(self, token: str, docs: dict[str, list[str]]) -> None:
        """As ``restrict_user``, for the sessions of one token only (a leaked one):
        ``{"*": []}`` revokes it."""
        await self._call(
            "POST",
            "/api/admin/permissions",
            _Permissions,
            body={"token": token, "docs": {d: list(r) for d, r in docs.items()}},
        )

    async def lift_restriction(self, user: str) -> None:
        """``user`` has the rights of their tokens again."""
        await self._call(
            "POST", "/api/admin/permissions", _Permissions, body={"user": user, "docs": None}
        )
