// Load generator for the OT servers of `cowrite bench server`, speaking the bench's line
// protocol (load_worker.mjs; see benchmarks/load.py's docstring). The spec's kind picks the
// client, each the real one its users run:
//   "sharedb"     sharedb/lib/client (sharedb_client.mjs), json0 `si` ops on one string field;
//   "cowrite-js"  cowrite's JavaScript client (cowrite_js_client.mjs), the module given by
//                 --cowrite-client (the coordinator passes web/src/client.js of its checkout).
//   node ot_load.mjs [--cowrite-client PATH]      (spec and commands on stdin)
import path from "node:path"
import { pathToFileURL, fileURLToPath } from "node:url"
import { runWorker } from "./load_worker.mjs"

const here = path.dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const at = args.indexOf("--cowrite-client")
const cowriteClient = at >= 0 ? path.resolve(args[at + 1]) : path.join(here, "..", "..", "web", "src", "client.js")

async function clientsFor(spec) {
  if (spec.kind === "sharedb") {
    const { ShareDBClient } = await import("./sharedb_client.mjs")
    return (i, d, s) => new ShareDBClient(i, d, s)
  }
  if (spec.kind === "cowrite-js") {
    const { CowriteClient } = await import(pathToFileURL(cowriteClient).href)
    const { cowriteJsClientClass } = await import("./cowrite_js_client.mjs")
    const Client = cowriteJsClientClass(CowriteClient)
    return (i, d, s) => new Client(i, d, s)
  }
  throw new Error(`unknown client kind ${spec.kind} (have sharedb, cowrite-js)`)
}

runWorker(clientsFor).catch((e) => {
  process.stderr.write(`${e?.stack ?? e}\n`)
  process.exit(1)
})
