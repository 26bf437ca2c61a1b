// The real Yjs providers the load generator (yjs_load.mjs) connects its clients with, one
// function per dialect, each returning the same small handle:
//
//   "hocuspocus"   @hocuspocus/provider's HocuspocusProvider (one socket per client): Hocuspocus,
//                  cowrite's /hocuspocus endpoint. Acknowledges updates (SyncStatus).
//   "y-websocket"  y-websocket's WebsocketProvider: @y/websocket-server, pycrdt-websocket,
//                  cowrite's /yjs/<name> endpoint. No acknowledgement in the protocol.
//
// hooks: onSynced() once the initial sync is done, onOpen(), onClose(code), onAck() for every
// acknowledged local update (hocuspocus only). The handle: { destroy() }.
import { HocuspocusProvider } from "@hocuspocus/provider"
import { WebsocketProvider } from "y-websocket"
import WebSocket from "ws"

// Hocuspocus' own server accepts any token without an onAuthenticate hook; cowrite without
// --secret accepts any token string read-write.
const TOKEN = "bench"

function hocuspocus(url, name, ydoc, hooks) {
  const provider = new HocuspocusProvider({
    url,
    name,
    document: ydoc,
    token: TOKEN,
    WebSocketPolyfill: WebSocket,
    onSynced: () => hooks.onSynced(),
    onOpen: () => hooks.onOpen(),
    onClose: (data) => hooks.onClose(data?.event?.code ?? "?"),
  })
  // unsyncedChanges goes down once per SyncStatus: one per acknowledged local update
  const decrement = provider.decrementUnsyncedChanges.bind(provider)
  provider.decrementUnsyncedChanges = () => {
    hooks.onAck()
    decrement()
  }
  return { destroy: () => provider.destroy() }
}

function yWebsocket(url, name, ydoc, hooks) {
  const provider = new WebsocketProvider(url, name, ydoc, {
    WebSocketPolyfill: WebSocket,
    // Node 20 has a global BroadcastChannel: without this, clients of one process would
    // exchange updates among themselves instead of through the server
    disableBc: true,
  })
  provider.on("status", ({ status }) => {
    if (status === "connected") hooks.onOpen()
  })
  provider.on("connection-close", (event) => hooks.onClose(event?.code ?? "?"))
  provider.on("sync", (synced) => {
    if (synced) hooks.onSynced()
  })
  return { destroy: () => provider.destroy() }
}

const DIALECTS = { hocuspocus, "y-websocket": yWebsocket }

// `dialect` is the worker spec's kind ("yjs" is the historical name of "hocuspocus").
export function openProvider(dialect, url, name, ydoc, hooks) {
  const open = DIALECTS[dialect === "yjs" ? "hocuspocus" : dialect]
  if (!open) throw new Error(`unknown Yjs dialect ${dialect}`)
  return open(url, name, ydoc, hooks)
}

export const HAS_ACK = { hocuspocus: true, yjs: true, "y-websocket": false }
