"""pycrdt-websocket peer server for ``cowrite bench``: its ASGI server under uvicorn, defaults.

Rooms are named by the URL path (``ws://127.0.0.1:PORT/<document>``); documents live in memory
(no YStore), as in pycrdt-websocket's README example.

    python benchmarks/peers/pycrdt_server.py --port 1234
"""

from __future__ import annotations

import argparse
import asyncio

import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer


async def serve(port: int) -> None:
    websocket_server = WebsocketServer()
    app = ASGIServer(websocket_server)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    async with websocket_server:
        await server.serve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=1234)
    args = parser.parse_args()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
