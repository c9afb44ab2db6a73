/**
 * Micro-benchmark of the balancers' `pick()`: nanoseconds per pick at 10 and at 1,000 nodes, for
 * every built-in balancer. A feedback balancer's pick is timed with its `done` report (what a cluster
 * does once per call). Nodes are plain objects (address, weight, never backing off), so only the
 * balancer is measured.
 *
 *   npm run bench -- --micro pick        (or: npx node bench/src/micro/pick.ts)
 */
import {
  type Balancer,
  type Call,
  consistentHash,
  hashBy,
  leastActive,
  p2cEwma,
  random,
  roundRobin,
  smoothWeightedRoundRobin,
  weightedRandom,
} from "@weft/core";
import { nsPerOp } from "./measure.ts";

interface BenchNode {
  readonly address: string;
  readonly weight: number;
  readonly backingOff: boolean;
}

const nodesOf = (count: number): BenchNode[] =>
  Array.from({ length: count }, (_, i) => ({
    address: `10.0.${i >> 8}.${i & 255}:4000`,
    weight: 50 + (i % 4) * 50,
    backingOff: false,
  }));

/** 1,024 calls whose `x-user` header differs: the key the hash balancers read. */
const calls: Call[] = Array.from({ length: 1024 }, (_, i) => {
  const headers = new Map([["x-user", `user-${i}`]]);
  return { headers: { get: (k: string) => headers.get(k) } } as unknown as Call;
});
const userKey = (call: Call): string | undefined => call.headers.get("x-user");

const BALANCERS: ReadonlyArray<readonly [string, () => Balancer]> = [
  ["roundRobin", () => roundRobin()],
  ["smoothWeightedRoundRobin", () => smoothWeightedRoundRobin()],
  ["random", () => random()],
  ["weightedRandom", () => weightedRandom()],
  ["hashBy", () => hashBy({ key: userKey })],
  ["consistentHash", () => consistentHash({ key: userKey })],
  ["leastActive", () => leastActive()],
  ["p2cEwma", () => p2cEwma()],
];

const ok = { latencyMs: 1, error: undefined };

/** ns per pick (plus `done` for a feedback balancer) of `make()` over `count` nodes. */
export function measurePick(make: () => Balancer, count: number): number {
  const balancer = make();
  const nodes = nodesOf(count);
  let i = 0;
  return nsPerOp(() => {
    const picked = balancer.pick(nodes, calls[i++ & 1023]!);
    if (balancer.feedback) picked?.done(ok);
    return picked;
  }, 5);
}

export function run(): void {
  console.log("balancer pick(): ns per call (fastest of 5 rounds)");
  console.log(`${"balancer".padEnd(26)}${"10 nodes".padStart(10)}${"1000 nodes".padStart(12)}`);
  for (const [name, make] of BALANCERS) {
    const small = measurePick(make, 10);
    const large = measurePick(make, 1000);
    console.log(`${name.padEnd(26)}${small.toFixed(0).padStart(10)}${large.toFixed(0).padStart(12)}`);
  }
}

if (import.meta.main) run();
