/**
 * `weft ls` as a real child process against a local registry directory: the listing, `--json`, and
 * `--watch` printing an add and a remove as they happen (stdout read line by line, with a bound).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { createLocalRegistry, type Registry } from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { humanAge } from "../src/commands/ls.ts";
import { repoRoot } from "./io.ts";

const WEFT = join(repoRoot, "packages/cli/bin/weft.js");
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

function registryDir(): { dir: string; registry: Registry } {
  const dir = mkdtempSync(join(tmpdir(), "weft-ls-"));
  const registry = createLocalRegistry({ directory: dir });
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanup.push(() => registry.close());
  return { dir, registry };
}

const weft = (...args: string[]) => promisify(execFile)(process.execPath, [WEFT, ...args]);

/** The child's stdout lines; `until` waits for a matching line, at most `ms`. */
function lines(child: ChildProcess) {
  const seen: string[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stdout! }).on("line", (line) => {
    seen.push(line);
    for (const w of waiters) w();
  });
  return {
    seen,
    until(test: (line: string) => boolean, ms = 10_000): Promise<string> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = seen.find(test);
          if (hit === undefined) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(hit);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no such line within ${ms} ms; saw:\n${seen.join("\n")}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
  };
}

describe("weft ls", () => {
  it("lists every service and instance of a local registry, and --json", async () => {
    const { dir, registry } = registryDir();
    await registry.register({
      id: "node-1",
      services: ["catalog.v1.Catalog", "orders.v1.Orders"],
      addresses: { weft: "10.0.0.1:4000", grpc: "10.0.0.1:50051" },
      weight: 50,
      zone: "z1",
      labels: { group: "a" },
      startedAt: Date.now() - 125_000,
    });
    const url = `local:///?dir=${encodeURIComponent(dir)}`;
    const { stdout } = await weft("ls", url);
    expect(stdout).toContain("catalog.v1.Catalog  (1 instances)");
    expect(stdout).toContain("orders.v1.Orders  (1 instances)");
    expect(stdout).toContain(
      "  node-1  weft=10.0.0.1:4000,grpc=10.0.0.1:50051  weight=50  version=-  zone=z1  labels=group=a  age=2m",
    );
    const json = JSON.parse((await weft("ls", url, "orders.v1.Orders", "--json")).stdout);
    expect(Object.keys(json.services)).toEqual(["orders.v1.Orders"]);
    expect(json.services["orders.v1.Orders"][0]).toMatchObject({ id: "node-1", weight: 50 });
  });

  it("--watch prints an add and a remove as they happen, until SIGINT", async () => {
    const { dir, registry } = registryDir();
    const child = spawn(process.execPath, [WEFT, "ls", `local:///catalog.v1.Catalog?dir=${dir}`, "--watch"]);
    cleanup.push(() => void child.kill("SIGKILL"));
    const out = lines(child);
    await out.until((l) => l.startsWith("watching"));
    const reg = await registry.register({
      id: "node-2",
      services: ["catalog.v1.Catalog"],
      addresses: { weft: "h:1" },
    });
    expect(await out.until((l) => / \+ catalog\.v1\.Catalog node-2 /.test(l))).toMatch(/^\d{4}-\d\d-\d\dT/);
    await reg.deregister();
    await out.until((l) => / - catalog\.v1\.Catalog node-2 /.test(l));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    child.kill("SIGINT");
    expect(await exited).toBe(0);
  });

  it("a bad registry URL is a usage error (exit 2)", async () => {
    const error = (await weft("ls", "nope://x/y").catch((e: unknown) => e)) as {
      code: number;
      stderr: string;
    };
    expect(error.code).toBe(2);
    expect(error.stderr).toContain("scheme");
  });

  it("ages read as people say them", () => {
    expect([0, 12_000, 180_000, 7_200_000, 172_800_000].map(humanAge)).toEqual([
      "0s",
      "12s",
      "3m",
      "2h",
      "2d",
    ]);
  });
});
