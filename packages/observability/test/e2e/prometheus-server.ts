/**
 * A real Prometheus for tests: Debian's `/usr/bin/prometheus` (installed by
 * `scripts/ensure-prometheus.sh` when missing), on a free loopback port with its own data directory,
 * scraping the given targets every second; removed when stopped.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, killAndRemove } from "@weft/testing";

const PROMETHEUS = "/usr/bin/prometheus";
const ENSURE = fileURLToPath(new URL("../../../../scripts/ensure-prometheus.sh", import.meta.url));

export interface PrometheusServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** An instant query (`/api/v1/query`): the vector's samples as labels and number. */
  query(promql: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  /** Kills Prometheus and removes its data directory. */
  stop(): Promise<void>;
}

/** Starts Prometheus scraping `targets` (`host:port`, path `/metrics`) every second. */
export async function startPrometheus(targets: string[]): Promise<PrometheusServer> {
  execFileSync("bash", [ENSURE], { stdio: ["ignore", "inherit", "inherit"] });
  const dir = mkdtempSync(join(tmpdir(), "weft-prometheus-"));
  const config = join(dir, "prometheus.yml");
  writeFileSync(
    config,
    [
      "global:",
      "  scrape_interval: 1s",
      "  evaluation_interval: 1s",
      "scrape_configs:",
      "  - job_name: weft",
      "    static_configs:",
      `      - targets: [${targets.map((t) => JSON.stringify(t)).join(", ")}]`,
      "",
    ].join("\n"),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    PROMETHEUS,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=error",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  const stop = (): Promise<void> => killAndRemove(child, dir);
  const query = async (promql: string) => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as {
      status: string;
      error?: string;
      data: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    if (body.status !== "success") throw new Error(`query ${promql} failed: ${body.error}`);
    return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  try {
    await ready(child, url, 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, query, stop };
}

/** Resolves once Prometheus says it is ready; rejects if it exits first or after `timeoutMs`. */
async function ready(child: ChildProcess, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let pause = 20; ; pause = Math.min(250, pause * 2)) {
    if (child.exitCode !== null)
      throw new Error(`prometheus exited with ${child.exitCode} before it was ready`);
    try {
      if ((await fetch(`${url}/-/ready`)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`prometheus did not get ready at ${url}`);
    await new Promise((resolve) => setTimeout(resolve, pause)); // the poll's interval
  }
}
