"""The engine layer: CRDT types, documents, encoding, history, OT rebasing. No I/O, no asyncio.

What the engine owns: the CRDT (sequence runs and their B-tree, map/register/counter states), the
packed ids and client tables inside a document, the binary encoding, the history log, compaction.
All of that is private to the engine and may change at any time.

What callers may rely on is this module's ``__all__`` (plus ``cowrite.engine.ot``, the pure
index-edit algebra): an import contract in ``pyproject.toml`` fails the build if anything outside
the engine imports another engine module. In short:

- ``Document`` and its methods (edits, ``merge``/``delta_since``/``encode_state``/``load``,
  ``version``, ``to_json``/``node_json``, ``sequence(node)``), the node handles (``Text``, ``List``,
  ``Map``, ``Register``, ``Counter``), ``Change`` events;
- node ids are opaque ints: compare and pass them back, never compute with them. Outside a
  document a node or element is named by ``(replica, seq)``: ``address_of`` / ``id_at`` translate
  (``cowrite.rooms.wire`` formats that as ``"#replica.seq"``); ``op_span``, ``element_id`` for ops;
- map reads (``map_entries``, ``map_value``, ``map_has_written``) instead of map internals;
- version vectors (``VersionVector``, ``vv_includes``, ``vv_merge``, ``vv_min``);
- operations as decoded from a delta (``decode_ops``, ``Op`` and its kinds) for validation;
- history: ``versions``, ``value_at``, ``diff``, and restoring a version as ordinary edits
  (``restore_batches``/``apply_restore_edits``/``restore``); ``history_build`` makes the first
  read's long pass (the delete index) in a worker thread;
- the OT edge: ``EditLog``, ``apply_index_edit``, anchors; compaction (``compact``);
- errors: ``EngineError`` and its subclasses;
- ``engine_build()``: whether the compiled (mypyc) hot modules or the pure-Python ones run;
- long loads in a worker thread: ``pace`` (drop the interpreter lock if held for 2 ms),
  ``collector_paused``/``thaw_frozen`` (no garbage collection
  during a large load, its objects frozen until dropped), ``observe_holds`` (how long a load held
  the interpreter lock between two drops, for benchmarks and tests).
"""

from cowrite.engine import native, ot  # noqa: F401  (native first: it picks the build)
from cowrite.engine.authorship import ChangeSpan, NodeChanges, authored_changes
from cowrite.engine.compaction import CompactionStats, compact
from cowrite.engine.document import Change, Document, root_id
from cowrite.engine.encoding import decode_ops, encode_ops
from cowrite.engine.errors import (
    DecodeError,
    EngineError,
    InvalidOperation,
    ResyncNeeded,
    TooManyReplicas,
)
from cowrite.engine.handles import Counter, Handle, List, Map, Register, Text
from cowrite.engine.history import (
    HistoryUnavailable,
    NodeDiff,
    Version,
    diff,
    value_at,
    versions,
)
from cowrite.engine.history_index import IndexBuild, history_build
from cowrite.engine.ids import VersionVector, vv_includes, vv_merge, vv_min
from cowrite.engine.native import engine_build
from cowrite.engine.nodes import (
    address_of,
    element_id,
    id_at,
    map_entries,
    map_has_written,
    map_value,
    op_span,
)
from cowrite.engine.ops import (
    DELETED,
    MAX_INT,
    AddOp,
    DeleteOp,
    InsertOp,
    NewNode,
    NodeKind,
    NodeRef,
    Op,
    SetOp,
    check_json,
    op_length,
)
from cowrite.engine.rebase import Anchor, EditLog, anchor_at, apply_index_edit, resolve_anchor
from cowrite.engine.restore import (
    CounterAdd,
    KeyDelete,
    KeyWrite,
    RestoreEdit,
    SequenceEdit,
    apply_restore_edits,
    restore,
    restore_batches,
)
from cowrite.engine.threads import collector_paused, observe_holds, pace, thaw_frozen

__all__ = [
    # documents and node handles
    "Document",
    "Change",
    "root_id",
    "Handle",
    "Text",
    "List",
    "Map",
    "Register",
    "Counter",
    "NodeKind",
    "NodeRef",
    "NewNode",
    "DELETED",
    "MAX_INT",
    "check_json",
    # ids outside the document, map reads
    "address_of",
    "id_at",
    "op_span",
    "element_id",
    "map_entries",
    "map_value",
    "map_has_written",
    # version vectors
    "VersionVector",
    "vv_includes",
    "vv_merge",
    "vv_min",
    # operations and encoding
    "Op",
    "InsertOp",
    "DeleteOp",
    "SetOp",
    "AddOp",
    "op_length",
    "decode_ops",
    "encode_ops",
    # history and restore
    "versions",
    "value_at",
    "diff",
    "authored_changes",
    "ChangeSpan",
    "NodeChanges",
    "Version",
    "NodeDiff",
    "HistoryUnavailable",
    "history_build",
    "IndexBuild",
    "restore_batches",
    "apply_restore_edits",
    "restore",
    "RestoreEdit",
    "SequenceEdit",
    "KeyWrite",
    "KeyDelete",
    "CounterAdd",
    # the OT edge (``ot``: the index-edit algebra, a public module) and compaction
    "ot",
    "EditLog",
    "Anchor",
    "anchor_at",
    "resolve_anchor",
    "apply_index_edit",
    "compact",
    "CompactionStats",
    # errors
    "EngineError",
    "InvalidOperation",
    "DecodeError",
    "ResyncNeeded",
    "TooManyReplicas",
    # which build runs, and long loads in a worker thread
    "engine_build",
    "collector_paused",
    "thaw_frozen",
    "observe_holds",
    "pace",
]
