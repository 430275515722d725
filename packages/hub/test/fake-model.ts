/** A local HTTP server speaking OpenAI's chat completions API: the one part of the LLM path faked. */
import type { Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export type Reply = (body: any, req: IncomingMessage, res: ServerResponse) => void;

/** Answer each request with the next reply (the last one repeats); record what was asked. */
export async function fakeModel(t: Test, replies: Reply[]) {
  const requests: { body: any; raw: string; headers: IncomingMessage['headers'] }[] = [];
  const server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c: Buffer) => (raw += c.toString()));
    req.on('end', () => {
      const body = JSON.parse(raw);
      requests.push({ body, raw, headers: req.headers });
      replies[Math.min(requests.length - 1, replies.length - 1)]!(body, req, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as { port: number };
  return { requests, baseURL: `http://127.0.0.1:${port}/v1` };
}

export const completion = (content: string): Reply => (body, _req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: body.model, choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
};

export const status = (code: number): Reply => (_b, _r, res) => {
  res.writeHead(code, { 'content-type': 'application/json', 'retry-after-ms': '10' });
  res.end(JSON.stringify({ error: { message: 'slow down', type: 'rate_limit' } }));
};
