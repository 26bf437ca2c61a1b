"""cowrite: a real-time collaboration server with a CRDT core and OT at the edge.

``cowrite.connect(url, doc=...)`` is the Python SDK's entry point (``cowrite.client.connect``),
``cowrite.open_yjs(url, doc)`` its Yjs client (``cowrite.client.open_yjs``);
``cowrite.engine`` is the CRDT library; ``cowrite.server.app.create_app`` the ASGI app.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # imported lazily so that using the engine alone never imports the client or the server
    if name in ("connect", "open_yjs"):
        import importlib

        return getattr(importlib.import_module("cowrite.client"), name)
    raise AttributeError(f"module 'cowrite' has no attribute {name!r}")
