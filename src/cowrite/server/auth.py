"""Optional authentication: HMAC-signed JWTs naming the user and per-document rights.

Claims: ``sub`` (user id), ``name``, ``color`` (optional), ``exp``, and ``docs``: an object from
document id (or ``"*"``) to a list of rights: ``read`` (watch, presence), ``write`` (edit),
``chat``, ``admin`` (delete). Restoring a version needs ``write``. ``write``, ``chat`` and
``admin`` each imply ``read``: a document's chat lives in its room, so whoever may chat there sees
the document, its presence and its chat. Without a configured secret everyone gets every right.
Secrets shorter than 32 bytes are accepted but logged as weak.

With a secret the token is the identity: its name is shown in presence and chat (a client cannot
rename itself), and its ``exp`` ends the WebSocket session (``expires_at``), not only the hello.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field

import jwt

ALL_RIGHTS = frozenset({"read", "write", "chat", "admin"})
ALGORITHM = "HS256"


class AuthError(Exception):
    """The token is missing, malformed, forged or expired."""


@dataclass(frozen=True)
class Identity:
    user_id: str
    name: str = ""
    color: str = ""
    docs: dict[str, frozenset[str]] = field(default_factory=dict)
    expires_at: float | None = None
    """The token's ``exp`` (seconds since the epoch); None without auth."""
    verified: bool = False
    """Given by an ``on_authenticate`` hook (``hooks.py``), which may set no expiry."""
    ceiling: dict[str, frozenset[str]] | None = None
    """At most these rights (by document or ``"*"``), whatever ``docs`` grants: an
    administrator's downgrade or revocation (``permissions.py``)."""
    token_key: str = ""
    """Names the token this identity came from (``token_key``), so that an administrator can
    restrict one token (a leaked one) without its user's other sessions; "" without one."""

    @property
    def authenticated(self) -> bool:
        """Named by a verified token (whose name the client may not change)."""
        return self.expires_at is not None or self.verified

    @property
    def key_owner(self) -> str:
        """Whose edit keys this identity's edits carry (``edit_keys.key_client``): the token's
        user, or "" without auth, where keys are the client's own (an anonymous user id may
        change with every connection, and a resend after a reconnect must still match)."""
        return self.user_id if self.authenticated else ""

    def rights(self, doc_id: str) -> frozenset[str]:
        rights = self.docs.get(doc_id, self.docs.get("*", frozenset()))
        if "read" not in rights and ("write" in rights or "admin" in rights or "chat" in rights):
            rights = rights | {"read"}  # (a new set only when needed: one per connection adds up)
        if self.ceiling is not None:
            most = self.ceiling.get(doc_id, self.ceiling.get("*"))
            if most is not None:
                rights = rights & most
        return rights


def token_key(token: str) -> str:
    """The name of a token in the permission table (a digest: the table never holds tokens)."""
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]


def anonymous_id(key: str | None, session: str) -> str:
    """Without auth, who a user is: a digest of the secret ``key`` its client keeps (public and
    unforgeable, unlike the ``client_id`` every edit shows), or one connection's own id."""
    if key is None:
        return f"s-{session[:16]}"
    return "k-" + hashlib.sha256(b"cowrite user key\0" + key.encode()).hexdigest()[:24]


def anonymous(user_id: str, name: str = "") -> Identity:
    return Identity(user_id, name, docs={"*": ALL_RIGHTS})


def verify(token: str | None, secret: str) -> Identity:
    if not token:
        raise AuthError("a token is required")
    try:
        with warnings.catch_warnings():  # short keys: the server logs that once at startup
            warnings.simplefilter("ignore")
            claims = jwt.decode(
                token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp"]}
            )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    docs_claim = claims.get("docs", {})
    if not isinstance(docs_claim, dict):
        raise AuthError("invalid token: 'docs' must be an object")
    docs: dict[str, frozenset[str]] = {}
    for doc_id, rights in docs_claim.items():
        if not isinstance(rights, list) or not all(isinstance(r, str) for r in rights):
            raise AuthError("invalid token: rights must be lists of strings")
        docs[str(doc_id)] = frozenset(rights) & ALL_RIGHTS
    return Identity(
        user_id=str(claims["sub"]),
        name=str(claims.get("name", "")),
        color=str(claims.get("color", "")),
        docs=docs,
        expires_at=float(claims["exp"]),
        token_key=token_key(token),
    )


def issue(
    secret: str,
    user_id: str,
    *,
    docs: dict[str, list[str]],
    name: str = "",
    color: str = "",
    expires_at: int,
) -> str:
    """Mint a token (for tests, the CLI and applications embedding cowrite)."""
    claims: dict[str, object] = {"sub": user_id, "name": name, "docs": docs, "exp": expires_at}
    if color:
        claims["color"] = color
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret, algorithm=ALGORITHM)
