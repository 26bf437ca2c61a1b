// y-websocket's own server (@y/websocket-server, the server y-websocket 3 moved out of its
// package) as a peer for `cowrite bench`: in-memory documents (no YPERSISTENCE), loopback.
// Its src/server.js with a --port option, like hocuspocus_server.mjs.
//   node ywebsocket_server.mjs --port 1234
import http from "node:http"
import { WebSocketServer } from "ws"
import { setupWSConnection } from "@y/websocket-server/utils"

const args = process.argv.slice(2)
const at = args.indexOf("--port")
const port = at >= 0 ? Number(args[at + 1]) : 1234

const wss = new WebSocketServer({ noServer: true })
wss.on("connection", setupWSConnection)
const server = http.createServer((_request, response) => {
  response.writeHead(200, { "Content-Type": "text/plain" })
  response.end("okay")
})
server.on("upgrade", (request, socket, head) => {
  wss.handleUpgrade(request, socket, head, (ws) => wss.emit("connection", ws, request))
})
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0))
server.listen(port, "127.0.0.1", () => console.log(`y-websocket listening on 127.0.0.1:${port}`))
