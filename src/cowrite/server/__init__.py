"""The server layer: the asyncio/ASGI shell around the rooms. It owns sockets, loaded rooms, the
order in which effects are carried out (persist, then acknowledge and broadcast), other instances
and HTTP. See ``app.create_app``.

* ``connection`` / ``transport`` — one WebSocket: decode, dispatch to the hub, one outbox.
* ``hub`` — the operations on rooms (join, leave, edit, sync, presence, chat) over its parts:
  ``registry`` (which rooms are loaded; load, unload, snapshot), ``pipeline`` (one ordered
  durable queue per room: ``submit``, persist, fan-out; jobs may carry a future completed when
  durable), ``replication`` (other instances' updates and presence; catch-up from the store),
  ``exactly_once`` (what the store must tell about edits the room forgot).
* ``cluster`` — the bus messages between instances; ``rest`` (routes), ``rest_bodies``
  (request and response types), ``rest_history`` and ``rest_history_bodies`` (version
  history: versions, values, authored diffs, naming, restore), ``restore`` (a restore's
  edits), ``openapi`` — the REST API; ``history`` (named-version pins, retention passes);
  ``auth``, ``config``, ``metrics``, ``ratelimit``, ``http_guard``, ``gcpolicy``, ``run``.
"""
