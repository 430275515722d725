import * as zlib from 'node:zlib';

/** CRC-32 (IEEE 802.3, as in gzip trailers). fflate computes it internally but does not export it. */
const TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** The table-driven version: what runs on a Node without zlib.crc32 (before 20.15). */
export function crc32Js(data: Uint8Array): number {
  let crc = -1;
  for (let i = 0; i < data.length; i++) crc = TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

const native = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

/** Node's own (zlib's, 5x faster on a 400-byte payload: 0.2 against 1.0 µs) where it has one. */
export const crc32: (data: Uint8Array) => number = native ?? crc32Js;
