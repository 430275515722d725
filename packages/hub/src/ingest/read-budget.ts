/**
 * Bounds the frames the hub reads in one event-loop turn. Every readable socket hands over up to
 * 64 KiB at once; with thousands of agents sending hard, one turn would decode for seconds while
 * database replies, REST requests and exec results wait. Past `framesPerTurn`, a reader that is
 * streaming (several frames this turn) pauses after its current chunk and is resumed in a later
 * turn, `resumesPerTurn` at a time, in order. A reader sending a frame now and then never waits.
 */
export class ReadBudget {
  #used = 0;
  #scheduled = false;
  /** Increments every turn, so readers can count their own frames per turn. */
  turn = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(
    private readonly framesPerTurn: number,
    private readonly resumesPerTurn: number,
  ) {}

  /** Count one frame; false once this turn's budget is spent (the caller should pause). */
  take(): boolean {
    this.#schedule();
    return ++this.#used <= this.framesPerTurn;
  }

  /** Run `resume` in a later turn. */
  defer(resume: () => void): void {
    this.#waiting.push(resume);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate runs after this turn's I/O callbacks: a new turn starts then.
    setImmediate(() => {
      this.#scheduled = false;
      this.#used = 0;
      this.turn++;
      for (const resume of this.#waiting.splice(0, this.resumesPerTurn)) resume();
      if (this.#waiting.length > 0) this.#schedule();
    });
  }
}
