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
wss.on("connection", (ws) => {
  const stream = new WebSocketJSONStream(ws)
  // a write to a socket its client just closed fails (EPIPE, "WebSocket CLOSING or CLOSED"):
  // the stream then closes and ShareDB drops the agent; without a listener the error would
  // end the whole server
  stream.on("error", () => {})
  backend.listen(stream)
})
wss.on("listening", () => console.log(`sharedb listening on 127.0.0.1:${port}`))

const stop = () => {
  for (const ws of wss.clients) ws.terminate()
  wss.close(() => backend.close(() => process.exit(0)))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
