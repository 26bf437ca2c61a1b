"""The engine's error types. Every failure the engine reports is one of these."""


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class DecodeError(EngineError, ValueError):
    """Bytes given to a decoder are corrupt, truncated, hostile or of an unknown version.

    The only error any decoder in the engine raises for bad input; decoding never hangs and never
    allocates more than a bounded multiple of the input size.
    """


class InvalidOperation(EngineError, ValueError):
    """An edit does not fit the document: position out of range, wrong node type, bad value."""


class ResyncNeeded(EngineError):
    """The peer's version is older than the retained history: send it a full state instead.

    Raised by ``delta_since`` when the requested version predates the compaction point, so a merge
    could not be correct; the caller must ship a full snapshot (``encode_state``) instead.
    """


class TooManyReplicas(DecodeError):
    """The input names more replicas the document has not seen than the caller allows."""
