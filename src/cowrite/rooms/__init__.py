"""The rooms layer: sans-I/O session logic per document. It owns who is in a document (members,
and members on other instances), what each input does to the document, and the effects that
follow (an ``Outcome``: the update to persist, the reply, the broadcasts); it never does I/O.

* ``kind.DocumentRoom`` — the document-kind seam: what the hub, pipeline, store, bus and
  replication need of a room of any kind; ``room.Room`` (cowrite's CRDT) and
  ``yjs_room.YjsRoom`` (a Yjs document held with pycrdt) implement it; the Yjs kind's version
  history is ``yjs_history`` (the kept update log), ``yjs_values`` (a version's JSON),
  ``yjs_diff`` (authored diffs) and ``yjs_restore`` (the update that restores a version).
* ``room.Room`` — the CRDT kind's class callers use: joins, leaves, presence, ticks. Its parts by
  concept: ``state`` (shared state, ``Outcome``, ``RoomError``, ``Member``, ``Author``),
  ``edits`` (thin clients' index edits and server edits), ``replicas`` (replica deltas and
  other instances' updates).
* Helpers: ``wire`` (node ids and values on the wire), ``validate`` (limits on input),
  ``edit_keys`` (exactly-once keys in stored updates), ``duplicates`` (undoing a second copy),
  ``checksum`` (when thin clients verify their copy), ``history`` (what a room notes about each
  version), ``retention`` (history compaction),
  ``peers`` (members on other instances).
"""
