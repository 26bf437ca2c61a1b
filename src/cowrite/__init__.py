"""cowrite: a real-time collaboration server with a CRDT core and OT at the edge."""

__version__ = "0.1.0"
