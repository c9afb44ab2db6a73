/**
 * Metadata: string key/value pairs carried with a call (request headers, response headers, trailers).
 *
 * Keys are case-insensitive and stored lower-case. Keys starting with `:` are reserved for the protocol
 * and rejected here. Values are UTF-8 strings; binary values go base64-encoded under a key ending in
 * `-bin`, the gRPC convention, so they cross to gRPC unchanged.
 */
export class Metadata implements Iterable<[string, string]> {
  // Created on first write: most calls carry no headers or trailers, and an empty Metadata should
  // cost one small object, not a Map.
  #map: Map<string, string> | undefined;

  constructor(init?: Iterable<readonly [string, string]> | Record<string, string> | Metadata) {
    if (init === undefined) return;
    if (init instanceof Metadata) {
      if (init.#map !== undefined && init.#map.size > 0) this.#map = new Map(init.#map);
    } else if (Symbol.iterator in init) {
      for (const [k, v] of init as Iterable<readonly [string, string]>) this.set(k, v);
    } else {
      for (const k of Object.keys(init)) this.set(k, (init as Record<string, string>)[k]!);
    }
  }

  get(key: string): string | undefined {
    return this.#map?.get(key.toLowerCase());
  }

  has(key: string): boolean {
    return this.#map?.has(key.toLowerCase()) ?? false;
  }

  set(key: string, value: string): this {
    const k = key.toLowerCase();
    if (k.length === 0 || k.charCodeAt(0) === 58 /* ':' */) {
      throw new TypeError(`metadata key "${key}" is reserved or empty: keys must not start with ":"`);
    }
    this.#map ??= new Map();
    this.#map.set(k, String(value));
    return this;
  }

  /** Sets a key without validating it; for the protocol layer, which also carries `:` keys. */
  setRaw(key: string, value: string): this {
    this.#map ??= new Map();
    this.#map.set(key, value);
    return this;
  }

  delete(key: string): boolean {
    return this.#map?.delete(key.toLowerCase()) ?? false;
  }

  get size(): number {
    return this.#map?.size ?? 0;
  }

  keys(): IterableIterator<string> {
    return (this.#map ?? EMPTY).keys();
  }

  entries(): IterableIterator<[string, string]> {
    return (this.#map ?? EMPTY).entries();
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return (this.#map ?? EMPTY).entries();
  }

  /** Copies every entry of `other` into this, replacing existing keys. */
  merge(other: Metadata | undefined): this {
    if (other !== undefined && other.#map !== undefined) for (const [k, v] of other.#map) this.setRaw(k, v);
    return this;
  }

  toJSON(): Record<string, string> {
    return this.#map === undefined ? {} : Object.fromEntries(this.#map);
  }
}

const EMPTY: ReadonlyMap<string, string> = new Map();
