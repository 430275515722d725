import { Gunzip, gunzipSync } from 'fflate';
import { crc32 } from './crc32.ts';
import { ProtocolError } from './errors.ts';

/**
 * DEFLATE cannot expand its input by more than about 1032:1 (a 258-byte match costs at least two
 * bits). Feeding the inflater at most `budget / 1032` input bytes per push means no single push
 * can produce more than the bytes still allowed, so a gzip bomb is stopped at the limit instead
 * of being inflated first and measured after.
 */
const MAX_DEFLATE_RATIO = 1032;
const MIN_STEP = 64;

const GZIP_OVERHEAD = 18; // 10-byte header + 8-byte trailer

/** Gunzip `input`, refusing with PROTO_TOO_LARGE as soon as the output would pass `maxBytes`. */
export function gunzipBounded(input: Uint8Array, maxBytes: number): Uint8Array {
  return gunzipSmall(input, maxBytes) ?? gunzipStreaming(input, maxBytes);
}

/**
 * The common case, an input too small to inflate past the limit even at DEFLATE's worst ratio,
 * decoded in one pass into a buffer sized from the trailer (fflate's streaming decoder costs
 * ~100 µs a call in buffer growth; this ~2 µs). The trailer is only believed when the output
 * matches both its size and its CRC-32; otherwise (multi-member or corrupt) returns undefined and
 * the exact streaming path decides.
 */
function gunzipSmall(input: Uint8Array, maxBytes: number): Uint8Array | undefined {
  const worstCase = (input.length - GZIP_OVERHEAD) * MAX_DEFLATE_RATIO;
  if (input.length < GZIP_OVERHEAD || worstCase > maxBytes) return undefined;
  const n = input.length;
  const wantCrc = (input[n - 8]! | (input[n - 7]! << 8) | (input[n - 6]! << 16) | (input[n - 5]! << 24)) >>> 0;
  const wantSize = (input[n - 4]! | (input[n - 3]! << 8) | (input[n - 2]! << 16) | (input[n - 1]! << 24)) >>> 0;
  if (wantSize > worstCase) return undefined;
  let out: Uint8Array;
  try {
    // One byte of headroom: an output that fills it is longer than the trailer says.
    out = gunzipSync(input, { out: new Uint8Array(wantSize + 1) });
  } catch {
    return undefined;
  }
  return out.length === wantSize && crc32(out) === wantCrc ? out : undefined;
}

function gunzipStreaming(input: Uint8Array, maxBytes: number): Uint8Array {
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
