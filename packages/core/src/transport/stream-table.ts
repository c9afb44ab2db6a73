/**
 * The calls in flight on one connection, by stream id, on both sides. Not a `Map`: a connection adds
 * and removes a call for every call, and a `Map` with that churn rebuilds its table every few dozen
 * calls, each old table keeping a link to the next (for iterators that may still walk it). Once one
 * old table was promoted to the old generation, that chain keeps every later table, and the calls
 * they held, through each young-generation collection until a full one: under an open loop most
 * per-call garbage was promoted.
 *
 * Stream ids grow with every call, so a slot per id modulo a power of two holds the calls in flight
 * without collisions while they fit in the window: the slots are two arrays (ids, values) that hold
 * live calls only. A new id that meets a call still in flight in its slot (a long stream among many
 * short calls, or ids a peer chose to collide) moves that call aside, into a `Map` used for such calls
 * only; the slots grow only once half of them are taken. So the table's size follows the number of
 * calls in flight, never the span of their ids, whatever ids a peer sends.
 */
export class StreamTable<T> {
  #ids: Float64Array;
  #values: Array<T | undefined>;
  #mask: number;
  /** Calls in the slots. */
  #slotted = 0;
  /** Calls moved out of their slot by a newer id; `undefined` until the first one. */
  #aside: Map<number, T> | undefined = undefined;

  constructor(capacity = 64) {
    this.#ids = new Float64Array(capacity).fill(-1);
    this.#values = new Array<T | undefined>(capacity).fill(undefined);
    this.#mask = capacity - 1;
  }

  get size(): number {
    return this.#slotted + (this.#aside?.size ?? 0);
  }

  /** How many slots there are (the arrays' length). */
  get capacity(): number {
    return this.#ids.length;
  }

  get(id: number): T | undefined {
    const i = id & this.#mask;
    if (this.#ids[i] === id) return this.#values[i];
    return this.#aside?.get(id);
  }

  set(id: number, value: T): void {
    const aside = this.#aside;
    if (aside?.has(id)) {
      aside.set(id, value);
      return;
    }
    let i = id & this.#mask;
    const held = this.#ids[i]!;
    if (held !== id && held >= 0) {
      if (2 * this.#slotted >= this.#ids.length) {
        this.#grow();
        i = id & this.#mask;
      }
      const other = this.#ids[i]!;
      if (other >= 0 && other !== id) {
        // the call in the slot has outlived a whole window of newer ids: it waits aside
        this.#putAside(other, this.#values[i]!);
        this.#ids[i] = -1;
        this.#values[i] = undefined;
        this.#slotted--;
      }
    }
    if (this.#ids[i] !== id) this.#slotted++;
    this.#ids[i] = id;
    this.#values[i] = value;
  }

  delete(id: number): void {
    const i = id & this.#mask;
    if (this.#ids[i] !== id) {
      this.#aside?.delete(id);
      return;
    }
    this.#ids[i] = -1;
    this.#values[i] = undefined;
    this.#slotted--;
  }

  clear(): void {
    this.#ids.fill(-1);
    this.#values.fill(undefined);
    this.#slotted = 0;
    this.#aside = undefined;
  }

  /** The entries, by increasing stream id (the order the calls were opened in): a copy. */
  entries(): Array<[number, T]> {
    const out: Array<[number, T]> = [];
    const ids = this.#ids;
    for (let i = 0; i < ids.length; i++) if (ids[i]! >= 0) out.push([ids[i]!, this.#values[i]!]);
    if (this.#aside !== undefined) for (const entry of this.#aside) out.push(entry);
    return out.sort((a, b) => a[0] - b[0]);
  }

  /** Doubles the slots and puts every call back, newest first into its slot; the others wait aside. */
  #grow(): void {
    const live = this.entries();
    const capacity = this.#ids.length * 2;
    this.#ids = new Float64Array(capacity).fill(-1);
    this.#values = new Array<T | undefined>(capacity).fill(undefined);
    this.#mask = capacity - 1;
    this.#slotted = 0;
    this.#aside = undefined;
    for (let k = live.length - 1; k >= 0; k--) {
      const [id, value] = live[k]!;
      const i = id & this.#mask;
      if (this.#ids[i]! >= 0) {
        this.#putAside(id, value);
        continue;
      }
      this.#ids[i] = id;
      this.#values[i] = value;
      this.#slotted++;
    }
  }

  #putAside(id: number, value: T): void {
    this.#aside ??= new Map();
    this.#aside.set(id, value);
  }
}
