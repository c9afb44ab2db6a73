/** The server's TCP listener: failed and repeated `listen()`, errors after it, TCP keepalive. */
import { createServer as createNetServer, type Server as NetServer, Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  createClient,
  createServer,
  createTcpTransport,
  type Server,
  type Transport,
} from "../../src/index.ts";
import { deferred } from "../deferred.ts";
import { Echo } from "../fixtures.ts";

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 100 })));
});

function echoServer(onError: (e: unknown, path: string | undefined) => void = () => {}): Server {
  const server = createServer({ onError }).register(Echo, {
    echo: (req) => ({ text: req.text }),
    count: async function* () {},
    sum: async () => ({ total: 0, count: 0 }),
    chat: async function* () {},
    notify: () => {},
  });
  servers.push(server);
  return server;
}

/** Spies on `setKeepAlive`, which the server calls on every socket it accepts. */
function acceptedSockets() {
  const accepted: Array<{ socket: Socket; args: unknown[] }> = [];
  const next = [deferred<Socket>()];
  vi.spyOn(Socket.prototype, "setKeepAlive").mockImplementation(function (this: Socket, ...args) {
    accepted.push({ socket: this, args });
    next.at(-1)!.resolve(this);
    next.push(deferred<Socket>());
    return this;
  });
  return { accepted, first: next[0]!.promise };
}

describe("listen()", () => {
  it("can be tried again after it failed (port in use)", async () => {
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as { port: number }).port;
    const server = echoServer();
    try {
      await expect(server.listen({ port })).rejects.toMatchObject({ code: "EADDRINUSE" });
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
    }
    const { port: bound } = await server.listen({ port: 0 });
    expect(bound).toBeGreaterThan(0);
    await expect(server.listen({ port: 0 })).rejects.toThrow("already listening");
  });

  it("reports listener errors after it succeeded to onError instead of crashing", async () => {
    const errors: unknown[] = [];
    const server = echoServer((e) => errors.push(e));
    const { accepted, first } = acceptedSockets();
    const { port } = await server.listen();
    const transport = createTcpTransport({ address: `127.0.0.1:${port}` });
    transports.push(transport);
    await createClient(Echo, transport).echo({ text: "x" });
    await first;
    // the listener, reached through a socket it accepted; an accept failure surfaces like this
    const listener = (accepted[0]!.socket as Socket & { server: NetServer }).server;
    const emfile = Object.assign(new Error("accept EMFILE"), { code: "EMFILE" });
    listener.emit("error", emfile);
    expect(errors).toEqual([emfile]);
    await expect(createClient(Echo, transport).echo({ text: "still serving" })).resolves.toEqual({
      text: "still serving",
    });
  });

  it("turns TCP keepalive on for accepted sockets, so a vanished peer is found out", async () => {
    const server = echoServer();
    const { accepted, first } = acceptedSockets();
    const { port } = await server.listen();
    const transport = createTcpTransport({ address: `127.0.0.1:${port}` });
    transports.push(transport);
    await createClient(Echo, transport).echo({ text: "x" });
    await first;
    expect(accepted.map((a) => a.args)).toEqual([[true, 30_000]]);
  });
});
