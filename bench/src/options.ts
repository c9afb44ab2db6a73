import { parseArgs } from "node:util";
import { BENCH_BROKERS, type BenchBroker } from "./messaging/brokers.ts";
import { type CaseKind, SYSTEMS, type SystemName } from "./types.ts";

export interface BenchCase {
  /** Name used by `--cases`. */
  id: string;
  kind: CaseKind;
  payloadBytes: number;
  concurrency: number;
}

export const CASES: readonly BenchCase[] = [
  { id: "small-1", kind: "unary", payloadBytes: 100, concurrency: 1 },
  { id: "small-64", kind: "unary", payloadBytes: 100, concurrency: 64 },
  { id: "small-256", kind: "unary", payloadBytes: 100, concurrency: 256 },
  { id: "large-64", kind: "unary", payloadBytes: 16 * 1024, concurrency: 64 },
  { id: "stream", kind: "server-stream", payloadBytes: 100, concurrency: 1 },
];

export interface BenchOptions {
  quick: boolean;
  systems: SystemName[];
  cases: BenchCase[];
  rounds: number;
  warmupMs: number;
  durationMs: number;
  streamMessages: number;
  out: string;
  /** `--micro NAME`: run that micro-benchmark instead of the macro one. */
  micro: MicroName | undefined;
  /** `--overload`: run the overload scenario (shedding on and off) instead of the macro one. */
  overload: boolean;
  /** `--messaging`: run the messaging benchmark instead of the macro one. */
  messaging: boolean;
  /** `--brokers`: the brokers `--messaging` measures (default all). */
  brokers: BenchBroker[];
  /** `--rate N` / `--open`: unary calls offered per second in an open loop; null for the closed loop. */
  ratePerSec: number | null;
}

/**
 * `--open` without `--rate`, calls/s: what every Weft system kept up with on the 2-core machine the
 * bench was written on, with a margin, those with a grpc-js or undici client included (at 4,000/s they
 * fell behind when other work loaded the machine); see bench/README.md.
 */
export const DEFAULT_RATE = 2000;

/** The micro-benchmarks `--micro` runs. */
export const MICROS = ["pick", "msgpack-decode", "resilience", "policies", "outbox", "tracing"] as const;
export type MicroName = (typeof MICROS)[number];

export const USAGE = `usage: npm run bench -- [options]

  --quick               small-64 only, 1 round, 1 s warm-up, 3 s window (under 45 s in all)
  --systems a,b         subset of ${SYSTEMS.join(",")} (default: all)
  --cases a,b           subset of ${CASES.map((c) => c.id).join(",")} (default: all; --quick: small-64)
  --rounds N            interleaved rounds; the median round is reported (default 3; --quick: 1)
  --duration S          measured window per run, seconds (default 5; --quick: 3)
  --warmup S            warm-up per run, seconds (default 2; --quick: 1)
  --stream-messages N   messages asked for per server-streaming call (default 200000)
  --rate N              open loop instead of the closed one: unary calls issued at N per second whatever the
                        answers (in a batch per 1 ms tick, at most 10,000 in flight; calls due beyond that
                        are not sent and are counted), latency from each call's due time; reports offered
                        and completed calls/s, ok and errors, and CPU µs per call at that steady load
                        (the round of median client CPU per call). A case's in-flight count does not
                        apply; default case small-64; no stream case. See bench/README.md, "Fixed rate"
  --open                --rate ${DEFAULT_RATE}, the default rate (what every Weft system keeps up with here)
  --out FILE            where to write the JSON results (default bench/results/latest.json)
  --micro NAME          run a micro-benchmark instead: ${MICROS.join(", ")} (pick: ns per balancer pick at 10 and 1,000 nodes; resilience: ns per call of timeout + retry, Weft's and cockatiel's; policies: ns per call of every resilience policy alone; outbox: messages/s and p99 of the outbox's relays against publishing directly, on PostgreSQL; tracing: CPU ns per call of tracing(), no SDK and the SDK at 1% and 100%)
  --overload            run the overload scenario instead: a 1 ms CPU-bound handler offered 2x its capacity,
                        shedding off and on, refusing all, and the floor of answering at once (--warmup and
                        --duration apply to each step; about 55 s)
  --messaging           run the messaging benchmark instead: publish -> consume per broker at 1 and 64 in
                        flight, and messenger.request against the raw NATS client (1 round of 1 s warm-up +
                        2 s window per case unless --rounds/--warmup/--duration say otherwise)
  --brokers a,b         with --messaging: subset of ${BENCH_BROKERS.join(",")} (default: all)
  --help`;

/** Parses the command line; a bad option throws an Error whose message names it. */
export function parseOptions(argv: string[], defaultOut: string): BenchOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      quick: { type: "boolean", default: false },
      systems: { type: "string" },
      cases: { type: "string" },
      rounds: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      "stream-messages": { type: "string" },
      out: { type: "string" },
      micro: { type: "string" },
      overload: { type: "boolean", default: false },
      messaging: { type: "boolean", default: false },
      brokers: { type: "string" },
      rate: { type: "string" },
      open: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return "help";
  const quick = values.quick;
  // the messaging cases are short by default: the machine is shared
  const short = quick || values.messaging;

  const ratePerSec =
    values.rate !== undefined ? positive(values.rate, "--rate", 0, true) : values.open ? DEFAULT_RATE : null;

  const systems = values.systems === undefined ? [...SYSTEMS] : list(values.systems, "--systems", SYSTEMS);
  const caseIds = CASES.map((c) => c.id);
  const cases =
    values.cases !== undefined
      ? list(values.cases, "--cases", caseIds).map((id) => CASES.find((c) => c.id === id)!)
      : quick || ratePerSec !== null
        ? CASES.filter((c) => c.id === "small-64")
        : [...CASES];
  const streaming = cases.find((c) => c.kind !== "unary");
  if (ratePerSec !== null && streaming !== undefined)
    throw new Error(`--rate: applies to unary cases only, not "${streaming.id}"`);

  return {
    quick,
    systems,
    cases,
    rounds: positive(values.rounds, "--rounds", short ? 1 : 3, true),
    warmupMs: Math.round(1000 * positive(values.warmup, "--warmup", short ? 1 : 2, false)),
    durationMs: Math.round(
      1000 * positive(values.duration, "--duration", values.messaging ? 2 : quick ? 3 : 5, false),
    ),
    streamMessages: positive(values["stream-messages"], "--stream-messages", 200_000, true),
    out: values.out ?? defaultOut,
    micro: values.micro === undefined ? undefined : list(values.micro, "--micro", MICROS)[0],
    overload: values.overload,
    messaging: values.messaging,
    brokers:
      values.brokers === undefined ? [...BENCH_BROKERS] : list(values.brokers, "--brokers", BENCH_BROKERS),
    ratePerSec,
  };
}

function list<T extends string>(raw: string, option: string, allowed: readonly T[]): T[] {
  const items = raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (items.length === 0)
    throw new Error(`${option}: expected a comma-separated list of ${allowed.join(", ")}`);
  return items.map((item) => {
    const found = allowed.find((a) => a === item);
    if (found === undefined)
      throw new Error(`${option}: unknown "${item}", expected one of ${allowed.join(", ")}`);
    return found;
  });
}

function positive(raw: string | undefined, option: string, fallback: number, integer: boolean): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new Error(`${option}: expected a positive ${integer ? "integer" : "number"}, got "${raw}"`);
  }
  return n;
}
