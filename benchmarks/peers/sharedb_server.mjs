// ShareDB peer server for `cowrite bench`: sharedb 7 with its defaults (in-memory database and
// pub/sub, json0), every WebSocket (`ws`, no compression, as `ws` servers default) handed to
// the backend through @teamwork/websocket-json-stream, bound to loopback.
//   node sharedb_server.mjs --port 1234
import ShareDB from "sharedb"
import WebSocketJSONStream from "@teamwork/websocket-json-stream"
import { WebSocketServer } from "ws"

const args = process.argv.slice(2)
const at = args.indexOf("--port")
const port = at >= 0 ? Number(args[at + 1]) : 1234

const backend = new ShareDB()
const wss = new WebSocketServer({ host: "127.0.0.1", port })
wss.on("connection", (ws) => backend.listen(new WebSocketJSONStream(ws)))
wss.on("listening", () => console.log(`sharedb listening on 127.0.0.1:${port}`))

const stop = () => {
  for (const ws of wss.clients) ws.terminate()
  wss.close(() => backend.close(() => process.exit(0)))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
