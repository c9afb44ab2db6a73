/**
 * Benchmark orchestrator. For every round, case and system (interleaved, system order rotated each
 * round) it forks the system's server processes (one, or as many as its `SystemSpec` asks) and a
 * client process on loopback, samples the servers' CPU at the edges of the client's measured window,
 * and at the end prints the median round of each pair and writes bench/results/latest.json.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import {
  type Child,
  cpuUsOf,
  readJsonLine,
  sampler,
  startChild,
  stopChild,
  withTimeout,
} from "./children.ts";
import { type BenchCase, type BenchOptions, parseOptions, USAGE } from "./options.ts";
import { formatResults, type RunOutcome, summarize } from "./report.ts";
import {
  type ClientJob,
  type ClientResult,
  isRecord,
  type SystemName,
  specOf,
  supportsCase,
} from "./types.ts";

const SERVER_SCRIPT = join(import.meta.dirname, "server-process.ts");
const CLIENT_SCRIPT = join(import.meta.dirname, "client-process.ts");
const DEFAULT_OUT = join(import.meta.dirname, "..", "results", "latest.json");
const REPO_ROOT = join(import.meta.dirname, "..", "..");

async function main(): Promise<number> {
  let options: BenchOptions | "help";
  try {
    options = parseOptions(process.argv.slice(2), DEFAULT_OUT);
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}\n`);
    return 2;
  }
  if (options === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (options.micro !== undefined) {
    // a micro-benchmark runs alone, in this process: nothing else is timed beside it
    await import(join(import.meta.dirname, "micro", `${options.micro}.ts`)).then((m: { run(): void }) =>
      m.run(),
    );
    return 0;
  }

  if (options.messaging) {
    const { runMessaging } = await import("./messaging/run.ts");
    return runMessaging({
      brokers: options.brokers,
      rounds: options.rounds,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      requests: (options.brokers as readonly string[]).includes("nats"),
    });
  }

  if (options.overload) {
    const { runOverload } = await import("./overload/run.ts");
    return runOverload({ warmupMs: options.warmupMs, durationMs: options.durationMs });
  }

  const started = performance.now();
  console.log(
    `weft bench: ${options.quick ? "quick" : "full"} run, node ${process.version}, ${cpus().length}x ${cpus()[0]?.model ?? "cpu"}`,
  );
  console.log(
    `  systems ${options.systems.join(",")}; cases ${options.cases.map((c) => c.id).join(",")}; ` +
      `${options.rounds} round(s) of ${options.warmupMs / 1000} s warm-up + ${options.durationMs / 1000} s window; ` +
      (options.ratePerSec === null
        ? "closed loop\n"
        : `open loop at ${options.ratePerSec.toLocaleString("en-US")} calls/s\n`),
  );

  const [load1 = 0] = loadavg();
  if (load1 > 0.5) {
    console.log(`  note: 1-minute load average is ${load1.toFixed(2)} before starting; other work on this`);
    console.log("  machine will show up as noise (compare the spread column, or rerun when it is idle)\n");
  }

  const outcomes: RunOutcome[] = [];
  for (let round = 1; round <= options.rounds; round++) {
    for (const benchCase of options.cases) {
      for (const system of rotate(options.systems, round - 1)) {
        const label = `  [round ${round}/${options.rounds}] ${benchCase.id.padEnd(9)} ${system.padEnd(10)}`;
        if (!supportsCase(system, benchCase.kind)) {
          console.log(`${label} n/a: no ${benchCase.kind} case`);
          continue;
        }
        const outcome = await runOne(system, benchCase, round, options);
        outcomes.push(outcome);
        console.log(`${label} ${describe(outcome)}`);
      }
    }
  }

  const rows = summarize(outcomes, options.systems, options.cases);
  console.log(`\n${formatResults(rows)}\n`);
  await mkdir(dirname(options.out), { recursive: true });
  await writeFile(options.out, `${JSON.stringify(rows, null, 2)}\n`);
  const shown = relative(REPO_ROOT, options.out);
  console.log(
    `wrote ${shown.startsWith("..") ? options.out : shown} in ${((performance.now() - started) / 1000).toFixed(1)} s total`,
  );
  return outcomes.some((o) => o.error !== null) ? 1 : 0;
}

function rotate<T>(items: readonly T[], by: number): T[] {
  const k = by % Math.max(1, items.length);
  return [...items.slice(k), ...items.slice(0, k)];
}

function describe(outcome: RunOutcome): string {
  if (outcome.error !== null || outcome.result === null) return `FAILED: ${outcome.error ?? "no result"}`;
  const r = outcome.result;
  const rate = Math.round(r.count / (r.windowUs / 1e6)).toLocaleString("en-US");
  const unit = outcome.benchCase.kind === "unary" ? "req/s" : "msg/s";
  if (r.rate !== undefined) {
    const errors =
      r.rate.errors + r.rate.dropped === 0 ? "" : `, ${r.rate.errors} errors, ${r.rate.dropped} not sent`;
    const cpu = r.count === 0 ? "-" : (r.cpuUs / r.count).toFixed(2);
    return `${rate} of ${r.rate.ratePerSec.toLocaleString("en-US")} calls/s done${errors}, p99 ${r.p99Us ?? "-"} µs, cli ${cpu} µs/call`;
  }
  return r.p99Us === null ? `${rate} ${unit}` : `${rate} ${unit}, p99 ${r.p99Us} µs`;
}

/**
 * Starts the system's server processes (several for some systems, each in the run's registry
 * directory when the system uses one), runs one client against them, stops them all. Never throws.
 */
async function runOne(
  system: SystemName,
  benchCase: BenchCase,
  round: number,
  options: BenchOptions,
): Promise<RunOutcome> {
  const outcome: RunOutcome = { system, benchCase, round, result: null, serverCpuUs: null, error: null };
  const spec = specOf(system);
  const registryDir = spec.registry ? await mkdtemp(join(tmpdir(), "weft-bench-registry-")) : null;
  const serverArgs = registryDir === null ? [system] : [system, registryDir];
  const servers = Array.from({ length: spec.servers }, () => startChild(SERVER_SCRIPT, serverArgs));
  let client: Child | null = null;
  try {
    const hellos = await Promise.all(servers.map((s) => readJsonLine(s.process, 30_000, "server")));
    const port = hellos[0]?.port;
    if (typeof port !== "number") throw new Error("server printed no port");
    const samplers = servers.map((server) => {
      const sample = sampler(server);
      return async () => cpuUsOf(await sample());
    });
    // the CPU of every server of the run, summed
    const serverCpu = async (): Promise<number> =>
      (await Promise.all(samplers.map((sample) => sample()))).reduce((a, b) => a + b, 0);

    const job: ClientJob = {
      system,
      port,
      kind: benchCase.kind,
      payloadBytes: benchCase.payloadBytes,
      concurrency: benchCase.concurrency,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      streamMessages: options.streamMessages,
      ratePerSec: benchCase.kind === "unary" ? options.ratePerSec : null,
      registryDir,
    };
    const marks: Promise<number>[] = [];
    const started = startChild(CLIENT_SCRIPT, [JSON.stringify(job)]);
    client = started;
    started.process.on("message", (message: unknown) => {
      if (isRecord(message) && message.type === "window") marks.push(serverCpu());
    });
    const budgetMs = options.warmupMs + options.durationMs + (benchCase.kind === "unary" ? 30_000 : 180_000);
    outcome.result = toClientResult(await readJsonLine(started.process, budgetMs, "client"));
    await stopChild(started, null);
    const [start, end] = await withTimeout(Promise.all(marks), 5000, "server CPU sample");
    if (start !== undefined && end !== undefined && marks.length === 2) outcome.serverCpuUs = end - start;
  } catch (error) {
    outcome.error = error instanceof Error ? error.message : String(error);
  } finally {
    if (client !== null) await stopChild(client, outcome.error === null ? null : "kill");
    await Promise.all(servers.map((s) => stopChild(s, { type: "stop" })));
    if (registryDir !== null) await rm(registryDir, { recursive: true, force: true });
  }
  return outcome;
}

function toClientResult(value: Record<string, unknown>): ClientResult {
  const num = (key: string): number => {
    const v = value[key];
    if (typeof v !== "number") throw new Error(`client result: ${key} is not a number`);
    return v;
  };
  const opt = (key: string): number | null => (value[key] === null ? null : num(key));
  const result: ClientResult = {
    count: num("count"),
    windowUs: num("windowUs"),
    cpuUs: num("cpuUs"),
    p50Us: opt("p50Us"),
    p99Us: opt("p99Us"),
    p999Us: opt("p999Us"),
  };
  const rate = value.rate;
  if (isRecord(rate)) {
    const at = (key: string): number => {
      const v = rate[key];
      if (typeof v !== "number") throw new Error(`client result: rate.${key} is not a number`);
      return v;
    };
    result.rate = {
      ratePerSec: at("ratePerSec"),
      offered: at("offered"),
      errors: at("errors"),
      dropped: at("dropped"),
      inFlightAtEnd: at("inFlightAtEnd"),
      firstError: typeof rate.firstError === "string" ? rate.firstError : null,
    };
  }
  return result;
}

process.exitCode = await main();
