"""Optional authentication: HMAC-signed JWTs naming the user and per-document rights.

Claims: ``sub`` (user id), ``name``, ``color`` (optional), ``exp``, and ``docs``: an object from
document id (or ``"*"``) to a list of rights: ``read`` (watch, presence), ``write`` (edit),
``chat``, ``admin`` (delete). Restoring a version needs ``write``. Without a configured secret
everyone gets every right. Secrets shorter than 32 bytes are accepted but logged as weak.
"""

from __future__ import annotations

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

    def rights(self, doc_id: str) -> frozenset[str]:
        rights = self.docs.get(doc_id, self.docs.get("*", frozenset()))
        if ("write" in rights or "admin" in rights) and "read" not in rights:
            rights = rights | {"read"}  # (a new set only when needed: one per connection adds up)
        return rights


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
    )


def issue(
    secret: str, user_id: str, *, docs: dict[str, list[str]], name: str = "", expires_at: int
) -> str:
    """Mint a token (for tests, the CLI and applications embedding cowrite)."""
    claims = {"sub": user_id, "name": name, "docs": docs, "exp": expires_at}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.encode(claims, secret, algorithm=ALGORITHM)
