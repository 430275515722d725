import { gunzipSync as fflateGunzip } from 'fflate';
import { gunzipSync } from 'node:zlib';
import { crc32 } from './crc32.ts';
import { ProtocolError } from './errors.ts';

/** DEFLATE cannot expand its input by more than about 1032:1 (a 258-byte match costs at least two bits). */
const MAX_DEFLATE_RATIO = 1032;

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
    out = fflateGunzip(input, { out: new Uint8Array(wantSize + 1) });
  } catch {
    return undefined;
  }
  return out.length === wantSize && crc32(out) === wantCrc ? out : undefined;
}

/**
 * Everything else: node's zlib (native, ~30x faster than a JavaScript inflater on a 4 MiB
 * output; a 50 MB bomb was 60-100 ms of fflate, 2-14 ms here) with `maxOutputLength`, which
 * stops inflating as soon as the output passes the limit: a bomb is never inflated whole.
 */
function gunzipStreaming(input: Uint8Array, maxBytes: number): Uint8Array {
  if (input.length === 0) throw new ProtocolError('PROTO_BAD_GZIP', 'data is not valid gzip: empty');
  try {
    return gunzipSync(input, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new ProtocolError('PROTO_TOO_LARGE', `payload inflates past the ${maxBytes}-byte limit`);
    }
    throw new ProtocolError('PROTO_BAD_GZIP', `data is not valid gzip: ${(err as Error).message}`);
  }
}
