/**
 * Loopback comparison of gRPC servers under the same client: Weft's gRPC endpoint (`listenGrpc`),
 * an `@grpc/grpc-js` server, and a bare `node:http2` echo (the ceiling), each in its own process,
 * driven by one client process (grpc-js, or Weft's gRPC transport with `--client weft`) with N calls
 * in flight on one connection, echoing N bytes.
 *
 *   node packages/grpc/test/bench/loopback.ts [--client grpc-js|weft] [--seconds 5] [--inflight 64]
 *     [--bytes 100] [--rounds 3] [--systems weft,grpc-js,http2]
 *
 * Server CPU per request is the server process's user+system time over the measured window divided
 * by the calls completed in it.
 */
import { fork } from "node:child_process";
import { once } from "node:events";
import { createServer as createH2Server } from "node:http2";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client, credentials, Server as GrpcJsServer, ServerCredentials } from "@grpc/grpc-js";
import { createClient, createServer, defineService, rawBytes, unary } from "@weft/core";
import { createGrpcTransport, listenGrpc } from "../../src/index.ts";

const PATH = "/bench.Echo/Echo";
const identity = (b: Buffer) => b;
const Echo = defineService("bench.Echo", { echo: unary(rawBytes, rawBytes, { rpcName: "Echo" }) });
type System = "weft" | "grpc-js" | "http2";
type ClientKind = "grpc-js" | "weft";

/** One echo call; the same client code for every server. */
interface EchoClient {
  echo(payload: Buffer): Promise<number>;
  close(): void;
}

async function connect(kind: ClientKind, port: number): Promise<EchoClient> {
  if (kind === "weft") {
    const transport = createGrpcTransport({ address: `127.0.0.1:${port}` });
    const client = createClient(Echo, transport);
    return { echo: async (p) => (await client.echo(p)).length, close: () => void transport.close() };
  }
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  await new Promise<void>((resolve, reject) =>
    client.waitForReady(Date.now() + 5000, (e) => (e === undefined ? resolve() : reject(e))),
  );
  return {
    echo: (payload) =>
      new Promise<number>((resolve, reject) =>
        client.makeUnaryRequest(PATH, identity, identity, payload, (e, r) =>
          e !== null || r === undefined ? reject(e ?? new Error("no reply")) : resolve(r.length),
        ),
      ),
    close: () => client.close(),
  };
}

async function startServer(system: System): Promise<number> {
  switch (system) {
    case "weft": {
      const server = createServer();
      server.register(Echo, { echo: (req) => req });
      return (await listenGrpc(server)).port;
    }
    case "grpc-js": {
      const server = new GrpcJsServer();
      server.addService(
        {
          echo: {
            path: PATH,
            requestStream: false,
            responseStream: false,
            requestSerialize: identity,
            requestDeserialize: identity,
            responseSerialize: identity,
            responseDeserialize: identity,
          },
        },
        { echo: (call: { request: Buffer }, cb: (e: null, r: Buffer) => void) => cb(null, call.request) },
      );
      return new Promise((resolve, reject) =>
        server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, port) =>
          e === null ? resolve(port) : reject(e),
        ),
      );
    }
    case "http2": {
      // Not gRPC-complete: the least work that still answers a grpc-js client correctly.
      const server = createH2Server();
      server.on("stream", (stream) => {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => {
          stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
          stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
          stream.end(Buffer.concat(chunks));
        });
      });
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      return (server.address() as { port: number }).port;
    }
  }
}

async function runServerProcess(system: System): Promise<void> {
  const port = await startServer(system);
  let cpu = process.cpuUsage();
  // BENCH_PROFILE=<dir>: a CPU profile of the measured window only, written to <dir>/<system>.cpuprofile
  const profileDir = process.env.BENCH_PROFILE;
  const inspector =
    profileDir === undefined ? undefined : new (await import("node:inspector/promises")).Session();
  inspector?.connect();
  await inspector?.post("Profiler.enable");
  process.on("message", async (m: string) => {
    if (m === "start") {
      await inspector?.post("Profiler.start");
      cpu = process.cpuUsage();
    }
    if (m === "stop") {
      const d = process.cpuUsage(cpu);
      if (inspector !== undefined) {
        const { profile } = await inspector.post("Profiler.stop");
        (await import("node:fs")).writeFileSync(
          `${profileDir}/${system}.cpuprofile`,
          JSON.stringify(profile),
        );
      }
      process.send!({ cpuMicros: d.user + d.system });
    }
    if (m === "exit") process.exit(0);
  });
  process.send!({ port });
}

async function measure(
  system: System,
  clientKind: ClientKind,
  seconds: number,
  inflight: number,
  bytes: number,
) {
  const child = fork(fileURLToPath(import.meta.url), ["--serve", system], { stdio: "inherit" });
  const [{ port }] = (await once(child, "message")) as [{ port: number }];
  const client = await connect(clientKind, port);
  const payload = Buffer.alloc(bytes, 0x61);
  let counting = false;
  let done = 0;
  let stop = false;
  const loop = async () => {
    while (!stop) {
      if ((await client.echo(payload)) !== bytes) throw new Error("bad echo");
      if (counting) done++;
    }
  };
  const loops = Array.from({ length: inflight }, loop);
  await new Promise((r) => setTimeout(r, 1500)); // warm-up
  child.send("start");
  const clientCpu0 = process.cpuUsage();
  const t0 = performance.now();
  counting = true;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  counting = false;
  const elapsed = (performance.now() - t0) / 1000;
  const clientCpu = process.cpuUsage(clientCpu0);
  child.send("stop");
  const [{ cpuMicros }] = (await once(child, "message")) as [{ cpuMicros: number }];
  stop = true;
  await Promise.all(loops);
  client.close();
  child.send("exit");
  await once(child, "exit");
  return {
    system,
    rps: done / elapsed,
    serverCpuUsPerReq: cpuMicros / done,
    clientCpuUsPerReq: (clientCpu.user + clientCpu.system) / done,
  };
}

const { values } = parseArgs({
  options: {
    serve: { type: "string" },
    seconds: { type: "string", default: "5" },
    inflight: { type: "string", default: "64" },
    bytes: { type: "string", default: "100" },
    rounds: { type: "string", default: "3" },
    systems: { type: "string", default: "weft,grpc-js,http2" },
    client: { type: "string", default: "grpc-js" },
  },
});
if (values.serve !== undefined) {
  await runServerProcess(values.serve as System);
} else {
  const systems = values.systems.split(",") as System[];
  const results: Record<string, Array<Awaited<ReturnType<typeof measure>>>> = {};
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const system of round % 2 === 0 ? systems : [...systems].reverse()) {
      const r = await measure(
        system,
        values.client as ClientKind,
        Number(values.seconds),
        Number(values.inflight),
        Number(values.bytes),
      );
      results[system] = [...(results[system] ?? []), r];
      console.log(
        `round ${round + 1} ${system.padEnd(8)} ${r.rps.toFixed(0).padStart(7)} req/s  server ${r.serverCpuUsPerReq.toFixed(1)} µs/req  client ${r.clientCpuUsPerReq.toFixed(1)} µs/req`,
      );
    }
  }
  console.log("\nmedian of rounds:");
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const rows = systems.map((s) => ({
    system: s,
    rps: median(results[s]!.map((r) => r.rps)),
    cpu: median(results[s]!.map((r) => r.serverCpuUsPerReq)),
  }));
  const base = rows.find((r) => r.system === "grpc-js");
  for (const r of rows) {
    const ratio =
      base === undefined
        ? ""
        : `  ${(r.rps / base.rps).toFixed(2)}x rps, ${(r.cpu / base.cpu).toFixed(2)}x cpu vs grpc-js`;
    console.log(
      `${r.system.padEnd(8)} ${r.rps.toFixed(0).padStart(7)} req/s  server ${r.cpu.toFixed(1)} µs/req${ratio}`,
    );
  }
}
