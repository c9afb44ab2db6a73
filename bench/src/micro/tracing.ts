/**
 * Micro-benchmark of `tracing()`'s per-call cost: nanoseconds per unary echo call over the in-memory
 * transport (the real protocol, client and server in this process, no socket), with no tracing, with
 * `tracing()` and no SDK registered, and with the OpenTelemetry SDK set up as the bench's
 * `weft-trace-*` systems do (a context manager, W3C trace context, a parent-based sampler with 1% or
 * all of the root spans sampled, a batching span processor into the in-memory exporter), plus the
 * SDK at 1% with the W3C and baggage propagators composed as the SDK's default set-up has them.
 * Both sides of every call are traced, so a row is a client span and a server span. Process CPU
 * time per call (a busy machine disturbs it less than elapsed time), fastest of 3 interleaved passes
 * of 9 rounds per variant. The variants share one process (and its JIT), so the `weft-trace-*`
 * systems of the macro-benchmark, each in processes of its own over TCP, remain the reference: this
 * is for quick comparisons and for profiles.
 *
 *   npm run bench -- --micro tracing        (or: npx node bench/src/micro/tracing.ts)
 *
 * `--profile VARIANT` (run directly, with `node --cpu-prof`) calls only that variant for 5 s.
 */
import { context, propagation, trace } from "@opentelemetry/api";
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from "@opentelemetry/core";
import { createClient, createMemoryTransport, createServer, type Interceptor } from "@weft/core";
import { type Tracing, tracing } from "@weft/observability";
import { Echo } from "../systems/weft/service.ts";
import { sdkTracing } from "../systems/weft-observed/instruments.ts";
import { fastestOf } from "./measure.ts";

function pair(t: Tracing): [Interceptor, Interceptor] {
  return [t.client, t.server];
}

const WITH_BAGGAGE = new CompositePropagator({
  propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
});

const VARIANTS: ReadonlyArray<readonly [string, () => [Interceptor, Interceptor] | undefined]> = [
  ["no tracing", () => undefined],
  ["tracing(), no SDK", () => pair(tracing())],
  ["SDK, 1% sampled", () => pair(sdkTracing(0.01))],
  ["SDK, 1%, W3C + baggage", () => pair(sdkTracing(0.01, WITH_BAGGAGE))],
  ["SDK, 100% sampled", () => pair(sdkTracing(1))],
];

export async function run(): Promise<void> {
  const request = new Uint8Array(100);
  const echoes: (() => Promise<unknown>)[] = [];
  const closing: (() => Promise<void>)[] = [];
  for (const [, make] of VARIANTS) {
    const sides = make();
    const server = createServer({ interceptors: sides === undefined ? [] : [sides[1]] });
    server.register(Echo, { echo: (req: Uint8Array) => req, stream: async function* () {} });
    const transport = createMemoryTransport(server);
    const client = createClient(Echo, transport, { interceptors: sides === undefined ? [] : [sides[0]] });
    echoes.push(() => client.echo(request));
    closing.push(async () => {
      await transport.close();
      await server.shutdown({ timeoutMs: 1_000 });
    });
  }
  const profiled = process.argv.indexOf("--profile");
  if (profiled !== -1) {
    const i = VARIANTS.findIndex(([name]) => name === process.argv[profiled + 1]);
    if (i === -1) throw new Error(`--profile: one of ${VARIANTS.map(([n]) => JSON.stringify(n)).join(", ")}`);
    const echo = echoes[i]!;
    const until = performance.now() + 5_000;
    let calls = 0;
    const cpu = process.cpuUsage();
    while (performance.now() < until) {
      for (let k = 0; k < 1_000; k++) await echo();
      calls += 1_000;
    }
    const used = process.cpuUsage(cpu);
    console.log(`${VARIANTS[i]![0]}: ${((used.user + used.system) / calls) * 1000} ns CPU per call`);
  } else {
    const ns = await fastestOf(echoes, 3, "cpu");
    console.log(
      "tracing(): CPU ns per unary echo call (in-memory, client + server span), fastest of 3 interleaved passes of 9 rounds",
    );
    for (let i = 0; i < VARIANTS.length; i++) {
      const extra = i === 0 ? "" : ` (+${(ns[i]! - ns[0]!).toFixed(0)}, ${(ns[i]! / ns[0]!).toFixed(2)}x)`;
      console.log(`  ${VARIANTS[i]![0].padEnd(26)} ${`${ns[i]!.toFixed(0)} ns${extra}`.padStart(28)}`);
    }
  }
  for (const close of closing) await close();
  trace.disable();
  propagation.disable();
  context.disable();
}

if (import.meta.main) await run();
