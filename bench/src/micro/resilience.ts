/**
 * Micro-benchmark of the resilience policies' per-call cost: nanoseconds per unary echo call over
 * the in-memory transport (the real protocol, no socket), with no interceptor, with Weft's own
 * `timeout` + `retry`, and with the same policies built from cockatiel (`retry` alone, and
 * `timeout` + `retry` wrapped), each as one interceptor. Every call succeeds, so what is measured
 * is what a policy costs on the path every call takes. Fastest of 3 interleaved passes of 9 rounds per variant. The same
 * policies around a stub transport that answers at once give their cost without the echo's noise.
 *
 *   npm run bench -- --micro resilience        (or: npx node bench/src/micro/resilience.ts)
 */
import {
  type CallHandler,
  type CallResult,
  Code,
  createClient,
  createMemoryTransport,
  createServer,
  defineService,
  type Interceptor,
  Metadata,
  messageType,
  unary,
  WeftError,
} from "@weft/core";
import { retry, timeout } from "@weft/resilience";
import {
  retry as cockatielRetry,
  timeout as cockatielTimeout,
  ExponentialBackoff,
  handleWhen,
  type IPolicy,
  TimeoutStrategy,
  wrap,
} from "cockatiel";
import { fastestOf } from "./measure.ts";

const Echo = defineService("bench.v1.Echo", {
  echo: unary(messageType<{ text: string }>(), messageType<{ text: string }>()),
});

/** An interceptor running each call through a cockatiel policy. */
function viaCockatiel(policy: IPolicy): Interceptor {
  return (next: CallHandler) => (call) => policy.execute(() => next(call));
}

const unavailable = handleWhen((e) => e instanceof WeftError && e.code === Code.UNAVAILABLE);
const cockatielRetryOnly = (): IPolicy =>
  cockatielRetry(unavailable, { maxAttempts: 2, backoff: new ExponentialBackoff() });

const VARIANTS: ReadonlyArray<readonly [string, () => Interceptor[]]> = [
  ["no interceptor", () => []],
  ["weft timeout + retry", () => [timeout({ ms: 1_000 }), retry({ maxAttempts: 3 })]],
  ["cockatiel retry", () => [viaCockatiel(cockatielRetryOnly())]],
  [
    "cockatiel timeout + retry",
    () => [viaCockatiel(wrap(cockatielTimeout(1_000, TimeoutStrategy.Cooperative), cockatielRetryOnly()))],
  ],
];

export async function run(): Promise<void> {
  const server = createServer();
  server.register(Echo, { echo: (request) => request });
  const transport = createMemoryTransport(server);
  const request = { text: "hello" };
  const clients = VARIANTS.map(([, interceptors]) =>
    createClient(Echo, transport, { interceptors: interceptors() }),
  );
  // the policies alone, around a handler that answers at once: what each adds, without the echo's noise
  const answer: CallResult = {
    stream: false,
    headers: new Metadata(),
    message: request,
    trailers: new Metadata(),
  };
  const stubs = VARIANTS.map(([, interceptors]) =>
    createClient(
      Echo,
      { call: () => Promise.resolve(answer), close: async () => {} },
      { interceptors: interceptors() },
    ),
  );
  const echo = await fastestOf(clients.map((client) => () => client.echo(request)));
  const alone = await fastestOf(stubs.map((client) => () => client.echo(request)));
  console.log("resilience policies: ns per unary call, fastest of 3 interleaved passes of 9 rounds");
  console.log(`  ${"".padEnd(28)} ${"echo (in-memory)".padStart(26)} ${"policy alone (stub)".padStart(26)}`);
  for (let i = 0; i < VARIANTS.length; i++) {
    console.log(`  ${VARIANTS[i]![0].padEnd(28)} ${cell(echo, i)} ${cell(alone, i)}`);
  }
  await transport.close();
  await server.shutdown({ timeoutMs: 1_000 });
}

/** `ns` of variant `i`, and what it adds to the first (no interceptor). */
function cell(ns: number[], i: number): string {
  const own = `${ns[i]!.toFixed(0)} ns`;
  if (i === 0) return own.padStart(26);
  const extra = ns[i]! - ns[0]!;
  return `${own} (${extra >= 0 ? "+" : ""}${extra.toFixed(0)})`.padStart(26);
}

if (import.meta.main) await run();
