/**
 * Metadata: string key/value pairs carried with a call (request headers, response headers, trailers).
 *
 * Keys are case-insensitive and stored lower-case. Keys starting with `:` are reserved for the protocol
 * and rejected here. Values are UTF-8 strings; binary values go base64-encoded under a key ending in
 * `-bin`, the gRPC convention, so they cross to gRPC unchanged.
 */
export class Metadata implements Iterable<[string, string]> {
  readonly #map: Map<string, string>;

  constructor(init?: Iterable<readonly [string, string]> | Record<string, string> | Metadata) {
    this.#map = new Map();
    if (init === undefined) return;
    if (init instanceof Metadata) {
      for (const [k, v] of init.#map) this.#map.set(k, v);
    } else if (Symbol.iterator in init) {
      for (const [k, v] of init as Iterable<readonly [string, string]>) this.set(k, v);
    } else {
      for (const k of Object.keys(init)) this.set(k, (init as Record<string, string>)[k]!);
    }
  }

  get(key: string): string | undefined {
    return this.#map.get(key.toLowerCase());
  }

  has(key: string): boolean {
    return this.#map.has(key.toLowerCase());
  }

  set(key: string, value: string): this {
    const k = key.toLowerCase();
    if (k.length === 0 || k.charCodeAt(0) === 58 /* ':' */) {
      throw new TypeError(`metadata key "${key}" is reserved or empty: keys must not start with ":"`);
    }
    this.#map.set(k, String(value));
    return this;
  }

  /** Sets a key without validating it; for the protocol layer, which also carries `:` keys. */
  setRaw(key: string, value: string): this {
    this.#map.set(key, value);
    return this;
  }

  delete(key: string): boolean {
    return this.#map.delete(key.toLowerCase());
  }

  get size(): number {
    return this.#map.size;
  }

  keys(): IterableIterator<string> {
    return this.#map.keys();
  }

  entries(): IterableIterator<[string, string]> {
    return this.#map.entries();
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.#map.entries();
  }

  /** Copies every entry of `other` into this, replacing existing keys. */
  merge(other: Metadata | undefined): this {
    if (other !== undefined) for (const [k, v] of other.#map) this.#map.set(k, v);
    return this;
  }

  toJSON(): Record<string, string> {
    return Object.fromEntries(this.#map);
  }
}
