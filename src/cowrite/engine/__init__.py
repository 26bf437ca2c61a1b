"""The engine layer: owns the replicated types, documents, their encoding and history, and OT
rebasing (what an edit is and how replicas converge). No I/O, no asyncio."""
