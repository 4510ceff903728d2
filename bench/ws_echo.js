// WebSocket echo server for bench/websocket.yaml (bench/README.md, "WebSocket echo"): Node's `ws` 8.
// npm install ws (outside the repository), then: taskset -c 1 node bench/ws_echo.js 8765
// It echoes every message and prints, on SIGUSR2 and at exit, how many it echoed.
const { WebSocketServer } = require("ws");
const port = Number(process.argv[2] || 8765);
let echoed = 0;
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });
wss.on("connection", (ws) => ws.on("message", (data, isBinary) => { echoed++; ws.send(data, { binary: isBinary }); }));
process.on("SIGUSR2", () => console.log(`echoed ${echoed}`));
process.on("SIGTERM", () => { console.log(`echoed ${echoed}`); process.exit(0); });
