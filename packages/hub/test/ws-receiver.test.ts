/**
 * The `ws` receiver as patched (patches/ws@8.23.0.patch): each socket keeps one fragments array,
 * emptied once a message is read, instead of leaving a new one behind per message. Unpatched, a
 * socket that sends every few seconds kept its empty array long enough to reach the old
 * generation, and the next message's buffer, pushed into it, then outlived every young
 * collection through the dead array (measured in docs/PERFORMANCE.md). Messages must read as
 * before: whole, fragmented, text and binary, and an array handed on ('fragments') never reused.
 */
import { Writable } from 'node:stream';
import t from 'tap';
import * as ws from 'ws';

/** `ws` exports its Receiver at run time; @types/ws does not declare it. */
type Receiver = Writable;
const { Receiver } = ws as unknown as {
  Receiver: new (opts: { binaryType: string; isServer: boolean; allowSynchronousEvents: boolean }) => Receiver;
};

/** One unmasked frame (server to client), as a client-side receiver reads it. */
function frame(opcode: number, payload: Buffer, fin = true): Buffer {
  if (payload.length > 125) throw new Error('short frames only');
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, payload.length]), payload]);
}

interface Internals {
  _fragments: Buffer[];
}

function receiver(binaryType: 'nodebuffer' | 'arraybuffer' | 'fragments'): { r: Receiver & Internals; got: [unknown, boolean][]; errors: Error[] } {
  const r = new Receiver({ binaryType, isServer: false, allowSynchronousEvents: true }) as Receiver & Internals;
  const got: [unknown, boolean][] = [];
  const errors: Error[] = [];
  r.on('message', (data: unknown, isBinary: boolean) => got.push([data, isBinary]));
  r.on('error', (err: Error) => errors.push(err));
  return { r, got, errors };
}

t.test('one fragments array per socket, empty between messages', async (t) => {
  const { r, got, errors } = receiver('nodebuffer');
  const array = r._fragments;
  r.write(frame(1, Buffer.from('{"type":"heartbeat"}')));
  t.equal(r._fragments, array, 'the same array after a text message');
  t.equal(array.length, 0, 'and empty: it holds no buffer of a message already read');
  r.write(frame(2, Buffer.from([1, 2, 3])));
  t.equal(r._fragments, array, 'the same array after a binary message');
  t.equal(array.length, 0);
  t.same(
    got.map(([d, b]) => [Buffer.from(d as Buffer).toString('hex'), b]),
    [
      [Buffer.from('{"type":"heartbeat"}').toString('hex'), false],
      ['010203', true],
    ],
  );
  t.same(errors, []);
});

t.test('a fragmented message is read whole, and the array emptied after it', async (t) => {
  const { r, got, errors } = receiver('nodebuffer');
  const array = r._fragments;
  r.write(frame(1, Buffer.from('{"type":'), false));
  t.equal(array.length, 1, 'the first fragment waits in the array');
  r.write(frame(0, Buffer.from('"alert",'), false));
  r.write(frame(0, Buffer.from('"id":"a-1"}')));
  t.equal(got.length, 1);
  t.equal(String(got[0]![0]), '{"type":"alert","id":"a-1"}');
  t.equal(r._fragments, array);
  t.equal(array.length, 0);
  // Two messages in one read, the second fragmented across the next.
  r.write(Buffer.concat([frame(1, Buffer.from('one')), frame(1, Buffer.from('tw'), false)]));
  r.write(frame(0, Buffer.from('o')));
  t.same(
    got.slice(1).map(([d]) => String(d)),
    ['one', 'two'],
  );
  t.same(errors, []);
});

t.test('arraybuffer messages are copies, and the array is reused', async (t) => {
  const { r, got } = receiver('arraybuffer');
  const array = r._fragments;
  r.write(frame(2, Buffer.from([9, 8]), false));
  r.write(frame(0, Buffer.from([7])));
  t.same([...new Uint8Array(got[0]![0] as ArrayBuffer)], [9, 8, 7]);
  t.equal(r._fragments, array);
  t.equal(array.length, 0);
});

t.test("'fragments' hands the array itself on: a new one is taken for the next message", async (t) => {
  const { r, got } = receiver('fragments');
  r.write(frame(2, Buffer.from([1]), false));
  r.write(frame(0, Buffer.from([2])));
  const handed = got[0]![0] as Buffer[];
  t.same(
    handed.map((b) => [...b]),
    [[1], [2]],
    'both fragments, as they came',
  );
  r.write(frame(2, Buffer.from([3])));
  t.same(
    handed.map((b) => [...b]),
    [[1], [2]],
    'the array handed on is left alone by the next message',
  );
  t.not(r._fragments, handed);
  t.same((got[1]![0] as Buffer[]).map((b) => [...b]), [[3]]);
});

t.test('invalid UTF-8 still fails the socket, and leaves nothing behind', async (t) => {
  const { r, errors } = receiver('nodebuffer');
  const array = r._fragments;
  r.write(frame(1, Buffer.from([0xff, 0xfe])));
  await new Promise((resolve) => setImmediate(resolve)); // a stream's error is emitted on a later tick
  t.equal(errors.length, 1);
  t.match((errors[0] as Error & { code?: string }).code, 'WS_ERR_INVALID_UTF8');
  t.equal(array.length, 0);
});
