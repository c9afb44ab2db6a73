/**
 * `npm run demo`: starts the catalog server in its own process, runs the client in another, prints
 * what each side did, then shuts the server down gracefully.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

const server = spawn(process.execPath, [here("./server.ts")], { stdio: ["ignore", "pipe", "inherit"] });
const ports = await new Promise<{ weft: number; grpc: number; rest: number }>((resolve, reject) => {
  let buffered = "";
  server.stdout.setEncoding("utf8");
  server.stdout.on("data", (chunk: string) => {
    buffered += chunk;
    const m = /LISTENING weft=(\d+) grpc=(\d+) rest=(\d+)/.exec(buffered);
    if (m !== null) {
      resolve({ weft: Number(m[1]), grpc: Number(m[2]), rest: Number(m[3]) });
      buffered = buffered.slice(buffered.indexOf("\n", m.index) + 1);
      if (buffered.length > 0) process.stdout.write(buffered);
      server.stdout.on("data", (c: string) => process.stdout.write(c));
    }
  });
  server.once("exit", (code) => reject(new Error(`server exited early with code ${code}`)));
});
process.stdout.write(
  `[demo] catalog server (pid ${server.pid}) listening on 127.0.0.1: Weft TCP :${ports.weft}, ` +
    `gRPC/gRPC-web/Connect :${ports.grpc}, REST :${ports.rest}\n`,
);

const client = spawn(process.execPath, [here("./client.ts"), JSON.stringify(ports)], { stdio: "inherit" });
const [clientCode] = (await once(client, "exit")) as [number | null];

server.kill("SIGTERM");
await once(server, "exit");
process.stdout.write(`[demo] finished (client exit code ${clientCode})\n`);
process.exit(clientCode ?? 1);
