/**
 * The demo's resilience scene: a pricing dependency (a Weft server on loopback TCP) is made to fail
 * every call and then heals, while a client calls it every 25 ms through `fallback` (a cached price)
 * and a `circuitBreaker` (3 failures in a row open it for 300 ms). Printed as a timeline: the
 * failures answered by the fallback, the breaker opening, calls rejected locally (never sent) and
 * answered by the fallback, the half-open probe once the dependency healed, and the breaker closing.
 * Takes about a second.
 */
import {
  Code,
  codeName,
  createClient,
  createServer,
  createTcpTransport,
  defineService,
  messageType,
  type Telemetry,
  unary,
  WeftError,
} from "@weft/core";
import { circuitBreaker, consecutiveFailures, fallback } from "@weft/resilience";

const Pricing = defineService("demo.Pricing", {
  quote: unary(messageType<{ sku: string }>(), messageType<{ cents: number; source: string }>()),
});

const CALL_EVERY_MS = 25;
const OPEN_MS = 300;
const CACHED = { cents: 1200, source: "cached" };

/** Runs the scene, printing its timeline through `say`; resolves with true when the breaker closed again. */
export async function resilienceScene(say: (line: string) => void): Promise<boolean> {
  let failing = false;
  let served = 0;
  const server = createServer();
  server.register(Pricing, {
    quote: () => {
      served++;
      if (failing) throw new WeftError(Code.UNAVAILABLE, "pricing database unreachable");
      return { cents: 1250, source: "live" };
    },
  });
  const { port } = await server.listen({ host: "127.0.0.1", port: 0 });

  // the timeline, printed once the scene is over: a run of calls answered alike is one entry, at
  // the time its first call was answered, so the breaker's changes fall between the runs they split
  const started = performance.now();
  const entries: { t: number; text: string }[] = [];
  const line = (text: string) => {
    const entry = { t: performance.now() - started, text };
    entries.push(entry);
    return entry;
  };
  let state = "closed";
  let lastFallback = "";
  const telemetry: Telemetry = {
    event: (name, attributes) => {
      if (name === "breaker.state") {
        const { from, to } = attributes as { from: string; to: string };
        state = to;
        line(`breaker ${from} -> ${to}${to === "half-open" ? " (one probe call let through)" : ""}`);
      } else if (name === "fallback.used") {
        const { code, reason } = attributes as { code: Code; reason: string };
        lastFallback = reason === "" ? codeName(code) : reason;
      }
    },
  };
  const transport = createTcpTransport({ address: `127.0.0.1:${port}` });
  const pricing = createClient(Pricing, transport, {
    interceptors: [
      fallback({ value: CACHED, telemetry }),
      circuitBreaker({ rule: consecutiveFailures({ failures: 3 }), openMs: OPEN_MS, telemetry }),
    ],
  });

  say(
    `[resilience] pricing dependency on 127.0.0.1:${port}; client: fallback (cached price) around a circuit breaker (3 failures in a row, open ${OPEN_MS} ms)`,
  );
  let closedAgain = false;
  let openedAt = -1;
  let healedAt = -1;
  /** Consecutive calls answered the same way make one entry, with their numbers. */
  let run: { how: string; from: number; entry: { text: string } } | null = null;
  const flush = () => {
    run = null;
  };
  const record = (n: number, how: string) => {
    if (run === null || run.how !== how) run = { how, from: n, entry: line("") };
    run.entry.text = `${run.from === n ? `call ${n}` : `calls ${run.from}-${n}`}: ${how}`;
  };
  try {
    for (let n = 1; n <= 60 && !closedAgain; n++) {
      if (n === 3) {
        flush();
        failing = true;
        line("dependency made to fail: every call UNAVAILABLE");
      }
      if (openedAt > 0 && healedAt < 0 && n >= openedAt + 3) {
        flush();
        failing = false;
        healedAt = n;
        line("dependency healed");
      }
      lastFallback = "";
      const stateBefore = state;
      const sentBefore = served;
      const answer = await pricing.quote({ sku: "A-100" });
      const sent = served > sentBefore;
      if (state === "open" && stateBefore === "closed") openedAt = n;
      const how =
        answer.source === "live"
          ? `live price ${(answer.cents / 100).toFixed(2)} EUR`
          : `fallback ${(answer.cents / 100).toFixed(2)} EUR (${lastFallback === "" ? "failed" : lastFallback}${sent ? "" : ", not sent"})`;
      record(n, how);
      if (stateBefore !== "closed" && state === "closed") {
        flush();
        closedAgain = true;
      }
      await new Promise((resolve) => setTimeout(resolve, CALL_EVERY_MS));
    }
    line(`dependency received ${served} calls; breaker ${state}`);
    for (const { t, text } of entries) say(`[resilience] +${String(Math.round(t)).padStart(4)} ms  ${text}`);
    return closedAgain;
  } finally {
    await transport.close();
    await server.shutdown({ timeoutMs: 1000 });
  }
}
