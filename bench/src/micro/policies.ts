/**
 * Micro-benchmark of every `@weft/resilience` policy alone: nanoseconds per unary call through a
 * client whose transport is a stub answering at once, with the policy as its only interceptor, and
 * what that adds to the same client with no interceptor. Every call succeeds and every limit is far
 * above the rate reached, so what is measured is the cost a policy puts on the path every call takes
 * (its bookkeeping, timers, clock reads), not its rejections. Fastest of 3 interleaved passes of 9
 * rounds per variant. The retry budget is not an interceptor: its per-call bookkeeping
 * (`recordRequest` + `tryRetry`) is timed directly, and it is also inside every `retry` row.
 *
 * Then the default chain of the `weft-chain` macro system: `timeout` + `retry` + `circuitBreaker`
 * (failureRatio) over a cluster of one stub node balanced by `p2cEwma()` (which asks for feedback, so
 * every call is timed and reported), against the same cluster with round robin and no interceptor;
 * core's `armDeadline` + `cancel` with 64 deadlines pending, what a call with a deadline pays on
 * each side for its timer; and one read of each clock. A call through the chain over TCP reads the
 * clock four times (the timeout's deadline and the request's `:timeout` budget from `Date.now()`,
 * P2C's pick and the attempt's end from `performance.now()`; the stub node here skips the budget's,
 * so three): on a machine where a read costs tens of nanoseconds, those reads alone are a floor
 * under what the chain can cost.
 *
 *   npm run bench -- --micro policies        (or: npx node bench/src/micro/policies.ts)
 */
import {
  type CallResult,
  createClient,
  defineService,
  type Interceptor,
  Metadata,
  messageType,
  p2cEwma,
  roundRobin,
  unary,
} from "@weft/core";
import { armDeadline, Cluster, type DeadlineTimer, type TransportNode } from "@weft/core/internal";
import {
  adaptiveThrottling,
  bulkhead,
  circuitBreaker,
  consecutiveFailures,
  failureRatio,
  fallback,
  fixedWindow,
  hedge,
  type Limiter,
  leakyBucket,
  rateLimit,
  retry,
  retryBudget,
  slidingWindowCounter,
  slidingWindowLog,
  slowCallRatio,
  timeout,
  tokenBucket,
} from "@weft/resilience";
import { fastestOf, nsPerOp } from "./measure.ts";

/** Idempotent, so that `hedge` hedges it instead of passing it through. */
const Echo = defineService("bench.v1.Echo", {
  echo: unary(messageType<{ text: string }>(), messageType<{ text: string }>(), { idempotent: true }),
});

/** Far above any rate a single process reaches: the limiters always grant. */
const HUGE = 1_000_000_000;
const limited = (limiter: Limiter): Interceptor => rateLimit({ limiter });

/** Each variant's label and its interceptors (made fresh per client). */
export const POLICY_VARIANTS: ReadonlyArray<readonly [string, () => Interceptor[]]> = [
  ["no interceptor", () => []],
  ["timeout({ ms: 1000 })", () => [timeout({ ms: 1_000 })]],
  ["retry()", () => [retry()]],
  ["hedge({ delayMs: 50 })", () => [hedge({ delayMs: 50 })]],
  ["circuitBreaker consecutiveFailures", () => [circuitBreaker({ rule: consecutiveFailures() })]],
  ["circuitBreaker failureRatio", () => [circuitBreaker({ rule: failureRatio() })]],
  [
    "circuitBreaker slowCallRatio",
    () => [circuitBreaker({ rule: slowCallRatio({ slowCallMs: 1_000, ratio: 0.3 }) })],
  ],
  ["circuitBreaker adaptiveThrottling", () => [circuitBreaker({ rule: adaptiveThrottling() })]],
  ["rateLimit tokenBucket", () => [limited(tokenBucket({ ratePerSecond: HUGE }))]],
  ["rateLimit leakyBucket", () => [limited(leakyBucket({ ratePerSecond: HUGE }))]],
  ["rateLimit fixedWindow", () => [limited(fixedWindow({ limit: HUGE, windowMs: 1_000 }))]],
  // a 1 ms window keeps the log short: the cost measured is the log's upkeep at a steady rate
  ["rateLimit slidingWindowLog", () => [limited(slidingWindowLog({ limit: HUGE, windowMs: 1 }))]],
  ["rateLimit slidingWindowCounter", () => [limited(slidingWindowCounter({ limit: HUGE, windowMs: 1_000 }))]],
  ["bulkhead({ maxConcurrent: 64 })", () => [bulkhead({ maxConcurrent: 64 })]],
  ["fallback({ value })", () => [fallback({ value: { text: "" } })]],
];

/** The `weft-chain` system's interceptors and balancer, and the same cluster bare. */
export const CHAIN_VARIANTS: ReadonlyArray<readonly [string, () => Interceptor[], boolean]> = [
  ["cluster, round robin, no interceptor", () => [], false],
  ["cluster, p2cEwma, no interceptor", () => [], true],
  [
    "cluster, p2cEwma, timeout + retry + breaker",
    () => [timeout({ ms: 1_000 }), retry(), circuitBreaker({ rule: failureRatio() })],
    true,
  ],
];

export async function run(): Promise<void> {
  const request = { text: "hello" };
  const answer: CallResult = {
    stream: false,
    headers: new Metadata(),
    message: request,
    trailers: new Metadata(),
  };
  const stub = { call: () => Promise.resolve(answer), close: async () => {} };
  const clients = POLICY_VARIANTS.map(([, interceptors]) =>
    createClient(Echo, stub, { interceptors: interceptors() }),
  );
  const ns = await fastestOf(clients.map((client) => () => client.echo(request)));
  const node: TransportNode = {
    address: "stub:1",
    ready: true,
    backingOff: false,
    connect: () => Promise.resolve(),
    call: () => Promise.resolve(answer),
    close: async () => {},
  };
  const chains = CHAIN_VARIANTS.map(([, interceptors, p2c]) =>
    createClient(Echo, new Cluster([node], { balancer: p2c ? p2cEwma() : roundRobin() }), {
      interceptors: interceptors(),
    }),
  );
  const chainNs = await fastestOf(chains.map((client) => () => client.echo(request)));
  const pending: DeadlineTimer[] = [];
  const noop = (): void => {};
  for (let i = 0; i < 64; i++) pending.push(armDeadline(Date.now() + 1_000, noop));
  let oldest = 0;
  const deadlineNs = nsPerOp(() => {
    pending[oldest]!.cancel();
    pending[oldest] = armDeadline(Date.now() + 1_000, noop);
    oldest = (oldest + 1) % pending.length;
    return oldest;
  });
  for (const timer of pending) timer.cancel();
  const dateNs = nsPerOp(() => Date.now());
  const perfNs = nsPerOp(() => performance.now());
  const budget = retryBudget({ ratio: 1 });
  const budgetNs = nsPerOp(() => {
    budget.recordRequest();
    return budget.tryRetry();
  });

  const budgetLabel = "retryBudget recordRequest + tryRetry";
  const deadlineLabel = "armDeadline + cancel, 64 pending";
  const width = Math.max(
    budgetLabel.length,
    ...POLICY_VARIANTS.map(([label]) => label.length),
    ...CHAIN_VARIANTS.map(([label]) => label.length),
  );
  console.log(
    "resilience policies alone: ns per unary call on a stub transport, fastest of 3 interleaved passes",
  );
  console.log(`  ${"policy".padEnd(width)} ${"ns/call".padStart(9)} ${"added".padStart(9)}`);
  for (let i = 0; i < POLICY_VARIANTS.length; i++) {
    const added = i === 0 ? "-" : `${ns[i]! - ns[0]! >= 0 ? "+" : ""}${(ns[i]! - ns[0]!).toFixed(0)}`;
    console.log(
      `  ${POLICY_VARIANTS[i]![0].padEnd(width)} ${ns[i]!.toFixed(0).padStart(9)} ${added.padStart(9)}`,
    );
  }
  console.log(`  ${budgetLabel.padEnd(width)} ${budgetNs.toFixed(0).padStart(9)}   (sync, no call)`);
  console.log("the default chain over a cluster of one stub node");
  for (let i = 0; i < CHAIN_VARIANTS.length; i++) {
    const extra = chainNs[i]! - chainNs[0]!;
    const added = i === 0 ? "-" : `${extra >= 0 ? "+" : ""}${extra.toFixed(0)}`;
    console.log(
      `  ${CHAIN_VARIANTS[i]![0].padEnd(width)} ${chainNs[i]!.toFixed(0).padStart(9)} ${added.padStart(9)}`,
    );
  }
  console.log(`  ${deadlineLabel.padEnd(width)} ${deadlineNs.toFixed(0).padStart(9)}   (sync, no call)`);
  for (const [label, ns] of [
    ["Date.now()", dateNs],
    ["performance.now()", perfNs],
  ] as const) {
    console.log(`  ${label.padEnd(width)} ${ns.toFixed(0).padStart(9)}   (one clock read)`);
  }
}

if (import.meta.main) await run();
