import type { BenchCase } from "./options.ts";
import {
  type CaseKind,
  type ClientResult,
  payloadOf,
  SYSTEMS,
  type SystemName,
  supportsCase,
} from "./types.ts";

/** One measured run: a system, a case, a round. */
export interface RunOutcome {
  system: SystemName;
  benchCase: BenchCase;
  round: number;
  result: ClientResult | null;
  serverCpuUs: number | null;
  error: string | null;
}

/** One line of bench/results/latest.json: the median round of a (system, case). */
export interface ResultRow {
  system: SystemName;
  case: CaseKind;
  caseId: string;
  concurrency: number;
  payloadBytes: number;
  /** How the payload travels: raw bytes, or a JSON string field (Moleculer, http, weft-rest). */
  payload: "bytes" | "json-string";
  /** Requests/s; for the server-stream case, messages/s. */
  rps: number | null;
  p50Us: number | null;
  p99Us: number | null;
  p999Us: number | null;
  clientCpuUsPerReq: number | null;
  serverCpuUsPerReq: number | null;
  messagesPerSec?: number;
  /** rps of every successful round, in round order. */
  roundsRps: number[];
  /**
   * Fixed-rate (open) loop only (`--rate`): `rps` is calls completed per second, ok or failed, and
   * the round reported is the one of median client CPU per call, not of median rps.
   */
  rate?: RateRow;
  /**
   * Only on non-raw rows: this row's figures relative to other systems in the same case; null when
   * the other system was not run, failed, or is not this row's comparison.
   */
  ratios?: Ratios;
  /** Set when the system has no such case (REST has no server streaming): nothing was run. */
  skipped?: string;
  error?: string;
}

/** A fixed-rate row's own figures (its median round's). */
export interface RateRow {
  /** The rate asked for, calls/s. */
  ratePerSec: number;
  /** Calls that fell due in the window, per second. */
  offeredPerSec: number;
  /** Calls completed in the window: ok, and failed. */
  ok: number;
  errors: number;
  /** Calls due in the window but not sent: the cap on calls in flight was reached. */
  dropped: number;
  inFlightAtEnd: number;
  firstError: string | null;
  /** Client CPU µs per call of every successful round, in round order. */
  roundsClientCpuUs: number[];
}

export interface Ratios {
  rpsVsRaw: number | null;
  rpsVsMoleculer: number | null;
  rpsVsGrpc: number | null;
  /**
   * weft-grpc: the same Weft server behind gRPC instead of Weft's own protocol; weft-p2c3: three
   * servers found through discovery and picked by P2C-EWMA instead of one static address.
   */
  rpsVsWeft: number | null;
  /**
   * weft-p2c3, weft-chain and the observability systems: client CPU µs per request relative to `weft`'s (the
   * cost of discovery + P2C; of the default resilience chain; of what the client side installs).
   */
  clientCpuVsWeft: number | null;
  /** Observability systems only: server CPU µs per request relative to `weft`'s. */
  serverCpuVsWeft: number | null;
  /**
   * Observability systems only: client + server CPU µs per request relative to `weft`'s, the CPU a
   * call costs with both sides instrumented (1.05x: 5% more).
   */
  cpuVsWeft: number | null;
  /** weft-p2c3 and weft-chain only: p99 latency relative to `weft`'s. */
  p99VsWeft: number | null;
  /**
   * weft-p2c3 only: client CPU µs per request relative to `weft-static3`'s, the same three servers as
   * a static round-robin list: the cost of discovery + P2C alone, three connections on both sides.
   */
  clientCpuVsStatic3: number | null;
  /** weft-rest only: against the bare node:http JSON echo, with the same client. */
  rpsVsHttp: number | null;
  /** Server CPU µs per request relative to the grpc-js server's (below 1x is cheaper). */
  serverCpuVsGrpc: number | null;
  p99VsRaw: number | null;
}

/** The targets, checked for every unary case in which both systems ran. */
const TARGETS: readonly {
  label: string;
  system: SystemName;
  /** The system it is compared with. */
  peer: SystemName;
  /** req/s targets cannot be judged when a client process is the bottleneck. */
  what: "rps" | "cpu";
  value: (ratios: Ratios) => number | null;
  atLeast?: number;
  atMost?: number;
}[] = [
  {
    label: "weft-grpc req/s vs grpc-js server (same grpc-js client)",
    system: "weft-grpc",
    peer: "grpc",
    what: "rps",
    value: (r) => r.rpsVsGrpc,
    atLeast: 2,
  },
  {
    label: "weft-grpc server CPU/req vs grpc-js server",
    system: "weft-grpc",
    peer: "grpc",
    what: "cpu",
    value: (r) => r.serverCpuVsGrpc,
    atMost: 0.5,
  },
  {
    label: "weft-p2c3 client CPU/req vs weft-static3 (discovery + P2C, same 3 servers)",
    system: "weft-p2c3",
    peer: "weft-static3",
    what: "cpu",
    value: (r) => r.clientCpuVsStatic3,
    atMost: 1.05,
  },
  {
    label: "weft-chain client CPU/req vs weft (timeout + retry + breaker + P2C, same server)",
    system: "weft-chain",
    peer: "weft",
    what: "cpu",
    value: (r) => r.clientCpuVsWeft,
    atMost: 1.1,
  },
  {
    label: "weft-rest req/s vs bare node:http JSON echo",
    system: "weft-rest",
    peer: "http",
    what: "rps",
    value: (r) => r.rpsVsHttp,
    atLeast: 0.7,
  },
  {
    label: "weft-metrics CPU/call vs weft (metrics on both sides)",
    system: "weft-metrics",
    peer: "weft",
    what: "cpu",
    value: (r) => r.cpuVsWeft,
    atMost: 1.05,
  },
  {
    label: "weft-trace-noop CPU/call vs weft (tracing, no-op provider)",
    system: "weft-trace-noop",
    peer: "weft",
    what: "cpu",
    value: (r) => r.cpuVsWeft,
    atMost: 1.03,
  },
  {
    label: "weft-trace-1pct CPU/call vs weft (SDK, 1% sampled)",
    system: "weft-trace-1pct",
    peer: "weft",
    what: "cpu",
    value: (r) => r.cpuVsWeft,
    atMost: 1.08,
  },
];

/** The `weft` echo with observability installed on both sides, compared with `weft` as is. */
const OBSERVED: ReadonlySet<SystemName> = new Set([
  "weft-metrics",
  "weft-trace-noop",
  "weft-trace-1pct",
  "weft-trace-100pct",
  "weft-observed",
]);

/** Rows with a `vs weft` req/s ratio. */
function comparedWithWeft(system: SystemName): boolean {
  return (
    system === "weft-grpc" ||
    system === "weft-p2c3" ||
    system === "weft-static3" ||
    system === "weft-chain" ||
    system === "weft-spin1" ||
    system === "weft-deadline" ||
    OBSERVED.has(system)
  );
}

function rpsOf(outcome: RunOutcome): number {
  const r = outcome.result;
  return r === null || r.windowUs === 0 ? 0 : r.count / (r.windowUs / 1e6);
}

/** Client CPU µs per completed call (call or message); infinite when none completed. */
function clientCpuOf(outcome: RunOutcome): number {
  const r = outcome.result;
  return r === null || r.count === 0 ? Number.POSITIVE_INFINITY : r.cpuUs / r.count;
}

/** Folds the rounds of each (system, case) into the row of its median round (by rps). */
export function summarize(outcomes: RunOutcome[], systems: SystemName[], cases: BenchCase[]): ResultRow[] {
  const rows: ResultRow[] = [];
  for (const benchCase of cases) {
    for (const system of systems) {
      const skipped = !supportsCase(system, benchCase.kind);
      const mine = outcomes.filter((o) => o.system === system && o.benchCase.id === benchCase.id);
      // at a fixed rate a round that completed nothing is an outcome too: offered, not kept up
      const ok = mine.filter((o) => o.result !== null && (o.result.count > 0 || o.result.rate !== undefined));
      const base: ResultRow = {
        system,
        case: benchCase.kind,
        caseId: benchCase.id,
        concurrency: benchCase.concurrency,
        payloadBytes: benchCase.payloadBytes,
        payload: payloadOf(system),
        rps: null,
        p50Us: null,
        p99Us: null,
        p999Us: null,
        clientCpuUsPerReq: null,
        serverCpuUsPerReq: null,
        roundsRps: ok.map((o) => Math.round(rpsOf(o))),
        ...(skipped ? { skipped: `${system} has no ${benchCase.kind} case` } : {}),
      };
      // at a fixed rate every round completes about as many calls: the cost per call is what varies
      const atRate = ok.some((o) => o.result?.rate !== undefined);
      const key = atRate ? clientCpuOf : rpsOf;
      const sorted = [...ok].sort((a, b) => key(a) - key(b));
      const median = sorted[Math.floor((sorted.length - 1) / 2)];
      const errors = mine.flatMap((o) => (o.error === null ? [] : [o.error]));
      if (errors.length > 0) base.error = errors.join("; ");
      if (median?.result == null) {
        rows.push(base);
        continue;
      }
      const r = median.result;
      const rps = Math.round(rpsOf(median));
      rows.push({
        ...base,
        rps,
        p50Us: r.p50Us,
        p99Us: r.p99Us,
        p999Us: r.p999Us,
        clientCpuUsPerReq: r.count === 0 ? null : round2(r.cpuUs / r.count),
        serverCpuUsPerReq:
          median.serverCpuUs === null || r.count === 0 ? null : round2(median.serverCpuUs / r.count),
        ...(benchCase.kind === "server-stream" ? { messagesPerSec: rps } : {}),
        ...(r.rate === undefined
          ? {}
          : {
              rate: {
                ratePerSec: r.rate.ratePerSec,
                offeredPerSec: r.windowUs === 0 ? 0 : Math.round(r.rate.offered / (r.windowUs / 1e6)),
                ok: r.count - r.rate.errors,
                errors: r.rate.errors,
                dropped: r.rate.dropped,
                inFlightAtEnd: r.rate.inFlightAtEnd,
                firstError: r.rate.firstError,
                roundsClientCpuUs: ok.map(clientCpuOf).filter(Number.isFinite).map(round2),
              },
            }),
      });
    }
  }
  for (const row of rows) {
    if (row.system === "raw" || row.skipped !== undefined) continue;
    const peer = (system: SystemName): ResultRow | undefined =>
      rows.find((r) => r.system === system && r.caseId === row.caseId);
    const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
      a == null || b == null || b === 0 ? null : round2(a / b);
    const raw = peer("raw");
    const grpc = peer("grpc");
    const weft = comparedWithWeft(row.system) ? peer("weft") : undefined;
    const p2c = row.system === "weft-p2c3";
    const observed = OBSERVED.has(row.system);
    const chain =
      row.system === "weft-chain" || row.system === "weft-spin1" || row.system === "weft-deadline";
    row.ratios = {
      rpsVsRaw: ratio(row.rps, raw?.rps),
      rpsVsMoleculer: ratio(row.rps, peer("moleculer")?.rps),
      rpsVsGrpc: ratio(row.rps, grpc?.rps),
      rpsVsWeft: ratio(row.rps, weft?.rps),
      clientCpuVsWeft:
        p2c || chain || observed ? ratio(row.clientCpuUsPerReq, weft?.clientCpuUsPerReq) : null,
      serverCpuVsWeft: observed ? ratio(row.serverCpuUsPerReq, weft?.serverCpuUsPerReq) : null,
      cpuVsWeft: observed ? ratio(sumCpu(row), weft === undefined ? null : sumCpu(weft)) : null,
      p99VsWeft: p2c || chain ? ratio(row.p99Us, weft?.p99Us) : null,
      clientCpuVsStatic3: p2c ? ratio(row.clientCpuUsPerReq, peer("weft-static3")?.clientCpuUsPerReq) : null,
      rpsVsHttp: row.system === "weft-rest" ? ratio(row.rps, peer("http")?.rps) : null,
      serverCpuVsGrpc: ratio(row.serverCpuUsPerReq, grpc?.serverCpuUsPerReq),
      p99VsRaw: ratio(row.p99Us, raw?.p99Us),
    };
  }
  return rows;
}

/** The systems whose `vs weft` ratios apply: each is the `weft` row with one thing changed. */

/** Ratio rows: the Weft systems first, then the others in the order of SYSTEMS. */
function ratioOrder(system: SystemName): number {
  const first: readonly SystemName[] = [
    "weft",
    "weft-chain",
    "weft-spin1",
    "weft-deadline",
    "weft-static3",
    "weft-p2c3",
    "weft-metrics",
    "weft-trace-noop",
    "weft-trace-1pct",
    "weft-trace-100pct",
    "weft-observed",
    "weft-grpc",
    "weft-rest",
  ];
  const i = first.indexOf(system);
  return i >= 0 ? i : first.length + SYSTEMS.indexOf(system);
}

/** A client process at this share of a core or more is what limits req/s. */
const CLIENT_BOUND = 0.9;

/** Share of one core a process used over the window: its CPU µs per request times requests/s. */
function coreShare(cpuUsPerReq: number | null, row: ResultRow): number | null {
  return cpuUsPerReq === null || row.rps === null ? null : (cpuUsPerReq * row.rps) / 1e6;
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}

function fmtShare(x: number | null): string {
  return x === null ? "-" : pct(x);
}

function peerRow(rows: ResultRow[], system: SystemName, caseId: string): ResultRow | undefined {
  return rows.find((r) => r.system === system && r.caseId === caseId);
}

/** Client + server CPU µs per request, when both were measured. */
function sumCpu(row: ResultRow): number | null {
  return row.clientCpuUsPerReq === null || row.serverCpuUsPerReq === null
    ? null
    : row.clientCpuUsPerReq + row.serverCpuUsPerReq;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

function fmtInt(x: number | null | undefined): string {
  return x == null ? "n/a" : int.format(x);
}

function fmtUs(x: number | null | undefined): string {
  if (x == null) return "-";
  return x >= 100 ? int.format(x) : x.toFixed(1);
}

function fmtRatio(x: number | null | undefined, self: boolean): string {
  if (self) return "-";
  return x == null ? "n/a" : `${x.toFixed(2)}x`;
}

function fmtBytes(n: number): string {
  return n >= 1024 && n % 1024 === 0 ? `${n / 1024} KiB` : `${n} B`;
}

function spread(row: ResultRow): string {
  return spreadOf(row.roundsRps, row.rps);
}

/** Half the range of a figure over the rounds, relative to the round reported. */
function spreadOf(rounds: readonly number[], reported: number | null): string {
  if (rounds.length < 2 || reported === null || reported === 0) return "";
  const lo = Math.min(...rounds);
  const hi = Math.max(...rounds);
  return `±${(((hi - lo) / 2 / reported) * 100).toFixed(0)}%`;
}

/** A plain-text table: the first `leftColumns` columns aligned left, the others right. */
export function table(header: string[], body: string[][], leftColumns: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i < leftColumns ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

/** The closed loop's table: req/s and what a request cost at the rate the loop settled at. */
function closedTable(rows: ResultRow[]): string {
  return table(
    [
      "system",
      "case",
      "in-flight",
      "payload",
      "req/s",
      "spread",
      "p50 µs",
      "p99 µs",
      "p99.9 µs",
      "cli CPU µs/req",
      "srv CPU µs/req",
      "cli core",
      "srv core",
    ],
    rows.map((r) => [
      r.system,
      r.case,
      String(r.concurrency),
      fmtBytes(r.payloadBytes) + (r.payload === "json-string" ? "*" : ""),
      r.error !== undefined && r.rps === null ? "FAILED" : fmtInt(r.rps),
      spread(r),
      fmtUs(r.p50Us),
      fmtUs(r.p99Us),
      fmtUs(r.p999Us),
      fmtUs(r.clientCpuUsPerReq),
      fmtUs(r.serverCpuUsPerReq),
      fmtShare(coreShare(r.clientCpuUsPerReq, r)),
      fmtShare(coreShare(r.serverCpuUsPerReq, r)),
    ]),
    2,
  );
}

/** Completions within this share of the calls offered, per second, count as keeping up. */
const KEPT_UP = 0.05;

/**
 * A fixed-rate row kept up with its rate when it completed about the calls/s offered, every call
 * sent and answered ok: otherwise it was working off a backlog, or shedding, and its figures are
 * those of an overloaded system.
 */
function keptUp(row: ResultRow): boolean {
  const rate = row.rate;
  if (rate === undefined || row.rps === null || rate.offeredPerSec === 0) return false;
  return (
    rate.dropped === 0 &&
    rate.errors === 0 &&
    Math.abs(row.rps - rate.offeredPerSec) <= KEPT_UP * rate.offeredPerSec
  );
}

/** The open loop's table: what a call cost at the offered rate, and whether the system kept up. */
function rateTable(rows: ResultRow[]): string {
  return table(
    [
      "system",
      "case",
      "payload",
      "offered/s",
      "done/s",
      "ok",
      "errors",
      "not sent",
      "kept up",
      "p50 µs",
      "p99 µs",
      "p99.9 µs",
      "cli CPU µs/call",
      "spread",
      "srv CPU µs/call",
      "cli core",
      "srv core",
    ],
    rows.map((r) => [
      r.system,
      r.case,
      fmtBytes(r.payloadBytes) + (r.payload === "json-string" ? "*" : ""),
      fmtInt(r.rate?.offeredPerSec),
      r.error !== undefined && r.rps === null ? "FAILED" : fmtInt(r.rps),
      fmtInt(r.rate?.ok),
      fmtInt(r.rate?.errors),
      fmtInt(r.rate?.dropped),
      r.rate === undefined ? "-" : keptUp(r) ? "yes" : "NO",
      fmtUs(r.p50Us),
      fmtUs(r.p99Us),
      fmtUs(r.p999Us),
      fmtUs(r.clientCpuUsPerReq),
      spreadOf(r.rate?.roundsClientCpuUs ?? [], r.clientCpuUsPerReq),
      fmtUs(r.serverCpuUsPerReq),
      fmtShare(coreShare(r.clientCpuUsPerReq, r)),
      fmtShare(coreShare(r.serverCpuUsPerReq, r)),
    ]),
    2,
  );
}

export function formatResults(rows: ResultRow[]): string {
  const atRate = rows.some((r) => r.rate !== undefined);
  const out: string[] = [atRate ? rateTable(rows) : closedTable(rows)];
  out.push(
    "  server-stream rows: req/s counts messages/s and CPU is per message; latency does not apply.",
    "  * moleculer, http, weft-rest: payload is { data: <string of that many characters> } as JSON, not raw bytes.",
    "  weft-p2c3: the weft row's client through a local:/// target and p2cEwma() to three weft server",
    "  processes in a local registry; its srv CPU sums the three. weft-static3: the same three servers as",
    "  a static list (round robin), so weft-p2c3 vs weft-static3 is the cost of discovery + P2C alone.",
    "  weft-chain: the weft row's client with timeout + retry + circuitBreaker and p2cEwma(), same server;",
    "  its cli CPU vs weft is what the default resilience chain costs per call (target <= 1.10x).",
    "  weft-spin1: the weft row's client with one interceptor burning 1 us of CPU per call: what 1 us of",
    "  added work reads as in cli CPU here (a slower round trip makes writes and wake-ups dearer too).",
    "  weft-deadline: the weft row's client with a 1 s deadline on every call and no interceptor, same server:",
    "  what a deadline costs both sides; weft-chain's timeout gives its calls the same deadline.",
    "  weft-grpc: the weft row's server behind @weft/grpc, called by the grpc row's grpc-js client.",
    "  weft-rest: a Weft proto service behind @weft/http, called by the http row's undici client.",
    "  weft-metrics, weft-trace-*, weft-observed: the weft row with @weft/observability on both sides:",
    "  metrics; tracing with no SDK (no-op); the SDK sampling 1% or 100% into an in-memory exporter;",
    "  observed: metrics + the SDK at 1%. CPU vs weft: client + server CPU µs/req over weft's.",
  );
  if (atRate) {
    out.push(
      "  open loop: calls issued at the offered rate whatever the answers (a batch per 1 ms tick); done/s:",
      "  calls completed in the window, ok or failed; not sent: due while 10,000 were in flight. Latency is",
      "  from each call's due time (it includes the wait for the tick, up to about 1 ms). CPU µs/call: over",
      "  the calls completed in the window. The round reported is the one of median cli CPU µs/call; spread:",
      "  half the range of cli CPU µs/call over the rounds, relative to it. kept up: done/s within",
      `  ${pct(KEPT_UP)} of offered/s, every call sent and ok; NO: the system was working off a backlog or`,
      "  failing calls, and its figures are those of an overloaded system, not of the rate asked.",
    );
  } else {
    out.push(
      "  n/a: the system has no such case. spread: half the range of req/s over the rounds, relative to the",
      "  median round reported. cli/srv core: share of one core the process used in the window; from",
      `  ${pct(CLIENT_BOUND)} the client, not the server, sets req/s: compare srv CPU µs/req then (the grpc-js`,
      "  client spends about twice its server's CPU per call).",
    );
  }

  const compared = rows.filter((r) => r.ratios !== undefined && r.rps !== null);
  const caseOrder = (r: ResultRow): number => rows.findIndex((x) => x.caseId === r.caseId);
  compared.sort((a, b) => ratioOrder(a.system) - ratioOrder(b.system) || caseOrder(a) - caseOrder(b));
  if (compared.length > 0) {
    out.push(
      "",
      "Ratios (req/s of the row's system divided by the other's, above 1x is faster; srv CPU: µs/req",
      "divided by the grpc-js server's, below 1x is cheaper; -: not this row's comparison):",
      ...(atRate
        ? [
            "at a fixed rate every system that keeps up completes the same calls/s: read the CPU and p99 ratios.",
          ]
        : []),
      "",
    );
    out.push(
      table(
        [
          "system",
          "case",
          "in-flight",
          "payload",
          "vs raw",
          "vs moleculer",
          "vs grpc-js",
          "vs weft",
          "vs http",
          "srv CPU vs grpc-js",
          "p99 vs raw",
          "cli CPU vs weft",
          "p99 vs weft",
          "cli CPU vs static3",
          "srv CPU vs weft",
          "CPU vs weft",
        ],
        compared.map((r) => [
          r.system,
          r.case,
          r.rate === undefined ? String(r.concurrency) : "open",
          fmtBytes(r.payloadBytes),
          fmtRatio(r.ratios?.rpsVsRaw, false),
          fmtRatio(r.ratios?.rpsVsMoleculer, r.system === "moleculer"),
          fmtRatio(r.ratios?.rpsVsGrpc, r.system === "grpc"),
          fmtRatio(r.ratios?.rpsVsWeft, !comparedWithWeft(r.system)),
          fmtRatio(r.ratios?.rpsVsHttp, r.system !== "weft-rest"),
          fmtRatio(r.ratios?.serverCpuVsGrpc, r.system === "grpc"),
          fmtRatio(r.ratios?.p99VsRaw, false),
          fmtRatio(
            r.ratios?.clientCpuVsWeft,
            r.system !== "weft-p2c3" &&
              r.system !== "weft-chain" &&
              r.system !== "weft-spin1" &&
              r.system !== "weft-deadline" &&
              !OBSERVED.has(r.system),
          ),
          fmtRatio(
            r.ratios?.p99VsWeft,
            r.system !== "weft-p2c3" &&
              r.system !== "weft-chain" &&
              r.system !== "weft-spin1" &&
              r.system !== "weft-deadline",
          ),
          fmtRatio(r.ratios?.clientCpuVsStatic3, r.system !== "weft-p2c3"),
          fmtRatio(r.ratios?.serverCpuVsWeft, !OBSERVED.has(r.system)),
          fmtRatio(r.ratios?.cpuVsWeft, !OBSERVED.has(r.system)),
        ]),
        2,
      ),
    );
  }

  // at a fixed rate, req/s says only whether a system kept up with the rate
  const checks = TARGETS.filter((t) => !atRate || t.what === "cpu").flatMap((t) =>
    rows
      .filter((r) => r.system === t.system && r.case === "unary" && r.ratios !== undefined)
      .map((r) => {
        const got = r.ratios === undefined ? null : t.value(r.ratios);
        const want = t.atLeast !== undefined ? `>= ${t.atLeast}x` : `<= ${t.atMost}x`;
        const met =
          got === null
            ? "n/a"
            : (t.atLeast === undefined || got >= t.atLeast) && (t.atMost === undefined || got <= t.atMost)
              ? "met"
              : "MISSED";
        const bound = [r, peerRow(rows, t.peer, r.caseId)].some(
          (x) => x !== undefined && (coreShare(x.clientCpuUsPerReq, x) ?? 0) >= CLIENT_BOUND,
        );
        const note = bound && t.what === "rps" ? " (client-bound)" : "";
        return [t.label, r.caseId, fmtRatio(got, false), want, met + note];
      }),
  );
  if (checks.length > 0) {
    out.push("", "Targets (unary cases; n/a: a system of the pair did not run or failed):", "");
    out.push(table(["target", "case", "got", "wanted", ""], checks, 2));
  }
  const calibrated = chainInPlainWork(rows);
  if (calibrated.length > 0) out.push("", ...calibrated);
  const failed = rows.filter(
    (r) => r.error !== undefined || (r.rate !== undefined && r.rate.errors + r.rate.dropped > 0),
  );
  if (failed.length > 0) {
    out.push("", "Errors:");
    for (const r of failed) {
      if (r.error !== undefined) out.push(`  ${r.system} ${r.caseId}: ${r.error}`);
      const rate = r.rate;
      if (rate !== undefined && rate.errors + rate.dropped > 0)
        out.push(
          `  ${r.system} ${r.caseId}: ${rate.errors} calls failed, ${rate.dropped} not sent in the round reported` +
            (rate.firstError === null ? "" : `; first error: ${rate.firstError}`),
        );
    }
  }
  return out.join("\n");
}

/**
 * For each case with `weft`, `weft-chain` and `weft-spin1`: the client CPU the chain adds per call,
 * and the same in µs of plain work, given what 1 µs of plain work (`weft-spin1`) added in that run.
 */
function chainInPlainWork(rows: ResultRow[]): string[] {
  const lines: string[] = [];
  for (const chain of rows.filter((r) => r.system === "weft-chain" && r.case === "unary")) {
    const weft = peerRow(rows, "weft", chain.caseId)?.clientCpuUsPerReq;
    const spin = peerRow(rows, "weft-spin1", chain.caseId)?.clientCpuUsPerReq;
    const added = chain.clientCpuUsPerReq;
    if (weft == null || spin == null || added == null || !(spin > weft)) continue;
    const perUs = spin - weft;
    lines.push(
      `weft-chain ${chain.caseId}: +${(added - weft).toFixed(2)} us of client CPU per call; 1 us of plain` +
        ` work (weft-spin1) read as +${perUs.toFixed(2)} us, so the chain is about` +
        ` ${((added - weft) / perUs).toFixed(2)} us of plain work per call.`,
    );
    const deadline = peerRow(rows, "weft-deadline", chain.caseId)?.clientCpuUsPerReq;
    if (deadline != null && deadline > 0) {
      lines.push(
        `  of which a deadline on every call alone (weft-deadline): +${(deadline - weft).toFixed(2)} us;` +
          ` the chain over weft-deadline: ${(added / deadline).toFixed(2)}x client CPU.`,
      );
    }
  }
  return lines;
}
