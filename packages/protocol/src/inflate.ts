import { Gunzip } from 'fflate';
import { ProtocolError } from './errors.ts';

/**
 * DEFLATE cannot expand its input by more than about 1032:1 (a 258-byte match costs at least two
 * bits). Feeding the inflater at most `budget / 1032` input bytes per push means no single push
 * can produce more than the bytes still allowed, so a gzip bomb is stopped at the limit instead
 * of being inflated first and measured after.
 */
const MAX_DEFLATE_RATIO = 1032;
const MIN_STEP = 64;

/** Gunzip `input`, refusing with PROTO_TOO_LARGE as soon as the output would pass `maxBytes`. */
export function gunzipBounded(input: Uint8Array, maxBytes: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let ended = false;
  const gunzip = new Gunzip((chunk, final) => {
    total += chunk.length;
    if (total > maxBytes) {
      throw new ProtocolError('PROTO_TOO_LARGE', `payload inflates past the ${maxBytes}-byte limit`);
    }
    if (chunk.length > 0) chunks.push(chunk);
    if (final) ended = true;
  });
  try {
    if (input.length === 0) throw new Error('empty gzip data');
    let offset = 0;
    while (offset < input.length) {
      const step = Math.max(MIN_STEP, Math.floor((maxBytes - total) / MAX_DEFLATE_RATIO));
      const end = Math.min(input.length, offset + step);
      gunzip.push(input.subarray(offset, end), end === input.length);
      offset = end;
    }
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError('PROTO_BAD_GZIP', `data is not valid gzip: ${(err as Error).message}`);
  }
  if (!ended) throw new ProtocolError('PROTO_BAD_GZIP', 'data is not valid gzip: stream did not end');
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
