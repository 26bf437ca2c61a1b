// Summarise a V8 .cpuprofile (what `node --cpu-prof` writes; the bench's Node generators leave
// one per process when COWRITE_BENCH_NODE_PROFILE names a directory): the functions with the
// most self time, and the self time per source file, as shares of the sampled time.
//   node cpuprofile_top.mjs FILE.cpuprofile [--top N] [--match TEXT]
// --match keeps only the samples whose stack passes through a function or URL containing TEXT
// (e.g. "client.js", "sharedb"), and also prints the total time under it.
import { readFileSync } from "node:fs"
import path from "node:path"

const args = process.argv.slice(2)
let file = null
let top = 30
let match = null
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--top") top = Number(args[++i]) || 30
  else if (args[i] === "--match") match = args[++i] ?? null
  else file = args[i]
}
if (!file) {
  process.stderr.write("usage: node cpuprofile_top.mjs FILE.cpuprofile [--top N] [--match TEXT]\n")
  process.exit(2)
}
// piped into `head`: stop quietly when the reader has had enough
process.stdout.on("error", (e) => (e.code === "EPIPE" ? process.exit(0) : Promise.reject(e)))
const prof = JSON.parse(readFileSync(file, "utf8"))
const byId = new Map(prof.nodes.map((n) => [n.id, n]))
const parent = new Map()
for (const n of prof.nodes) for (const c of n.children || []) parent.set(c, n.id)

const label = (n) => {
  const f = n.callFrame
  const where = f.url ? `${path.basename(f.url)}:${f.lineNumber + 1}` : "(native)"
  return `${f.functionName || "(anonymous)"} ${where}`
}
const passes = (id) => {
  for (let at = id; at !== undefined; at = parent.get(at)) {
    const f = byId.get(at).callFrame
    if (f.functionName.includes(match) || f.url.includes(match)) return true
  }
  return false
}

// sample i lasts timeDeltas[i + 1]
const self = new Map()
const files = new Map()
let total = 0
let kept = 0
for (let i = 0; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i + 1] ?? 0
  const id = prof.samples[i]
  total += dt
  const n = byId.get(id)
  const idle = n.callFrame.functionName === "(idle)"
  if (match && (idle || !passes(id))) continue
  kept += dt
  const k = label(n)
  self.set(k, (self.get(k) || 0) + dt)
  const fk = n.callFrame.url ? path.basename(n.callFrame.url) : n.callFrame.functionName
  files.set(fk, (files.get(fk) || 0) + dt)
}
const ms = (us) => (us / 1000).toFixed(1)
const pct = (us) => ((100 * us) / total).toFixed(1)
process.stdout.write(`${path.basename(file)}: ${ms(total)} ms sampled${match ? `, ${ms(kept)} ms (${pct(kept)} %) under "${match}"` : ""}\n`)
process.stdout.write(`\nself time by function (top ${top}):\n`)
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${ms(v).padStart(9)} ms ${pct(v).padStart(5)} %  ${k}\n`)
process.stdout.write(`\nself time by file:\n`)
for (const [k, v] of [...files].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${ms(v).padStart(9)} ms ${pct(v).padStart(5)} %  ${k}\n`)
