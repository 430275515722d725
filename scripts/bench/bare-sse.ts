/**
 * The events bench's baseline: a bare node:http server holding SSE streams; each line on stdin is
 * written as one event to every stream. It prints its port, then serves until killed.
 */
import http from 'node:http';
import { createInterface } from 'node:readline';

const streams = new Set<http.ServerResponse>();
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(': connected\n\n');
  streams.add(res);
  res.on('close', () => streams.delete(res));
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as { port: number }).port}\n`));
let seq = 0;
createInterface({ input: process.stdin }).on('line', (id) => {
  const frame = `id: ${++seq}\nevent: incident\ndata: ${JSON.stringify({ id, seq, type: 'opened', at: new Date().toISOString() })}\n\n`;
  for (const res of streams) res.write(frame);
});
