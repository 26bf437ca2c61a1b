// The worker side of the bench's line protocol (see `benchmarks/load.py`'s docstring), for Node
// generators whose clients are not Yjs documents (ot_load.mjs: ShareDB, cowrite's JS client):
// spec on the first stdin line, then `go` / `expect` / `stop`; events on stdout prefixed with
// "@@bench ". `runWorker(clientsFor)` connects the clients, types on schedule, waits for
// delivery and writes the `result` event, the same fields as yjs_load.mjs and benchmarks.load.
// `clientsFor(spec)` (may be async) returns makeClient(index, doc, spec) for the spec's kind.
//
// A client (what makeClient returns) has: index, doc, keystrokes, errors,
// open (socket usable), ready (joined), connect() -> Promise, typeChar(t) (one character at a
// random position, typed at monotonic time t), length(), settled() (nothing of its own waits for
// the server), digest() (SHA-1 of its text), close(). The result adds `gc_ms` {total, max,
// count}: the garbage collector's pauses during the typing. Clients record what they send and receive
// in `rec` (keys both sides can compute: ShareDB `src:seq`, cowrite `edit_id`).
import { createHash } from "node:crypto"
import { PerformanceObserver } from "node:perf_hooks"
import readline from "node:readline"

const PREFIX = "@@bench "
export const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
/** CLOCK_MONOTONIC in ns, as Python's time.monotonic_ns (one clock for every process). */
export const now = () => Number(process.hrtime.bigint())

export function emit(obj) {
  process.stdout.write(PREFIX + JSON.stringify(obj) + "\n")
}

export function mulberry32(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function sha1(text) {
  return createHash("sha1").update(text, "utf8").digest("hex")
}

function percentile(values, q) {
  if (!values.length) return null
  const s = Float64Array.from(values).sort()
  const rank = Math.max(1, Math.min(s.length, Math.round((q / 100) * s.length + 0.5)))
  return s[rank - 1]
}

/** Send, ack and receive times of every edit key this worker's clients saw. */
export const rec = {
  sends: new Map(), // key -> [doc, tSend, tAck, chars]
  recv: new Map(), // key -> [receivers, latest receive time]
  sent(key, doc, t, chars) {
    if (!this.sends.has(key)) this.sends.set(key, [doc, t, -1, chars])
  },
  acked(key, t) {
    const e = this.sends.get(key)
    if (e && e[2] < 0) e[2] = t
  },
  received(key, t) {
    const e = this.recv.get(key)
    if (e === undefined) this.recv.set(key, [1, t])
    else {
      e[0] += 1
      if (t > e[1]) e[1] = t
    }
  },
}

// ----------------------------------------------------------------------------- stdin lines
const lines = []
let waiter = null
function startReading() {
  const rl = readline.createInterface({ input: process.stdin })
  const push = (l) => {
    if (waiter) {
      const w = waiter
      waiter = null
      w(l)
    } else lines.push(l)
  }
  rl.on("line", push)
  rl.on("close", () => push(null))
}
const nextLine = () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((r) => (waiter = r)))
async function nextCommand() {
  const line = await nextLine()
  return line === null ? { cmd: "stop" } : JSON.parse(line)
}

// ---------------------------------------------------------------------------------- phases
async function connectAll(clients, limit) {
  // the first client of each document connects alone (ShareDB: it creates the document), then
  // the others
  const failures = []
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
          failures.push(`client ${c.index}: ${e?.message ?? e}`)
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(limit, batch.length) }, connector))
  }
  return failures
}

/** Type on schedule until cmd.end_ns; returns the keystrokes skipped (generator too late). */
async function typeAll(live, spec, cmd, lags) {
  const interval = spec.interval_ms * 1e6
  const rng = mulberry32(spec.seed + 7919 * spec.proc)
  let skipped = 0
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
              skipped += Math.ceil((cmd.end_ns - due) / interval)
              return resolve()
            }
            lags.push(Math.max(0, t - due))
            try {
              c.typeChar(t)
            } catch (e) {
              c.errors.push(`type: ${e?.message ?? e}`)
            }
            k += 1
            setTimeout(step, Math.max(0, (cmd.start_ns + phase + k * interval - now()) / 1e6))
          }
          step()
        }),
    ),
  )
  return skipped
}

function drain(live, expected, timeoutS) {
  const deadline = now() + timeoutS * 1e9
  return new Promise((resolve) => {
    const check = () => {
      const done = live.every((c) => (c.length() === (expected[c.doc] || 0) && c.settled()) || !c.open)
      if (done) return resolve(true)
      if (now() > deadline) return resolve(false)
      setTimeout(check, 50)
    }
    check()
  })
}

// ---------------------------------------------------------------------------------- worker
export async function runWorker(clientsFor) {
  // the coordinator stops a worker with SIGTERM once it has the result: exit through
  // process.exit, so that `node --cpu-prof` (COWRITE_BENCH_NODE_PROFILE) still writes its profile
  process.on("SIGTERM", () => process.exit(0))
  startReading()
  const spec = JSON.parse(await nextLine())
  const makeClient = await clientsFor(spec)
  const clients = spec.clients.map(([i, d]) => makeClient(i, d, spec))
  const t0 = now()
  const failures = await connectAll(clients, spec.connect_concurrency || 64)
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
  const gc = { total: 0, max: 0, count: 0 }
  if (cmd.cmd === "go") {
    // the garbage collector's pauses while typing: each holds every client of this process
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        gc.total += e.duration
        gc.max = Math.max(gc.max, e.duration)
        gc.count += 1
      }
    })
    observer.observe({ entryTypes: ["gc"] })
    skipped = await typeAll(live, spec, cmd, lags)
    observer.disconnect()
    const perDoc = {}
    for (const c of clients) perDoc[c.doc] = (perDoc[c.doc] || 0) + c.keystrokes
    emit({ event: "sent", per_doc: perDoc })
    cmd = await nextCommand()
    drained = await drain(live, cmd.per_doc || {}, cmd.timeout_s ?? spec.drain_timeout_s)
  }
  const errors = {}
  for (const c of clients) {
    for (const e of c.errors) {
      const head = String(e).slice(0, 120)
      errors[head] = (errors[head] || 0) + 1
    }
  }
  const result = {
    event: "result",
    proc: spec.proc,
    drained,
    connect_failures: failures.length,
    still_connected: clients.filter((c) => c.open).length,
    sends: [...rec.sends].map(([k, v]) => [k, ...v]),
    recv: [...rec.recv].map(([k, v]) => [k, ...v]),
    clients: clients.map((c) => [c.index, c.doc, c.ready ? c.length() : 0, c.ready ? c.digest() : "", c.keystrokes, c.settled()]),
    lag_ms: {
      p50: lags.length ? percentile(lags, 50) / 1e6 : null,
      p99: lags.length ? percentile(lags, 99) / 1e6 : null,
      max: lags.length ? lags.reduce((a, b) => (a > b ? a : b), 0) / 1e6 : null,
    },
    errors,
    skipped,
    gc_ms: gc,
  }
  // stdout is a pipe: a large line is written asynchronously, so exit only once it is out;
  // close the clients after (the coordinator reads the server's memory on receipt)
  process.stdout.write(PREFIX + JSON.stringify(result) + "\n", () => {
    for (const c of clients) {
      try {
        c.close()
      } catch {}
    }
    setTimeout(() => process.exit(0), 200)
  })
}
