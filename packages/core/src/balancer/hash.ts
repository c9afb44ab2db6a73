import type { Call } from "../interceptor/call.ts";
import {
  type Balancer,
  type BalancerNode,
  functionOption,
  numberOption,
  type Picked,
  type RandomOptions,
  randomSource,
  Slot,
  skipped,
  weightOf,
} from "./balancer.ts";

/**
 * A stable 32-bit hash of a string: FNV-1a over its UTF-16 code units, then murmur3's finaliser to
 * spread nearby keys. No seed, so every process on every machine maps a key to the same value.
 */
export function stableHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export interface HashOptions extends RandomOptions {
  /**
   * The key of a call (e.g. `(call) => call.headers.get("user-id")`). Required. Calls with the same
   * key go to the same node; a call without one (`undefined`) goes to a random node.
   */
  key: (call: Call) => string | undefined;
}

function keyOption(options: HashOptions): (call: Call) => string | undefined {
  return functionOption("key", options?.key, "a function from a call to its key (a string or undefined)");
}

/**
 * Hash by a call key: the node at `stableHash(key) mod n`; when it is backing off, the next one.
 * Cheap and stable while the node list stays the same, but adding or removing a node moves most
 * keys: use `consistentHash` when that matters. No feedback.
 */
export function hashBy(options: HashOptions): Balancer {
  return new HashBy(keyOption(options), randomSource(options));
}

class HashBy implements Balancer {
  readonly feedback = false;
  readonly #slot = new Slot();
  readonly #key: (call: Call) => string | undefined;
  readonly #random: () => number;

  constructor(key: (call: Call) => string | undefined, random: () => number) {
    this.#key = key;
    this.#random = random;
  }

  pick<N extends BalancerNode>(nodes: readonly N[], call: Call): Picked<N> | undefined {
    const n = nodes.length;
    if (n === 0) return undefined;
    const key = this.#key(call);
    const start = key === undefined ? Math.floor(this.#random() * n) : stableHash(key) % n;
    for (let i = 0; i < n; i++) {
      const node = nodes[(start + i) % n]!;
      if (!skipped(node, n)) return this.#slot.fill(node);
    }
    return undefined;
  }
}

export interface ConsistentHashOptions extends HashOptions {
  /** Points on the ring for a node of weight 100 (a node of weight w gets `replicas × w / 100`). Default 160. */
  replicas?: number;
}

/**
 * Consistent hashing on a ring: each node owns `replicas × weight / 100` points at
 * `stableHash(address + "#" + i)`; a key goes to the owner of the first point at or after
 * `stableHash(key)`, or of the next points when that node is backing off. Adding or removing one of
 * N nodes moves about 1/N of the keys, and every process agrees on a key's node (no per-process
 * seed). The ring is built once per node list (the cluster passes the same array until its nodes
 * change). A call without a key goes to a random node. No feedback.
 */
export function consistentHash(options: ConsistentHashOptions): Balancer {
  const key = keyOption(options);
  const replicas = numberOption("replicas", options.replicas, 160, 1);
  return new ConsistentHash(key, Math.round(replicas), randomSource(options));
}

/** The points of a ring, sorted by hash, and the index (in the node list) of each point's node. */
interface Ring {
  readonly nodes: readonly BalancerNode[];
  readonly hashes: Uint32Array;
  readonly owners: Uint32Array;
}

/** Nodes a ring can tell apart by index: hash × 2^16 + index stays an exact double. */
const MAX_RING_NODES = 0x10000;

export function buildRing(nodes: readonly BalancerNode[], replicas: number): Ring {
  const n = Math.min(nodes.length, MAX_RING_NODES);
  let count = 0;
  const points: number[] = [];
  for (let i = 0; i < n; i++) {
    const node = nodes[i]!;
    const share = Math.round((replicas * weightOf(node)) / 100);
    for (let r = 0; r < share; r++) points.push(stableHash(`${node.address}#${r}`) * MAX_RING_NODES + i);
    count += share;
  }
  const packed = Float64Array.from(points).sort();
  const hashes = new Uint32Array(count);
  const owners = new Uint32Array(count);
  for (let p = 0; p < count; p++) {
    const v = packed[p]!;
    owners[p] = v % MAX_RING_NODES;
    hashes[p] = (v - owners[p]!) / MAX_RING_NODES;
  }
  return { nodes, hashes, owners };
}

/** The index of the first point at or after `hash`, wrapping to 0. */
function firstPoint(hashes: Uint32Array, hash: number): number {
  let lo = 0;
  let hi = hashes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (hashes[mid]! < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo === hashes.length ? 0 : lo;
}

class ConsistentHash implements Balancer {
  readonly feedback = false;
  readonly #slot = new Slot();
  readonly #key: (call: Call) => string | undefined;
  readonly #replicas: number;
  readonly #random: () => number;
  #ring: Ring | undefined;

  constructor(key: (call: Call) => string | undefined, replicas: number, random: () => number) {
    this.#key = key;
    this.#replicas = replicas;
    this.#random = random;
  }

  pick<N extends BalancerNode>(nodes: readonly N[], call: Call): Picked<N> | undefined {
    const n = nodes.length;
    if (n === 0) return undefined;
    let ring = this.#ring;
    if (ring?.nodes !== nodes) {
      ring = buildRing(nodes, this.#replicas);
      this.#ring = ring;
    }
    const size = ring.hashes.length;
    if (size === 0) return undefined;
    const key = this.#key(call);
    const start =
      key === undefined ? Math.floor(this.#random() * size) : firstPoint(ring.hashes, stableHash(key));
    for (let i = 0; i < size; i++) {
      const node = nodes[ring.owners[(start + i) % size]!]!;
      if (!skipped(node, n)) return this.#slot.fill(node);
    }
    return undefined;
  }
}
