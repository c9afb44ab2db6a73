import type { BenchCase } from "./options.ts";
import type { CaseKind, ClientResult, SystemName } from "./types.ts";

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
  /** How the payload travels: raw bytes, or a JSON string field for Moleculer. */
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
  /** Only on non-raw rows: this row's figures relative to the other systems in the same case. */
  ratios?: {
    rpsVsRaw: number | null;
    rpsVsMoleculer: number | null;
    rpsVsGrpc: number | null;
    p99VsRaw: number | null;
  };
  error?: string;
}

function rpsOf(outcome: RunOutcome): number {
  const r = outcome.result;
  return r === null || r.windowUs === 0 ? 0 : r.count / (r.windowUs / 1e6);
}

/** Folds the rounds of each (system, case) into the row of its median round (by rps). */
export function summarize(outcomes: RunOutcome[], systems: SystemName[], cases: BenchCase[]): ResultRow[] {
  const rows: ResultRow[] = [];
  for (const benchCase of cases) {
    for (const system of systems) {
      const mine = outcomes.filter((o) => o.system === system && o.benchCase.id === benchCase.id);
      const ok = mine.filter((o) => o.result !== null && o.result.count > 0);
      const base: ResultRow = {
        system,
        case: benchCase.kind,
        caseId: benchCase.id,
        concurrency: benchCase.concurrency,
        payloadBytes: benchCase.payloadBytes,
        payload: system === "moleculer" ? "json-string" : "bytes",
        rps: null,
        p50Us: null,
        p99Us: null,
        p999Us: null,
        clientCpuUsPerReq: null,
        serverCpuUsPerReq: null,
        roundsRps: ok.map((o) => Math.round(rpsOf(o))),
      };
      const sorted = [...ok].sort((a, b) => rpsOf(a) - rpsOf(b));
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
        clientCpuUsPerReq: round2(r.cpuUs / r.count),
        serverCpuUsPerReq: median.serverCpuUs === null ? null : round2(median.serverCpuUs / r.count),
        ...(benchCase.kind === "server-stream" ? { messagesPerSec: rps } : {}),
      });
    }
  }
  for (const row of rows) {
    if (row.system === "raw") continue;
    const peer = (system: SystemName): ResultRow | undefined =>
      rows.find((r) => r.system === system && r.caseId === row.caseId);
    const ratio = (a: number | null | undefined, b: number | null | undefined): number | null =>
      a == null || b == null || b === 0 ? null : round2(a / b);
    const raw = peer("raw");
    row.ratios = {
      rpsVsRaw: ratio(row.rps, raw?.rps),
      rpsVsMoleculer: ratio(row.rps, peer("moleculer")?.rps),
      rpsVsGrpc: ratio(row.rps, peer("grpc")?.rps),
      p99VsRaw: ratio(row.p99Us, raw?.p99Us),
    };
  }
  return rows;
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
  if (row.roundsRps.length < 2 || row.rps === null || row.rps === 0) return "";
  const lo = Math.min(...row.roundsRps);
  const hi = Math.max(...row.roundsRps);
  return `±${(((hi - lo) / 2 / row.rps) * 100).toFixed(0)}%`;
}

function table(header: string[], body: string[][], leftColumns: number): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i < leftColumns ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

export function formatResults(rows: ResultRow[]): string {
  const out: string[] = [];
  out.push(
    table(
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
      ]),
      2,
    ),
  );
  out.push(
    "  server-stream rows: req/s counts messages/s and CPU is per message; latency does not apply.",
    "  * moleculer: payload is { data: <string of that many characters> } serialized as JSON, not raw bytes.",
    "  spread: half the range of req/s over the rounds, relative to the median round reported.",
  );

  const compared = rows.filter((r) => r.ratios !== undefined && r.rps !== null);
  compared.sort((a, b) => Number(b.system === "weft") - Number(a.system === "weft"));
  if (compared.length > 0) {
    out.push("", "Ratios (req/s of the row's system divided by the other's; above 1x is faster):", "");
    out.push(
      table(
        ["system", "case", "in-flight", "payload", "vs raw", "vs moleculer", "vs grpc-js", "p99 vs raw"],
        compared.map((r) => [
          r.system,
          r.case,
          String(r.concurrency),
          fmtBytes(r.payloadBytes),
          fmtRatio(r.ratios?.rpsVsRaw, false),
          fmtRatio(r.ratios?.rpsVsMoleculer, r.system === "moleculer"),
          fmtRatio(r.ratios?.rpsVsGrpc, r.system === "grpc"),
          fmtRatio(r.ratios?.p99VsRaw, false),
        ]),
        2,
      ),
    );
  }
  const failed = rows.filter((r) => r.error !== undefined);
  if (failed.length > 0) {
    out.push("", "Errors:");
    for (const r of failed) out.push(`  ${r.system} ${r.caseId}: ${r.error}`);
  }
  return out.join("\n");
}
