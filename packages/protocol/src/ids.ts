import { randomBytes } from 'node:crypto';

/**
 * A sortable, URL-safe id: 48 bits of milliseconds then 80 random bits, Crockford base32
 * (26 characters, the ULID layout). Ids made by one process are strictly increasing: within the
 * same millisecond the random part is incremented, so creation order is id order.
 */
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const RANDOM_DIGITS = 16;

let lastTime = -1;
let lastRandom: number[] = [];

export function newId(now: number = Date.now()): string {
  let random: number[];
  if (now <= lastTime) {
    now = lastTime;
    random = increment(lastRandom);
  } else {
    const bytes = randomBytes(RANDOM_DIGITS);
    random = Array.from(bytes, (b) => b % 32);
  }
  lastTime = now;
  lastRandom = random;
  let out = '';
  let time = now;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[time % 32] + out;
    time = Math.floor(time / 32);
  }
  for (const digit of random) out += ALPHABET[digit];
  return out;
}

function increment(digits: number[]): number[] {
  const next = [...digits];
  for (let i = next.length - 1; i >= 0; i--) {
    if (next[i]! < 31) {
      next[i]!++;
      return next;
    }
    next[i] = 0;
  }
  // 80 bits overflowed within one millisecond: start over with fresh randomness.
  return Array.from(randomBytes(RANDOM_DIGITS), (b) => b % 32);
}
