/**
 * What a sender does with text it did not write (log lines, journal fields, host facts) before it
 * goes on the wire, so that the receiver's checks (see checkText) never refuse it: a NUL becomes
 * U+2400 SYMBOL FOR NULL (visible, and not a terminator anywhere), a lone surrogate becomes
 * U+FFFD. Everything else is left as it is. Objects and arrays are copied; the input is not
 * changed.
 */
export function wireSafe<T>(value: T): T {
  return clean(value, 0) as T;
}

const MAX_DEPTH = 64; // the sender's own payloads are shallow; deeper is a bug, cut rather than loop

function clean(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return wireSafeText(value);
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
  if (Array.isArray(value)) return value.map((v) => clean(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    Object.defineProperty(out, wireSafeText(key), { value: clean(v, depth + 1), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

export function wireSafeText(text: string): string {
  const s = text.includes('\0') ? text.replaceAll('\0', '\u2400') : text;
  const w = s as string & { isWellFormed(): boolean; toWellFormed(): string };
  return w.isWellFormed() ? s : w.toWellFormed();
}
