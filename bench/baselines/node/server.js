// The article's server, as a baseline for wstime's benchmark: one setInterval per connection
// sending "<name>: you have been connected for N seconds". No client id, no sessions, no
// cluster. Settings come from the environment so that bench/run.py can start it on a free port:
//   PORT (required), NAME (default node-ws), TICK_MS (default 1000), BACKLOG (default 4096).
"use strict";

const WebSocket = require("ws");

const port = Number(process.env.PORT);
const name = process.env.NAME || "node-ws";
const tickMs = Number(process.env.TICK_MS || 1000);
const backlog = Number(process.env.BACKLOG || 4096);
if (!Number.isInteger(port) || port <= 0) {
  console.error("set PORT to the port to listen on");
  process.exit(2);
}

const wss = new WebSocket.Server({ host: "127.0.0.1", port, backlog });

wss.on("connection", (ws) => {
  let n = 0;
  const timer = setInterval(() => {
    ws.send(`${name}: you have been connected for ${n++} seconds`);
  }, tickMs);
  ws.on("close", () => clearInterval(timer));
});

wss.on("listening", () => console.log(`${name} listening on 127.0.0.1:${port}`));
process.on("SIGTERM", () => process.exit(0));
