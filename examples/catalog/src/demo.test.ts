import { execFile, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const demo = fileURLToPath(new URL("./demo.ts", import.meta.url));

/** Runs `npm run demo`'s script as a user would, on a local registry in a temp directory. */
async function runDemo(env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [demo], { env, timeout: 90_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const failed = e as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  }
}

describe("npm run demo", () => {
  it("discovers three servers, runs every call kind, spreads calls and fails over a killed one", async () => {
    const env = { ...process.env };
    delete env.WEFT_REGISTRY;
    const { code, stdout, stderr } = await runDemo(env);
    expect(stderr).not.toMatch(/\[demo\]/);
    expect(code).toBe(0);

    expect(stdout).toMatch(/\[demo\] discovered catalog\.v1\.Catalog \(3 instances\):/);
    for (const id of ["catalog-1", "catalog-2", "catalog-3"])
      expect(stdout).toMatch(
        new RegExp(`\\[demo\\]   ${id}  pid \\d+  weft=127\\.0\\.0\\.1:\\d+ grpc=\\S+ http=\\S+`),
      );

    // the client's tour, every call kind and protocol
    for (const line of [
      "[client] unary lookup A-100 -> Loom shuttle, 12.50 EUR",
      "[client] unary lookup Z-999 -> error code=5 reason=ITEM_NOT_FOUND",
      "[client] client-stream importItems -> imported 3 items",
      "[client] bidi quote 12 x C-100 -> 33.48 EUR",
      "[client] watchPrices with a 50 ms budget -> DEADLINE_EXCEEDED",
      "[client] gRPC    lookup B-200 -> Warp thread (1 km)",
      "[client] Connect lookup A-100 -> Loom shuttle",
      "[client] REST    GET /v1/items/Z-999 -> HTTP 404",
      "[client] done",
    ])
      expect(stdout).toContain(line);

    checkMessagingScene(stdout, "direct");

    // the balancer spread the calls over all three instances
    const spread =
      /\[demo\] spread 300 lookups: catalog-1=(\d+) catalog-2=(\d+) catalog-3=(\d+) \(failed 0\)/.exec(
        stdout,
      );
    expect(spread).not.toBeNull();
    const counts = spread!.slice(1).map(Number);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(300);
    for (const n of counts) expect(n).toBeGreaterThan(0);

    // one instance killed with SIGKILL mid-traffic: every lookup still succeeded, on the others
    expect(stdout).toMatch(/\[demo\] kill -9 catalog-2 \(pid \d+\) after 100 of 300 lookups/);
    const failover = /\[demo\] failover: 300\/300 lookups succeeded: (.*) \(failed 0\)/.exec(stdout);
    expect(failover).not.toBeNull();
    const after = Object.fromEntries(
      failover![1]!.split(" ").map((kv) => [kv.split("=")[0], Number(kv.split("=")[1])]),
    );
    expect((after["catalog-1"] ?? 0) + (after["catalog-3"] ?? 0)).toBeGreaterThanOrEqual(200);
    expect(after["catalog-2"] ?? 0).toBeLessThanOrEqual(100);

    // the observability scene: one trace across Weft TCP, gRPC and REST, then the edge's /metrics
    expect(stdout).toContain(
      "[observability] lookup A-100 -> Loom shuttle through edge (Weft TCP) -> middle (gRPC) -> store (REST)",
    );
    expect(stdout).toMatch(/\[observability\] trace [0-9a-f]{32}: 5 spans/);
    const tree = [
      ...stdout.matchAll(
        /^\[observability\]( +)catalog\.v1\.Catalog\/Lookup {2}(\w+) {2}(\w+) {2}[\d.]+ ms {2}OK$/gm,
      ),
    ];
    // depth in the tree: two spaces of indent per level, after the prefix's own space
    expect(tree.map((m) => [(m[1]!.length - 1) / 2, m[2], m[3]])).toEqual([
      [1, "CLIENT", "weft"],
      [2, "SERVER", "weft"],
      [3, "CLIENT", "grpc"],
      [4, "SERVER", "grpc"],
      [5, "SERVER", "http"],
    ]);
    expect(stdout).toContain(
      '[observability]   weft_server_calls_total{service="catalog.v1.Catalog",method="Lookup",code="OK"} 1',
    );
    expect(stdout).toContain(
      '[observability]   weft_connections{side="server",protocol="weft",peer_service=""} 1',
    );

    // the resilience scene's timeline, in order: failures answered by the fallback, the breaker
    // opening, calls rejected locally (never sent), the dependency healing, the probe, closing again
    const timeline = stdout.split("\n").filter((l) => l.startsWith("[resilience] +"));
    const steps = [
      /calls? 1(-\d+)?: live price 12\.50 EUR$/,
      /dependency made to fail: every call UNAVAILABLE$/,
      /calls? \d+(-\d+)?: fallback 12\.00 EUR \(UNAVAILABLE\)$/,
      /breaker closed -> open$/,
      /calls? \d+(-\d+)?: fallback 12\.00 EUR \(CIRCUIT_OPEN, not sent\)$/,
      /dependency healed$/,
      /breaker open -> half-open \(one probe call let through\)$/,
      /breaker half-open -> closed$/,
      /call \d+: live price 12\.50 EUR$/,
      /dependency received \d+ calls; breaker closed$/,
    ];
    let at = -1;
    for (const step of steps) {
      const found = timeline.findIndex((l, i) => i > at && step.test(l));
      expect(found, `timeline line ${step} after line ${at}:\n${timeline.join("\n")}`).toBeGreaterThan(at);
      at = found;
    }

    expect(stdout.match(/\[server\] shut down gracefully/g)).toHaveLength(2);
    expect(stdout).toContain("[demo] finished (exit code 0)");
  }, 120_000);

  it("runs the same messaging scene on JetStream with one variable (WEFT_BROKER=jetstream://…), and removes its streams after", async () => {
    execFileSync("bash", [fileURLToPath(new URL("../../../scripts/ensure-nats.sh", import.meta.url))], {
      stdio: "inherit",
    });
    const { code, stdout, stderr } = await runDemo({
      ...process.env,
      WEFT_BROKER: "jetstream://127.0.0.1:4222",
    });
    expect(stderr).not.toMatch(/\[demo\]/);
    expect(code).toBe(0);
    checkMessagingScene(stdout, "jetstream");
    expect(stdout).toMatch(/\[messaging\] broker jetstream; .* \(durable: this run's have the suffix -\w+\)/);
    expect(stdout).toContain("[demo] removed the demo's JetStream streams: weft_catalog weft_shop");
    expect(stdout).toContain("[demo] finished (exit code 0)");
  }, 120_000);

  it("says clearly when WEFT_BROKER names no broker it knows", async () => {
    const { code, stderr } = await runDemo({ ...process.env, WEFT_BROKER: "kafka://127.0.0.1:9092" });
    expect(code).toBe(1);
    expect(stderr).toMatch(/\[demo\] cannot open the broker WEFT_BROKER=kafka:\/\/127\.0\.0\.1:9092/);
    expect(stderr).toMatch(
      /scheme is one of memory, direct, nats, jetstream, redis, rediss .*got "kafka:\/\/127\.0\.0\.1:9092"/,
    );
    expect(stderr).toMatch(/unset WEFT_BROKER/);
  }, 60_000);

  it("says clearly when WEFT_REGISTRY names an etcd that does not answer", async () => {
    // port 9 (discard) on loopback: nothing listens there
    const { code, stderr } = await runDemo({ ...process.env, WEFT_REGISTRY: "etcd://127.0.0.1:9" });
    expect(code).toBe(1);
    expect(stderr).toMatch(/\[demo\] cannot reach the registry WEFT_REGISTRY=etcd:\/\/127\.0\.0\.1:9/);
    expect(stderr).toMatch(/unset WEFT_REGISTRY/);
  }, 60_000);
});

/** `npm run demo`'s messaging scene: counts that hold on every broker (per-instance splits vary). */
function checkMessagingScene(stdout: string, broker: string): void {
  expect(stdout).toMatch(new RegExp(`\\[demo\\] broker ${broker}\\b`));
  expect(stdout).toContain(
    `[messaging] broker ${broker}; groups: catalog (the 3 servers), shop (2 instances), analytics, ops`,
  );
  // every server published an event per lookup it served
  expect(stdout).toContain(
    "[messaging] 9 lookups -> 9 catalog.item.viewed events, consumed by analytics: catalog-1=3 catalog-2=3 catalog-3=3",
  );
  // 30 commands shared by the servers' queue group, each handled once
  const sum = (tally: string) =>
    tally.split(" ").reduce((n, kv) => n + Number(kv.slice(kv.indexOf("=") + 1)), 0);
  const commands =
    /\[messaging\] 30 catalog\.stock\.reserve commands to queue group catalog: handled by (.+)/.exec(stdout);
  expect(commands?.[1]).toMatch(/^(catalog-\d=\d+ ?)+$/);
  expect(sum(commands![1]!)).toBe(30);
  // their 30 outcomes reached the shop's group, one per order, whichever instance
  const outcomes =
    /\[messaging\] 30 outcome events to group shop \(30 orders, one each\): handled by (.+)/.exec(stdout);
  expect(outcomes?.[1]).toMatch(/^(shop-\d=\d+ ?)+$/);
  expect(sum(outcomes![1]!)).toBe(30);
  expect(stdout).toMatch(
    /\[messaging\] RPC then event: Stock\/Reserve on catalog-1 acknowledged order-rpc in [\d.]+ ms; outcome event: 2 x A-100 reserved by catalog-\d, handled by shop-\d/,
  );
  expect(stdout).toMatch(
    /\[messaging\] RPC stream ack: Stock\/ReserveStream on catalog-2 -> 1st message accepted, 2nd 1 x B-200 reserved by catalog-\d/,
  );
  expect(stdout).toMatch(/\[messaging\] request\/reply: quote 3 x A-100 -> 37\.50 EUR from catalog-\d/);
  expect(stdout).toContain(
    '[messaging] order-bad (Z-999): error outcome ITEM_NOT_FOUND "no item Z-999"; dead letters on dlq.catalog: 1 (MAX_DELIVERIES after 2 deliveries)',
  );
  expect(stdout).toContain(
    "[messaging] totals: events consumed by analytics 41 (9 item.viewed, 32 stock.reserved); outcome events 32 (31 reserved, 1 failed); dead letters 1",
  );
}
