"""The adapters layer: durable storage (Store) and message fan-out (Bus) behind small protocols.

Everything here does I/O for the layers above; nothing here knows about CRDTs or the wire protocol:
documents reach a Store as opaque bytes produced by the engine.
"""
