// Load generator for Yjs servers (Yjs clients through the real providers, see
// yjs_providers.mjs: @hocuspocus/provider for spec.kind "hocuspocus", y-websocket's
// WebsocketProvider for "y-websocket"), speaking the same line protocol as `benchmarks.load`
// (see its docstring): spec on the first stdin line, commands after it, events on stdout
// prefixed with "@@bench ".
//
// Edit keys are Yjs item ids, `${clientID}:${clock}`: the sender knows the clock its next
// character gets, receivers read the new clock ranges of each remote transaction
// (beforeState/afterState), so no timestamp travels inside the document.
// edit->ack is Hocuspocus' SyncStatus acknowledgement (unsyncedChanges going down); the
// y-websocket protocol has none.
import * as Y from "yjs"
import { HAS_ACK, openProvider } from "./yjs_providers.mjs"
import { createHash } from "node:crypto"
import readline from "node:readline"

// y-websocket's provider adds a process "exit" listener per provider: hundreds here
process.setMaxListeners(0)

const PREFIX = "@@bench "
const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
const now = () => Number(process.hrtime.bigint()) // CLOCK_MONOTONIC, as Python's monotonic_ns

function emit(obj) {
  process.stdout.write(PREFIX + JSON.stringify(obj) + "\n")
}

// ----------------------------------------------------------------------------- stdin lines
const lines = []
let waiter = null
const rl = readline.createInterface({ input: process.stdin })
rl.on("line", (l) => {
  if (waiter) {
    const w = waiter
    waiter = null
    w(l)
  } else lines.push(l)
})
rl.on("close", () => {
  if (waiter) {
    const w = waiter
    waiter = null
    w(null)
  } else lines.push(null)
})
const nextLine = () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((r) => (waiter = r)))
async function nextCommand() {
  const line = await nextLine()
  return line === null ? { cmd: "stop" } : JSON.parse(line)
}

function mulberry32(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function percentile(values, q) {
  if (!values.length) return null
  const s = Float64Array.from(values).sort()
  const rank = Math.max(1, Math.min(s.length, Math.round((q / 100) * s.length + 0.5)))
  return s[rank - 1]
}

// -------------------------------------------------------------------------------- recorder
const sends = new Map() // key -> [doc, tSend, tAck, chars]
const recv = new Map() // key -> [count, maxT]
function received(key, t) {
  const e = recv.get(key)
  if (e === undefined) recv.set(key, [1, t])
  else {
    e[0] += 1
    if (t > e[1]) e[1] = t
  }
}

// ---------------------------------------------------------------------------------- client
class YClient {
  constructor(index, doc, spec) {
    this.index = index
    this.doc = doc
    this.spec = spec
    this.char = LETTERS[index % LETTERS.length]
    this.rng = mulberry32(spec.seed * 1000003 + index)
    this.keystrokes = 0
    this.errors = []
    this.unacked = []
    this.ready = false
    this.open = false
    this.acks = HAS_ACK[spec.kind] ?? false
  }

  connect() {
    return new Promise((resolve, reject) => {
      const ydoc = new Y.Doc()
      this.ydoc = ydoc
      this.text = ydoc.getText("body")
      ydoc.on("afterTransaction", (txn) => {
        if (txn.local) return
        const t = now()
        for (const [client, after] of txn.afterState) {
          const before = txn.beforeState.get(client) ?? 0
          for (let c = before; c < after; c++) received(`${client}:${c}`, t)
        }
      })
      const timer = setTimeout(() => reject(new Error("not synced within 120 s")), 120000)
      this.provider = openProvider(this.spec.kind, this.spec.url, this.doc, ydoc, {
        onSynced: () => {
          if (this.ready) return
          this.ready = true
          clearTimeout(timer)
          resolve()
        },
        onOpen: () => {
          this.open = true
        },
        onClose: (code) => {
          this.open = false
          if (this.ready && !this.closing) this.errors.push(`connection closed (${code})`)
        },
        onAck: () => {
          if (this.ready && this.unacked.length) {
            const key = this.unacked.shift()
            const e = sends.get(key)
            if (e && e[2] < 0) e[2] = now()
          }
        },
      })
    })
  }

  typeChar(t) {
    if (!this.open) return
    const pos = Math.floor(this.rng() * (this.text.length + 1))
    const key = `${this.ydoc.clientID}:${Y.getState(this.ydoc.store, this.ydoc.clientID)}`
    sends.set(key, [this.doc, t, -1, 1])
    if (this.acks) this.unacked.push(key)
    this.keystrokes += 1
    this.text.insert(pos, this.char) // the provider sends the update synchronously
  }

  settled() {
    return this.unacked.length === 0
  }

  digest() {
    return createHash("sha1").update(this.text.toString(), "utf8").digest("hex")
  }

  close() {
    this.closing = true
    try {
      this.provider.destroy()
    } catch {}
  }
}

// ---------------------------------------------------------------------------------- worker
async function main() {
  // the coordinator stops a generator with SIGTERM once it has the result: exit through
  // process.exit, so that `node --cpu-prof` (COWRITE_BENCH_NODE_PROFILE) still writes its profile
  process.on("SIGTERM", () => process.exit(0))
  const spec = JSON.parse(await nextLine())
  const clients = spec.clients.map(([i, d]) => new YClient(i, d, spec))
  const failures = []
  const t0 = now()
  const limit = spec.connect_concurrency || 64
  // the first client of each document connects alone, then the others: pycrdt-websocket
  // fails all but one of several clients that open a new room at once (see peers/README.md)
  const firstOf = new Map()
  for (const c of clients) if (!firstOf.has(c.doc)) firstOf.set(c.doc, c)
  const firsts = new Set(firstOf.values())
  for (const batch of [[...firsts], clients.filter((c) => !firsts.has(c))]) {
    let next = 0
    const connector = async () => {
      while (next < batch.length) {
        const c = batch[next++]
        try {
          await c.connect()
        } catch (e) {
          failures.push(`client ${c.index}: ${e}`)
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(limit, batch.length) }, connector))
  }
  emit({
    event: "ready",
    clients: clients.length,
    failed: failures.length,
    failures: failures.slice(0, 5),
    connect_s: (now() - t0) / 1e9,
  })
  const live = clients.filter((c) => c.ready)
  const lags = []
  let skipped = 0
  let drained = true
  let cmd = await nextCommand()
  if (cmd.cmd === "go") {
    const interval = spec.interval_ms * 1e6
    const rng = mulberry32(spec.seed + 7919 * spec.proc)
    await Promise.all(
      live.map(
        (c) =>
          new Promise((resolve) => {
            const phase = Math.floor(rng() * interval)
            let k = 0
            const step = () => {
              const due = cmd.start_ns + phase + k * interval
              if (due >= cmd.end_ns) return resolve()
              const t = now()
              if (due > t + 500000) return setTimeout(step, (due - t) / 1e6)
              if (t >= cmd.end_ns) {
                // so far behind that this keystroke's time came after the end: skip the rest
                skipped += Math.ceil((cmd.end_ns - due) / interval)
                return resolve()
              }
              lags.push(Math.max(0, t - due))
              c.typeChar(t)
              k += 1
              const nextDue = cmd.start_ns + phase + k * interval
              setTimeout(step, Math.max(0, (nextDue - now()) / 1e6))
            }
            step()
          }),
      ),
    )
    const perDoc = {}
    for (const c of clients) perDoc[c.doc] = (perDoc[c.doc] || 0) + c.keystrokes
    emit({ event: "sent", per_doc: perDoc })
    cmd = await nextCommand()
    const expected = cmd.per_doc || {}
    const deadline = now() + (cmd.timeout_s ?? spec.drain_timeout_s) * 1e9
    drained = await new Promise((resolve) => {
      const check = () => {
        const done = live.every((c) => (c.text.length === (expected[c.doc] || 0) && c.settled()) || !c.open)
        if (done) return resolve(true)
        if (now() > deadline) return resolve(false)
        setTimeout(check, 50)
      }
      check()
    })
  }
  const errors = {}
  for (const c of clients) for (const e of c.errors) errors[e] = (errors[e] || 0) + 1
  const result = {
    event: "result",
    proc: spec.proc,
    drained,
    connect_failures: failures.length,
    still_connected: clients.filter((c) => c.open).length,
    sends: [...sends].map(([k, v]) => [k, ...v]),
    recv: [...recv].map(([k, v]) => [k, ...v]),
    clients: clients.map((c) => [c.index, c.doc, c.text ? c.text.length : 0, c.text ? c.digest() : "", c.keystrokes, c.settled()]),
    lag_ms: {
      p50: lags.length ? percentile(lags, 50) / 1e6 : null,
      p99: lags.length ? percentile(lags, 99) / 1e6 : null,
      max: lags.length ? lags.reduce((a, b) => (a > b ? a : b), 0) / 1e6 : null,
    },
    errors,
    skipped,
  }
  // stdout is a pipe: a large line is written asynchronously, so exit only once it is out;
  // close the clients after (the coordinator reads the server's memory on receipt)
  process.stdout.write(PREFIX + JSON.stringify(result) + "\n", () => {
    for (const c of clients) c.close()
    setTimeout(() => process.exit(0), 200)
  })
}

main().catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`)
  process.exit(1)
})
