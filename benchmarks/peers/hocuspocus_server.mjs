// Hocuspocus peer server for `cowrite bench`: defaults, in-memory documents, bound to loopback.
//   node hocuspocus_server.mjs --port 1234
import { Server } from "@hocuspocus/server"

const args = process.argv.slice(2)
const at = args.indexOf("--port")
const port = at >= 0 ? Number(args[at + 1]) : 1234

const server = new Server({
  port,
  address: "127.0.0.1",
  quiet: true,
  stopOnSignals: true,
})
await server.listen()
console.log(`hocuspocus listening on 127.0.0.1:${port}`)
