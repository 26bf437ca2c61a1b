"""The engine layer: replicated types, documents, encoding, OT rebasing. No I/O, no asyncio."""
