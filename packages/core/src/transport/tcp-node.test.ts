import { Duplex } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError } from "../errors/weft-error.ts";
import { TcpNode, type TcpNodeOptions, tcpNodeSettings } from "./tcp-node.ts";

/** A node whose dialer hands out sockets that never connect (a black-holed address). */
function unreachable(options: TcpNodeOptions): { node: TcpNode; sockets: Duplex[] } {
  const sockets: Duplex[] = [];
  const settings = tcpNodeSettings({ keepalive: false, ...options }, () => {
    const socket = new Duplex({ read() {}, write: (_chunk, _enc, done) => done() });
    sockets.push(socket);
    return socket;
  });
  return { node: new TcpNode("10.255.255.1:9", settings), sockets };
}

/** Whether `promise` has settled after a turn of the event loop (a socket reports its error on the next tick). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(() => {
    done = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe("TcpNode settings", () => {
  it.each([
    [{ connectTimeoutMs: 0 }, "connectTimeoutMs"],
    [{ connectTimeoutMs: -5 }, "connectTimeoutMs"],
    [{ connectTimeoutMs: Number.NaN }, "connectTimeoutMs"],
    [{ connectTimeoutMs: "1000" as unknown as number }, "connectTimeoutMs"],
    [{ keepalive: { intervalMs: 0 } }, "keepalive.intervalMs"],
    [{ keepalive: { timeoutMs: Number.POSITIVE_INFINITY } }, "keepalive.timeoutMs"],
    [{ keepalive: true as unknown as false }, "keepalive"],
  ])("refuses %j with a ConfigError naming %s", (options, name) => {
    expect(() => tcpNodeSettings(options, null)).toThrow(ConfigError);
    expect(() => tcpNodeSettings(options, null)).toThrow(`"${name}"`);
  });

  it("takes a connectTimeoutMs of Infinity as no connect timeout", () => {
    expect(() => tcpNodeSettings({ connectTimeoutMs: Number.POSITIVE_INFINITY }, null)).not.toThrow();
  });
});

describe("TcpNode: connect timeout", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("gives up connecting after connectTimeoutMs with UNAVAILABLE / CONNECTION_FAILED", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const { node, sockets } = unreachable({ connectTimeoutMs: 3_000 });
    const outcome = node.connect().catch((e: unknown) => e);
    vi.advanceTimersByTime(2_999);
    expect(await settled(outcome)).toBe(false);
    vi.advanceTimersByTime(1);
    expect(await outcome).toMatchObject({
      code: Code.UNAVAILABLE,
      reason: Reason.CONNECTION_FAILED,
      message: expect.stringMatching(/connect timed out after 3000 ms/),
    });
    expect(sockets[0]!.destroyed).toBe(true);
    await node.close();
  });

  it("waits out a connectTimeoutMs beyond setTimeout's 24.8-day limit", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const month = 30 * 24 * 3600_000;
    const { node, sockets } = unreachable({ connectTimeoutMs: month });
    const outcome = node.connect().catch((e: unknown) => e);
    vi.advanceTimersByTime(1_000);
    expect(await settled(outcome)).toBe(false);
    vi.advanceTimersByTime(month - 1_000);
    expect(await outcome).toMatchObject({ code: Code.UNAVAILABLE, reason: Reason.CONNECTION_FAILED });
    expect(sockets[0]!.destroyed).toBe(true);
    await node.close();
  });

  it("keeps the process alive while connecting, as the socket being dialed does", async () => {
    // real timers: Node counts a timer among its active resources only while it is ref'd
    const kept = (): number => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;
    const before = kept();
    const { node } = unreachable({ connectTimeoutMs: 60_000 });
    const outcome = node.connect().catch((e: unknown) => e);
    expect(kept()).toBe(before + 1);
    await node.close();
    expect(await outcome).toMatchObject({ reason: Reason.TRANSPORT_CLOSED });
    expect(kept()).toBe(before);
  });
});
