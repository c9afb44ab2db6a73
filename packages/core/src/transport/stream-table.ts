/**
 * The calls in flight on one connection, by stream id. Not a `Map`: a connection adds and removes a
 * call for every call, and a `Map` with that churn rebuilds its table every few dozen calls, each old
 * table keeping a link to the next (for iterators that may still walk it). Once one old table was
 * promoted to the old generation, that chain keeps every later table, and the calls they held,
 * through each young-generation collection until a full one: under an open loop most per-call garbage
 * was promoted.
 *
 * Stream ids grow by one per call, so a slot per id modulo a power of two holds every call in flight
 * without collisions while they fit in the window: the slots are two arrays (ids, values) that hold
 * live calls only and are reallocated only to grow, when a new id meets a call still in flight in its
 * slot (a long stream among many short calls).
 */
export class StreamTable<T> {
  #ids: Float64Array;
  #values: Array<T | undefined>;
  #mask: number;
  #size = 0;

  constructor(capacity = 64) {
    this.#ids = new Float64Array(capacity).fill(-1);
    this.#values = new Array<T | undefined>(capacity).fill(undefined);
    this.#mask = capacity - 1;
  }

  get size(): number {
    return this.#size;
  }

  get(id: number): T | undefined {
    const i = id & this.#mask;
    return this.#ids[i] === id ? this.#values[i] : undefined;
  }

  set(id: number, value: T): void {
    let i = id & this.#mask;
    const held = this.#ids[i]!;
    if (held !== id && held >= 0) {
      this.#grow(id);
      i = id & this.#mask;
    }
    if (this.#ids[i] !== id) this.#size++;
    this.#ids[i] = id;
    this.#values[i] = value;
  }

  delete(id: number): void {
    const i = id & this.#mask;
    if (this.#ids[i] !== id) return;
    this.#ids[i] = -1;
    this.#values[i] = undefined;
    this.#size--;
  }

  clear(): void {
    this.#ids.fill(-1);
    this.#values.fill(undefined);
    this.#size = 0;
  }

  /** The entries, by increasing stream id (the order the calls were opened in): a copy. */
  entries(): Array<[number, T]> {
    const out: Array<[number, T]> = [];
    const ids = this.#ids;
    for (let i = 0; i < ids.length; i++) if (ids[i]! >= 0) out.push([ids[i]!, this.#values[i]!]);
    return out.sort((a, b) => a[0] - b[0]);
  }

  /** Doubles the slots until every call in flight and `id` have one of their own. */
  #grow(id: number): void {
    const live = this.entries();
    let capacity = this.#ids.length * 2;
    for (;;) {
      const mask = capacity - 1;
      const taken = new Set<number>([id & mask]);
      if (live.every(([k]) => !taken.has(k & mask) && taken.add(k & mask))) break;
      capacity *= 2;
    }
    this.#ids = new Float64Array(capacity).fill(-1);
    this.#values = new Array<T | undefined>(capacity).fill(undefined);
    this.#mask = capacity - 1;
    for (const [k, v] of live) {
      this.#ids[k & this.#mask] = k;
      this.#values[k & this.#mask] = v;
    }
  }
}
