"""The garbage collector's settings for a server process (``cowrite serve``).

CPython's cyclic collector stops the event loop while it runs. Young collections are short (a
few ms), but a full collection walks every tracked object: with documents, edit logs and
thousands of connections that is hundreds of thousands of objects, 100-200 ms during which no
edit is acknowledged or delivered. With the default thresholds a busy server ran one every few
seconds, because per-message objects (a connection's pending read, the last frame) live about
as long as a client's typing interval, survive the young generations and count towards the
next full collection. Measured with ``cowrite bench server --scenario b`` (memory store, 10 s,
2-core machine): p99 edit->visible 63-250 ms with the defaults, 7-14 ms with this policy.

* ``gc.freeze()`` once the application is built: the objects of startup (modules, classes,
  functions: most of a fresh heap) are never scanned again.
* ``threshold0`` 20,000 allocations instead of 700: a young collection walks the objects
  allocated since the last one, and each has a fixed cost of its own; at 1,000 Yjs clients
  over 100 documents (``--yjs --scenario b``) the defaults ran ~17 young collections a second,
  0.9 s of 37 s in the collector (probe of ``gc.callbacks``, loaded 2-core machine), against
  0.1 s with this threshold. At most that many short-lived cyclic objects wait a little longer.
* ``threshold2`` 1000 instead of 10: a full collection at most once per 1000 young (generation
  1) collections, minutes apart under load, instead of seconds. Reference cycles that reach
  the old generation are freed that much later; everything else is freed by reference
  counting as before.

Only for a process the server owns: an application mounting ``create_app`` keeps its own
settings.
"""

from __future__ import annotations

import gc

FULL_COLLECTION_EVERY = 1000
"""Generation-1 collections between two full collections (CPython's default: 10)."""
YOUNG_COLLECTION_EVERY = 20_000
"""Allocations (minus deallocations) of tracked objects between two young collections
(CPython's default: 700)."""


def tune_for_latency() -> None:
    """Apply the policy above (call once, after the application is created)."""
    _, threshold1, _ = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, threshold1, FULL_COLLECTION_EVERY)
