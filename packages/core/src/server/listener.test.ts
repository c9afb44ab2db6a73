/**
 * The listener lifecycle on its own, over real sockets with a stand-in for the Weft server. Only
 * `setTimeout`, `clearTimeout` and `Date` are faked where a test waits out a grace period.
 */
import { connect, createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ConfigError } from "../errors/weft-error.ts";
import { createListener, type ListenerHooks, type ListenerOwner, STOPPED_GRACE_MS } from "./listener.ts";
import type { ServerState } from "./open-call.ts";

/** A Weft server as far as a listener cares: a state and its listeners. */
function owner() {
  const listeners = new Set<(state: ServerState) => void>();
  const o = {
    state: "serving" as ServerState,
    get subscribed() {
      return listeners.size;
    },
    onStateChange(listener: (state: ServerState) => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    set(state: ServerState) {
      o.state = state;
      for (const l of [...listeners]) l(state);
    },
  };
  return o satisfies ListenerOwner;
}

const cleanups: Array<() => void> = [];
afterEach(() => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0)) c();
});

/** A TCP server that keeps every connection open and says nothing. */
function silentServer(): { net: NetServer; accepted: Socket[] } {
  const accepted: Socket[] = [];
  const net = createNetServer((socket) => {
    accepted.push(socket);
    socket.on("error", () => {});
  });
  return { net, accepted };
}

function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    cleanups.push(() => socket.destroy());
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Resolves true if a TCP connect to `port` is accepted, false if refused. */
function accepts(port: number): Promise<boolean> {
  return dial(port).then(
    (s) => {
      s.destroy();
      return true;
    },
    () => false,
  );
}

function hooks(extra: Partial<ListenerHooks> = {}): ListenerHooks & { reported: unknown[] } {
  const reported: unknown[] = [];
  return { reported, report: (e) => reported.push(e), ...extra };
}

describe("listener lifecycle", () => {
  it("rejects a listen error (port in use) and stops following the server", async () => {
    const blocker = createNetServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => blocker.close());
    const port = (blocker.address() as { port: number }).port;
    const o = owner();
    const h = hooks();
    const listener = createListener(silentServer().net, o, h);
    await expect(listener.listen({ port })).rejects.toMatchObject({ code: "EADDRINUSE" });
    expect(o.subscribed).toBe(0);
    expect(h.reported).toEqual([]);
    await expect(listener.close()).resolves.toBeUndefined();
  });

  it("rejects a bad port with a ConfigError, and a server that is not serving", async () => {
    await expect(createListener(silentServer().net, owner(), hooks()).listen({ port: -1 })).rejects.toThrow(
      ConfigError,
    );
    const o = owner();
    o.state = "draining";
    await expect(createListener(silentServer().net, o, hooks()).listen()).rejects.toThrow("shut down");
  });

  it("rejects when the server begins shutting down while it binds, and closes what it bound", async () => {
    const o = owner();
    const { net } = silentServer();
    const listener = createListener(net, o, hooks());
    const listening = listener.listen();
    o.set("draining");
    await expect(listening).rejects.toThrow("shut down");
    await listener.close();
    expect(net.listening).toBe(false);
  });

  it("reports errors after it listens instead of throwing them at the process", async () => {
    const h = hooks();
    const { net } = silentServer();
    const listener = createListener(net, owner(), h);
    const { port } = await listener.listen();
    const emfile = Object.assign(new Error("accept EMFILE"), { code: "EMFILE" });
    expect(() => net.emit("error", emfile)).not.toThrow();
    expect(h.reported).toEqual([emfile]);
    expect(await accepts(port)).toBe(true);
    await listener.close();
  });

  it("stops accepting when the server starts draining, says goodbye once, and closes once the connections end", async () => {
    const o = owner();
    const drain = vi.fn();
    const { net, accepted } = silentServer();
    const listener = createListener(net, o, hooks({ drain }));
    const { port } = await listener.listen();
    const client = await dial(port);
    await vi.waitFor(() => expect(accepted).toHaveLength(1));
    expect(listener.draining).toBe(false);
    o.set("draining");
    expect(listener.draining).toBe(true);
    expect(drain).toHaveBeenCalledTimes(1);
    expect(await accepts(port)).toBe(false);
    let closed = false;
    const done = listener.close().then(() => {
      closed = true;
    });
    expect(drain).toHaveBeenCalledTimes(1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false); // the open connection holds it
    client.destroy();
    await done;
    expect(o.subscribed).toBe(0);
  });

  it("cuts off a stuck connection a short grace after the server stopped; close() resolves", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const o = owner();
    const cutOff = vi.fn();
    const { net, accepted } = silentServer();
    const listener = createListener(net, o, hooks({ cutOff }));
    const { port } = await listener.listen();
    const stuck = await dial(port); // never closes its side
    await vi.waitFor(() => expect(accepted).toHaveLength(1));
    let closed = false;
    const done = listener.close().then(() => {
      closed = true;
    });
    o.set("draining");
    o.set("stopped");
    await vi.advanceTimersByTimeAsync(STOPPED_GRACE_MS - 1);
    expect(cutOff).not.toHaveBeenCalled();
    expect(accepted[0]!.destroyed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(cutOff).toHaveBeenCalledTimes(1);
    expect(accepted[0]!.destroyed).toBe(true);
    await new Promise((resolve) => stuck.once("close", resolve));
    await done;
    expect(closed).toBe(true);
  });

  it("close({ timeoutMs }) cuts what is still open then, though the server keeps serving", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const { net, accepted } = silentServer();
    const listener = createListener(net, owner(), hooks());
    const { port } = await listener.listen();
    await dial(port);
    await vi.waitFor(() => expect(accepted).toHaveLength(1));
    const done = listener.close({ timeoutMs: 5000 });
    await vi.advanceTimersByTimeAsync(4999);
    expect(accepted[0]!.destroyed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(accepted[0]!.destroyed).toBe(true);
    await done;
  });

  it("close() before listen, or twice, resolves", async () => {
    const listener = createListener(silentServer().net, owner(), hooks());
    await listener.close();
    await listener.close();
    expect(() => listener.close({ timeoutMs: -1 })).toThrow(ConfigError);
  });
});
