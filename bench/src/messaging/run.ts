/**
 * `npm run bench -- --messaging`: messaging throughput and latency. Every case runs in a fresh
 * process (`case.ts`) that holds both ends, one case at a time:
 *
 * 1. publish → consume per broker (`--brokers`, default all) at 1 and 64 messages in flight:
 *    messages/s, end-to-end p50/p99, the process's CPU per message (the broker server's is not
 *    counted);
 * 2. request/reply over core NATS, `messenger.request` next to the raw `@nats-io` client's
 *    `request`, at 1 and 64 in flight, as ratios (the target: at most 15% overhead).
 *
 * Cases alternate between rounds; the round with the median rate is reported.
 */
import { loadavg } from "node:os";
import { join } from "node:path";
import { readJsonLine, startChild, stopChild } from "../children.ts";
import { table } from "../report.ts";
import type { ClientResult } from "../types.ts";
import type { BenchBroker } from "./brokers.ts";
import type { MessagingJob } from "./case.ts";

const CASE_SCRIPT = join(import.meta.dirname, "case.ts");
const IN_FLIGHT = [1, 64] as const;
const PAYLOAD_BYTES = 100;
/** Most overhead of `messenger.request` over the raw client's request, as a share of its rate. */
const REQUEST_OVERHEAD_MAX = 0.15;

export interface MessagingOptions {
  readonly brokers: readonly BenchBroker[];
  readonly rounds: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Also run the request/reply cases (core NATS; when `nats` is among the brokers). */
  readonly requests: boolean;
}

interface Outcome {
  readonly job: MessagingJob;
  readonly result: ClientResult | null;
  readonly error: string | null;
}

export async function runMessaging(options: MessagingOptions): Promise<number> {
  const [load1 = 0] = loadavg();
  console.log(
    `weft bench --messaging: brokers ${options.brokers.join(",")}; ${options.rounds} round(s) of ` +
      `${options.warmupMs / 1000} s warm-up + ${options.durationMs / 1000} s window per case; load ${load1.toFixed(2)}\n`,
  );
  const jobs: MessagingJob[] = [];
  const base = { payloadBytes: PAYLOAD_BYTES, warmupMs: options.warmupMs, durationMs: options.durationMs };
  for (const concurrency of IN_FLIGHT) {
    for (const broker of options.brokers) jobs.push({ kind: "flow", broker, concurrency, ...base });
    if (options.requests)
      for (const kind of ["raw-request", "request"] as const)
        jobs.push({ kind, broker: undefined, concurrency, ...base });
  }
  const outcomes = new Map<MessagingJob, Outcome[]>(jobs.map((j) => [j, []]));
  for (let round = 1; round <= options.rounds; round++) {
    for (const job of round % 2 === 0 ? [...jobs].reverse() : jobs) {
      const outcome = await runCase(job);
      outcomes.get(job)!.push(outcome);
      console.log(`  [round ${round}/${options.rounds}] ${label(job).padEnd(28)} ${describe(outcome)}`);
    }
  }
  const median = (job: MessagingJob): Outcome => {
    const ok = outcomes.get(job)!.filter((o) => o.result !== null);
    if (ok.length === 0) return outcomes.get(job)![0]!;
    ok.sort((a, b) => rate(a.result!) - rate(b.result!));
    return ok[Math.floor(ok.length / 2)]!;
  };
  const flows = jobs.filter((j) => j.kind === "flow").map(median);
  console.log(
    `\npublish → consume (${PAYLOAD_BYTES} B bodies; CPU of the publishing and consuming process)\n`,
  );
  console.log(
    table(
      ["broker", "in-flight", "msg/s", "p50 µs", "p99 µs", "CPU µs/msg", "vs memory"],
      flows.map((o) =>
        row(
          o,
          flows.find((m) => m.job.broker === "memory" && m.job.concurrency === o.job.concurrency),
        ),
      ),
      1,
    ),
  );
  if (options.requests) {
    console.log("\nrequest/reply over core NATS: messenger.request next to the raw @nats-io client\n");
    const lines: string[][] = [];
    let missed = false;
    let measured = true;
    for (const concurrency of IN_FLIGHT) {
      const raw = median(jobs.find((j) => j.kind === "raw-request" && j.concurrency === concurrency)!);
      const weft = median(jobs.find((j) => j.kind === "request" && j.concurrency === concurrency)!);
      const ratio = raw.result && weft.result ? rate(weft.result) / rate(raw.result) : null;
      if (ratio === null) measured = false;
      else if (1 - ratio > REQUEST_OVERHEAD_MAX) missed = true;
      lines.push(
        [raw, weft].map((o) => o.result).every((r) => r !== null)
          ? [
              String(concurrency),
              fmt(rate(raw.result!)),
              fmt(rate(weft.result!)),
              ratio === null ? "-" : `${ratio.toFixed(2)}x`,
              ratio === null ? "-" : `${((1 - ratio) * 100).toFixed(0)}%`,
              `${raw.result!.p50Us ?? "-"} / ${weft.result!.p50Us ?? "-"}`,
              `${raw.result!.p99Us ?? "-"} / ${weft.result!.p99Us ?? "-"}`,
              `${cpuPer(raw.result!)} / ${cpuPer(weft.result!)}`,
            ]
          : [String(concurrency), "FAILED", raw.error ?? weft.error ?? "", "", "", "", "", ""],
      );
    }
    console.log(
      table(
        [
          "in-flight",
          "raw req/s",
          "weft req/s",
          "weft vs raw",
          "overhead",
          "p50 µs raw/weft",
          "p99 µs raw/weft",
          "CPU µs/req raw/weft",
        ],
        lines,
        1,
      ),
    );
    console.log(
      `\ntarget: overhead ≤ ${REQUEST_OVERHEAD_MAX * 100}% of the raw client's req/s: ${missed ? "MISSED" : measured ? "met" : "not measured"}`,
    );
  }
  return [...outcomes.values()].flat().some((o) => o.error !== null) ? 1 : 0;
}

async function runCase(job: MessagingJob): Promise<Outcome> {
  const child = startChild(CASE_SCRIPT, [JSON.stringify(job)]);
  try {
    const line = await readJsonLine(child.process, job.warmupMs + job.durationMs + 30_000, label(job));
    await stopChild(child, null);
    return { job, result: line as unknown as ClientResult, error: null };
  } catch (error) {
    await stopChild(child, "kill");
    return { job, result: null, error: error instanceof Error ? error.message : String(error) };
  }
}

function label(job: MessagingJob): string {
  return `${job.kind === "flow" ? (job.broker ?? "-") : `nats ${job.kind}`} @${job.concurrency}`;
}

function rate(r: ClientResult): number {
  return r.count / (r.windowUs / 1e6);
}

function cpuPer(r: ClientResult): string {
  return r.count === 0 ? "-" : (r.cpuUs / r.count).toFixed(1);
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

function describe(o: Outcome): string {
  if (o.result === null) return `FAILED: ${o.error}`;
  return `${fmt(rate(o.result))} msg/s, p50 ${o.result.p50Us} µs, p99 ${o.result.p99Us} µs`;
}

function row(o: Outcome, memory: Outcome | undefined): string[] {
  const broker = o.job.broker ?? "-";
  if (o.result === null) return [broker, String(o.job.concurrency), "FAILED", o.error ?? "", "", "", ""];
  const r = o.result;
  const vs = memory?.result ? `${(rate(r) / rate(memory.result)).toFixed(2)}x` : "-";
  return [broker, String(o.job.concurrency), fmt(rate(r)), `${r.p50Us}`, `${r.p99Us}`, cpuPer(r), vs];
}
