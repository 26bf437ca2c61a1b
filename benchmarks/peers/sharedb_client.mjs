// One simulated ShareDB user for ot_load.mjs: a real `sharedb/lib/client` Connection over a
// `ws` WebSocket (no compression, like the server), subscribed to one json0 document
// {body: ""} of collection "bench", typing one character at a time as a json0 `si` op.
//
// ShareDB's own behaviour is kept: one op in flight per document, later keystrokes composed
// into one pending op (json0 compose), remote ops transformed over both. Measurement only
// observes it:
//   key       `${src}:${seq}` — the connection id and the op's sequence number, which travel
//             with every op the server broadcasts; the sender reads them as the op leaves
//             (Connection.sendOp), so a composed op's send time is its first keystroke's.
//   edit→ack  the op's callback (ShareDB calls it on the server's acknowledgement).
//   visible   the doc's "op batch" event of a remote op (after the op is applied locally).
import ShareDB from "sharedb/lib/client/index.js"
import WebSocket from "ws"
import { LETTERS, mulberry32, now, rec, sha1 } from "./load_worker.mjs"

const COLLECTION = "bench"

export class ShareDBClient {
  constructor(index, doc, spec) {
    this.index = index
    this.doc = doc
    this.spec = spec
    this.char = LETTERS[index % LETTERS.length]
    this.rng = mulberry32(spec.seed * 1000003 + index)
    this.keystrokes = 0
    this.errors = []
    this.open = false
    this.ready = false
    this.unsent = [] // keystroke times not yet in a sent op
    this.unacked = 0
    this.remoteKey = null
    this.sentKey = null
  }

  connect() {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("not subscribed within 120 s")), 120000)
      const done = (err) => {
        clearTimeout(timer)
        if (err) return reject(err)
        this.ready = true
        resolve()
      }
      const socket = new WebSocket(this.spec.url, { perMessageDeflate: false })
      socket.on("open", () => (this.open = true))
      socket.on("close", (code) => {
        this.open = false
        if (this.ready && !this.closing) this.errors.push(`connection closed (${code})`)
      })
      const connection = new ShareDB.Connection(socket)
      this.connection = connection
      connection.on("error", (err) => this.errors.push(`connection: ${err?.message ?? err}`))
      // the key of each remote op, read before the client applies it
      connection.on("receive", (request) => {
        const m = request.data
        if (m && m.a === "op" && m.src !== undefined) this.remoteKey = `${m.src}:${m.seq}`
      })
      const sendOp = connection.sendOp.bind(connection)
      connection.sendOp = (d, op) => {
        this.sentKey = `${op.src ?? connection.id}:${op.seq}`
        if (this.unsent.length) {
          rec.sent(this.sentKey, this.doc, this.unsent[0], this.unsent.length)
          this.unsent = []
        }
        sendOp(d, op)
      }
      const doc = connection.get(COLLECTION, this.doc)
      this.sdoc = doc
      doc.on("error", (err) => this.errors.push(`doc: ${err?.message ?? err}`))
      doc.on("op batch", (_op, source) => {
        if (source || this.remoteKey === null) return
        rec.received(this.remoteKey, now())
        this.remoteKey = null
      })
      doc.subscribe((err) => {
        if (err) return done(err)
        if (doc.type) return done()
        doc.create({ body: "" }, (createErr) => {
          if (!createErr) return done()
          // created meanwhile by a client of another generator process: read it
          doc.fetch((fetchErr) => done(fetchErr || (doc.type ? null : createErr)))
        })
      })
    })
  }

  typeChar(t) {
    if (!this.open || !this.ready) return
    const body = this.sdoc.data.body
    const pos = Math.floor(this.rng() * (body.length + 1))
    this.keystrokes += 1
    this.unsent.push(t)
    this.unacked += 1
    // the op leaves on the next tick (ShareDB's flush); its key is known only then
    this.sdoc.submitOp([{ p: ["body", pos], si: this.char }], (err) => {
      // called on the acknowledgement of the op this keystroke went out in, before the next
      // op leaves (so sentKey is still that op's)
      if (!err) rec.acked(this.sentKey, now())
      this.unacked -= 1
      if (err) this.errors.push(`op: ${err.message ?? err}`)
    })
  }

  length() {
    return this.sdoc?.data ? this.sdoc.data.body.length : 0
  }

  settled() {
    return this.unacked === 0 && (!this.sdoc || !this.sdoc.hasPending())
  }

  digest() {
    return sha1(this.sdoc?.data ? this.sdoc.data.body : "")
  }

  close() {
    this.closing = true
    this.connection?.close()
  }
}
