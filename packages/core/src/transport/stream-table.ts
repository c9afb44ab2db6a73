/**
 * The calls in flight on one connection, by stream id. Not a `Map`: a connection adds and removes a
 * call for every call, and a `Map` with that churn rebuilds its table every few dozen calls, each old
 * table keeping a link to the next (for iterators that may still walk it). Once one old table was
 * promoted to the old generation, that chain keeps every later table, and the calls they held,
 * through each young-generation collection until a full one: under an open loop most per-call garbage
 * was promoted. An object keyed by integer has no such chain.
 */
export class StreamTable<T> {
  #byId: Record<number, T> = Object.create(null);
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(id: number): T | undefined {
    return this.#byId[id];
  }

  set(id: number, value: T): void {
    if (this.#byId[id] === undefined) this.#size++;
    this.#byId[id] = value;
  }

  delete(id: number): void {
    if (this.#byId[id] === undefined) return;
    this.#size--;
    delete this.#byId[id];
  }

  clear(): void {
    this.#byId = Object.create(null);
    this.#size = 0;
  }

  /** The entries, by increasing stream id (the order the calls were opened in). */
  *entries(): IterableIterator<[number, T]> {
    const byId = this.#byId;
    for (const key in byId) yield [Number(key), byId[key as unknown as number]!];
  }
}
