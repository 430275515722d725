/**
 * When to ping each of thousands of connections: a wheel of slots that turns once per interval,
 * one slot a tick. Each member sits in one slot, so each is visited once an interval, and a tick
 * visits only its slot's members (about members × tick / interval, the same number every tick)
 * instead of walking every connection to find the due ones. Slots are handed out with a stride
 * near the golden section of the wheel and prime to its size: members added one after another
 * land far apart, and every slot is taken once before any is taken twice (slots differ by at
 * most one member while nobody leaves).
 */
export class PingWheel<T> {
  readonly #slots: Set<T>[];
  readonly #slotOf = new Map<T, number>();
  readonly #stride: number;
  #nextSlot = 0;
  /** The next tick to visit (ticks counted from time 0), or null before the first call. */
  #next: number | null = null;

  constructor(
    readonly intervalMs: number,
    readonly tickMs: number,
  ) {
    const n = Math.max(1, Math.round(intervalMs / tickMs));
    this.#slots = Array.from({ length: n }, () => new Set<T>());
    let stride = Math.max(1, Math.round(n * 0.6180339887498949));
    while (gcd(stride, n) !== 1) stride++;
    this.#stride = stride;
  }

  get size(): number {
    return this.#slotOf.size;
  }

  add(member: T): void {
    if (this.#slotOf.has(member)) return;
    const slot = this.#nextSlot;
    this.#nextSlot = (slot + this.#stride) % this.#slots.length;
    this.#slotOf.set(member, slot);
    this.#slots[slot]!.add(member);
  }

  delete(member: T): void {
    const slot = this.#slotOf.get(member);
    if (slot === undefined) return;
    this.#slotOf.delete(member);
    this.#slots[slot]!.delete(member);
  }

  /**
   * Visit the members of every slot that came up since the last call, up to `nowMs`: a late tick
   * catches up, but never visits a slot twice in one call (at most one turn).
   */
  due(nowMs: number, visit: (member: T) => void): void {
    const tick = Math.floor(nowMs / this.tickMs);
    let from = this.#next ?? tick;
    if (tick - from >= this.#slots.length) from = tick - this.#slots.length + 1;
    for (let k = from; k <= tick; k++) {
      for (const member of this.#slots[k % this.#slots.length]!) visit(member);
    }
    this.#next = Math.max(this.#next ?? 0, tick + 1);
  }
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}
