/**
 * `npm run demo`: starts three catalog servers, each in its own process, registered in a registry
 * (by default a local registry in a fresh temp directory; `WEFT_REGISTRY=etcd://127.0.0.1:2379` uses
 * an etcd you run), prints the instances it discovers there, runs the client (every call kind over
 * Weft TCP, gRPC, Connect and REST) against one of them, spreads calls over all three through the
 * registry with P2C-EWMA, kills one with SIGKILL while calls run (failover keeps them succeeding),
 * then shuts the others down gracefully. Before the traffic, a messaging scene (`messaging-scene.ts`)
 * over the broker `WEFT_BROKER` names (default the brokerless `direct` one, found through the same
 * registry; `nats://host:port`, `jetstream://host:port` or `redis://host:port` for a broker): events,
 * a command shared by the servers' queue group, RPC then event, RPC stream ack, request/reply, a dead
 * letter. Last, a resilience scene (`resilience-scene.ts`): a dependency fails and heals behind a
 * circuit breaker and a fallback, printed as a timeline; and with `--postgres` (or
 * `WEFT_POSTGRES=<url>`), the transactional-messaging scene (`outbox-scene.ts`).
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import type { Instance, Schemes } from "@weft/core";
import { type Broker, redactBrokerUrl } from "@weft/messaging";
import { openBroker, removeDemoStreams } from "./broker.ts";
import { DEMO_SUBJECTS, messagingScene } from "./messaging-scene.ts";
import { observabilityScene } from "./observability-scene.ts";
import { DEFAULT_POSTGRES_URL, outboxScene } from "./outbox-scene.ts";
import { ensureReachable, openRegistry, SERVICE, targetOf } from "./registry.ts";
import { resilienceScene } from "./resilience-scene.ts";
import { formatTally, openTraffic } from "./traffic.ts";

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const say = (line: string) => process.stdout.write(`${line}\n`);

const tempDir = process.env.WEFT_REGISTRY === undefined ? await mkdtemp(join(tmpdir(), "weft-demo-")) : null;
const registryUrl = process.env.WEFT_REGISTRY ?? `local:///?dir=${encodeURIComponent(tempDir ?? "")}`;
const registry = await openRegistry(registryUrl);
try {
  await ensureReachable(registry, registryUrl);
} catch (e) {
  process.stderr.write(`[demo] ${e instanceof Error ? e.message : String(e)}\n`);
  await registry.close();
  process.exit(1);
}
say(
  `[demo] registry ${registryUrl}${tempDir === null ? "" : " (a temp directory; WEFT_REGISTRY=etcd://… for etcd)"}`,
);
// the demo's own connection to the broker every process uses (`WEFT_BROKER`, default direct)
let broker: Broker;
try {
  broker = await openBroker(process.env.WEFT_BROKER, registry);
} catch (e) {
  process.stderr.write(
    `[demo] cannot open the broker WEFT_BROKER=${redactBrokerUrl(process.env.WEFT_BROKER ?? "")} (${e instanceof Error ? e.message : String(e)}). ` +
      "Start it or correct the URL, or unset WEFT_BROKER to use the brokerless direct broker.\n",
  );
  await registry.close();
  if (tempDir !== null) await rm(tempDir, { recursive: true, force: true });
  process.exit(1);
}
say(
  `[demo] broker ${broker.name}${process.env.WEFT_BROKER === undefined ? " (brokerless, nothing to install; WEFT_BROKER=jetstream://…, nats://… or redis://… for a broker)" : ` at ${redactBrokerUrl(process.env.WEFT_BROKER)}`}`,
);

type Server = ChildProcessByStdio<null, Readable, null>;

/** Starts one catalog server registered as `id`; resolves once it listens and is registered. */
async function startServer(id: string): Promise<Server> {
  const server = spawn(process.execPath, [here("./server.ts")], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, WEFT_REGISTRY: registryUrl, CATALOG_INSTANCE: id },
  });
  await new Promise<void>((resolve, reject) => {
    let buffered = "";
    server.stdout.setEncoding("utf8");
    const onData = (chunk: string) => {
      buffered += chunk;
      const at = buffered.indexOf("LISTENING ");
      if (at < 0) return;
      const end = buffered.indexOf("\n", at);
      if (end < 0) return;
      server.stdout.off("data", onData);
      server.off("exit", onExit);
      // everything the server prints from now on goes to the demo's output
      const rest = buffered.slice(end + 1);
      if (rest.length > 0) process.stdout.write(rest);
      server.stdout.on("data", (c: string) => process.stdout.write(c));
      resolve();
    };
    const onExit = (code: number | null) => reject(new Error(`server ${id} exited early with code ${code}`));
    server.stdout.on("data", onData);
    server.once("exit", onExit);
  });
  return server;
}

const ids = ["catalog-1", "catalog-2", "catalog-3"];
const servers = new Map<string, Server>();
let exitCode = 1;
try {
  for (const [id, server] of await Promise.all(ids.map(async (id) => [id, await startServer(id)] as const)))
    servers.set(id, server);

  // What `weft ls <registry-url> catalog.v1.Catalog` prints: the instances the registry knows.
  const instances = (await registry.list(SERVICE)).sort((a, b) => a.id.localeCompare(b.id));
  say(`[demo] discovered ${SERVICE} (${instances.length} instances):`);
  for (const instance of instances) {
    const addresses = Object.entries(instance.addresses).map(
      ([protocol, address]) => `${protocol}=${address}`,
    );
    say(`[demo]   ${instance.id}  pid ${servers.get(instance.id)?.pid}  ${addresses.join(" ")}`);
  }

  // The client tour: every call kind, against the first instance found, on each of its protocols.
  const first = instances[0];
  if (first === undefined) throw new Error("no instance registered");
  const ports = portsOf(first);
  say(`[demo] running the client against ${first.id}`);
  const client = spawn(process.execPath, [here("./client.ts"), JSON.stringify(ports)], { stdio: "inherit" });
  const [clientCode] = (await once(client, "exit")) as [number | null];
  if (clientCode !== 0) throw new Error(`client exited with code ${clientCode}`);

  // The messaging scene: events, a command shared by the servers' queue group, RPC then event,
  // RPC stream ack, request/reply and a dead letter, over the broker (closed by the scene).
  const messagingOk = await messagingScene(
    say,
    broker,
    instances.map((i) => ({ id: i.id, port: portsOf(i).weft })),
  );

  // Through the registry: the transport follows the target, P2C-EWMA spreads the calls.
  const schemes: Schemes = registryUrl.startsWith("etcd:")
    ? { etcd: (await import("@weft/registry-etcd")).etcdScheme }
    : {};
  const target = targetOf(registryUrl);
  const traffic = openTraffic(target, schemes);
  try {
    const spread = await traffic.run(300, 8);
    say(`[demo] target ${target}, balancer p2cEwma()`);
    say(`[demo] spread 300 lookups: ${formatTally(spread)} (failed ${spread.failed})`);

    // Failover: one instance dies mid-traffic; lookups (idempotent) are resent to another instance.
    const victim = "catalog-2";
    const victimPid = servers.get(victim)?.pid;
    const failoverCalls = await traffic.run(300, 8, (done) => {
      if (done === 100) {
        servers.get(victim)?.kill("SIGKILL");
        say(`[demo] kill -9 ${victim} (pid ${victimPid}) after 100 of 300 lookups`);
      }
    });
    const ok = 300 - failoverCalls.failed;
    say(
      `[demo] failover: ${ok}/300 lookups succeeded: ${formatTally(failoverCalls)} (failed ${failoverCalls.failed})`,
    );
    exitCode = failoverCalls.failed === 0 && spread.failed === 0 && messagingOk ? 0 : 1;
  } finally {
    await traffic.close();
  }
  await observabilityScene(say);
  if (!(await resilienceScene(say))) exitCode = 1;
  // transactional messaging needs a PostgreSQL: only when asked (`--postgres` or WEFT_POSTGRES=<url>)
  const postgres =
    process.env.WEFT_POSTGRES ?? (process.argv.includes("--postgres") ? DEFAULT_POSTGRES_URL : undefined);
  if (postgres !== undefined && !(await outboxScene(say, postgres))) exitCode = 1;
} catch (e) {
  process.stderr.write(`[demo] ${e instanceof Error ? e.message : String(e)}\n`);
} finally {
  await Promise.all(
    [...servers.values()].map(async (server) => {
      if (server.exitCode !== null || server.signalCode !== null) return;
      const exited = once(server, "exit");
      server.kill("SIGTERM");
      await exited;
    }),
  );
  await registry.close();
  if (tempDir !== null) await rm(tempDir, { recursive: true, force: true });
  const removed = await removeDemoStreams(process.env.WEFT_BROKER, DEMO_SUBJECTS).catch((e: unknown) => {
    process.stderr.write(`[demo] the demo's JetStream streams were not removed: ${String(e)}\n`);
    return [];
  });
  if (removed.length > 0) say(`[demo] removed the demo's JetStream streams: ${removed.join(" ")}`);
}
say(`[demo] finished (exit code ${exitCode})`);
process.exit(exitCode);

/** The ports of an instance's advertised addresses (`host:port` per protocol). */
function portsOf(instance: Instance): { weft: number; grpc: number; rest: number } {
  const port = (address: string | undefined) => Number(address?.slice(address.lastIndexOf(":") + 1));
  return {
    weft: port(instance.addresses.weft),
    grpc: port(instance.addresses.grpc),
    rest: port(instance.addresses.http),
  };
}
