"""``cowrite token``: mint an access token for a server started with ``--secret``.

For trying rights out and for scripts: an application embedding cowrite mints its tokens itself
(``cowrite.server.auth.issue`` or any HS256 JWT library; the claims are in the README). With
``--url`` it prints a link that opens the web page as that user (the page reads ``?token=``,
keeps it for the tab and removes it from the address bar).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from urllib.parse import urlencode, urlsplit, urlunsplit

RIGHTS = ("read", "write", "chat", "admin")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = sub.add_parser("token", help="mint an access token (for a server run with --secret)")
    token.add_argument("--secret", help="the server's secret (default: $COWRITE_SECRET)")
    token.add_argument("--user", required=True, help="user id (the token's 'sub')")
    token.add_argument("--name", default="", help="display name shown in presence and chat")
    token.add_argument("--color", default="", help="caret color, #rrggbb")
    token.add_argument(
        "--doc",
        action="append",
        metavar="DOC=RIGHTS",
        help="rights on a document ('*' for all), e.g. --doc 'notes=read,write'"
        " (repeatable; default: '*=read,write,chat')",
    )
    token.add_argument(
        "--ttl", type=int, default=3600, help="seconds until it expires (default 3600)"
    )
    token.add_argument("--url", help="print a link to the web page at this base URL instead")


def parse_docs(specs: list[str] | None) -> dict[str, list[str]]:
    """``["notes=read,write", "*=read"]`` -> ``{"notes": ["read", "write"], "*": ["read"]}``;
    ValueError naming the first bad spec."""
    docs: dict[str, list[str]] = {}
    for spec in specs or ["*=read,write,chat"]:
        doc, sep, rights = spec.partition("=")
        wanted = [r.strip() for r in rights.split(",") if r.strip()]
        if not sep or not doc or not wanted:
            raise ValueError(f"--doc {spec!r}: expected DOC=RIGHTS, e.g. 'notes=read,write'")
        unknown = [r for r in wanted if r not in RIGHTS]
        if unknown:
            raise ValueError(
                f"--doc {spec!r}: unknown right {unknown[0]!r} (known: {', '.join(RIGHTS)})"
            )
        docs.setdefault(doc, [])
        docs[doc] += [r for r in wanted if r not in docs[doc]]
    return docs


def page_link(base: str, token: str) -> str:
    """The web page at ``base`` opened with ``token`` (kept in the query, as the page expects)."""
    parts = urlsplit(base if "://" in base else f"http://{base}")
    path = parts.path or "/"
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit((parts.scheme, parts.netloc, path, query + urlencode({"token": token}), ""))


def run(args: argparse.Namespace) -> int:
    from cowrite.server.auth import issue

    secret = args.secret or os.environ.get("COWRITE_SECRET", "")
    if not secret:
        print("cowrite token: give --secret or set COWRITE_SECRET", file=sys.stderr)
        return 2
    if args.ttl <= 0:
        print("cowrite token: --ttl must be a positive number of seconds", file=sys.stderr)
        return 2
    try:
        docs = parse_docs(args.doc)
    except ValueError as exc:
        print(f"cowrite token: {exc}", file=sys.stderr)
        return 2
    token = issue(
        secret,
        args.user,
        docs=docs,
        name=args.name,
        color=args.color,
        expires_at=int(time.time()) + args.ttl,
    )
    print(page_link(args.url, token) if args.url else token)
    return 0
