/**
 * The baseline: a bare `ws` server that counts the frames it receives and does nothing else.
 * Usage: node --import tsx bare-receiver.ts <port>. Answers GET /count with the count.
 */
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

let count = 0;
const server = createServer((req, res) => {
  res.end(JSON.stringify({ count }));
});
const wss = new WebSocketServer({ server, maxPayload: 1024 * 1024, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', () => {
    count++;
  });
});
server.listen(Number(process.argv[2]), '127.0.0.1', () => process.stdout.write('ready\n'));
