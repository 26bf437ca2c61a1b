"""The asyncio/ASGI shell: WebSocket endpoint, REST API, metrics. See ``app.create_app``."""
