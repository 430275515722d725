import { randomBytes } from 'node:crypto';

/**
 * A sortable, URL-safe id: 48 bits of milliseconds then 80 random bits, Crockford base32
 * (26 characters, the ULID layout). Ids sort by creation time, which keeps outboxes and
 * listings in order without a second column.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export function newId(now: number = Date.now()): string {
  let out = '';
  let time = now;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[time % 32] + out;
    time = Math.floor(time / 32);
  }
  const rand = randomBytes(16);
  for (let i = 0; i < 16; i++) out += ALPHABET[rand[i]! % 32];
  return out;
}
