// One simulated cowrite user for ot_load.mjs: cowrite's real JavaScript client (the module the
// npm package @cowrite/client is built from, web/src/client.js: CowriteClient,
// DocumentSession, TextHandle) over a `ws` WebSocket (no compression offered, like the ShareDB
// clients and the Python generator), one document, typing through `text("body").insert`.
//
// The client's own behaviour is kept: one batch in flight per document, later keystrokes
// coalesced into the next batch (at most one batch per batchIntervalMs, 25 ms by default),
// remote edits rebased in ThinDocState, pings answered, checksums verified, presence announced
// on join. Measurement only observes it, through the client's public hooks:
//   key       the batch's edit_id (it comes back in every `remote`), read in the documented
//             `beforeBatch` hook, which returns null (send now); a batch's send time is its
//             first keystroke's.
//   edit→ack  the session's "ack" event.
//   visible   the session's "change" event of a remote edit (after it is applied locally).
import WebSocket from "ws"
import { LETTERS, mulberry32, now, rec, sha1 } from "./load_worker.mjs"

const NODE = "text:body"

/** A WebSocket constructor with the browser API, compression not offered. */
class PlainWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { perMessageDeflate: false })
  }
}

export function cowriteJsClientClass(CowriteClient) {
  return class CowriteJsClient {
    constructor(index, doc, spec) {
      this.index = index
      this.doc = doc
      this.spec = spec
      this.char = LETTERS[index % LETTERS.length]
      this.rng = mulberry32(spec.seed * 1000003 + index)
      this.keystrokes = 0
      this.errors = []
      this.ready = false
      this.unsent = [] // keystroke times not yet in a batch
      this.remoteKey = null
      this.CowriteClient = CowriteClient
    }

    get open() {
      return Boolean(this.client?.connected)
    }

    async connect() {
      const client = new this.CowriteClient({
        url: this.spec.url,
        clientId: `bench-${this.spec.run_id}-${this.index}`,
        user: { name: `bench ${this.index}` },
        WebSocket: PlainWebSocket,
      })
      this.client = client
      client.on("error", (e) => this.errors.push(`error ${e.code}: ${e.message}`))
      client.on("status", ({ status, previous }) => {
        if (this.ready && !this.closing && previous === "connected") this.errors.push(`connection ${status}`)
      })
      client.on("message", (msg) => {
        if (msg.type === "remote" && msg.doc === this.doc) this.remoteKey = msg.edit_id ?? null
      })
      client.connect()
      const session = client.open(this.doc, { create: true })
      this.session = session
      session.on("error", (e) => this.errors.push(`error ${e.code}: ${e.message}`))
      session.on("change", ({ origin }) => {
        if (origin !== "remote" || this.remoteKey === null) return
        rec.received(this.remoteKey, now())
        this.remoteKey = null
      })
      session.on("ack", ({ editId }) => rec.acked(editId, now()))
      session.beforeBatch = (batch) => {
        if (this.unsent.length) {
          rec.sent(batch.edit_id, this.doc, this.unsent[0], this.unsent.length)
          this.unsent = []
        }
        return null
      }
      this.text = session.text("body")
      let timer
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("not joined within 120 s")), 120000)
      })
      try {
        await Promise.race([session.ready, timeout])
      } finally {
        clearTimeout(timer)
      }
      this.ready = true
    }

    typeChar(t) {
      if (!this.open || !this.ready) return
      const pos = Math.floor(this.rng() * (this.text.length + 1))
      this.keystrokes += 1
      this.unsent.push(t)
      this.text.insert(pos, this.char) // the batch leaves in a microtask (or after the interval)
    }

    length() {
      return this.session ? this.session.rope(NODE).length : 0
    }

    settled() {
      return !this.session || this.session.synced
    }

    digest() {
      return sha1(this.session ? String(this.session.value(NODE) ?? "") : "")
    }

    close() {
      this.closing = true
      this.client?.close()
    }
  }
}
