"""The server layer: the asyncio/ASGI shell around the rooms. It owns sockets, loaded rooms, the
order in which effects are carried out (persist, then acknowledge and broadcast), other instances,
HTTP and the application's extension points. See ``app.create_app``.

* Connections: ``connection`` / ``transport`` — one native WebSocket (decode, dispatch to the
  hub, one outbox); ``yjs_connection``, ``yjs_wire``, ``yjs_member``, ``yjs_auth`` — one Yjs
  WebSocket (y-websocket or Hocuspocus dialect), its documents as room members and its
  credentials.
* The hub (``hub``): the operations on rooms (join, leave, edit, sync, presence, chat) over its
  parts: ``registry`` (which rooms are loaded; load, unload, snapshot), ``membership`` (who is in
  a room and who gets its broadcasts: the one owner), ``pipeline`` (one ordered durable queue per
  room: ``submit``, persist, fan-out; jobs may carry a future completed when durable),
  ``replication`` (other instances' updates and presence; catch-up from the store),
  ``exactly_once`` (what the store must tell about edits the room forgot), ``yjs_rooms`` (the
  same operations for Yjs documents), ``cluster`` (the bus messages between instances).
* Server-side edits: ``documents`` (the in-process document API), ``restore`` (a restore's
  edits), ``yjs_edits`` (edits of Yjs documents).
* REST: ``rest`` (routes), ``rest_http`` (plumbing), ``rest_bodies``, ``rest_edits`` (edits and
  the administrator's permissions), ``rest_history`` and ``rest_history_bodies`` (version
  history; ``rest_yjs_history`` for Yjs documents), ``rest_yjs`` (Yjs read-outs),
  ``rest_fallback``, ``openapi``; ``history`` (named-version pins, retention passes),
  ``yjs_history`` (the snapshot that keeps a Yjs document's history); ``chat`` (chat records on
  the wire).
* Extension points: ``hooks`` (lifecycle hooks), ``webhooks``, ``permissions`` and ``reauth``
  (live permissions), ``auth`` (tokens and rights).
* Operations: ``config``, ``metrics``, ``tracing`` (OpenTelemetry), ``ratelimit``,
  ``ip_throttle``, ``http_guard``, ``gcpolicy``, ``run`` (``cowrite serve``).
"""
