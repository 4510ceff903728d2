// k6's side of bench/websocket.yaml: 50 users, one connection each, a 64-byte text message sent and its echo
// awaited (and checked, as lrun's expect), no think time; each user closes after COUNT echoes.
// GOMAXPROCS=1 taskset -c 0 k6 run -q -e HOST=127.0.0.1:8765 -e COUNT=240 bench/k6_websocket.js
import ws from "k6/ws";
import { check } from "k6";

const COUNT = Number(__ENV.COUNT || 200);
export const options = {
  scenarios: { echo: { executor: "per-vu-iterations", vus: 50, iterations: 1, maxDuration: "10m" } },
};
const MESSAGE = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

export default function () {
  let echoes = 0;
  ws.connect(`ws://${__ENV.HOST || "127.0.0.1:8765"}/echo`, null, (socket) => {
    socket.on("open", () => socket.send(MESSAGE));
    socket.on("message", (data) => {
      check(data, { echo: (d) => d.indexOf("0123") >= 0 });
      echoes += 1;
      if (echoes < COUNT) socket.send(MESSAGE);
      else socket.close();
    });
  });
}
