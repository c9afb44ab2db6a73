/**
 * What the server door tells an admission policy over Weft TCP: when a request can have arrived,
 * counting the time it sat in the socket while the event loop was busy, not only the time since
 * the process read it.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  type CallAdmission,
  type Client,
  createClient,
  createTcpTransport,
  type Transport,
} from "../../src/index.ts";
import { readTurn } from "../../src/internal.ts";
import { Echo, echoHandlers, startServer } from "../fixtures.ts";

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** Burns `ms` of CPU: synchronous work holding the event loop, as a CPU-bound handler does. */
function burn(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy
  }
}

describe("arrival times at the door (Weft TCP)", () => {
  it("counts a request sent while a handler held the event loop as queued since that turn's read", async () => {
    const queued = new Map<string, number>();
    const admission: CallAdmission = {
      admit(_path, headers, arrivedAt) {
        queued.set(headers.get("x-name") ?? "?", performance.now() - arrivedAt);
        return undefined;
      },
      finished() {},
    };
    let other: Client<typeof Echo> | undefined;
    let second: Promise<unknown> | undefined;
    const { server, address } = await startServer(
      (s) =>
        s.register(Echo, {
          ...echoHandlers,
          echo: (req) => {
            if (req.text === "first") {
              // a request on another connection, written out while this handler still runs 5 ms:
              // the next turn reads it without waiting, and it has been in the socket since
              second = other!.echo({ text: "second" }, { headers: { "x-name": "second" } });
              burn(5);
            }
            return { text: req.text };
          },
        }),
      { admission },
    );
    cleanup.push(() => server.shutdown({ timeoutMs: 1000 }));
    const transports: Transport[] = [createTcpTransport({ address }), createTcpTransport({ address })];
    for (const t of transports) cleanup.push(() => t.close());
    const client = createClient(Echo, transports[0]!);
    other = createClient(Echo, transports[1]!);
    // both connections open before the measured calls
    await Promise.all([client.echo({ text: "warm" }), other.echo({ text: "warm" })]);

    await client.echo({ text: "first" }, { headers: { "x-name": "first" } });
    await second;
    expect(queued.get("second")).toBeGreaterThanOrEqual(5);
  });

  it("keeps count of the loop's reading turns only while a server with an admission runs", async () => {
    const admission: CallAdmission = { admit: () => undefined, finished() {} };
    const shedding = await startServer((s) => s.register(Echo, echoHandlers), { admission });
    const plain = await startServer((s) => s.register(Echo, echoHandlers));
    cleanup.push(() => plain.server.shutdown({ timeoutMs: 1000 }));
    const transports = [
      createTcpTransport({ address: shedding.address }),
      createTcpTransport({ address: plain.address }),
    ];
    for (const t of transports) cleanup.push(() => t.close());
    const [a, b] = transports.map((t) => createClient(Echo, t));
    const before = readTurn();
    await a!.echo({ text: "x" });
    expect(readTurn()).toBeGreaterThan(before);
    await shedding.server.shutdown({ timeoutMs: 1000 });
    const after = readTurn();
    for (let i = 0; i < 3; i++) await b!.echo({ text: "y" });
    expect(readTurn()).toBe(after);
  });
});
