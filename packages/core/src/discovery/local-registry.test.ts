import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "../errors/weft-error.ts";
import { createLocalRegistry, LOCAL_REGISTRY_DEFAULTS } from "./local-registry.ts";
import type { Instance, InstanceChange } from "./registry.ts";

const root = mkdtempSync(join(tmpdir(), "weft-local-registry-test-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDirectory = (): string => join(root, String(dirs++));

/** Pulls changes until one satisfies `test`. */
async function until(
  changes: AsyncIterator<InstanceChange>,
  test: (change: InstanceChange) => boolean,
): Promise<InstanceChange> {
  for (;;) {
    const next = await changes.next();
    if (next.done === true) throw new Error("the watch ended");
    if (test(next.value)) return next.value;
  }
}
const has = (list: readonly Instance[], id: string): boolean => list.some((i) => i.id === id);

describe("createLocalRegistry", () => {
  it("defaults to a directory under the OS temp dir, a 10 s TTL and a 1 s poll", () => {
    expect(LOCAL_REGISTRY_DEFAULTS).toEqual({
      directory: join(tmpdir(), "weft-registry"),
      ttlMs: 10_000,
      pollIntervalMs: 1_000,
    });
  });

  it("rejects bad options with a ConfigError naming the option", () => {
    expect(() => createLocalRegistry({ directory: "" })).toThrow(/"directory"/);
    expect(() => createLocalRegistry({ directory: freshDirectory(), ttlMs: 0 })).toThrow(ConfigError);
    expect(() => createLocalRegistry({ directory: freshDirectory(), ttlMs: 1.5 })).toThrow(/"ttlMs"/);
    expect(() => createLocalRegistry({ directory: freshDirectory(), pollIntervalMs: -1 })).toThrow(
      /"pollIntervalMs"/,
    );
  });

  it("two registries on one directory (two processes) see each other's registrations", async () => {
    const directory = freshDirectory();
    const a = createLocalRegistry({ directory, pollIntervalMs: 50 });
    const b = createLocalRegistry({ directory, pollIntervalMs: 50 });
    const changes = b.watch("s")[Symbol.asyncIterator]();
    try {
      await changes.next();
      const reg = await a.register({ services: ["s"], addresses: { weft: "127.0.0.1:1" } });
      await until(changes, (c) => has(c.added, reg.instance.id));
      await reg.update({ labels: { group: "b" } });
      const updated = await until(changes, (c) => has(c.updated, reg.instance.id));
      expect(updated.updated[0]?.labels).toEqual({ group: "b" });
      expect(await b.list("s")).toEqual([reg.instance]);
      await reg.deregister();
      await until(changes, (c) => has(c.removed, reg.instance.id));
    } finally {
      await changes.return?.();
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("writes one file per registration through a temp file and leaves no temp file behind", async () => {
    const directory = freshDirectory();
    const registry = createLocalRegistry({ directory });
    const app = await registry.register({ services: ["a", "b"], addresses: { weft: "h:1" } });
    const perService = await registry.register({ services: ["a"], addresses: { weft: "h:1" } });
    await app.update({ weight: 3 });
    const files = readdirSync(directory);
    expect(files).toHaveLength(2);
    expect(files.every((f) => f.endsWith(".json") && !f.startsWith("."))).toBe(true);
    const records = files.map((f) => JSON.parse(readFileSync(join(directory, f), "utf8")));
    expect(records.map((r) => r.instance.id).sort()).toEqual(
      [app.instance.id, perService.instance.id].sort(),
    );
    expect(records.find((r) => r.instance.id === app.instance.id)).toMatchObject({
      instance: { weight: 3 },
      ttlMs: 10_000,
      heartbeatAt: expect.any(Number),
    });
    await registry.close();
    expect(readdirSync(directory)).toEqual([]);
  });

  it("ignores and deletes a record whose last heartbeat is older than its TTL", async () => {
    const directory = freshDirectory();
    const registry = createLocalRegistry({ directory });
    const live = await registry.register({ services: ["s"], addresses: { weft: "h:1" } });
    const stale = { ...live.instance, id: "stale" };
    writeFileSync(
      join(directory, "stale.json"),
      JSON.stringify({ instance: stale, ttlMs: 1_000, heartbeatAt: Date.now() - 1_001 }),
    );
    writeFileSync(join(directory, "garbage.json"), "{ not json");
    expect(await registry.list("s")).toEqual([live.instance]);
    expect(readdirSync(directory)).not.toContain("stale.json");
    await registry.close();
  });

  it("a process killed with SIGKILL has its instance removed within the TTL", async () => {
    const directory = freshDirectory();
    const ttlMs = 600;
    const watcher = createLocalRegistry({ directory, pollIntervalMs: 50 });
    const changes = watcher.watch("crash.v1.Crash")[Symbol.asyncIterator]();
    await changes.next();
    const module = pathToFileURL(join(import.meta.dirname, "local-registry.ts")).href;
    const script = `
      const { createLocalRegistry } = await import(${JSON.stringify(module)});
      const registry = createLocalRegistry({ directory: ${JSON.stringify(directory)} });
      const reg = await registry.register(
        { services: ["crash.v1.Crash"], addresses: { weft: "127.0.0.1:1" } },
        { ttlMs: ${ttlMs} },
      );
      setInterval(() => {}, 60_000);
      console.log(reg.instance.id);
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const [id] = (await once(createInterface({ input: child.stdout }), "line")) as [string];
      await until(changes, (c) => has(c.added, id));
      const exited = once(child, "exit");
      child.kill("SIGKILL");
      await exited;
      const killedAt = Date.now();
      await until(changes, (c) => has(c.removed, id));
      // the last heartbeat was at most TTL/3 before the kill; allow the TTL, one poll and slack
      expect(Date.now() - killedAt).toBeLessThan(ttlMs + 1_000);
      expect(await watcher.list("crash.v1.Crash")).toEqual([]);
    } finally {
      child.kill("SIGKILL");
      await changes.return?.();
      await watcher.close();
    }
  });
});
